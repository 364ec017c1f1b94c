"""The ``pgflkd`` commands end to end: train, test, export (checked), and torchrun with gloo."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from torchreid_pgflkd.cli.main import main
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.models import build_pgflkd, to_deploy

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"
WORKER = Path(__file__).resolve().parents[1] / "engine" / "ddp_worker.py"


@pytest.fixture
def trained(tiny_opts: list[str], tmp_path: Path) -> Path:
    opts = [*tiny_opts, "train.max_epoch", "1"]
    assert main(["train", "--no-progress", "--config", str(CONFIG), *opts]) == 0
    return tmp_path / "run"


def test_train_writes_config_checkpoint_and_results(trained: Path) -> None:
    import json

    assert (trained / "config.yaml").is_file() and (trained / "last.pth").is_file()
    results = json.loads((trained / "results.json").read_text())["synthetic_occluded"]
    assert {"rank1", "rank5", "mAP", "mINP"} <= set(results)
    log = (trained / "train.log").read_text()  # the run's text log, beside its checkpoints
    assert "epoch 1/1 done" in log and "synthetic_occluded: Rank-1" in log


def test_test_command_reproduces_the_training_evaluation(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "test.json"
    args = ["test", "--no-progress", "--config", str(trained / "config.yaml")]
    assert main([*args, "--weights", str(trained / "last.pth"), "--output", str(out)]) == 0
    import json

    assert main([*args, "--weights", str(trained / "last.pth"), "--output", str(out),
                 "test.eval_branches", "True"]) == 0  # fmt: skip
    assert "synthetic_occluded/feb" in json.loads(out.read_text())
    got = json.loads(out.read_text())["synthetic_occluded"]
    ref = json.loads((trained / "results.json").read_text())["synthetic_occluded"]
    assert got["rank1"] == pytest.approx(ref["rank1"]) and got["mAP"] == pytest.approx(ref["mAP"])


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_the_deployed_pytorch_model(trained: Path, fmt: str) -> None:
    out = trained / f"model.{fmt}"
    weights = trained / "last.pth"
    assert main(["export", "--weights", str(weights), "--format", fmt, "--output", str(out)]) == 0
    state = ckpt_io.read_checkpoint(weights)
    model = build_pgflkd(num_classes=state["extra"]["num_classes"], backbone="resnet_mini")
    model.load_state_dict(state["state_dict"])
    images = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        expected = to_deploy(model)(images).numpy()
    if fmt == "torchscript":
        got = torch.jit.load(str(out))(images).detach().numpy()
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"images": images.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_bad_override_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["train", "--config", str(CONFIG), "sampler.batch_size", "10",
                 "sampler.num_instances", "4"]) == 2  # fmt: skip
    assert "sampler.batch_size" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sampler.batch_size"):  # --debug: the exception
        main(["--debug", "train", "--config", str(CONFIG), "sampler.batch_size", "10",
              "sampler.num_instances", "4"])  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_training_keeps_ranks_identical(tiny_opts: list[str]) -> None:
    """torchrun, 2 CPU processes, gloo: both ranks hold identical weights after an epoch."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    opts = [*tiny_opts, "synthetic.num_train_ids", "8", "sampler.batch_size", "4"]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", str(WORKER), str(CONFIG), *opts,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("identical parameters, disjoint ids") == 2
