"""Pose-aware datasets registered with torchreid: name -> class."""

from torchreid_pgflkd.data.datasets.base import PoseImageDataset
from torchreid_pgflkd.data.datasets.market import (
    DukeMTMCreIDPose,
    Market1501Pose,
    MarketLayoutDataset,
    OccludedDuke,
)
from torchreid_pgflkd.data.datasets.synthetic import SyntheticOccluded
from torchreid_pgflkd.data.datasets.test_only import OccludedREID, PartialILIDS, PartialREID

DATASETS: dict[str, type] = {
    "market1501_pose": Market1501Pose,
    "dukemtmcreid_pose": DukeMTMCreIDPose,
    "occluded_duke": OccludedDuke,
    "occluded_reid": OccludedREID,
    "partial_reid": PartialREID,
    "partial_ilids": PartialILIDS,
    "synthetic_occluded": SyntheticOccluded,
}

__all__ = [
    "DATASETS",
    "DukeMTMCreIDPose",
    "Market1501Pose",
    "MarketLayoutDataset",
    "OccludedDuke",
    "OccludedREID",
    "PartialILIDS",
    "PartialREID",
    "PoseImageDataset",
    "SyntheticOccluded",
]
