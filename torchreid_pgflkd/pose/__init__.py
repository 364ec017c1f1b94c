"""Keypoints and pose maps: formats, heatmaps, part maps, foreground masks (no Dataset here)."""

from torchreid_pgflkd.pose.contract import (
    COCO17_FLIP_INDEX,
    COCO17_NAMES,
    DEFAULT_PARTS,
    FEATURE_STRIDE,
    NUM_KEYPOINTS,
    POSE_MAPS_KEY,
    VISIBILITY_THRESHOLD,
    check_pose_maps,
    feature_size,
    visible_parts,
)

__all__ = [
    "COCO17_FLIP_INDEX",
    "COCO17_NAMES",
    "DEFAULT_PARTS",
    "FEATURE_STRIDE",
    "NUM_KEYPOINTS",
    "POSE_MAPS_KEY",
    "VISIBILITY_THRESHOLD",
    "check_pose_maps",
    "feature_size",
    "visible_parts",
]
