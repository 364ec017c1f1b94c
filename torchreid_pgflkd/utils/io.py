"""The one atomic writer: a temporary file beside the target, fsynced, renamed over it.

A crash (or ``kill -9``) mid-write never leaves a half file under the final name: readers
see the old file or the new one. Checkpoints, configs, JSON reports, exports and keypoint
files all go through :func:`atomic_write`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

TMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(f)`` on a binary temporary file beside ``path``, fsync, rename to ``path``.

    The temporary file is named ``.<name>.<random>.tmp`` (see :func:`stale_temp_files`) and is
    removed when ``write`` raises. Errors name the target path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        # mkstemp makes 0600 files; give the result the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and str(path) not in str(exc):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    with contextlib.suppress(OSError):  # make the rename durable where directories open
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def jsonable(x: Any) -> Any:
    """``x`` with numpy values, tuples and paths turned into what ``json`` writes."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(data: Any, path: str | os.PathLike, *, sort_keys: bool = False) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically; numpy values are converted."""
    text = json.dumps(jsonable(data), indent=2, sort_keys=sort_keys, default=float) + "\n"
    return atomic_write_text(path, text)


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary files :func:`atomic_write` left in ``folder`` when a process was killed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".*{TMP_SUFFIX}") if p.is_file())
