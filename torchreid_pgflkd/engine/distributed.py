"""Thin helpers over ``torch.distributed`` for runs launched with ``torchrun``.

``torchrun --nproc_per_node=N -m torchreid_pgflkd.cli.main train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``init_distributed``
reads them and starts the default process group (NCCL on GPUs, gloo on CPUs). Launched
without torchrun, every helper here is a single-process no-op, so the same training code
runs in both cases. Nothing here replaces torch.distributed; it only removes boilerplate.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from torchreid_pgflkd.utils.modules import unwrap_model  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job; ``backend`` is None when no process group exists."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """This process's device: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")


def _env_int(name: str) -> int:
    raw = os.environ[name]
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed(backend: str | None = None) -> DistInfo:
    """Start the default process group from torchrun's environment; idempotent.

    ``backend`` defaults to ``'nccl'`` when CUDA is available, else ``'gloo'``. With NCCL the
    current CUDA device is set to ``LOCAL_RANK``. Without ``RANK`` / ``WORLD_SIZE`` in the
    environment (not launched by torchrun) or with a world of one, returns
    ``DistInfo(rank=0, world_size=1, local_rank=0)`` and starts nothing.
    """
    if _active():
        local = int(os.environ.get("LOCAL_RANK", 0))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    rank, world_size = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else rank
    if world_size <= 1:
        return DistInfo(local_rank=local_rank)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world_size})")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"RANK and WORLD_SIZE are set but {', '.join(missing)} is not: launch with torchrun "
            "or set the rendezvous address yourself"
        )
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed support")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA devices are "
                "visible; use --nproc_per_node <= the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    logger.info(
        "process group up: rank %d/%d (local %d), %s", rank, world_size, local_rank, backend
    )
    return DistInfo(rank, world_size, local_rank, backend)


def get_rank() -> int:
    return dist.get_rank() if _active() else 0


def get_world_size() -> int:
    return dist.get_world_size() if _active() else 1


def is_main_process() -> bool:
    """True on rank 0 and in single-process runs: the process that logs and saves."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank; no-op without a process group."""
    if _active():
        dist.barrier()


def _comm_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo only CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(value: T) -> T:
    """Mean of ``value`` over all ranks: a number, a tensor, or a dict of numbers.

    A dict must have the same keys on every rank (e.g. the loss dict of ``forward_backward``).
    Returns the same kind it was given; without a process group, returns ``value`` itself.
    """
    if not _active():
        return value
    world = dist.get_world_size()
    if isinstance(value, Mapping):
        keys = sorted(value)
        stacked = torch.tensor([float(value[k]) for k in keys], dtype=torch.float64)
        means = all_reduce_mean(stacked)
        return type(value)(zip(keys, means.tolist()))  # type: ignore[return-value]
    if isinstance(value, torch.Tensor):
        dtype = value.dtype if value.is_floating_point() else torch.float64
        buf = value.detach().to(device=_comm_device(), dtype=dtype).clone()
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return (buf / world).to(value.device)  # type: ignore[return-value]
    buf = torch.tensor(float(value), dtype=torch.float64, device=_comm_device())  # type: ignore[arg-type]
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return float(buf.item() / world)  # type: ignore[return-value]


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` as held by rank ``src``, on every rank (any picklable object)."""
    if not _active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src, device=_comm_device())
    return holder[0]


def cleanup() -> None:
    """Destroy the default process group if there is one."""
    if _active():
        dist.destroy_process_group()


def wrap_ddp(
    model: nn.Module, device: torch.device | str, find_unused_parameters: bool = False
) -> nn.Module:
    """Move ``model`` to ``device`` and wrap it in ``DistributedDataParallel``.

    Without a process group the moved model is returned unwrapped. Set
    ``find_unused_parameters`` when some branch does not reach the loss every step.
    """
    device = torch.device(device)
    model = model.to(device)
    if not _active():
        return model
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=[index],
            output_device=index,
            find_unused_parameters=find_unused_parameters,
        )
    return nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed ``random``, numpy and torch (all CUDA devices) with ``seed + rank``; returns it.

    Offsetting by rank gives each process its own augmentation stream while the run as a
    whole stays reproducible. Shard-shared randomness (the identity sampler) uses its own seed.
    """
    effective = int(seed) + int(rank)
    random.seed(effective)
    np.random.seed(effective % 2**32)
    torch.manual_seed(effective)  # also seeds every CUDA device
    return effective


def get_rng_state() -> dict[str, Any]:
    """The state of ``random``, numpy's global RNG, torch and every CUDA device.

    Tensors and plain values only (numpy's key array as an int64 tensor), so a checkpoint
    holding it loads with ``torch.load(weights_only=True)``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),  # (version, tuple of 625 ints, gauss_next)
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``get_rng_state`` returned (CUDA states only where CUDA is available)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "cleanup",
    "get_rank",
    "get_rng_state",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "seed_everything",
    "set_rng_state",
    "unwrap_model",
    "wrap_ddp",
]
