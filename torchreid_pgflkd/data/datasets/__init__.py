"""Pose-aware datasets registered with torchreid: name -> class."""

from torchreid_pgflkd.data.datasets.base import PoseImageDataset
from torchreid_pgflkd.data.datasets.folder import (
    CropFolderDataset,
    CUHK03Pair1,
    CUHK03Pair1Holdout,
    CUHK03Pair1HoldoutBlob,
    CUHK03Pair1HoldoutPartial,
    CUHK03Pair1HoldoutWhole,
    SeededBlobOcclusion,
    SeededOcclusion,
    SeededPartialView,
)
from torchreid_pgflkd.data.datasets.market import (
    DukeMTMCreIDPose,
    Market1501Pose,
    MarketLayoutDataset,
    OccludedDuke,
)
from torchreid_pgflkd.data.datasets.query_gallery import (
    OccludedREID,
    PartialILIDS,
    PartialREID,
    PartialREIDOccluded,
    PartialREIDPartial,
)
from torchreid_pgflkd.data.datasets.synthetic import SyntheticOccluded

DATASETS: dict[str, type] = {
    "market1501_pose": Market1501Pose,
    "dukemtmcreid_pose": DukeMTMCreIDPose,
    "occluded_duke": OccludedDuke,
    "occluded_reid": OccludedREID,
    "partial_reid": PartialREID,
    "partial_reid_occluded": PartialREIDOccluded,
    "partial_reid_partial": PartialREIDPartial,
    "partial_ilids": PartialILIDS,
    "synthetic_occluded": SyntheticOccluded,
    "crop_folder": CropFolderDataset,
    "cuhk03_pair1": CUHK03Pair1,
    "cuhk03_pair1_holdout": CUHK03Pair1Holdout,
    "cuhk03_pair1_holdout_whole": CUHK03Pair1HoldoutWhole,
    "cuhk03_pair1_holdout_partial": CUHK03Pair1HoldoutPartial,
    "cuhk03_pair1_holdout_blob": CUHK03Pair1HoldoutBlob,
}

__all__ = [
    "DATASETS",
    "CUHK03Pair1",
    "CUHK03Pair1Holdout",
    "CUHK03Pair1HoldoutBlob",
    "CUHK03Pair1HoldoutPartial",
    "CUHK03Pair1HoldoutWhole",
    "CropFolderDataset",
    "DukeMTMCreIDPose",
    "Market1501Pose",
    "MarketLayoutDataset",
    "OccludedDuke",
    "OccludedREID",
    "PartialILIDS",
    "PartialREID",
    "PartialREIDOccluded",
    "PartialREIDPartial",
    "PoseImageDataset",
    "SeededBlobOcclusion",
    "SeededOcclusion",
    "SeededPartialView",
    "SyntheticOccluded",
]
