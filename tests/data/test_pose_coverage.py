"""The share of images without pose is logged per split; a training source with no keypoints
at all is refused when the pose is used, unless ``allow_missing_pose``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import torchreid_pgflkd  # noqa: F401  (registers market1501_pose)
from torchreid_pgflkd.cli.main import main
from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.data.datamanager import PoseDataManager
from torchreid_pgflkd.data.keypoint_source import KPR_SUBDIR
from torchreid_pgflkd.data.pose_coverage import MissingPoseError, SplitCoverage, pose_is_used

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"
SMALL = [
    "data.height", "64", "data.width", "32", "data.workers", "0", "data.pad", "2",
    "sampler.batch_size", "8", "sampler.num_instances", "2", "sampler.test_batch_size", "8",
    "data.sources", "['market1501_pose']", "data.targets", "['market1501_pose']",
]  # fmt: skip


def _manager(root: Path, **kwargs: Any) -> PoseDataManager:
    return PoseDataManager(
        root=str(root),
        sources="market1501_pose",
        height=64,
        width=32,
        batch_size_train=8,
        num_instances=2,
        num_workers=0,
        **kwargs,
    )


def _by_split(dm: PoseDataManager) -> dict[str, tuple[int, int]]:
    return {c.split: (c.without_pose, c.total) for c in dm.pose_coverage}


def test_images_without_pose_are_counted_and_logged_per_split(tiny_market, caplog) -> None:
    # Files for the first 3 images of each split, the first file with no visible joint:
    # train 16 - 2 with pose, query 2 - 1, gallery 4 - 2
    root = tiny_market(with_keypoints=3, invisible=1)
    caplog.set_level(logging.INFO, logger="torchreid_pgflkd")
    dm = _manager(root)
    assert _by_split(dm) == {"train": (14, 16), "query": (1, 2), "gallery": (2, 4)}
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("pose_coverage")]
    assert "market1501_pose train: 14 of 16 images without pose (87.5%)" in lines
    assert "market1501_pose query: 1 of 2 images without pose (50.0%)" in lines
    assert "market1501_pose gallery: 2 of 4 images without pose (50.0%)" in lines


def test_a_source_without_keypoints_is_refused_naming_the_folder(tiny_market) -> None:
    root = tiny_market(with_keypoints=None)
    with pytest.raises(MissingPoseError) as info:
        _manager(root)
    text = str(info.value)
    assert "'market1501_pose'" in text and "16 training images" in text
    assert str(root / "market1501" / KPR_SUBDIR) in text  # where it looked
    assert "pgflkd keypoints --images" in text and "data.keypoints_dir" in text
    assert "dataset_kwargs={'market1501_pose': {'keypoints_dir'" in text
    assert "data.allow_missing_pose True" in text


def test_an_empty_keypoints_folder_or_invisible_poses_only_are_refused(tiny_market, tmp_path):
    root = tiny_market(with_keypoints=None)
    (root / "market1501" / KPR_SUBDIR / "bounding_box_train").mkdir(parents=True)
    with pytest.raises(MissingPoseError, match="no visible keypoint in any"):
        _manager(root)
    empty = tmp_path / "my_keypoints"
    empty.mkdir()
    kwargs = {"market1501_pose": {"keypoints_dir": str(empty)}}
    with pytest.raises(MissingPoseError, match=f"looked in {empty}"):
        _manager(root, dataset_kwargs=kwargs)
    # a file for every image, none with a visible joint: no pose either
    with pytest.raises(MissingPoseError):
        _manager(tiny_market(with_keypoints=16, invisible=16))


def test_allow_missing_pose_trains_on_empty_pose_maps(tiny_market) -> None:
    dm = _manager(tiny_market(with_keypoints=None), allow_missing_pose=True)
    assert _by_split(dm)["train"] == (16, 16)
    batch = next(iter(dm.train_loader))
    assert not batch["pose_maps"].any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pose_source": "stripes"},
        {"pose_source": "none"},
        {"uses_pose": False},  # a model without FEB and SAB
    ],
)
def test_no_refusal_when_the_pose_is_not_used(tiny_market, kwargs) -> None:
    dm = _manager(tiny_market(with_keypoints=None), **kwargs)
    assert _by_split(dm)["train"] == (16, 16)


def test_shuffled_poses_need_keypoints_too(tiny_market) -> None:
    with pytest.raises(MissingPoseError):
        _manager(tiny_market(with_keypoints=None), pose_source="shuffled")


def test_torchreids_own_dataset_is_refused_as_one_without_keypoints(tiny_market) -> None:
    root = tiny_market(with_keypoints=16)  # keypoints there, but market1501 never reads them
    with pytest.raises(MissingPoseError, match="'market1501' has no pose.*reads no keypoints"):
        PoseDataManager(root=str(root), sources="market1501", batch_size_train=8, num_workers=0)


def test_pose_is_used_by_feb_or_sab_with_keypoint_poses() -> None:
    assert pose_is_used("keypoints", feb=True, sab=False)
    assert pose_is_used("shuffled", feb=False, sab=True)
    assert not pose_is_used("keypoints", feb=False, sab=False)
    assert not pose_is_used("stripes", feb=True, sab=True)
    assert not pose_is_used("none", feb=True, sab=True)
    assert SplitCoverage("d", "train", 3, 3).has_no_pose
    assert not SplitCoverage("d", "train", 0, 0).has_no_pose


def test_the_config_decides_from_the_model_and_the_command(tiny_market) -> None:
    opts = [*SMALL, "data.root", str(tiny_market(with_keypoints=None))]
    with pytest.raises(MissingPoseError):
        build.build_datamanager(load_config(CONFIG, opts))
    baseline = load_config(
        CONFIG, [*opts, "model.feb", "False", "model.sab", "False", "model.interaction", "False"]
    )
    assert _by_split(build.build_datamanager(baseline))["train"] == (16, 16)
    allowed = load_config(CONFIG, [*opts, "data.allow_missing_pose", "True"])
    build.build_datamanager(allowed)
    build.build_datamanager(load_config(CONFIG, opts), train=False)  # testing: only counted


def test_the_embedded_benchmark_has_pose(tiny_opts) -> None:
    cfg = build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    coverage = {c.split: c for c in build.build_datamanager(cfg).pose_coverage}
    assert set(coverage) == {"train", "query", "gallery"}
    assert coverage["train"].without_pose < coverage["train"].total


def test_the_cli_refusal_is_one_line(tiny_market, tmp_path: Path, capsys) -> None:
    root = tiny_market(with_keypoints=None)
    argv = ["train", "--config", str(CONFIG), *SMALL, "data.root", str(root)]
    assert main([*argv, "train.save_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgflkd train: error: training source 'market1501_pose' has no pose")
    assert "\n" not in err and "Traceback" not in err and "allow_missing_pose" in err
