"""Every image is opened before the first epoch: a corrupt gallery image stops the run at its
start (or is dropped, when asked), not at the evaluation after the last epoch."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.data.verify import BadImagesError, read_error, verify_images

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


def _jpeg(path: Path, size: tuple[int, int] = (32, 64)) -> Path:
    noise = Image.effect_noise(size, 64).convert("RGB")  # incompressible: a long data stream
    noise.save(path, quality=95)
    return path


def test_verify_catches_a_truncated_jpeg_that_image_verify_lets_through(tmp_path: Path) -> None:
    good = _jpeg(tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    with Image.open(cut) as image:
        image.verify()  # no complaint: why verify_images decodes instead
    assert read_error(str(good)) is None
    assert "truncated" in read_error(str(cut))
    assert read_error(str(tmp_path / "absent.jpg")) == "no such file"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "cannot identify image file" in read_error(str(tmp_path / "empty.jpg"))


def test_verify_names_the_first_20_files_and_counts_the_rest(tmp_path: Path) -> None:
    good = _jpeg(tmp_path / "good.jpg", (8, 8))
    bad = []
    for i in range(25):
        bad.append(tmp_path / f"bad{i:02d}.jpg")
        bad[-1].write_bytes(b"not a jpeg")
    splits = {"a/train": [(str(good), 0, 0, 0)] * 3, "a/gallery": [(str(p), 1, 0, 0) for p in bad]}
    with pytest.raises(BadImagesError) as info:
        verify_images(splits)
    message = str(info.value)
    assert message.startswith("25 of 26 images cannot be read")
    assert f"a/gallery: {bad[19]}" in message and str(bad[20]) not in message
    assert "... and 5 more" in message and "skip_bad_images" in message

    splits["a/train"].append((str(bad[0]), 0, 0, 0))
    report = verify_images(splits | {"a/gallery": [(str(good), 1, 0, 0)]}, skip_bad=True)
    assert report.dropped == 1 and report.checked == 2
    assert splits["a/train"] == [(str(good), 0, 0, 0)] * 3  # dropped in place
    with pytest.raises(BadImagesError, match="every image of a/gallery is unreadable"):
        verify_images({"a/gallery": [(str(bad[0]), 1, 0, 0)]}, skip_bad=True)


def _corrupt_copy(tiny_opts: list[str], tmp_path: Path) -> tuple[list[str], Path]:
    """The tiny benchmark copied, with one gallery image cut short."""
    cfg = build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    root = tmp_path / "data"
    shutil.copytree(Path(cfg.data.root) / cfg.data.dataset_dir, root / cfg.data.dataset_dir)
    gallery = sorted((root / cfg.data.dataset_dir / "bounding_box_test").glob("*.jpg"))
    victim = gallery[len(gallery) // 2]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    opts = [*tiny_opts, "data.root", str(root), "data.dataset_dir", cfg.data.dataset_dir]
    return opts, victim


def test_verify_a_corrupt_gallery_image_stops_the_run_before_training(
    tiny_opts: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: training ran every epoch, then the evaluation failed on this image."""
    opts, victim = _corrupt_copy(tiny_opts, tmp_path)
    cfg = load_config(CONFIG, opts)
    with pytest.raises(BadImagesError, match=rf"1 of \d+ images .*gallery: {victim} \("):
        build.build_datamanager(cfg)

    with caplog.at_level("WARNING"):
        dm = build.build_datamanager(load_config(CONFIG, [*opts, "data.skip_bad_images", "True"]))
    gallery = [s[0] for s in dm.fetch_test_loaders("synthetic_occluded")[1]]
    assert str(victim) not in gallery and gallery
    assert len(dm.test_loader["synthetic_occluded"]["gallery"].dataset) == len(gallery)
    assert "dropped 1 samples of 1 unreadable images" in caplog.text


def test_verify_real_cuhk03_crops_in_seconds(shared_data: Path) -> None:
    crops = sorted((shared_data / "cuhk03_pair1").rglob("*.jpg"))
    if not crops:
        pytest.skip(f"no CUHK03 crops under {shared_data}")
    start = time.perf_counter()
    report = verify_images({"cuhk03": [(str(p), 0, 0, 0) for p in crops]})
    assert report.checked == len(crops) and not report.bad
    assert time.perf_counter() - start < 60  # ~3 s for 8k crops on two busy cores
