"""Pose-aware transforms: paint a dot at a keypoint, transform, find the dot under the keypoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from torchreid_pgflkd.data.transforms import (
    PadRandomCrop,
    PoseCompose,
    RandomErasing,
    RandomHorizontalFlip,
    Resize,
    ToTensorNormalize,
    build_pose_transforms,
    flip_keypoints,
)
from torchreid_pgflkd.pose import COCO17_FLIP_INDEX


def _dot_image(h: int, w: int, x: float, y: float) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    xi, yi = int(x), int(y)
    arr[max(yi - 2, 0) : yi + 3, max(xi - 2, 0) : xi + 3] = 255
    return Image.fromarray(arr)


def _brightest(image) -> tuple[float, float]:
    if isinstance(image, torch.Tensor):
        arr = image.sum(0).numpy()
    else:
        arr = np.asarray(image, np.float32).sum(-1)
    ys, xs = np.nonzero(arr >= arr.max() - 1e-3)
    return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5


def _pose(x: float, y: float, joint: int = 9) -> np.ndarray:
    kp = np.zeros((17, 3), np.float32)
    kp[joint] = (x, y, 1.0)
    return kp


@pytest.mark.parametrize("seed", range(5))
def test_dot_stays_under_its_keypoint_through_the_train_recipe(seed: int) -> None:
    torch.manual_seed(seed)
    train, _ = build_pose_transforms(height=256, width=128, erase_prob=0.0, flip_prob=0.5)
    x, y = 20.5, 40.5
    image, kp = train(_dot_image(128, 64, x, y), _pose(x, y))
    joint = 9 if kp[9, 2] > 0 else 10  # a flip moves the left wrist to the right wrist slot
    assert kp[joint, 2] == 1.0
    bx, by = _brightest(image)
    assert abs(bx - kp[joint, 0]) <= 2.5 and abs(by - kp[joint, 1]) <= 2.5


def test_flip_moves_and_swaps() -> None:
    x, y = 10.5, 30.5
    image, kp = RandomHorizontalFlip(p=1.0)(_dot_image(64, 32, x, y), _pose(x, y, joint=5))
    assert kp[5, 2] == 0 and kp[6, 2] == 1  # left shoulder became right shoulder
    assert kp[6, 0] == pytest.approx(32 - x)
    bx, by = _brightest(image)
    assert abs(bx - kp[6, 0]) <= 0.5 and abs(by - kp[6, 1]) <= 0.5
    twice = flip_keypoints(flip_keypoints(_pose(x, y, joint=5), 32), 32)
    np.testing.assert_allclose(twice, _pose(x, y, joint=5))
    assert all(COCO17_FLIP_INDEX[COCO17_FLIP_INDEX[i]] == i for i in range(17))


def test_resize_scales_keypoints() -> None:
    x, y = 30.5, 90.5
    image, kp = Resize(height=256, width=128)(_dot_image(128, 64, x, y), _pose(x, y))
    assert kp[9, :2].tolist() == pytest.approx([61.0, 181.0])
    bx, by = _brightest(image)
    assert abs(bx - 61) <= 2 and abs(by - 181) <= 2


def test_crop_hides_keypoints_that_leave_the_image() -> None:
    kp = _pose(1.0, 1.0)
    hidden = 0
    for seed in range(20):
        torch.manual_seed(seed)
        _, out = PadRandomCrop(padding=10)(_dot_image(64, 32, 1, 1), kp)
        hidden += int(out[9, 2] == 0)
        if out[9, 2] > 0:
            assert 0 <= out[9, 0] <= 32 and 0 <= out[9, 1] <= 64
    assert hidden > 0


def test_random_erasing_makes_covered_keypoints_invisible() -> None:
    torch.manual_seed(0)
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = np.linspace(2, 62, 17)
    kp[:, 1] = np.linspace(4, 124, 17)
    kp[:, 2] = 1
    tfm = PoseCompose([ToTensorNormalize(), RandomErasing(p=1.0, value=-100.0)])
    image = Image.fromarray(np.full((128, 64, 3), 128, np.uint8))
    tensor, out = tfm(image, kp)
    erased = (tensor[0] == -100.0).numpy()
    assert erased.any()
    for j in range(17):
        xi, yi = int(kp[j, 0]), int(kp[j, 1])
        if erased[yi, xi]:
            assert out[j, 2] == 0
        else:
            assert out[j, 2] == 1


def test_random_occlusion_covers_a_side_and_hides_the_covered_joints(tmp_path) -> None:
    from PIL import Image

    from torchreid_pgflkd.data.transforms import RandomOcclusion

    other = tmp_path / "other.png"
    Image.new("RGB", (40, 100), (255, 0, 0)).save(other)
    torch.manual_seed(0)
    occlude = RandomOcclusion(p=1.0, area=(0.3, 0.5), pool=[str(other)], mean=(0, 0, 0),
                              std=(1, 1, 1))  # fmt: skip
    h, w = 64, 32
    kp = np.zeros((17, 3), dtype=np.float32)
    kp[:, 0] = np.linspace(1, w - 1, 17)
    kp[:, 1] = np.linspace(1, h - 1, 17)
    kp[:, 2] = 1.0
    for _ in range(20):
        image = torch.full((3, h, w), 0.5)
        out, kp_out = occlude(image, kp)
        changed = (out != 0.5).any(dim=0)
        frac = changed.float().mean().item()
        assert 0.25 <= frac <= 0.55
        rows, cols = changed.any(dim=1), changed.any(dim=0)
        # From the bottom (full width) or from a side (full height).
        assert bool(rows[-1]) and (bool(cols.all()) or bool(rows.all()))
        xs, ys = kp[:, 0].astype(int), kp[:, 1].astype(int)
        hidden = kp_out[:, 2] == 0
        assert np.array_equal(hidden, changed[ys, xs].numpy())
