"""Run by ``torchrun --nproc_per_node=2`` from test_commands.py: one epoch of DDP training.

Exits non-zero unless both ranks hold identical parameters afterwards and trained on
disjoint identities. Arguments: the config file, then KEY VALUE overrides.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.engine.distributed import cleanup, init_distributed, unwrap_model


def main() -> int:
    info = init_distributed()
    assert info.world_size == 2 and info.backend == "gloo", info
    cfg = build.prepare_synthetic(load_config(sys.argv[1], sys.argv[2:]), progress=False)
    dm = build.build_datamanager(cfg, info)
    engine = build.build_engine(cfg, dm, info, progress=False)
    engine.max_epoch = 1
    engine.train()
    flat = torch.cat([p.detach().flatten() for p in unwrap_model(engine.model).parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(gathered, flat)
    dm.train_sampler.set_epoch(0)
    pids = sorted({dm.train_set.samples[i][1] for i in dm.train_sampler})
    shards: list = [None, None]
    dist.all_gather_object(shards, pids)
    steps = engine.global_step
    cleanup()
    if not torch.equal(gathered[0], gathered[1]):
        print(f"rank {info.rank}: parameters differ", file=sys.stderr)
        return 1
    if set(shards[0]) & set(shards[1]) or steps == 0:
        print(f"rank {info.rank}: shards overlap or no step: {shards} {steps}", file=sys.stderr)
        return 1
    print(f"rank {info.rank}: {steps} steps, identical parameters, disjoint ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())
