"""Market-style file names that do not fit the layout fail naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from torchreid_pgflkd.data.datasets import Market1501Pose


def _layout(root: Path, odd_name: str) -> Path:
    image = Image.new("RGB", (64, 128))
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        folder = root / "market1501" / split
        folder.mkdir(parents=True)
        for name in ("0001_c1s1_000001_00.jpg", "0002_c2s1_000001_00.jpg"):
            image.save(folder / name)
    odd = root / "market1501" / "query" / odd_name
    image.save(odd)
    return odd


def test_valid_names_give_zero_based_cameras(tmp_path: Path) -> None:
    _layout(tmp_path, "0002_c6s1_000002_00.jpg")
    ds = Market1501Pose(root=str(tmp_path), verbose=False)
    assert sorted(s[2] for s in ds.query) == [0, 1, 5]


@pytest.mark.parametrize("odd_name", ["0001_c0s1_000002_00.jpg", "00-1_c1s1_000002_00.jpg"])
def test_a_bad_camera_or_person_id_names_the_file(tmp_path: Path, odd_name: str) -> None:
    odd = _layout(tmp_path, odd_name)
    with pytest.raises(ValueError) as info:
        Market1501Pose(root=str(tmp_path), verbose=False)
    assert str(odd) in str(info.value)
