"""P x K identity sampling sharded across DDP ranks.

torchreid's ``RandomIdentitySampler`` draws P identities x K images per batch from the global
``random`` state and knows nothing of ranks. Here every epoch the identities are shuffled with a
seed all ranks share and dealt out, so the ranks see disjoint identities (a triplet batch is
formed within one rank, so nothing is lost), and each rank yields the same, fixed number of
P x K batches so the DDP steps stay in lockstep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


class DistributedIdentitySampler(Sampler[int]):
    """Yields dataset indices in batches of P identities x K images, one disjoint shard per rank.

    Args:
        data_source: torchreid samples ``(img_path, pid, camid, dsetid)``; only ``pid`` is read.
        batch_size: images per batch on each rank (the DataLoader's ``batch_size``), P x K.
        num_instances: K, images per identity in a batch. Identities with fewer images are
            drawn with replacement, as torchreid does.
        num_replicas, rank: the DDP world; default the current process group (1 and 0 without).
        seed: shared by all ranks; with the epoch (``set_epoch``) it fixes the whole order.

    Each epoch yields ``len(self)`` indices on every rank: ``num_batches`` batches, where
    ``num_batches`` is the number of P x K batches the data holds (each identity gives
    ``max(n, K) // K`` groups of K) divided among the ranks. A rank whose share of identities
    holds fewer groups re-draws images of its own identities, so shards stay disjoint.
    """

    def __init__(
        self,
        data_source: Sequence[Sequence[Any]],
        batch_size: int,
        num_instances: int,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"batch_size={batch_size} must be a positive multiple of "
                f"num_instances={num_instances} (batch = P identities x K images)"
            )
        active = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if active else 1
        if rank is None:
            rank = dist.get_rank() if active else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} must lie in 0..num_replicas-1 ({num_replicas=})")
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0

        index_by_pid: dict[Any, list[int]] = {}
        for index, item in enumerate(data_source):
            index_by_pid.setdefault(item[1], []).append(index)
        self.pids = sorted(index_by_pid)
        self._indices = [np.asarray(index_by_pid[p], dtype=np.int64) for p in self.pids]

        shard_pids = len(self.pids) // num_replicas
        if shard_pids < self.num_pids_per_batch:
            raise ValueError(
                f"{len(self.pids)} identities cannot give each of {num_replicas} ranks "
                f"{self.num_pids_per_batch} identities per batch (batch_size={batch_size}, "
                f"num_instances={num_instances}); lower the batch size or the number of ranks"
            )
        groups = sum(max(len(ix), num_instances) // num_instances for ix in self._indices)
        self.num_batches = max(1, groups // (self.num_pids_per_batch * num_replicas))

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` yields (call before each epoch, as in DDP)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def shard(self, epoch: int | None = None) -> list[Any]:
        """The identities (pids) this rank samples from in ``epoch`` (default: the current)."""
        epoch = self.epoch if epoch is None else epoch
        shared = np.random.default_rng([self.seed, epoch])  # identical on every rank
        order = shared.permutation(len(self.pids))
        return [self.pids[i] for i in order[self.rank :: self.num_replicas]]

    def _groups(self, slot: int, rng: np.random.Generator) -> list[np.ndarray]:
        """One pass over identity ``slot``: its images shuffled into groups of K."""
        ix = self._indices[slot]
        k = self.num_instances
        drawn = rng.choice(ix, size=k, replace=True) if len(ix) < k else rng.permutation(ix)
        usable = len(drawn) - len(drawn) % k
        return list(drawn[:usable].reshape(-1, k))

    def __iter__(self) -> Iterator[int]:
        slot_of = {pid: i for i, pid in enumerate(self.pids)}
        own = [slot_of[p] for p in self.shard()]
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
        pending = {s: self._groups(s, rng) for s in own}
        p = self.num_pids_per_batch
        out: list[int] = []
        for _ in range(self.num_batches):
            ready = [s for s in own if pending[s]]
            if len(ready) < p:
                # The shard ran dry: start another pass over its exhausted identities.
                for s in own:
                    if not pending[s]:
                        pending[s] = self._groups(s, rng)
                ready = own
            for s in rng.choice(ready, size=p, replace=False):
                out.extend(int(i) for i in pending[s].pop())
        return iter(out)


__all__ = ["DistributedIdentitySampler"]
