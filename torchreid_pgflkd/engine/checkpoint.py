"""Training checkpoints: atomic writes, ``weights_only`` loads, readable mismatch errors.

A checkpoint is a plain dict that ``torch.load(path, weights_only=True)`` accepts: tensors,
Python scalars, strings, lists, tuples and dicts only; numpy values are converted on save.
The weights sit under ``'state_dict'`` and ``'epoch'`` counts the finished epochs, as in
torchreid, so torchreid's ``resume_from_checkpoint`` reads our files and starts at the right
epoch. Files go to a temporary file in the target directory, are fsynced, then moved over the
final name (``utils.io.atomic_write``): a crash mid-write never leaves a half file under that
name, and the temporary files a ``kill -9`` leaves behind are removed at the next start.
A run folder holds ``last.pth`` (always the newest) and optional ``checkpoint_epochNNN.pth``
snapshots; ``engine.run_folder`` keeps it to one run. In distributed training only the main
process saves.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
from collections import Counter, OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from torchreid_pgflkd.engine.distributed import get_rng_state, set_rng_state, unwrap_model
from torchreid_pgflkd.utils.io import atomic_write, stale_temp_files

logger = logging.getLogger(__name__)

# 2: ``epoch`` is the number of finished epochs (torchreid's convention, the next epoch's
# 0-based index). 1: ``epoch`` was the 0-based index of the last finished epoch.
FORMAT_VERSION = 2
LAST_NAME = "last.pth"
_EPOCH_RE = re.compile(r"^checkpoint_epoch(\d+)\.pth$")
_MAX_LISTED = 20
Mismatch = tuple[str, tuple[int, ...], tuple[int, ...]]  # key, shape in the file, in the model


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (corrupt, truncated, or holding unsafe objects)."""


