"""Input checks shared by the evaluation functions: errors name the argument and the problem."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


# torch float types numpy has, kept as they are; others (bfloat16, float8) become float32
_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy view of an array-like or torch tensor (moved to CPU, detached).

    Torch float types numpy lacks (bfloat16, float8) are widened to float32, exactly.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point() and x.dtype not in _NUMPY_FLOATS:
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from exc


def check_distmat(distmat: Any, name: str = "distmat") -> np.ndarray:
    """(Q, G) real, finite, non-empty distance matrix; dtype kept (it decides the sort order)."""
    dist = to_numpy(distmat, name)
    if dist.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_query, num_gallery), got shape {dist.shape}")
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {dist.shape}): need at least one query and one gallery item"
        )
    if dist.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers, got dtype {dist.dtype}")
    if dist.dtype.kind == "f":
        check_finite(dist, name)
    return dist


def check_finite(x: np.ndarray, name: str, rows: int = 4096) -> None:
    """Raise if ``x`` (N, ...) has NaN or infinity; scanned in row blocks to bound memory."""
    # min and max propagate NaN and show infinities: two fast reductions, no mask
    if x.size == 0 or (np.isfinite(x.min()) and np.isfinite(x.max())):
        return
    for start in range(0, x.shape[0], rows):
        part = x[start : start + rows]
        if not np.isfinite(part).all():
            bad = np.argwhere(~np.isfinite(part))[0]
            bad[0] += start
            raise ValueError(
                f"{name} has a non-finite value ({x[tuple(bad)]}) at index {tuple(bad.tolist())}"
            )


def check_ids(ids: Any, name: str, length: int) -> np.ndarray:
    """(length,) int64 ids; floats are accepted only when every value is a whole number."""
    arr = to_numpy(ids, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != length:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but {length} were expected "
            "(one per row/column of the distance matrix or feature set)"
        )
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer ids, got non-integer floats")
        return arr.astype(np.int64)
    raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")


def check_max_rank(max_rank: Any, num_gallery: int) -> int:
    """Positive int, shortened to the gallery size as torchreid does."""
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if num_gallery < max_rank:
        logger.warning(
            "gallery has %d items, fewer than max_rank=%d: the CMC curve is cut to %d",
            num_gallery,
            max_rank,
            num_gallery,
        )
        return int(num_gallery)
    return int(max_rank)


def check_features(x: Any, name: str) -> torch.Tensor:
    """(N, D) finite real features as a torch tensor (not copied when already float).

    Any float dtype is kept (float16, bfloat16, float32, float64; the distance code picks
    the precision); integers become float32; numpy floats torch lacks (longdouble) float64.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(to_numpy(x, name))
        if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
            arr = arr.astype(np.float64)
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(arr)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_items, dim), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        return t.float()  # integers are finite
    step = 65536
    for start in range(0, t.shape[0], step):
        part = t[start : start + step]
        # amin/amax propagate NaN and show infinities: no mask for the common, finite case
        if not (torch.isfinite(part.amin()) and torch.isfinite(part.amax())):
            row = start + int((~torch.isfinite(part)).any(1).nonzero()[0, 0])
            raise ValueError(f"{name} has a non-finite value in row {row}")
    return t
