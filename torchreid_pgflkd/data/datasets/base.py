"""Base class of the pose-aware datasets: folder-variant lookup, keypoints, test-only sets.

Test-only sets (Occluded-REID, Partial-REID, Partial-iLIDS) have no train split, but torchreid's
``Dataset.__init__`` indexes ``train[0]``. We hand it the query list to get through, then set
``train`` to ``[]`` and ``num_train_pids`` / ``num_train_cams`` to 0; asking such a set for
``mode='train'`` raises a ``ValueError`` that says to use it as a target.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from torchreid_pgflkd import compat
from torchreid_pgflkd.data.keypoint_source import (
    KPR_SUBDIR,
    load_keypoint_file,
    split_keypoints,
)
from torchreid_pgflkd.pose.cache import KeypointTable
from torchreid_pgflkd.pose.keypoints import empty_pose

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
# torchreid's ImageDataManager passes these to every dataset; ours do not use them.
_TORCHREID_ONLY_KWARGS = ("split_id", "cuhk03_labeled", "cuhk03_classic_split", "market1501_500k")

Sample = tuple[str, int, int, int]


def normalise_name(name: str) -> str:
    """Folder-name key that ignores case, dashes, underscores and spaces."""
    return re.sub(r"[-_ .]", "", name).lower()


def find_child(parent: Path, names: Sequence[str]) -> Path | None:
    """Sub-folder of ``parent`` named one of ``names`` (case, dashes, underscores ignored)."""
    if not parent.is_dir():
        return None
    wanted = [normalise_name(n) for n in names]
    children = {normalise_name(c.name): c for c in sorted(parent.iterdir()) if c.is_dir()}
    for key in wanted:
        if key in children:
            return children[key]
    return None


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS)


class PoseImageDataset(compat.image_dataset_base()):
    """A torchreid ``ImageDataset`` that also knows where the keypoints of its images are.

    Subclasses set ``dataset_dir_names`` (accepted folder names under ``root``, matched up to
    case, dashes and underscores), ``split_dir_names`` (split -> accepted sub-folder names) and
    implement ``parse_split``. Keyword arguments:

    Args:
        root: data root holding the dataset folder (or the dataset folder itself).
        dataset_dir: a custom dataset folder name under ``root`` (overrides the class list).
        keypoints_dir: folder of per-image keypoint JSON (default: the KPR convention).
        keypoints_file: one keypoint file for all splits (``.npz``, ``.mat``, COCO ``.json``).
        keypoint_cache_dir: where the per-split ``.npz`` caches go.
        **kwargs: torchreid's (``transform``, ``mode``, ``verbose``, ...).
    """

    dataset_dir_names: ClassVar[tuple[str, ...]] = ()
    split_dir_names: ClassVar[dict[str, tuple[str, ...]]] = {}
    test_only: ClassVar[bool] = False
    expected_counts: ClassVar[dict[str, int]] = {}

    def __init__(
        self,
        root: str = "",
        *,
        dataset_dir: str | None = None,
        keypoints_dir: str | None = None,
        keypoints_file: str | None = None,
        keypoint_cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        for key in _TORCHREID_ONLY_KWARGS:
            kwargs.pop(key, None)
        self.root = Path(root).expanduser().resolve()
        names = (dataset_dir,) if dataset_dir else self.dataset_dir_names
        self.dataset_dir, self.split_dirs = self._resolve_layout(names)
        self.keypoints_dir = Path(keypoints_dir) if keypoints_dir else None
        self.keypoints_file = Path(keypoints_file) if keypoints_file else None
        self.keypoint_cache_dir = keypoint_cache_dir
        self._tables: dict[str, KeypointTable | None] = {}
        splits = {s: self.parse_split(s, d) for s, d in self.split_dirs.items()}
        self._check_counts(splits)
        query, gallery = splits["query"], splits["gallery"]
        mode = kwargs.get("mode", "train")
        if self.test_only:
            if mode == "train":
                raise ValueError(
                    f"{type(self).__name__} is a test-only dataset (no train split): use it as a "
                    "target, e.g. sources=['market1501_pose'], targets=[...]"
                )
            kwargs["combineall"] = False
            train = list(query)  # satisfies torchreid's train[0] check; emptied below
        else:
            train = splits["train"]
        super().__init__(train, query, gallery, **kwargs)
        if self.test_only:
            self.train = []
            self.num_train_pids = self.num_train_cams = 0

    # -- layout ----------------------------------------------------------------------------
    def _resolve_layout(self, names: Sequence[str]) -> tuple[Path, dict[str, Path]]:
        """Find the dataset folder: ``root/<name>``, ``root/<name>/<name'>`` or ``root`` itself."""
        candidates: list[Path] = []
        top = find_child(self.root, names)
        if top is not None:
            candidates.append(top)
            candidates += [c for c in sorted(top.iterdir()) if c.is_dir()]
        candidates.append(self.root)
        report = []
        for cand in candidates:
            found = {s: find_child(cand, alts) for s, alts in self.split_dir_names.items()}
            if all(found.values()):
                return cand, found  # type: ignore[return-value]
            report.append(
                f"{cand}: "
                + ", ".join(
                    f"{s}={'/'.join(self.split_dir_names[s])}: "
                    + (f"{len(list_images(p, recursive=True))} images" if p else "missing")
                    for s, p in found.items()
                )
            )
        raise FileNotFoundError(
            f"{type(self).__name__}: no complete dataset under root {self.root}. Looked for a "
            f"folder named one of {list(names)} (case, '-' and '_' ignored) holding the "
            f"sub-folders {[v[0] for v in self.split_dir_names.values()]}. Found: "
            + "; ".join(report)
            + ". Nothing is downloaded: put the dataset there or pass root=/dataset_dir=."
        )

    def _check_counts(self, splits: dict[str, list[Sample]]) -> None:
        for split, samples in splits.items():
            if not samples:
                raise FileNotFoundError(
                    f"{type(self).__name__}: split '{split}' folder {self.split_dirs[split]} "
                    f"holds no usable images ({IMAGE_EXTENSIONS})"
                )
            expected = self.expected_counts.get(split)
            if expected is not None and expected != len(samples):
                logger.warning(
                    "%s: %s has %d images where the benchmark has %d (%s)",
                    type(self).__name__,
                    split,
                    len(samples),
                    expected,
                    self.split_dirs[split],
                )

    def parse_split(self, split: str, folder: Path) -> list[Sample]:
        """``(img_path, pid, camid, dsetid)`` samples of one split (train pids relabelled)."""
        raise NotImplementedError

    # -- keypoints -------------------------------------------------------------------------
    def keypoint_search_dirs(self) -> list[Path]:
        if self.keypoints_dir is not None:
            if not self.keypoints_dir.is_dir():
                raise FileNotFoundError(f"keypoints_dir {self.keypoints_dir} is not a folder")
            return [self.keypoints_dir]
        dirs = [self.dataset_dir / KPR_SUBDIR, self.dataset_dir.parent / KPR_SUBDIR]
        return list(dict.fromkeys(dirs))

    def keypoint_table(self, split: str) -> KeypointTable | None:
        """Keypoints of one split (``train``/``query``/``gallery``), or None when there are none."""
        if split not in self._tables:
            if self.keypoints_file is not None:
                table = self._tables.setdefault("_file", load_keypoint_file(self.keypoints_file))
            else:
                samples = {"train": self.train, "query": self.query, "gallery": self.gallery}
                paths = [s[0] for s in samples[split]]
                table = split_keypoints(
                    paths,
                    split_dir=self.split_dirs[split],
                    search_dirs=self.keypoint_search_dirs(),
                    cache_dir=self.keypoint_cache_dir,
                    what=f"{type(self).__name__} {split}",
                )
            if table is None:
                logger.warning(
                    "%s %s: no keypoints found (looked in %s); every image gets an empty pose",
                    type(self).__name__,
                    split,
                    [str(d) for d in self.keypoint_search_dirs()],
                )
            self._tables[split] = table
        return self._tables[split]

    def keypoint_lookup(self, split: str = "train") -> Callable[[str], np.ndarray]:
        """``img_path -> (17, 3)`` pose of ``split`` (empty pose when the image has none)."""
        return _TableLookup(self.keypoint_table(split))


class _TableLookup:
    """Picklable ``img_path -> (17, 3)`` lookup (DataLoader workers pickle it)."""

    def __init__(self, table: KeypointTable | None) -> None:
        self.table = table

    def __call__(self, img_path: str) -> np.ndarray:
        if self.table is None:
            return empty_pose()
        return self.table.get_or_empty(Path(img_path).name)
