"""Keypoints and pose maps: formats, heatmaps, part maps, foreground masks (no Dataset here)."""

from torchreid_pgflkd.pose.cache import KeypointTable, load_split_cache, save_split_cache
from torchreid_pgflkd.pose.contract import (
    COCO17_FLIP_INDEX,
    COCO17_NAMES,
    DEFAULT_PARTS,
    FEATURE_STRIDE,
    NUM_KEYPOINTS,
    PART_GROUPINGS,
    POSE_MAPS_KEY,
    VISIBILITY_THRESHOLD,
    PoseGeometry,
    check_pose_maps,
    feature_size,
    visible_parts,
)
from torchreid_pgflkd.pose.draw import draw_pose
from torchreid_pgflkd.pose.formats import (
    read_coco_results,
    read_keypoint_file,
    read_kpr_json,
    read_market14_mat,
    read_openpose_json,
)
from torchreid_pgflkd.pose.keypoints import (
    KeypointFormatError,
    empty_pose,
    is_empty,
    sanitize_keypoints,
    select_target,
)
from torchreid_pgflkd.pose.maps import (
    PoseMapper,
    foreground_mask,
    keypoint_heatmaps,
    part_maps,
    pose_maps,
)

__all__ = [
    "COCO17_FLIP_INDEX",
    "COCO17_NAMES",
    "DEFAULT_PARTS",
    "FEATURE_STRIDE",
    "NUM_KEYPOINTS",
    "PART_GROUPINGS",
    "POSE_MAPS_KEY",
    "VISIBILITY_THRESHOLD",
    "KeypointFormatError",
    "KeypointTable",
    "PoseGeometry",
    "PoseMapper",
    "check_pose_maps",
    "draw_pose",
    "empty_pose",
    "feature_size",
    "foreground_mask",
    "is_empty",
    "keypoint_heatmaps",
    "load_split_cache",
    "part_maps",
    "pose_maps",
    "read_coco_results",
    "read_keypoint_file",
    "read_kpr_json",
    "read_market14_mat",
    "read_openpose_json",
    "sanitize_keypoints",
    "save_split_cache",
    "select_target",
    "visible_parts",
]