class PretrainedReport(NamedTuple):
    """What ``load_pretrained_weights`` did; ``mismatched`` holds (key, file shape, model shape)."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[Mismatch]


def checkpoint_name(epoch: int) -> str:
    """File name of the snapshot after ``epoch`` finished epochs: ``checkpoint_epoch007.pth``."""
    return f"checkpoint_epoch{epoch:03d}.pth"


def model_name(model: nn.Module) -> str | None:
    """The torchreid ``build_model`` name of a PGFL-KD model: ``pgflkd_<backbone>``, ``pgflkd``
    for ResNet-50 (the paper's model); ``None`` for a model without ``backbone_name``."""
    backbone = getattr(unwrap_model(model), "backbone_name", None)
    if not isinstance(backbone, str):
        return None
    return "pgflkd" if backbone == "resnet50" else f"pgflkd_{backbone}"


def finished_epochs(state: Mapping[str, Any]) -> int:
    """The number of finished epochs a checkpoint dict records, whatever its format version."""
    epoch = int(state["epoch"])
    return epoch + 1 if state.get("format_version") == 1 else epoch


# ---------------------------------------------------------------- saving


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy values turned into Python / tensor values ``weights_only`` accepts."""
    if isinstance(obj, np.generic):  # before float: np.float64 subclasses float
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        # Counter (MultiStepLR milestones) and OrderedDict are in torch's allow-list; keep them.
        kind = type(obj) if type(obj) in (dict, OrderedDict, Counter) else dict
        return kind({_plain(k, where): _plain(v, f"{where}.{k}") for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):  # a namedtuple becomes a plain tuple
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(
        f"cannot store {where} in a checkpoint: {type(obj).__name__} is not a tensor, number, "
        "string, list or dict (torch.load(weights_only=True) would refuse it)"
    )


def copy_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` over ``dst`` atomically, keeping its modification time: the age of a
    checkpoint is that of its contents (``run_folder.refresh_last`` compares ages)."""
    src, dst = Path(src), Path(dst)
    with open(src, "rb") as f_src:
        atomic_write(dst, lambda f: shutil.copyfileobj(f_src, f))
    st = src.stat()
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    return dst


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    epoch: int,
    step: int = 0,
    metrics: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a resumable training checkpoint to ``path`` atomically and return the path.

    Stores the model weights (a DDP / DataParallel wrapper is unwrapped), the optimizer,
    scheduler and AMP scaler states when given, ``epoch`` (the number of finished epochs,
    torchreid's convention), ``step``, ``metrics`` and ``config`` (numpy values converted),
    the RNG states of ``random``, numpy, torch and CUDA, and ``meta`` (model class, registered
    ``model_name``, ``num_classes`` from ``extra`` or the model). The file is readable by
    group and others (``atomic_write`` gives it mode ``0o666`` less the umask).
    """
    path = Path(path)
    net = unwrap_model(model)
    extra = dict(extra or {})
    num_classes = extra.get("num_classes", getattr(net, "num_classes", None))
    state = {
        "format_version": FORMAT_VERSION,
        "state_dict": net.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": (
            _plain(scheduler.state_dict(), "scheduler") if scheduler is not None else None
        ),
        "scaler": _plain(scaler.state_dict(), "scaler") if scaler is not None else None,
        "epoch": int(epoch),
        "step": int(step),
        "metrics": _plain(dict(metrics or {}), "metrics"),
        "config": _plain(config, "config"),
        "extra": _plain(extra, "extra"),
        "rng": get_rng_state(),
        "meta": {
            "model_class": type(net).__name__,
            "model_name": model_name(net),
            "num_classes": _plain(num_classes, "num_classes"),
            "epoch": "finished epochs (torchreid's resume_from_checkpoint starts there)",
        },
    }
    atomic_write(path, lambda f: torch.save(state, f))
    logger.info("saved checkpoint %s (%d epochs done, step %d)", path, epoch, step)
    return path


def save_run_checkpoint(
    directory: str | os.PathLike,
    *,
    epoch: int,
    keep_last: int | None = None,
    snapshot_freq: int = 0,
    **state: Any,
) -> Path:
    """Save ``last.pth`` in ``directory`` after ``epoch`` finished epochs; returns its path.

    ``state`` is passed to ``save_checkpoint`` (``model=`` is required). Every
    ``snapshot_freq`` epochs (0 = never) a copy is kept as ``checkpoint_epoch{epoch:03d}.pth``;
    ``keep_last`` then prunes the snapshots to the newest ``keep_last`` (0 = none). ``last.pth``
    is written first, so a kill between the two writes never leaves it behind a snapshot.
    Temporary files of killed checkpoint writes are removed afterwards.
    """
    directory = Path(directory)
    last = save_checkpoint(directory / LAST_NAME, epoch=epoch, **state)
    if snapshot_freq > 0 and epoch % snapshot_freq == 0:
        copy_checkpoint(last, directory / checkpoint_name(epoch))
    if keep_last is not None:
        prune_checkpoints(directory, keep_last=keep_last)
    remove_stale_temp_files(directory, checkpoints_only=True)
    return last


def _epoch_files(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = [(_EPOCH_RE.match(p.name), p) for p in directory.iterdir()]
    return sorted((int(m.group(1)), p) for m, p in found if m)


def snapshot_files(directory: str | os.PathLike) -> list[Path]:
    """The ``checkpoint_epochNNN.pth`` snapshots in ``directory``, oldest epoch first."""
    return [p for _, p in _epoch_files(Path(directory))]


def checkpoint_files(directory: str | os.PathLike) -> list[Path]:
    """``last.pth`` and the epoch snapshots in ``directory`` (none when it does not exist)."""
    directory = Path(directory)
    last = [directory / LAST_NAME] if (directory / LAST_NAME).is_file() else []
    return last + snapshot_files(directory)


def prune_checkpoints(directory: str | os.PathLike, *, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` epoch snapshots (0: all); returns the deleted."""
    if keep_last < 0:
        raise ValueError(f"keep_last must be >= 0 (0 keeps no snapshot), got {keep_last}")
    snapshots = snapshot_files(directory)
    doomed = snapshots[: len(snapshots) - keep_last] if keep_last else snapshots
    for p in doomed:
        p.unlink(missing_ok=True)
        logger.debug("pruned checkpoint %s", p)
    return doomed


def remove_stale_temp_files(
    directory: str | os.PathLike, *, checkpoints_only: bool = False
) -> list[Path]:
    """Delete the temporary files killed writes left in ``directory``; returns them.

    Only safe while this process owns the folder (``run_folder_lock``): another writer's
    temporary file looks the same. ``checkpoints_only`` limits it to checkpoint writes.
    """
    stale = stale_temp_files(directory)
    if checkpoints_only:
        stale = [p for p in stale if p.name.startswith((f".{LAST_NAME}.", ".checkpoint_epoch"))]
    for p in stale:
        p.unlink(missing_ok=True)
        logger.info("removed %s, left by a write that was killed", p)
    return stale


# ---------------------------------------------------------------- loading


def _numpy_safe_globals() -> list[Any]:
    """Numpy scalar reconstruction only: what torchreid checkpoints need, nothing callable else."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    dtype_types = {type(np.dtype(t)) for t in (np.bool_, np.float16, np.float32, np.float64)}
    dtype_types |= {type(np.dtype(t)) for t in (np.int8, np.int16, np.int32, np.int64)}
    dtype_types |= {type(np.dtype(t)) for t in (np.uint8, np.uint16, np.uint32, np.uint64)}
    # Files written under numpy 1.x name the scalar constructor numpy.core.multiarray.scalar.
    names = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
    return [np.dtype, *dtype_types, *((scalar, name) for name in names)]


def read_checkpoint(
    path: str | os.PathLike, *, map_location: Any = "cpu", mmap: bool = False
) -> Any:
    """``torch.load(path, weights_only=True)`` with numpy scalars allowed and clear errors.

    Never falls back to ``weights_only=False``: a file holding other Python objects is refused
    with a ``CheckpointError`` naming the object. ``mmap`` maps the tensors instead of reading
    them (cheap when only ``config`` or ``epoch`` is needed; zip-format files only).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (no such file)")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if refused:
            raise CheckpointError(
                f"checkpoint {path} holds {refused.group(1)}, which torch.load(weights_only=True) "
                "refuses; re-save it with tensors and plain values only"
            ) from exc
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({exc})") from exc
    except Exception as exc:  # the unpickler fails in many ways on a damaged file
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a PyTorch file "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _extract_state_dict(ckpt: Any, path: Path) -> dict[str, Any]:
    if isinstance(ckpt, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(ckpt.get(key), Mapping):
                ckpt = ckpt[key]
                break
        if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            return {k.removeprefix("module."): v for k, v in ckpt.items()}
    keys = list(ckpt)[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
    raise CheckpointError(
        f"checkpoint {path} has no model weights: expected a 'state_dict' entry or a dict of "
        f"tensors, found {keys}"
    )


def _diff(src: Mapping, dst: Mapping) -> tuple[list[str], list[str], list[Mismatch]]:
    missing = [k for k in dst if k not in src]
    unexpected = [k for k in src if k not in dst]
    mismatched = [
        (k, tuple(src[k].shape), tuple(dst[k].shape))
        for k in dst
        if k in src and tuple(src[k].shape) != tuple(dst[k].shape)
    ]
    return missing, unexpected, mismatched


def _listed(keys: list[Any]) -> str:
    more = f" ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return ", ".join(str(k) for k in keys[:_MAX_LISTED]) + more


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    restore_rng: bool = True,
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` and restore what is passed in.

    The model load is strict: differing keys or shapes raise a ``ValueError`` listing the
    missing keys, unexpected keys and shape mismatches. Returns the checkpoint dict as stored
    (``epoch``, ``step``, ``metrics``, ``config``, ``extra``, ``meta``, ...): read its epoch
    with ``finished_epochs``, which also knows version 1 files.
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location=map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict")
    if model is not None:
        net = unwrap_model(model)
        weights = _extract_state_dict(ckpt, path)
        missing, unexpected, mismatched = _diff(weights, net.state_dict())
        if missing or unexpected or mismatched:
            shapes = [f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched]
            raise ValueError(
                f"checkpoint {path} does not fit model {type(net).__name__} "
                f"(checkpoint meta: {ckpt.get('meta')}). "
                f"Shape mismatches: [{_listed(shapes)}]; "
                f"missing keys (in the model, not in the file): [{_listed(missing)}]; "
                f"unexpected keys (in the file, not in the model): [{_listed(unexpected)}]"
            )
        net.load_state_dict(weights)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is None:
            continue
        if ckpt.get(name) is None:
            logger.warning("checkpoint %s has no %s state; %s left as it is", path, name, name)
            continue
        obj.load_state_dict(ckpt[name])
    if restore_rng and ckpt.get("rng"):
        set_rng_state(ckpt["rng"])
    done = finished_epochs(ckpt) if "epoch" in ckpt else "?"
    logger.info("loaded checkpoint %s (%s epochs done)", path, done)
    return ckpt


def load_pretrained_weights(model: nn.Module, path: str | os.PathLike) -> PretrainedReport:
    """Copy the weights of ``path`` whose names and shapes match into ``model``; skip the rest.

    Reads our checkpoints, torchreid checkpoints (``'state_dict'``, ``module.`` prefixes,
    numpy rank-1) and bare state dicts. Logs what was skipped; raises ``ValueError`` when not
    a single tensor matches, which means the file belongs to another architecture.
    """
    path = Path(path)
    net = unwrap_model(model)
    weights = _extract_state_dict(read_checkpoint(path), path)
    own = net.state_dict()
    missing, unexpected, mismatched = _diff(weights, own)
    bad = {k for k, _, _ in mismatched}
    loaded = [k for k in own if k in weights and k not in bad]
    if not loaded:
        raise ValueError(
            f"no weight of {path} fits model {type(net).__name__}: file keys start "
            f"[{_listed(list(weights)[:5])}], model keys start [{_listed(list(own)[:5])}]"
        )
    # Only the tensors that fit, strict=False: a merge into ``own`` is what the models' load
    # guard refuses (``models.load_guard``), since it is how a wrong checkpoint loads quietly.
    net.load_state_dict({k: weights[k] for k in loaded}, strict=False)
    logger.info("loaded %d/%d pretrained tensors from %s", len(loaded), len(own), path)
    for what, keys in (("shape differs", mismatched), ("not in the file", missing)):
        if keys:
            logger.warning("pretrained %s: skipped (%s): %s", path, what, _listed(keys))
    if unexpected:
        logger.info("pretrained %s: not in the model, ignored: %s", path, _listed(unexpected))
    return PretrainedReport(loaded, missing, unexpected, mismatched)
