"""A run folder (``train.save_dir``) belongs to one run: locked, tidied, never mixed.

``run_folder_lock`` keeps a second job out while the first is alive (``flock``: released when
its holder dies, even on ``kill -9``). ``start_run_folder`` removes what killed writes left
behind and refuses a fresh run in a folder holding another run's checkpoints unless told to
overwrite them. ``refresh_last`` and ``resume_checkpoint`` keep ``last.pth`` the newest
readable checkpoint, so ``--weights last.pth`` and ``--resume`` never pick an old model.
Only the main process of a distributed job manages the folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from torchreid_pgflkd.engine.checkpoint import (
    LAST_NAME,
    CheckpointError,
    checkpoint_files,
    copy_checkpoint,
    finished_epochs,
    read_checkpoint,
    remove_stale_temp_files,
    snapshot_files,
)
from torchreid_pgflkd.utils.locking import file_lock

logger = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
_MAX_LISTED = 20
_HELD: dict[str, int] = {}  # run folders this process has locked -> nesting depth


class RunFolderBusyError(RuntimeError):
    """Another live process is training into the same run folder."""


@contextlib.contextmanager
def run_folder_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Own the run folder ``directory`` inside the block; fail at once if a live process does.

    Re-entrant within a process (the command and the engine both take it), never shared
    between processes: a second job gets ``RunFolderBusyError`` naming the folder and the
    holder's pid. The lock file ``.run.lock`` stays in the folder (see ``utils.locking``).
    """
    directory = Path(directory)
    key = os.path.realpath(directory)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield directory
        finally:
            _HELD[key] -= 1
        return
    lock = directory / LOCK_NAME
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(lock, timeout=0))
        except TimeoutError:
            holder = ""
            with contextlib.suppress(OSError):
                holder = lock.read_text(errors="replace").strip()
            raise RunFolderBusyError(
                f"run folder {directory} is in use by another training run "
                f"(pid {holder or 'unknown'}, lock file {lock}): wait for it to finish or stop "
                "it, or choose another train.save_dir"
            ) from None
        _HELD[key] = 1
        try:
            yield directory
        finally:
            del _HELD[key]


def _probe(path: Path) -> int | None:
    """Finished epochs of the checkpoint at ``path``; ``None`` when missing or unreadable.

    Memory-maps the file (reads no tensor data); a file in torch's old non-zip format is
    read in full.
    """
    if not path.is_file():
        return None
    for mmap in (True, False):
        try:
            return finished_epochs(read_checkpoint(path, mmap=mmap))
        except (CheckpointError, KeyError, TypeError, ValueError) as exc:
            error = exc
    logger.debug("checkpoint %s is unreadable: %s", path, error)
    return None


def refresh_last(directory: str | os.PathLike, *, verify: bool = False) -> Path | None:
    """Make ``last.pth`` the newest readable checkpoint of ``directory``; return it (or None).

    A run killed between writing an epoch snapshot and refreshing ``last.pth`` (the order of
    format-1 code) leaves ``last.pth`` behind; an empty or corrupt one is worse. Either way it
    is replaced by the newest readable snapshot, with a warning. Nothing is opened while
    ``last.pth`` is at least as recent as every snapshot, unless ``verify``: then ``last.pth``
    must also read, or ``CheckpointError`` says that no snapshot can replace it.
    """
    directory = Path(directory)
    last = directory / LAST_NAME
    snapshots = snapshot_files(directory)
    newest = max((p.stat().st_mtime_ns for p in snapshots), default=None)
    if last.is_file() and not verify and (newest is None or last.stat().st_mtime_ns >= newest):
        return last
    last_epoch = _probe(last)
    for snap in reversed(snapshots):
        epoch = _probe(snap)
        if epoch is None:
            logger.warning("checkpoint %s is unreadable (empty or corrupt): skipped", snap)
            continue
        if last_epoch is not None and epoch <= last_epoch:
            break
        if last_epoch is not None:
            why = f"older ({last_epoch} epochs done)"
        else:
            why = "unreadable (empty or corrupt)" if last.is_file() else "missing"
        copy_checkpoint(snap, last)
        logger.warning(
            "%s was %s: replaced by %s (%d epochs done), the newest readable checkpoint",
            last,
            why,
            snap.name,
            epoch,
        )
        return last
    if verify and last.is_file() and last_epoch is None:
        raise CheckpointError(
            f"checkpoint {last} is empty or corrupt and {directory} holds no readable "
            "checkpoint_epochNNN.pth snapshot to fall back to: start the run again "
            "(--overwrite), or resume from a copy you trust (--resume-from FILE)"
        )
    return last if last.is_file() else None


def resume_checkpoint(directory: str | os.PathLike) -> Path:
    """The checkpoint that continues the run in ``directory``: ``last.pth``, repaired first.

    Removes the temporary files of killed writes, then ``refresh_last(verify=True)``: a
    stale, empty or corrupt ``last.pth`` is replaced by the newest readable snapshot (with a
    warning). Call it while owning the folder (``run_folder_lock``).
    """
    directory = Path(directory)
    remove_stale_temp_files(directory)
    last = refresh_last(directory, verify=True)
    if last is None:
        raise FileNotFoundError(
            f"no checkpoint to resume in {directory}: neither {LAST_NAME} nor a "
            "checkpoint_epochNNN.pth snapshot (start a new run without --resume)"
        )
    return last


def start_run_folder(
    directory: str | os.PathLike,
    *,
    resume_from: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> None:
    """Get ``directory`` ready for a run; call it while owning it (``run_folder_lock``).

    Removes the temporary files of killed writes. A run continuing a checkpoint of this
    folder (``resume_from`` inside it) keeps its files, ``last.pth`` made the newest. Any
    other run needs a folder without checkpoints: with ``overwrite`` the old ones are deleted
    (each logged), otherwise ``FileExistsError`` says what to do (after making ``last.pth``
    the newest there too).
    """
    directory = Path(directory)
    remove_stale_temp_files(directory)
    inside = resume_from is not None and (Path(resume_from).resolve().parent == directory.resolve())
    if inside:
        if overwrite:
            raise ValueError(
                f"cannot both resume from {resume_from} and overwrite {directory}: choose one"
            )
        refresh_last(directory)
        return
    existing = checkpoint_files(directory)
    if not existing:
        return
    if not overwrite:
        refresh_last(directory)  # the refused folder still offers its newest last.pth
        more = f" and {len(existing) - _MAX_LISTED} more" if len(existing) > _MAX_LISTED else ""
        names = ", ".join(p.name for p in existing[:_MAX_LISTED]) + more
        raise FileExistsError(
            f"{directory} holds checkpoints of an earlier run ({names}). Continue that run "
            "with --resume, replace it with --overwrite (deletes them first), or choose "
            "another train.save_dir"
        )
    for p in existing:
        p.unlink(missing_ok=True)
        logger.warning("overwrite: removed %s of the earlier run", p)
