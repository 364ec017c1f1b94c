"""The per-split keypoint cache follows the files it was built from and survives damage."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from torchreid_pgflkd.data.keypoint_source import split_keypoints
from torchreid_pgflkd.pose.cache import KeypointTable, save_split_cache

NAMES = [f"{pid:04d}_c1s1_000000_00.jpg" for pid in (1, 2, 3)]


def _pose(x: float) -> list[list[float]]:
    return [[x, 10.0 + j, 1.0] for j in range(17)]


def _write(kp_dir: Path, name: str, x: float) -> None:
    (kp_dir / f"{name}_keypoints.json").write_text(
        json.dumps([{"keypoints": _pose(x), "is_target": True}])
    )


@pytest.fixture
def split(tmp_path: Path) -> dict:
    split_dir = tmp_path / "data" / "bounding_box_train"
    kp_dir = tmp_path / "kp" / "bounding_box_train"
    split_dir.mkdir(parents=True)
    kp_dir.mkdir(parents=True)
    for i, name in enumerate(NAMES):
        _write(kp_dir, name, 5.0 + i)
    return dict(
        image_paths=[str(split_dir / n) for n in NAMES],
        split_dir=split_dir,
        search_dirs=[tmp_path / "kp"],
        cache_dir=tmp_path / "cache",
    )


def _caches(split: dict) -> list[Path]:
    return sorted((split["cache_dir"] / "keypoints").glob("*.npz"))


def test_a_keypoint_file_rewritten_in_place_invalidates_the_cache(split: dict) -> None:
    table = split_keypoints(**split)
    assert table.get(NAMES[1])[0, 0] == pytest.approx(6.0)
    assert len(_caches(split)) == 1
    kp_dir = split["search_dirs"][0] / "bounding_box_train"
    _write(kp_dir, NAMES[1], 42.25)  # same folder, same file count, file rewritten in place
    assert split_keypoints(**split).get(NAMES[1])[0, 0] == pytest.approx(42.25)
    assert split_keypoints(**split).get(NAMES[0])[0, 0] == pytest.approx(5.0)  # from cache


def test_a_damaged_cache_is_rebuilt_with_a_warning_naming_it(
    split: dict, caplog: pytest.LogCaptureFixture
) -> None:
    split_keypoints(**split)
    (cache,) = _caches(split)
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])  # a torn write, e.g. a full disk
    with caplog.at_level(logging.WARNING):
        table = split_keypoints(**split)
    assert table.get(NAMES[2])[0, 0] == pytest.approx(7.0)
    assert any(str(cache) in r.getMessage() for r in caplog.records)
    assert KeypointTable.load(cache).names == NAMES  # rebuilt in place, readable again


def test_a_failed_cache_write_names_the_file_and_keeps_the_old_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_split_cache(tmp_path / "train.npz", NAMES, np.zeros((3, 17, 3)))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError) as info:
        save_split_cache(path, NAMES[:1], np.ones((1, 17, 3)))
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value)
    assert KeypointTable.load(path).names == NAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.npz"]  # no temp file left
