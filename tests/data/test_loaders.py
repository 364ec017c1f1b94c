"""Train/test loaders and PoseDataManager on the real Market mini set and its real keypoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import torchreid_pgflkd  # noqa: F401
from torchreid_pgflkd.data.datamanager import PoseDataManager
from torchreid_pgflkd.pose import POSE_MAPS_KEY, check_pose_maps


@pytest.fixture(scope="module")
def manager(shared_data: Path) -> PoseDataManager:
    mat = shared_data / "keypoints" / "market1501_train_14point" / "market1501_14point_train.mat"
    return PoseDataManager(
        root=str(shared_data / "market1501_mini"),
        sources="market1501_pose",
        targets=["market1501_pose"],
        batch_size_train=16,
        num_instances=4,
        batch_size_test=32,
        num_workers=0,
        dataset_kwargs={"market1501_pose": {"keypoints_file": str(mat)}},
    )


def test_train_batch_has_pose_maps_and_pk_structure(manager: PoseDataManager) -> None:
    batch = next(iter(manager.train_loader))
    assert batch["img"].shape == (16, 3, 256, 128)
    check_pose_maps(batch[POSE_MAPS_KEY], 16, 6, (16, 8))
    pids = batch["pid"].tolist()
    assert all(pids.count(p) == 4 for p in set(pids))  # 4 ids x 4 images
    assert len(batch["impath"]) == 16 and batch["dsetid"].shape == (16,)
    # every real train crop has real keypoints: a foreground in every image
    assert (batch[POSE_MAPS_KEY][:, -1].flatten(1).amax(1) > 0.5).all()


def test_pose_maps_follow_the_transformed_keypoints(manager: PoseDataManager) -> None:
    torch.manual_seed(0)
    batch = next(iter(manager.train_loader))
    maps = manager.mapper(batch["keypoints"], image_hw=(256, 128))
    torch.testing.assert_close(maps, batch[POSE_MAPS_KEY])


def test_engine_facing_attributes(manager: PoseDataManager) -> None:
    assert manager.num_train_pids == 16 and manager.num_train_cams == 6
    assert manager.data_type == "image" and (manager.height, manager.width) == (256, 128)
    assert manager.sources == ["market1501_pose"] == manager.targets
    query, gallery = manager.fetch_test_loaders("market1501_pose")
    assert len(query) == 32 and len(gallery) == 32 and len(query[0]) == 4
    assert manager.return_query_and_gallery_by_name("market1501_pose") == (query, gallery)
    batch = next(iter(manager.test_loader["market1501_pose"]["gallery"]))
    assert POSE_MAPS_KEY not in batch and batch["img"].shape == (32, 3, 256, 128)
    assert manager.train_sampler is manager.train_loader.sampler


def test_two_sources_offset_pids_and_custom_sampler(shared_data: Path) -> None:
    seen = {}

    def factory(*, data_source, batch_size, num_instances):
        seen["n"] = len(data_source)
        return torch.utils.data.SequentialSampler(data_source)

    dm = PoseDataManager(
        root=str(shared_data / "market1501_mini"),
        sources=["market1501_pose", "market1501_pose"],
        batch_size_train=8,
        num_workers=0,
        sampler=factory,
        allow_missing_pose=True,  # no keypoints given: the empty poses checked below
    )
    assert dm.num_train_pids == 32 and seen["n"] == 64
    samples = dm.train_set.samples
    assert max(s[1] for s in samples) == 31 and {s[3] for s in samples} == {0, 1}
    batch = next(iter(dm.train_loader))
    assert not batch[POSE_MAPS_KEY].any()  # no keypoints found: empty poses, still a batch


def test_worker_processes(shared_data: Path) -> None:
    dm = PoseDataManager(
        root=str(shared_data / "market1501_mini"),
        sources="market1501_pose",
        batch_size_train=8,
        num_instances=2,
        num_workers=2,
        allow_missing_pose=True,  # no keypoints given; the workers are tested
    )
    batch = next(iter(dm.train_loader))
    assert batch["img"].shape == (8, 3, 256, 128)
