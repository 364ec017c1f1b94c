"""The embedded benchmark survives concurrent generation, damage and write errors."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from torchreid_pgflkd.data.synthetic import META_FILE, SPLITS, generate, keypoint_path

TINY = dict(num_train_ids=4, images_per_id=3, num_test_ids=4, queries_per_id=1, gallery_per_id=2)
SMALL = dict(TINY, num_train_ids=12, images_per_id=4)  # about a second of writing

# A child process: import, say it is ready, wait for the start signal, generate, then check
# that every file meta.json lists is there when ``generate`` returns. The late one starts
# when the early one is nearly done: the old code deleted the early one's folder, which
# then got its meta.json (so "complete") while the late one was still refilling it.
_CHILD = """
import json, sys, time
from pathlib import Path
from torchreid_pgflkd.data.synthetic import META_FILE, generate
root, ready, go, late = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
ready.touch()
while not go.exists() or (late == "1" and len(list(root.rglob("*.jpg"))) < 50):
    time.sleep(0.002)
out = generate(root, seed=5, progress=False, num_workers=0, **{settings})
meta = json.loads((out / META_FILE).read_text())
listed = [out / s / e["file"] for s, es in meta["images"].items() for e in es]
missing = [p for p in listed if not p.is_file()]
assert not missing, f"{{len(missing)}} listed images missing when generate returned"
"""


def _listed_files(out: Path) -> list[Path]:
    meta = json.loads((out / META_FILE).read_text())
    files = []
    for split in SPLITS:
        for entry in meta["images"][split]:
            files += [out / split / entry["file"], keypoint_path(out, split, entry["file"])]
    return files


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_two_processes_generating_one_benchmark_both_succeed_and_leave_it_complete(
    tmp_path: Path,
) -> None:
    root = tmp_path / "shared_root"
    code = _CHILD.format(settings=repr(SMALL))
    go = tmp_path / "go"
    children = []
    for i in range(2):
        ready = tmp_path / f"ready{i}"
        cmd = [sys.executable, "-c", code, str(root), str(ready), str(go), str(i)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        children.append((proc, ready))
    deadline = time.monotonic() + 120
    while not all(ready.exists() for _, ready in children):  # both imported: start together
        assert time.monotonic() < deadline, "child processes did not start"
        assert all(p.poll() is None for p, _ in children), [p.communicate() for p, _ in children]
        time.sleep(0.01)
    go.touch()
    for proc, _ in children:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
    (out,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    listed = _listed_files(out)
    assert len(listed) == 2 * (12 * 4 + 4 * 1 + 4 * 2)
    assert all(p.is_file() and p.stat().st_size > 0 for p in listed)
    reference = generate(tmp_path / "alone", seed=5, progress=False, num_workers=0, **SMALL)
    assert _files(out) == _files(reference)  # the very same bytes as a generation alone


def test_a_damaged_benchmark_folder_is_rebuilt_with_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = generate(tmp_path, seed=1, progress=False, num_workers=0, **TINY)
    before = _files(out)
    lost = sorted((out / "bounding_box_train").iterdir())[2]
    lost.unlink()  # what a second generator's rmtree left behind before the fix
    with caplog.at_level(logging.WARNING):
        again = generate(tmp_path, seed=1, progress=False, num_workers=0, **TINY)
    assert again == out and lost.is_file()
    assert any(str(out) in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert _files(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.is_dir()]


def test_what_a_killed_generation_left_is_cleaned_up(tmp_path: Path) -> None:
    out = generate(tmp_path, seed=1, progress=False, num_workers=0, **TINY)
    left = [tmp_path / f".{out.name}.tmp-99999", tmp_path / f".{out.name}.old-99999"]
    for folder in left:
        (folder / "query").mkdir(parents=True)
    generate(tmp_path, seed=1, progress=False, num_workers=0, overwrite=True, **TINY)
    assert not any(folder.exists() for folder in left) and not _problem_files(out)


def _problem_files(out: Path) -> list[Path]:
    return [p for p in _listed_files(out) if not p.is_file()]


def test_a_complete_folder_is_reused_without_rewriting(tmp_path: Path) -> None:
    out = generate(tmp_path, seed=1, progress=False, num_workers=0, **TINY)
    stamp = (out / META_FILE).stat().st_mtime_ns
    assert generate(tmp_path, seed=1, progress=False, num_workers=0, **TINY) == out
    assert (out / META_FILE).stat().st_mtime_ns == stamp


def test_a_write_error_names_the_file_and_leaves_no_half_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError) as info:
        generate(tmp_path, seed=2, progress=False, num_workers=0, **TINY)
    assert info.value.errno == errno.ENOSPC
    assert ".jpg" in str(info.value) and str(tmp_path) in str(info.value)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # nothing half-written stays
