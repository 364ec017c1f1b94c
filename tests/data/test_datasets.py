"""Registered datasets on real layouts, folder variants, errors, KPR keypoint lookup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import torchreid_pgflkd  # noqa: F401  (registers the datasets)
from torchreid_pgflkd import compat
from torchreid_pgflkd.data.datasets import DATASETS, Market1501Pose
from torchreid_pgflkd.data.keypoint_source import KPR_SUBDIR


def _init(name: str, **kwargs):
    return compat.submodule("data.datasets").init_image_dataset(name, verbose=False, **kwargs)


def test_all_names_are_registered_with_torchreid() -> None:
    registry = compat.image_dataset_registry()
    for name in (
        "occluded_duke",
        "occluded_reid",
        "partial_reid",
        "partial_ilids",
        "market1501_pose",
        "dukemtmcreid_pose",
    ):
        assert registry[name] is DATASETS[name]


@pytest.mark.parametrize("query_folder", ["partial", "occluded"])
def test_partial_reid_real_counts(shared_data: Path, query_folder: str) -> None:
    ds = _init(
        "partial_reid", root=str(shared_data / "partial_reid"), mode="query",
        query_folder=query_folder,
    )  # fmt: skip
    assert len(ds.query) == 300 and len(ds.gallery) == 300
    assert len({s[1] for s in ds.query}) == 60 and len({s[1] for s in ds.gallery}) == 60
    assert {s[2] for s in ds.query} == {0} and {s[2] for s in ds.gallery} == {1}
    assert all(len(s) == 4 for s in ds.query + ds.gallery)
    assert all(f"{query_folder}_body_images" in s[0] for s in ds.query)
    assert ds.train == [] and ds.num_train_pids == 0
    with pytest.raises(ValueError, match="test-only"):
        _init("partial_reid", root=str(shared_data / "partial_reid"), mode="train")


def test_market_mini_layout(shared_data: Path) -> None:
    ds = _init("market1501_pose", root=str(shared_data / "market1501_mini"))
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (32, 32, 32)
    assert sorted({s[1] for s in ds.train}) == list(range(16))  # relabelled
    assert all(0 <= s[2] < 6 for s in ds.train + ds.query + ds.gallery)
    assert {s[1] for s in ds.query} == {s[1] for s in ds.gallery}
    item = ds[0]
    assert set(item) >= {"img", "pid", "camid", "impath", "dsetid"}


def test_folder_name_variants_and_custom_dir(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "market1501_mini" / "Market-1501-v15.09.15"
    shutil.copytree(src, tmp_path / "MARKET_1501" / "inner")
    ds = _init("market1501_pose", root=str(tmp_path))
    assert len(ds.train) == 32

    class SyntheticMarket(Market1501Pose):
        dataset_dir_names = ("my_synthetic",)

    (tmp_path / "MARKET_1501").rename(tmp_path / "my_synthetic")
    assert len(SyntheticMarket(root=str(tmp_path), verbose=False).gallery) == 32
    assert len(Market1501Pose(root=str(tmp_path), dataset_dir="my_synthetic").query) == 32


def test_wrong_layout_names_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "Partial_REID" / "whole_body_images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as info:
        _init("partial_reid", root=str(tmp_path), mode="query")
    msg = str(info.value)
    assert "partial_body_images" in msg and "missing" in msg and "Partial_REID" in msg
    (tmp_path / "Partial_REID" / "partial_body_images").mkdir()
    with pytest.raises(FileNotFoundError, match="no usable images"):
        _init("partial_reid", root=str(tmp_path), mode="query")


def test_partial_ilids_and_occluded_reid_layouts(tmp_path: Path) -> None:
    from PIL import Image

    img = Image.new("RGB", (32, 64))
    for split in ("Probe", "Gallery"):
        (tmp_path / "partial-iLIDS" / split).mkdir(parents=True)
        for n in (1, 2, 3):
            img.save(tmp_path / "partial-iLIDS" / split / f"{n}.jpg")
    ds = _init("partial_ilids", root=str(tmp_path), mode="gallery")
    assert sorted(s[1] for s in ds.query) == [1, 2, 3] and {s[2] for s in ds.gallery} == {1}
    for split in ("occluded_body_images", "whole_body_images"):
        for pid in ("001", "002"):
            (tmp_path / "Occluded_REID" / split / pid).mkdir(parents=True)
            img.save(tmp_path / "Occluded_REID" / split / pid / f"{pid}_01.tif")
    ds = _init("occluded_reid", root=str(tmp_path), mode="query")
    assert sorted(s[1] for s in ds.query) == [1, 2] and {s[2] for s in ds.query} == {0}


def test_kpr_keypoints_found_by_convention(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "market1501_mini" / "Market-1501-v15.09.15"
    data = tmp_path / "market1501" / "Market-1501-v15.09.15"
    shutil.copytree(src, data)
    kp_dir = data / KPR_SUBDIR / "bounding_box_train"
    kp_dir.mkdir(parents=True)
    names = sorted(p.name for p in (data / "bounding_box_train").iterdir())
    pose = np.zeros((17, 3))
    pose[:, :2] = [[10 + j, 5 + 7 * j] for j in range(17)]
    pose[:, 2] = 0.9
    for name in names[:-1]:  # the last image has no file: empty pose
        (kp_dir / f"{name}_keypoints.json").write_text(
            json.dumps([{"keypoints": pose.tolist(), "is_target": True}])
        )
    ds = _init("market1501_pose", root=str(tmp_path), keypoint_cache_dir=str(tmp_path / "c"))
    lookup = ds.keypoint_lookup("train")
    by_name = {Path(s[0]).name: s[0] for s in ds.train}
    np.testing.assert_allclose(lookup(by_name[names[0]]), pose, rtol=1e-6)
    assert not lookup(by_name[names[-1]]).any()
    assert list((tmp_path / "c" / "keypoints").glob("*.npz"))  # cache written once
    ds2 = _init("market1501_pose", root=str(tmp_path), keypoint_cache_dir=str(tmp_path / "c"))
    np.testing.assert_allclose(ds2.keypoint_lookup("train")(by_name[names[1]]), pose, rtol=1e-6)
    # a malformed file is an error naming it (fresh cache dir so the file is read)
    (kp_dir / f"{names[0]}_keypoints.json").write_text("{oops")
    ds3 = _init("market1501_pose", root=str(tmp_path), keypoint_cache_dir=str(tmp_path / "d"))
    with pytest.raises(ValueError, match=names[0]):
        ds3.keypoint_lookup("train")
