"""The canonical keypoint form and its checks: COCO-17 ``(x, y, confidence)`` in image pixels.

Every reader in :mod:`torchreid_pgflkd.pose.formats` ends in :func:`sanitize_keypoints`, so
whatever the source, the rest of the package sees one ``(17, 3)`` float32 array per image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from torchreid_pgflkd.pose.contract import NUM_KEYPOINTS, VISIBILITY_THRESHOLD

logger = logging.getLogger(__name__)

# Estimators place a joint a few pixels outside the crop (a foot on the bottom edge), which
# clipping fixes; a joint further out than this fraction of the image side is not in the image
# and would sit on the border as a false visible joint, so it becomes invisible.
OUTSIDE_TOLERANCE = 0.05


class KeypointFormatError(ValueError):
    """A keypoint file (or array) that cannot be read; the message names the file."""


def empty_pose() -> np.ndarray:
    """The pose of an image without keypoints: ``(17, 3)`` zeros (every joint invisible)."""
    return np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)


def is_empty(keypoints: np.ndarray, threshold: float = VISIBILITY_THRESHOLD) -> bool:
    """True when no joint of a ``(17, 3)`` pose reaches the visibility threshold."""
    return not bool((np.asarray(keypoints)[:, 2] >= threshold).any())


def sanitize_keypoints(
    keypoints: np.ndarray | Sequence,
    *,
    source: str,
    image_hw: Sequence[int] | None = None,
) -> np.ndarray:
    """Check and normalise one pose to the canonical ``(17, 3)`` float32 form.

    Args:
        keypoints: ``(17, 3)`` array-like of ``(x, y, confidence)``.
        source: what the pose came from (a file name), used in error messages.
        image_hw: ``(H, W)`` of the image; when given, a visible joint further outside
            ``[0, W] x [0, H]`` than ``OUTSIDE_TOLERANCE`` of the image side becomes invisible
            and the others are clipped to it.

    Raises:
        KeypointFormatError: wrong shape, NaN/inf values, negative or NaN confidences.
    """
    try:
        arr = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise KeypointFormatError(f"{source}: keypoints are not numeric ({exc})") from exc
    if arr.shape != (NUM_KEYPOINTS, 3):
        raise KeypointFormatError(
            f"{source}: expected {NUM_KEYPOINTS} keypoints of (x, y, confidence), i.e. shape "
            f"({NUM_KEYPOINTS}, 3), got shape {arr.shape}"
        )
    if not np.isfinite(arr[:, 2]).all():
        raise KeypointFormatError(f"{source}: keypoint confidences contain NaN or inf")
    if (arr[:, 2] < 0).any():
        raise KeypointFormatError(
            f"{source}: negative keypoint confidence {arr[:, 2].min():.3g} (must be >= 0)"
        )
    visible = arr[:, 2] > 0
    if not np.isfinite(arr[visible, :2]).all():
        raise KeypointFormatError(f"{source}: coordinates of a visible keypoint are NaN or inf")
    # A missing joint may carry any placeholder coordinates; canonical form is zeros.
    arr[~visible, :2] = 0.0
    arr[~np.isfinite(arr)] = 0.0
    if image_hw is not None:
        h, w = float(image_hw[0]), float(image_hw[1])
        tx, ty = OUTSIDE_TOLERANCE * w, OUTSIDE_TOLERANCE * h
        x, y = arr[:, 0], arr[:, 1]
        outside = (x < -tx) | (x > w + tx) | (y < -ty) | (y > h + ty)
        arr[outside] = 0.0
        arr[:, 0] = np.clip(arr[:, 0], 0.0, w)
        arr[:, 1] = np.clip(arr[:, 1], 0.0, h)
    return arr.astype(np.float32)


def skeleton_box(keypoints: np.ndarray, threshold: float = VISIBILITY_THRESHOLD) -> np.ndarray:
    """``(17, 3)`` -> ``(4,)`` box ``x0, y0, x1, y1`` of the visible joints (zeros if none)."""
    vis = keypoints[:, 2] >= threshold
    if not vis.any():
        return np.zeros(4, dtype=np.float32)
    xy = keypoints[vis, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)


def select_target(
    skeletons: Sequence[np.ndarray],
    *,
    is_target: Sequence[bool | None] | None = None,
    scores: Sequence[float | None] | None = None,
    image_hw: Sequence[int] | None = None,
) -> int | None:
    """Index of the target skeleton among several found in one crop, or None if there are none.

    Rule: the one flagged ``is_target``; else the highest score; else the largest box near the
    centre (box area divided by one plus the distance of its centre from the image centre, in
    units of the image diagonal). Without ``image_hw`` the centre is that of all skeletons.
    """
    n = len(skeletons)
    if n == 0:
        return None
    if is_target is not None:
        flagged = [i for i, t in enumerate(is_target) if t]
        if flagged:
            return flagged[0]
    if scores is not None and any(s is not None for s in scores):
        return int(np.argmax([(-np.inf if s is None else float(s)) for s in scores]))
    if n == 1:
        return 0
    boxes = np.stack([skeleton_box(np.asarray(s)) for s in skeletons])
    if image_hw is not None:
        cy, cx, diag = image_hw[0] / 2, image_hw[1] / 2, float(np.hypot(*image_hw[:2]))
    else:
        valid = boxes[(boxes[:, 2] > boxes[:, 0]) | (boxes[:, 3] > boxes[:, 1])]
        ref = valid if len(valid) else boxes
        cx = (ref[:, 0].min() + ref[:, 2].max()) / 2
        cy = (ref[:, 1].min() + ref[:, 3].max()) / 2
        diag = float(np.hypot(ref[:, 2].max() - ref[:, 0].min(), ref[:, 3].max() - ref[:, 1].min()))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre_dist = np.hypot(
        (boxes[:, 0] + boxes[:, 2]) / 2 - cx, (boxes[:, 1] + boxes[:, 3]) / 2 - cy
    )
    score = area / (1.0 + centre_dist / max(diag, 1e-6))
    return int(np.argmax(score))


class MissingPoseCounter:
    """Counts images that got an empty pose and logs the total once (not once per image)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.missing = 0
        self.total = 0

    def add(self, keypoints: np.ndarray) -> np.ndarray:
        self.total += 1
        if is_empty(keypoints):
            self.missing += 1
        return keypoints

    def report(self) -> None:
        if self.missing:
            logger.warning(
                "%s: %d of %d images have no keypoints; they train with an empty pose",
                self.what,
                self.missing,
                self.total,
            )
        else:
            logger.info("%s: keypoints found for all %d images", self.what, self.total)
