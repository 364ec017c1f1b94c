"""Pose maps: shapes, where the mass is, invisible keypoints, the real Market 14-point poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from torchreid_pgflkd.pose import (
    DEFAULT_PARTS,
    PoseMapper,
    check_pose_maps,
    feature_size,
    keypoint_heatmaps,
    part_maps,
    pose_maps,
    read_market14_mat,
    visible_parts,
)


def _standing_person() -> np.ndarray:
    """A frontal person in a 256x128 image (COCO-17 pixel coordinates)."""
    xy = {
        0: (64, 30), 1: (60, 26), 2: (68, 26), 3: (56, 28), 4: (72, 28),
        5: (44, 60), 6: (84, 60), 7: (38, 100), 8: (90, 100), 9: (36, 135), 10: (92, 135),
        11: (50, 140), 12: (78, 140), 13: (50, 190), 14: (78, 190), 15: (50, 240), 16: (78, 240),
    }  # fmt: skip
    kp = np.zeros((17, 3), np.float32)
    for j, (x, y) in xy.items():
        kp[j] = (x, y, 1.0)
    return kp


def test_shapes_single_and_batched_follow_the_contract() -> None:
    kp = _standing_person()
    single = pose_maps(kp, image_hw=(256, 128))
    assert single.shape == (7, 16, 8)
    batch = pose_maps(np.stack([kp, kp, kp]), image_hw=(256, 128))
    check_pose_maps(batch, 3, 6, feature_size((256, 128)))
    assert torch.allclose(batch[1], single)
    assert pose_maps(kp, image_hw=(256, 128), out_hw=(64, 32)).shape == (7, 64, 32)
    assert keypoint_heatmaps(kp, image_hw=(256, 128)).shape == (17, 16, 8)
    assert part_maps(kp, image_hw=(256, 128)).shape == (6, 16, 8)
    assert float(batch.min()) >= 0 and float(batch.max()) <= 1


def test_heatmap_peaks_under_its_keypoint() -> None:
    kp = _standing_person()
    heat = keypoint_heatmaps(kp, image_hw=(256, 128), out_hw=(64, 32))  # 4 px cells
    for j in range(17):
        peak = int(heat[j].argmax())
        row, col = divmod(peak, 32)
        assert row == int(kp[j, 1] // 4) or row == int(kp[j, 1] // 4) - 1
        assert abs(col - kp[j, 0] / 4) <= 1


def test_invisible_keypoints_give_empty_maps() -> None:
    maps = pose_maps(np.zeros((17, 3), np.float32), image_hw=(256, 128))
    assert not maps.any()
    kp = _standing_person()
    kp[[11, 13, 15], 2] = 0.1  # below the visibility threshold: left leg gone
    kp[[5, 7, 9], 2] = 0.0
    maps = pose_maps(kp[None], image_hw=(256, 128))
    vis = visible_parts(maps)[0].tolist()
    names = list(DEFAULT_PARTS)
    assert vis[names.index("left_leg")] is False
    assert vis[names.index("right_leg")] is True
    # the right shoulder survives in the torso, the left arm has no visible joint left
    assert vis[names.index("left_arm")] is False


def test_limbs_are_filled_between_joints() -> None:
    kp = np.zeros((17, 3), np.float32)
    kp[12] = (64, 40, 1)  # right hip
    kp[14] = (64, 230, 1)  # right knee, far below: the bone crosses empty cells
    with_limbs = PoseMapper()(kp, image_hw=(256, 128))
    without = PoseMapper(limbs=False)(kp, image_hw=(256, 128))
    leg = list(DEFAULT_PARTS).index("right_leg")
    mid = with_limbs[leg, 8, 4], without[leg, 8, 4]  # half way along the bone
    assert mid[0] > 0.8 and mid[1] < 0.01


def test_real_market_keypoints_cover_the_person(shared_data: Path) -> None:
    folder = shared_data / "keypoints" / "market1501_train_14point"
    poses = read_market14_mat(folder / "market1501_14point_train.mat")
    train = sorted((shared_data / "market1501_mini").rglob("bounding_box_train/*.jpg"))
    assert len(train) == 32
    kp = np.stack([poses[p.name] for p in train])
    maps = PoseMapper()(kp, image_hw=(128, 64), out_hw=(16, 8))
    fg = maps[:, -1]  # (32, 16, 8)
    for i in range(len(train)):
        # peak of the mask's column and row profiles (a single cell can be a raised wrist)
        col, row = int(fg[i].sum(0).argmax()), int(fg[i].sum(1).argmax())
        assert 1 <= row <= 14 and 1 <= col <= 6, f"{train[i].name}: peak at {(row, col)}"
        cx = float((fg[i].sum(0) * torch.arange(8)).sum() / fg[i].sum())
        assert 2 <= cx <= 5, f"{train[i].name}: mask centre of mass at column {cx:.1f}"
        # the middle half of the columns holds most of the mask, the outer columns little
        central = fg[i, :, 2:6].sum() / fg[i].sum()
        assert central > 0.5, f"{train[i].name}: only {central:.2f} of the mask in the middle"
    central_all = fg[:, :, 2:6].sum() / fg.sum()
    assert central_all > 0.6
    assert fg[:, :, [0, 7]].sum() / fg.sum() < 0.15  # little mass on the border columns


def test_soft_visibility_scales_a_keypoint_map_by_its_confidence() -> None:
    from torchreid_pgflkd.pose.maps import PoseMapper

    kp = torch.zeros(17, 3)
    kp[0] = torch.tensor([32.0, 16.0, 0.5])  # the nose, visible at confidence 0.5
    hard = PoseMapper()(kp, image_hw=(128, 64))
    soft = PoseMapper(soft=True)(kp, image_hw=(128, 64))
    torch.testing.assert_close(soft[0], 0.5 * hard[0])
    kp[0, 2] = 0.1  # below the threshold: invisible either way
    assert not PoseMapper(soft=True)(kp, image_hw=(128, 64)).any()
