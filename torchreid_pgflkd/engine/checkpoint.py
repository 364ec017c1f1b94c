"""Training checkpoints: atomic writes, ``weights_only`` loads, readable mismatch errors.

A checkpoint is a plain dict that ``torch.load(path, weights_only=True)`` accepts: tensors,
Python scalars, strings, lists, tuples and dicts only; numpy values are converted on save.
The weights sit under ``'state_dict'``, the key torchreid uses, so torchreid reads our files.
Files go to a temporary file in the target directory, are fsynced, then moved over the final
name with ``os.replace``: a crash mid-write never leaves a half file under that name.
In distributed training only the main process should save (``distributed.is_main_process``).
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
from torchreid_pgflkd.utils.io import atomic_write

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
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
    """File name of the checkpoint of ``epoch``: ``checkpoint_epoch007.pth``."""
    return f"checkpoint_epoch{epoch:03d}.pth"


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
    scheduler and AMP scaler states when given, ``epoch`` (the last finished epoch), ``step``,
    ``metrics`` and ``config`` (numpy values converted), the RNG states of ``random``, numpy,
    torch and CUDA, and ``meta`` (model class, ``num_classes`` from ``extra`` or the model).
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
            "num_classes": _plain(num_classes, "num_classes"),
        },
    }
    atomic_write(path, lambda f: torch.save(state, f))
    logger.info("saved checkpoint %s (epoch %d, step %d)", path, epoch, step)
    return path


def save_epoch_checkpoint(
    directory: str | os.PathLike, *, epoch: int, keep_last: int | None = None, **state: Any
) -> Path:
    """Save ``checkpoint_epoch{epoch:03d}.pth`` and ``last.pth`` in ``directory``.

    ``state`` is passed to ``save_checkpoint`` (``model=`` is required). With ``keep_last``,
    only the newest ``keep_last`` epoch files are kept; ``last.pth`` is never pruned.
    """
    directory = Path(directory)
    path = save_checkpoint(directory / checkpoint_name(epoch), epoch=epoch, **state)
    with open(path, "rb") as src:
        atomic_write(directory / LAST_NAME, lambda f: shutil.copyfileobj(src, f))
    if keep_last is not None:
        prune_checkpoints(directory, keep_last=keep_last)
    return path


def _epoch_files(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = [(_EPOCH_RE.match(p.name), p) for p in directory.iterdir()]
    return sorted((int(m.group(1)), p) for m, p in found if m)


def prune_checkpoints(directory: str | os.PathLike, *, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` epoch checkpoints; returns the deleted paths."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1, got {keep_last}")
    doomed = [p for _, p in _epoch_files(Path(directory))[:-keep_last]]
    for p in doomed:
        p.unlink(missing_ok=True)
        logger.debug("pruned checkpoint %s", p)
    return doomed


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: the newer of ``last.pth`` and the highest epoch file.

    Newer is by modification time (ties go to ``last.pth``), so a crash between writing an
    epoch file and refreshing ``last.pth`` still resumes from the epoch file. ``None`` when
    the directory holds neither (or does not exist).
    """
    directory = Path(directory)
    candidates = [p for _, p in _epoch_files(directory)[-1:]]
    if (directory / LAST_NAME).is_file():
        candidates.append(directory / LAST_NAME)
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name == LAST_NAME))


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


def read_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with numpy scalars allowed and clear errors.

    Never falls back to ``weights_only=False``: a file holding other Python objects is refused
    with a ``CheckpointError`` naming the object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (no such file)")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
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
    missing keys, unexpected keys and shape mismatches. Returns the checkpoint dict (``epoch``,
    ``step``, ``metrics``, ``config``, ``extra``, ``meta``, ...).
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
    logger.info("loaded checkpoint %s (epoch %s)", path, ckpt.get("epoch"))
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
    net.load_state_dict({**own, **{k: weights[k] for k in loaded}})
    logger.info("loaded %d/%d pretrained tensors from %s", len(loaded), len(own), path)
    for what, keys in (("shape differs", mismatched), ("not in the file", missing)):
        if keys:
            logger.warning("pretrained %s: skipped (%s): %s", path, what, _listed(keys))
    if unexpected:
        logger.info("pretrained %s: not in the model, ignored: %s", path, _listed(unexpected))
    return PretrainedReport(loaded, missing, unexpected, mismatched)
