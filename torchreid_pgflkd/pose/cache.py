"""The project's per-split keypoint cache: one ``.npz`` with image names and an (N, 17, 3) array.

Reading 20k per-image JSON files takes seconds; the cache is written once and loads a split in
milliseconds. Names are image file names (unique within a split). A cache is written to a
temporary file beside it, flushed to disk and renamed over it, so a crash or a full disk never
leaves a half cache under the final name; one that is damaged anyway fails naming itself.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from torchreid_pgflkd.pose.contract import NUM_KEYPOINTS
from torchreid_pgflkd.pose.keypoints import KeypointFormatError, empty_pose
from torchreid_pgflkd.utils.io import atomic_write

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


class KeypointTable:
    """Keypoints of many images: ``names[i]`` has pose ``array[i]`` of shape ``(17, 3)``."""

    def __init__(self, names: Sequence[str], array: np.ndarray) -> None:
        array = np.asarray(array, dtype=np.float32)
        if array.ndim != 3 or array.shape[1:] != (NUM_KEYPOINTS, 3) or len(names) != len(array):
            raise ValueError(
                f"KeypointTable needs N names and an (N, {NUM_KEYPOINTS}, 3) array, got "
                f"{len(names)} names and shape {array.shape}"
            )
        self.names = [str(n) for n in names]
        self.array = array
        self._index = {n: i for i, n in enumerate(self.names)}
        if len(self._index) != len(self.names):
            raise ValueError("KeypointTable: image names must be unique within a table")

    @classmethod
    def from_dict(cls, poses: Mapping[str, np.ndarray]) -> KeypointTable:
        names = sorted(poses)
        array = (
            np.stack([poses[n] for n in names])
            if names
            else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
        )
        return cls(names, array)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def get(self, name: str) -> np.ndarray | None:
        """The ``(17, 3)`` pose of ``name`` (a copy), or None when the table has none."""
        i = self._index.get(name)
        return None if i is None else self.array[i].copy()

    def get_or_empty(self, name: str) -> np.ndarray:
        pose = self.get(name)
        return empty_pose() if pose is None else pose

    def save(self, path: str | Path) -> Path:
        """Write the table to ``path`` (``.npz``) atomically; returns the path."""
        return save_split_cache(path, self.names, self.array)

    @classmethod
    def load(cls, path: str | Path) -> KeypointTable:
        names, array = load_split_cache(path)
        return cls(names, array)


def save_split_cache(path: str | Path, names: Sequence[str], keypoints: np.ndarray) -> Path:
    """Write ``names`` and ``keypoints`` ``(N, 17, 3)`` to one ``.npz`` (atomic rename)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays = dict(
        version=np.int64(CACHE_VERSION),
        names=np.asarray([str(n) for n in names], dtype=str),
        keypoints=np.asarray(keypoints, dtype=np.float32),
    )
    atomic_write(path, lambda f: np.savez(f, **arrays))  # errors name the path
    logger.info("wrote keypoint cache %s (%d images)", path, len(names))
    return path


def load_split_cache(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a cache written by :func:`save_split_cache` -> ``(names, (N, 17, 3) float32)``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"names", "keypoints"} - set(data.files)
            if missing:
                raise KeypointFormatError(
                    f"{path}: not a keypoint cache, missing arrays {sorted(missing)}"
                )
            names = data["names"].tolist()
            array = data["keypoints"].astype(np.float32, copy=False)
    except KeypointFormatError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        # A torn or overwritten file: numpy's own error would not say which file.
        raise KeypointFormatError(
            f"{path}: cannot read keypoint cache ({type(exc).__name__}: {exc})"
        ) from exc
    if array.shape != (len(names), NUM_KEYPOINTS, 3):
        raise KeypointFormatError(
            f"{path}: keypoints must be ({len(names)}, {NUM_KEYPOINTS}, 3), got {array.shape}"
        )
    if not np.isfinite(array).all() or (array[..., 2] < 0).any():
        raise KeypointFormatError(f"{path}: NaN/inf values or negative confidences in the cache")
    return names, array
