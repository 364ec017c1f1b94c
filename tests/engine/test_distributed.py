"""Distributed helpers: single-process no-ops, and a real 2-process gloo run (torchrun env)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
from torch import nn

from torchreid_pgflkd.engine import distributed as d

# One rank of a job, started the way torchrun starts it: the rendezvous is in the environment.
# The module is loaded from its file (it needs only torch and numpy) so that each worker does
# not pay for importing torchreid through the package's __init__.
WORKER = textwrap.dedent(
    """
    import importlib.util, json, sys
    import torch

    spec = importlib.util.spec_from_file_location("dist_under_test", sys.argv[2])
    d = sys.modules["dist_under_test"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(d)

    info = d.init_distributed()
    rank = info.rank
    out = {"info": [info.rank, info.world_size, info.local_rank, info.backend],
           "main": d.is_main_process(), "again": d.init_distributed().rank}
    out["mean"] = d.all_reduce_mean(float(rank + 1))
    out["mean_dict"] = d.all_reduce_mean({"loss": 2.0 * rank, "acc": 1.0})
    out["mean_tensor"] = d.all_reduce_mean(torch.tensor([rank, 10], dtype=torch.int64)).tolist()
    out["obj"] = d.broadcast_object({"from": rank, "order": [3, 1, 2]} if rank == 0 else None)

    torch.manual_seed(100 + rank)  # different init per rank: DDP must broadcast rank 0's
    model = d.wrap_ddp(torch.nn.Linear(4, 2), "cpu")
    out["wrapped"] = type(model).__name__
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(rank))
    model(x).pow(2).mean().backward()
    opt.step()
    net = d.unwrap_model(model)
    out["weight"], out["bias"] = net.weight.tolist(), net.bias.tolist()
    d.barrier()
    d.cleanup()
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_without_torchrun_everything_is_a_single_process_no_op(no_torchrun_env):
    info = d.init_distributed()
    assert info == d.DistInfo(rank=0, world_size=1, local_rank=0, backend=None)
    assert not info.is_distributed and info.is_main and d.is_main_process()
    assert info.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert d.all_reduce_mean(2.5) == 2.5
    assert d.all_reduce_mean({"loss": 1.0}) == {"loss": 1.0}
    assert d.broadcast_object([1, 2]) == [1, 2]
    d.barrier()
    model = nn.Linear(2, 2)
    assert d.wrap_ddp(model, "cpu") is model
    d.cleanup()


def test_incomplete_torchrun_env_names_the_missing_variables(no_torchrun_env):
    no_torchrun_env.setenv("RANK", "0")
    no_torchrun_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="MASTER_ADDR, MASTER_PORT"):
        d.init_distributed()
    no_torchrun_env.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        d.init_distributed()


def test_seed_everything_offsets_by_rank_and_repeats():
    import random

    import numpy as np

    def sample(seed: int, rank: int) -> tuple:
        d.seed_everything(seed, rank=rank)
        return random.random(), float(np.random.rand()), torch.rand(1).item()

    assert sample(3, 0) == sample(3, 0)
    assert sample(3, 1) != sample(3, 0)
    assert d.seed_everything(3, rank=2) == 5


def reference_step() -> tuple[torch.Tensor, torch.Tensor]:
    """The step DDP must reproduce: rank 0's init, the gradient averaged over both ranks."""
    torch.manual_seed(100)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs = [torch.randn(8, 4, generator=torch.Generator().manual_seed(r)) for r in (0, 1)]
    (sum(model(x).pow(2).mean() for x in xs) / 2).backward()
    opt.step()
    return model.weight.detach(), model.bias.detach()


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch built without gloo"
)
def test_two_gloo_processes_reduce_broadcast_and_train_in_lockstep(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "CUDA_VISIBLE_DEVICES": "",  # gloo on CPU even where a GPU exists
        }
        cmd = [sys.executable, str(script), str(tmp_path / f"rank{rank}.json"), d.__file__]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for rank, proc in enumerate(procs):
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"rank {rank} hung (gloo rendezvous on port {port})")
        assert proc.returncode == 0, f"rank {rank} failed:\n{err[-3000:]}"
    out = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    assert [o["info"] for o in out] == [[0, 2, 0, "gloo"], [1, 2, 1, "gloo"]]
    assert [o["main"] for o in out] == [True, False]
    assert [o["again"] for o in out] == [0, 1]
    for o in out:
        assert o["mean"] == pytest.approx(1.5)
        assert o["mean_dict"] == pytest.approx({"loss": 1.0, "acc": 1.0})
        assert o["mean_tensor"] == pytest.approx([0.5, 10.0])
        assert o["obj"] == {"from": 0, "order": [3, 1, 2]}
        assert o["wrapped"] == "DistributedDataParallel"
    assert out[0]["weight"] == out[1]["weight"] and out[0]["bias"] == out[1]["bias"]
    weight, bias = reference_step()
    assert torch.allclose(torch.tensor(out[0]["weight"]), weight, atol=1e-6)
    assert torch.allclose(torch.tensor(out[0]["bias"]), bias, atol=1e-6)
