"""Test-only occluded/partial benchmarks, trained on Market-1501: query camera 0, gallery 1.

See ``base.py`` for how they satisfy torchreid without a train split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from torchreid_pgflkd.data.datasets.base import PoseImageDataset, Sample, list_images
from torchreid_pgflkd.data.datasets.folder import shared_keypoint_dirs

_LEADING_INT = re.compile(r"^(\d+)")


def _pid_of(path: Path, folder: Path) -> int:
    """Person id: the numeric sub-folder under the split folder, else the file name prefix."""
    rel = path.relative_to(folder)
    for part in (rel.parts[0] if len(rel.parts) > 1 else "", path.stem):
        m = _LEADING_INT.match(part)
        if m:
            return int(m.group(1))
    raise ValueError(f"{path}: cannot read a person id from the folder or file name")


class _QueryGalleryDataset(PoseImageDataset):
    test_only = True
    camera: ClassVar[dict[str, int]] = {"query": 0, "gallery": 1}
    recursive = False

    def parse_split(self, split: str, folder: Path) -> list[Sample]:
        cam = self.camera[split]
        return [
            (str(p), _pid_of(p, folder), cam, 0)
            for p in list_images(folder, recursive=self.recursive)
        ]


class OccludedREID(_QueryGalleryDataset):
    """Occluded-REID (Zhuo et al. ICME 2018): 200 ids x 5 occluded (query) and 5 whole-body
    (gallery) images, ``<split>/<pid>/<name>.tif`` (flat ``PPP_NN.tif`` copies also work)."""

    dataset_dir_names: ClassVar[tuple[str, ...]] = (
        "Occluded_REID",
        "OccludedREID",
        "Occluded-ReID",
    )
    split_dir_names: ClassVar[dict[str, tuple[str, ...]]] = {
        "query": ("occluded_body_images", "occluded"),
        "gallery": ("whole_body_images", "whole"),
    }
    recursive = True


class PartialREID(_QueryGalleryDataset):
    """Partial-REID (Zheng et al. ICCV 2015): 60 ids x 5 images per folder, ``PPP_NNN.jpg``.

    Keypoints: besides the KPR folder, the shared-data layout
    ``<root>/keypoints/blazepose/partial_reid/Partial-REID_Dataset/<folder>/`` is a fallback.

    Args:
        query_folder: ``'partial'`` (``partial_body_images``, the default) or ``'occluded'``
            (``occluded_body_images``): codebases differ on which is the query.
    """

    dataset_dir_names: ClassVar[tuple[str, ...]] = (
        "Partial_REID",
        "Partial-REID_Dataset",
        "Partial_REID_Dataset",
        "PartialREID",
        "partial_reid",
    )
    expected_counts: ClassVar[dict[str, int]] = {"query": 300, "gallery": 300}
    _QUERY_FOLDERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "partial": ("partial_body_images", "partial"),
        "occluded": ("occluded_body_images", "occluded"),
    }

    def __init__(self, root: str = "", *, query_folder: str = "partial", **kwargs: Any) -> None:
        if query_folder not in self._QUERY_FOLDERS:
            raise ValueError(
                f"query_folder must be one of {sorted(self._QUERY_FOLDERS)}, got {query_folder!r}"
            )
        self.query_folder = query_folder
        self.split_dir_names = {
            "query": self._QUERY_FOLDERS[query_folder],
            "gallery": ("whole_body_images", "whole"),
        }
        super().__init__(root, **kwargs)

    def keypoint_search_dirs(self) -> list[Path]:
        dirs = super().keypoint_search_dirs()
        if self.keypoints_dir is not None:
            return dirs
        return dirs + shared_keypoint_dirs(self.dataset_dir)


class PartialREIDOccluded(PartialREID):
    """``partial_reid`` with the query fixed to ``occluded_body_images``: a target name of its
    own, so it and ``partial_reid_partial`` can both be targets of one run."""

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        super().__init__(root, query_folder="occluded", **kwargs)


class PartialREIDPartial(PartialREID):
    """``partial_reid`` with the query fixed to ``partial_body_images``."""

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        super().__init__(root, query_folder="partial", **kwargs)


class PartialILIDS(_QueryGalleryDataset):
    """Partial-iLIDS (Zheng et al. ICCV 2015): 119 ids, ``{Probe, Gallery}/N.jpg`` (pid = N)."""

    dataset_dir_names: ClassVar[tuple[str, ...]] = (
        "Partial_iLIDS",
        "PartialiLIDS",
        "Partial-iLIDS_Dataset",
        "partial_ilids",
    )
    split_dir_names: ClassVar[dict[str, tuple[str, ...]]] = {
        "query": ("Probe", "query"),
        "gallery": ("Gallery",),
    }
    expected_counts: ClassVar[dict[str, int]] = {"query": 119, "gallery": 119}
