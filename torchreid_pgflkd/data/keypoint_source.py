"""Find and load the keypoints of a dataset split: KPR per-image JSON, an explicit folder or file.

Lookup order for a split whose images live in ``<split folder>``:

1. ``keypoints_file=``: one file for every split, matched by image file name: our ``.npz``
   cache, the Market 14-point ``.mat`` (with its name list next to it) or a COCO results JSON
   whose ``image_id`` is the file name.
2. ``keypoints_dir=``: per-image JSON in ``<keypoints_dir>/<split folder>/`` or directly in
   ``<keypoints_dir>/`` (sub-folders are searched too).
3. The KPR convention: ``<dataset dir>/external_annotation/pifpaf_keypoints_pifpaf_maskrcnn_
   filtering/<split folder>/<image file name>_keypoints.json``.

A per-image JSON may be named ``<name>_keypoints.json``, ``<stem>_keypoints.json`` or
``<stem>.json``. The JSON files of a split are read once and cached as one ``.npz`` under
``cache_dir`` (default ``$TORCHREID_PGFLKD_CACHE`` or ``~/.cache/torchreid_pgflkd``), keyed by the
folder, the image names and the size and modification/change times of every file read, so a
file rewritten in place gets a new cache. Processes that need the same cache (the ranks of a
distributed job) take turns on a lock beside it: one builds, the others load. A damaged cache
is rebuilt with a warning naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from torchreid_pgflkd.pose.cache import KeypointTable
from torchreid_pgflkd.pose.formats import read_coco_results, read_keypoint_file, read_market14_mat
from torchreid_pgflkd.pose.keypoints import KeypointFormatError, is_empty
from torchreid_pgflkd.utils.locking import file_lock

logger = logging.getLogger(__name__)

KPR_SUBDIR = Path("external_annotation") / "pifpaf_keypoints_pifpaf_maskrcnn_filtering"
KPR_SUFFIX = "_keypoints.json"
# Part of every cache key: bump it when what a cache holds for the same files changes.
CACHE_KEY_VERSION = 2


def default_cache_dir() -> Path:
    env = os.environ.get("TORCHREID_PGFLKD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "torchreid_pgflkd"


def _json_index(folder: Path) -> dict[str, Path]:
    """Map image keys (file name and stem) -> per-image JSON path for every JSON under folder."""
    index: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.json")):
        name = path.name
        key = name[: -len(KPR_SUFFIX)] if name.endswith(KPR_SUFFIX) else path.stem
        index.setdefault(key, path)
        index.setdefault(Path(key).stem, path)  # "<name>.jpg" -> "<name>"
    return index


def load_keypoint_file(path: str | Path) -> KeypointTable:
    """One keypoint file for a whole dataset -> table keyed by image file name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"keypoints_file {path} does not exist")
    if path.suffix == ".npz":
        return KeypointTable.load(path)
    if path.suffix == ".mat":
        return KeypointTable.from_dict(read_market14_mat(path))
    if path.suffix == ".json":
        poses = read_coco_results(path)
        return KeypointTable.from_dict({Path(str(k)).name: v for k, v in poses.items()})
    raise KeypointFormatError(
        f"{path}: unknown keypoint file type {path.suffix!r}; expected .npz (our cache), "
        ".mat (Market 14-point) or .json (COCO results)"
    )


def split_keypoints(
    image_paths: Sequence[str],
    *,
    split_dir: str | Path,
    search_dirs: Sequence[str | Path],
    cache_dir: str | Path | None = None,
    what: str = "split",
) -> KeypointTable | None:
    """Keypoints of the images of one split, read from the first search dir that has any.

    Returns None when no search dir has keypoint files for this split (every image then gets
    an empty pose). Images without a file get no entry (empty pose); their count is logged.
    """
    split_name = Path(split_dir).name
    for base in search_dirs:
        base = Path(base)
        folder = base / split_name if (base / split_name).is_dir() else base
        if not folder.is_dir():
            continue
        index = _json_index(folder)
        if not index:
            continue
        matched: list[tuple[str, Path]] = []  # (image file name, its keypoint file)
        for img in image_paths:
            rel = Path(img).relative_to(split_dir) if Path(img).is_relative_to(split_dir) else None
            keys = [Path(img).name, Path(img).stem]
            if rel is not None:
                keys = [str(rel), str(rel.with_suffix(""))] + keys
            found = next((index[k] for k in keys if k in index), None)
            if found is not None:
                matched.append((Path(img).name, found))
        digest = _cache_key(folder, matched, len(image_paths))
        cache = Path(cache_dir or default_cache_dir()) / "keypoints" / f"{split_name}_{digest}.npz"
        return _cached(cache, partial(_read_split, matched, len(image_paths), folder, what))
    return None


def _read_split(
    matched: Sequence[tuple[str, Path]], num_images: int, folder: Path, what: str
) -> KeypointTable:
    names = [name for name, _ in matched]
    poses = [read_keypoint_file(path) for _, path in matched]
    missing = num_images - len(poses) + sum(is_empty(p) for p in poses)
    if missing:
        logger.warning(
            "%s: %d of %d images have no keypoints in %s; they get an empty pose",
            what,
            missing,
            num_images,
            folder,
        )
    return KeypointTable(names, np.stack(poses) if poses else np.zeros((0, 17, 3)))


def _cache_key(folder: Path, matched: Sequence[tuple[str, Path]], num_images: int) -> str:
    """Hash of what the cache is built from: every file read, down to its size and times.

    The change time (which, unlike the modification time, no tool sets back) also catches a
    rewrite whose modification time was restored, at the cost of one rebuild after a ``chmod``.
    Not caught: a same-size rewrite within the file system's time resolution of the previous
    write (milliseconds on ext4, seconds on some network file systems).
    """
    h = hashlib.sha1(f"{CACHE_KEY_VERSION}|{folder.resolve()}|{num_images}".encode())
    for name, path in matched:
        st = path.stat()
        h.update(f"|{name}|{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}".encode())
    return h.hexdigest()[:16]


def _load_cache(cache: Path) -> KeypointTable | None:
    """The table in ``cache``; None when there is none or it is damaged (then with a warning)."""
    if not cache.is_file():
        return None
    try:
        table = KeypointTable.load(cache)
    except ValueError as exc:  # KeypointFormatError included
        logger.warning("keypoint cache %s is damaged, rebuilding it (%s)", cache, exc)
        return None
    logger.debug("loaded keypoint cache %s", cache)
    return table


def _cached(cache: Path, build: Callable[[], KeypointTable]) -> KeypointTable:
    """Load ``cache``, or build the table once (under a lock beside it) and write it there."""
    table = _load_cache(cache)
    if table is not None:
        return table
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(cache.parent / f".{cache.name}.lock"))
        except OSError as exc:  # a read-only cache dir only costs speed
            logger.warning("keypoint cache %s cannot be written (%s); reading JSON", cache, exc)
            return build()
        table = _load_cache(cache)  # built by another process while this one waited
        if table is not None:
            return table
        table = build()
        try:
            table.save(cache)
        except OSError as exc:
            logger.warning("keypoint cache not written: %s", exc)
    return table
