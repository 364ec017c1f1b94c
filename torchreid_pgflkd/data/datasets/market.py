"""Holistic and occluded benchmarks in the Market/Duke layout: Market-1501, DukeMTMC-reID,
Occluded-Duke (``{bounding_box_train, query, bounding_box_test}``, camera in the file name)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from torchreid_pgflkd.data.datasets.base import PoseImageDataset, Sample, list_images

_NAME = re.compile(r"^([-\d]+)_c(\d+)")
_SPLITS = {
    "train": ("bounding_box_train",),
    "query": ("query",),
    "gallery": ("bounding_box_test",),
}


class MarketLayoutDataset(PoseImageDataset):
    """Base of the ``PPPP_cC...`` layouts: pid -1 (junk) dropped, cameras 0-based, train pids
    relabelled 0..N-1. Subclass and set ``dataset_dir_names`` to read another copy (e.g. the
    synthetic benchmark), or pass ``dataset_dir=`` to the constructor."""

    split_dir_names: ClassVar[dict[str, tuple[str, ...]]] = _SPLITS
    _junk_pids = [0, -1]

    def parse_split(self, split: str, folder: Path) -> list[Sample]:
        rows = []
        for path in list_images(folder):
            m = _NAME.match(path.name)
            if m is None:
                raise ValueError(
                    f"{path}: file name does not follow PPPP_cC... (person id, camera)"
                )
            try:
                pid = int(m.group(1))
            except ValueError:
                raise ValueError(
                    f"{path}: person id {m.group(1)!r} is not an integer (PPPP_cC..., -1 = junk)"
                ) from None
            cam = int(m.group(2))
            if cam < 1:  # c0 would silently become camera -1
                raise ValueError(
                    f"{path}: camera c{m.group(2)} in the file name; Market-style cameras are "
                    "numbered from c1"
                )
            if pid == -1:
                continue
            rows.append((str(path), pid, cam - 1))
        if split == "train":
            labels = {pid: i for i, pid in enumerate(sorted({r[1] for r in rows}))}
            rows = [(p, labels[pid], cam) for p, pid, cam in rows]
        return [(p, pid, cam, 0) for p, pid, cam in rows]


class Market1501Pose(MarketLayoutDataset):
    """Market-1501 with keypoints (train 12,936 / 751 ids; query 3,368; gallery 19,732)."""

    dataset_dir_names: ClassVar[tuple[str, ...]] = (
        "market1501",
        "Market-1501-v15.09.15",
        "Market-1501",
    )


class DukeMTMCreIDPose(MarketLayoutDataset):
    """DukeMTMC-reID with keypoints (train 16,522 / 702 ids; query 2,228; gallery 17,661)."""

    dataset_dir_names: ClassVar[tuple[str, ...]] = ("dukemtmc-reid", "DukeMTMC-reID", "duke")


class OccludedDuke(MarketLayoutDataset):
    """Occluded-Duke (Miao et al. ICCV 2019): train 15,618 / 702 ids, query 2,210 (all
    occluded), gallery 17,661. Evaluate with torchreid's same-id-same-camera removal on."""

    dataset_dir_names: ClassVar[tuple[str, ...]] = (
        "Occluded_Duke",
        "Occluded-DukeMTMC",
        "Occluded_DukeMTMC-reID",
    )
    expected_counts: ClassVar[dict[str, int]] = {"train": 15618, "query": 2210, "gallery": 17661}
