"""How many images of each split have a pose; the refusal of a training source with none.

An image without pose (no keypoint file, or no joint at the visibility threshold) gets empty
pose maps: FEB pools the whole map, SAB pools every part over the whole map. A few such images
are normal (heavy occlusion, a missed detection); a training source where *every* image is
without pose means the keypoints were never found (a missing or empty keypoints folder, a
torchreid dataset that reads none), and training would go ahead with the pose-guided branches
learning from nothing. ``check_training_pose`` refuses that unless the user asked for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchreid_pgflkd.pose.contract import VISIBILITY_THRESHOLD
from torchreid_pgflkd.pose.keypoints import is_empty

logger = logging.getLogger(__name__)

# ``data.pose_source`` values whose pose maps come from the dataset's keypoints.
KEYPOINT_POSE_SOURCES: tuple[str, ...] = ("keypoints", "shuffled")


class MissingPoseError(ValueError):
    """A training source has no keypoints at all while the model uses the pose."""


@dataclass(frozen=True)
class SplitCoverage:
    """Pose coverage of one split: ``without_pose`` of ``total`` images have no visible joint.

    ``searched``: where the dataset looked for keypoints (empty when it reads none);
    ``dataset_dir``: its image folder.
    ``reads_keypoints``: False for datasets that know no keypoints (torchreid's own).
    """

    dataset: str
    split: str
    total: int
    without_pose: int
    searched: tuple[str, ...] = ()
    dataset_dir: str = ""
    reads_keypoints: bool = True

    @property
    def has_no_pose(self) -> bool:
        """Every image of a non-empty split is without pose."""
        return self.total > 0 and self.without_pose == self.total


def _searched(ds: Any) -> tuple[str, ...]:
    if getattr(ds, "keypoints_file", None) is not None:
        return (str(ds.keypoints_file),)
    return tuple(str(d) for d in ds.keypoint_search_dirs())


def split_coverage(
    name: str,
    ds: Any,
    split: str,
    samples: Sequence[Sequence[Any]],
    *,
    threshold: float = VISIBILITY_THRESHOLD,
) -> SplitCoverage:
    """Coverage of ``samples`` (``(img_path, ...)`` rows) of ``ds``'s ``split``.

    Reads the split's keypoint table (``PoseImageDataset.keypoint_table``, cached on the
    dataset, so the loaders reuse it); a dataset without one counts every image as without pose.
    """
    if not hasattr(ds, "keypoint_table"):
        return SplitCoverage(name, split, len(samples), len(samples), (), reads_keypoints=False)
    table = ds.keypoint_table(split)
    missing = len(samples)
    if table is not None:
        poses = (table.get(Path(row[0]).name) for row in samples)
        missing = sum(pose is None or is_empty(pose, threshold) for pose in poses)
    folder = str(getattr(ds, "dataset_dir", ""))
    return SplitCoverage(name, split, len(samples), missing, _searched(ds), folder)


def dataset_coverage(
    train_sets: Mapping[str, Any],
    test_sets: Mapping[str, Any],
    *,
    threshold: float = VISIBILITY_THRESHOLD,
) -> list[SplitCoverage]:
    """Coverage of every training source's ``train`` split and every target's ``query`` and
    ``gallery`` splits (datasets by name)."""
    out = [
        split_coverage(n, ds, "train", ds.train, threshold=threshold)
        for n, ds in train_sets.items()
    ]
    for name, ds in test_sets.items():
        for split in ("query", "gallery"):
            out.append(split_coverage(name, ds, split, getattr(ds, split), threshold=threshold))
    return out


def log_coverage(coverage: Iterable[SplitCoverage]) -> None:
    """One line per split: ``market1501_pose train: 12 of 12936 images without pose (0.1%)``."""
    for c in coverage:
        share = 100.0 * c.without_pose / c.total if c.total else 0.0
        where = "" if c.reads_keypoints else " (the dataset reads no keypoints)"
        logger.info(
            "%s %s: %d of %d images without pose (%.1f%%)%s",
            c.dataset,
            c.split,
            c.without_pose,
            c.total,
            share,
            where,
        )


def pose_is_used(pose_source: str, *, feb: bool, sab: bool) -> bool:
    """Whether training reads the datasets' keypoints: a keypoint pose source and a pose-guided
    branch (FEB or SAB). ``stripes`` / ``none`` and the plain baseline never do."""
    return pose_source in KEYPOINT_POSE_SOURCES and (feb or sab)


def check_training_pose(coverage: Iterable[SplitCoverage], *, allow_missing_pose: bool) -> None:
    """Refuse a ``train`` split where every image is without pose, unless ``allow_missing_pose``.

    Call it only when the pose is used (``pose_is_used``). Raises ``MissingPoseError`` naming
    the dataset, where it looked, and the two ways out.
    """
    if allow_missing_pose:
        return
    for c in coverage:
        if c.split != "train" or not c.has_no_pose:
            continue
        if c.reads_keypoints:
            what = f"no visible keypoint in any of its {c.total} training images; looked in " + (
                ", ".join(c.searched) or "no folder"
            )
            output = c.searched[0] if c.searched else "KEYPOINTS_DIR"
            fix = (
                f"produce them with `pgflkd keypoints --images {c.dataset_dir or 'IMAGES'} "
                f"--output {output}` (KPR's published ones: `pgflkd fetch-keypoints`), or point "
                f"data.keypoints_dir (PoseDataManager: dataset_kwargs={{{c.dataset!r}: "
                "{'keypoints_dir': ...}}) at the keypoints you have"
            )
        else:
            what = "it is a dataset that reads no keypoints (torchreid's own)"
            fix = "train on the plugin's pose-aware copy of it (its name ending in _pose)"
        raise MissingPoseError(
            f"training source {c.dataset!r} has no pose: {what}. FEB/SAB would train on empty "
            f"pose maps. Either {fix}, or set data.allow_missing_pose True "
            "(PoseDataManager(allow_missing_pose=True)) to train on empty pose maps deliberately"
        )
