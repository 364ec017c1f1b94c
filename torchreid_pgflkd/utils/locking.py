"""An inter-process lock on a file: ``with file_lock(path): ...`` (POSIX ``flock``).

Processes that build the same thing (two ``generate`` calls for one benchmark folder, the
ranks of a distributed job filling one keypoint cache) take the lock beside what they build,
check again whether it already exists, and only then build it. The kernel releases a
``flock`` when its holder exits, even on ``kill -9``, so a crashed builder never leaves a
lock that blocks the next run. The lock file itself is left in place on purpose: deleting it
would let a late process lock a new file while an early one still holds the old.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_POLL_S = 0.05
_REPORT_AFTER_S = 5.0


def _holder(fd: int) -> str:
    """The pid the holder wrote into the lock file, for the waiting message."""
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text:
            return f" (held by pid {text})"
    return ""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, timeout: float | None = None) -> Iterator[Path]:
    """Hold an exclusive inter-process lock on ``path`` (created if absent) inside the block.

    Waits for another holder (forever, or ``timeout`` seconds, then ``TimeoutError`` naming
    the lock file); a wait longer than a few seconds is logged once. The lock is per open
    file, so two threads or two ``with`` blocks in one process also exclude each other (and a
    nested ``file_lock`` on the same path deadlocks). Without ``fcntl`` (Windows) no lock is
    taken and a warning says so.
    """
    path = Path(path)
    if fcntl is None:
        logger.warning("no inter-process lock on this platform; not locking %s", path)
        yield path
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create lock file ({exc.strerror})", str(path)) from exc
    try:
        start = time.monotonic()
        reported = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise OSError(exc.errno, f"cannot lock ({exc.strerror})", str(path)) from exc
            waited = time.monotonic() - start
            if timeout is not None and waited >= timeout:
                raise TimeoutError(
                    f"could not lock {path} within {timeout:g} s{_holder(fd)}; another process "
                    "is building the same files"
                )
            if not reported and waited >= _REPORT_AFTER_S:
                logger.info("waiting for the lock %s%s", path, _holder(fd))
                reported = True
            time.sleep(_POLL_S)
        with contextlib.suppress(OSError):  # who holds it, for the waiting messages of others
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
