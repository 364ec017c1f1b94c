"""The pose contract shared by the data pipeline, the model and the losses.

Keypoints (in memory)
    One ``np.ndarray`` of shape ``(17, 3)``, float32, per image: COCO-17 order, columns
    ``(x, y, confidence)`` in image pixels (x right, y down, origin at the top-left pixel
    corner). A missing keypoint has confidence 0. Keypoints with confidence below
    ``VISIBILITY_THRESHOLD`` count as invisible. An image without pose is all zeros.

Pose maps (model input, training only)
    One float tensor ``pose_maps`` of shape ``(B, P + 1, h, w)``, values in ``[0, 1]``, where
    ``(h, w) = feature_size(image_hw)`` is the backbone's feature resolution (stride 16 with
    last stride 1: 256x128 -> 16x8). Channels ``0..P-1`` are the part maps, in the order of
    the part grouping in use (``DEFAULT_PARTS`` for P = 6); channel ``P`` is the foreground
    mask. A part is visible in an image when its map has positive mass; an image without pose
    has all-zero maps (FEB then pools the whole map, SAB skips its alignment).
    In a loader batch the tensor lives under ``batch[POSE_MAPS_KEY]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

NUM_KEYPOINTS = 17
VISIBILITY_THRESHOLD = 0.2
FEATURE_STRIDE = 16
POSE_MAPS_KEY = "pose_maps"

COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# Index of each joint's mirror image, for horizontal flips.
COCO17_FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# Skeleton edges (pairs of COCO-17 indices) along which limbs are filled.
COCO17_BONES: tuple[tuple[int, int], ...] = (
    (5, 7), (7, 9), (6, 8), (8, 10),  # arms
    (11, 13), (13, 15), (12, 14), (14, 16),  # legs
    (5, 6), (11, 12), (5, 11), (6, 12),  # torso
    (0, 1), (0, 2), (1, 3), (2, 4),  # head
)  # fmt: skip

# Default P = 6 grouping: name -> COCO-17 keypoints of the part.
DEFAULT_PARTS: dict[str, tuple[int, ...]] = {
    "head": (0, 1, 2, 3, 4),
    "torso": (5, 6, 11, 12),
    "left_arm": (5, 7, 9),
    "right_arm": (6, 8, 10),
    "left_leg": (11, 13, 15),
    "right_leg": (12, 14, 16),
}

# Part groupings by P, the number of parts (``model.num_parts``); a joint may sit in two parts.
PART_GROUPINGS: dict[int, dict[str, tuple[int, ...]]] = {
    1: {"body": tuple(range(NUM_KEYPOINTS))},
    2: {"upper": tuple(range(11)), "lower": (11, 12, 13, 14, 15, 16)},
    3: {
        "head": (0, 1, 2, 3, 4),
        "upper_body": (5, 6, 7, 8, 9, 10, 11, 12),
        "lower_body": (11, 12, 13, 14, 15, 16),
    },
    4: {
        "head": (0, 1, 2, 3, 4),
        "torso": (5, 6, 11, 12),
        "arms": (5, 6, 7, 8, 9, 10),
        "legs": (11, 12, 13, 14, 15, 16),
    },
    6: DEFAULT_PARTS,
    8: {
        "head": (0, 1, 2, 3, 4),
        "torso": (5, 6, 11, 12),
        "left_arm": (5, 7, 9),
        "right_arm": (6, 8, 10),
        "left_thigh": (11, 13),
        "right_thigh": (12, 14),
        "left_shin": (13, 15),
        "right_shin": (14, 16),
    },
}


@dataclass(frozen=True)
class PoseGeometry:
    """Where the pose maps live: the part grouping and the backbone's feature stride.

    Made once (``from_model_settings``) and handed to both the data pipeline (which draws the
    maps) and the model (which pools with them), so the two always agree on ``(P, h, w)``.
    """

    parts: tuple[tuple[str, tuple[int, ...]], ...] = tuple(DEFAULT_PARTS.items())
    stride: int = FEATURE_STRIDE

    @classmethod
    def from_model_settings(cls, *, num_parts: int = 6, last_stride: int = 1) -> PoseGeometry:
        """The geometry of a ResNet with ``last_stride`` whose SAB has ``num_parts`` groups."""
        if num_parts not in PART_GROUPINGS:
            raise ValueError(
                f"num_parts={num_parts} has no part grouping; choose one of "
                f"{tuple(sorted(PART_GROUPINGS))}"
            )
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        parts = tuple((k, tuple(v)) for k, v in PART_GROUPINGS[num_parts].items())
        return cls(parts=parts, stride=FEATURE_STRIDE * last_stride)

    @property
    def num_parts(self) -> int:
        return len(self.parts)

    @property
    def part_dict(self) -> Mapping[str, tuple[int, ...]]:
        return dict(self.parts)

    def feature_size(self, image_hw: Sequence[int]) -> tuple[int, int]:
        """``(h, w)`` of the pose maps (and the backbone's layer4) for an ``(H, W)`` image."""
        return feature_size(image_hw, self.stride)

    def shape(self, batch_size: int, image_hw: Sequence[int]) -> tuple[int, int, int, int]:
        """``(B, P + 1, h, w)``: the shape of a batch's pose maps."""
        return (batch_size, self.num_parts + 1, *self.feature_size(image_hw))


def feature_size(image_hw: Sequence[int], stride: int = FEATURE_STRIDE) -> tuple[int, int]:
    """Feature-map size of a ResNet with last stride 1 for an image of size ``(H, W)``.

    Every stride-2 stage of a ResNet (conv1, maxpool, layer2, layer3) maps n to ceil(n / 2).
    """
    if stride & (stride - 1) or stride < 1:
        raise ValueError(f"stride must be a power of two, got {stride}")
    out = []
    for n in image_hw:
        n = int(n)
        if n < 1:
            raise ValueError(f"image size must be positive, got {tuple(image_hw)}")
        for _ in range(int(math.log2(stride))):
            n = (n + 1) // 2
        out.append(n)
    return out[0], out[1]


def check_pose_maps(
    pose_maps: torch.Tensor, batch_size: int, num_parts: int, feature_hw: Sequence[int]
) -> None:
    """Raise ``ValueError`` naming the expected shape when ``pose_maps`` breaks the contract."""
    expected = (batch_size, num_parts + 1, int(feature_hw[0]), int(feature_hw[1]))
    if not isinstance(pose_maps, torch.Tensor):
        raise TypeError(
            f"pose_maps must be a torch.Tensor of shape (B, P + 1, h, w) = {expected}, "
            f"got {type(pose_maps).__name__}"
        )
    if tuple(pose_maps.shape) != expected:
        raise ValueError(
            f"pose_maps must have shape (B, P + 1, h, w) = {expected} (batch {batch_size}, "
            f"{num_parts} part maps + 1 foreground mask, at the feature resolution "
            f"{tuple(int(v) for v in feature_hw)}), got {tuple(pose_maps.shape)}"
        )
    if not pose_maps.is_floating_point():
        raise ValueError(f"pose_maps must be a floating-point tensor, got {pose_maps.dtype}")


def visible_parts(pose_maps: torch.Tensor) -> torch.Tensor:
    """``(B, P + 1, h, w)`` -> ``(B, P)`` bool: which part maps have positive mass."""
    return pose_maps[:, :-1].flatten(2).amax(dim=2) > 0
