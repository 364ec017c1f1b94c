"""benchmarks/gpu_check.py: a CPU dry run (size "tiny") of every part, each returning its
figures, so the GPU script cannot rot; a failed part is recorded and fails the exit code; the
GPU results file is never written without a GPU."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
CPU = torch.device("cpu")


SCRIPT = "gpu_check"  # imported by the bench_script fixture (conftest.py)


@pytest.fixture(scope="module")
def gc(bench_script: ModuleType) -> ModuleType:
    return bench_script


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the parts: the tiny embedded benchmark is generated once."""
    return tmp_path_factory.mktemp("gpu_check")


def dry_run(gc: ModuleType, name: str, work: Path) -> dict:
    rec = gc.run_part(name, CPU, "tiny", work)
    assert rec["ok"], rec.get("traceback")
    assert rec["seconds"] > 0
    return rec["figures"]


def positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


def test_amp_train_step_dry_run(gc: ModuleType, work: Path) -> None:
    f = dry_run(gc, "amp_train_step", work)
    for amp in ("bf16", "fp16"):
        rec = f[amp]
        assert positive(rec["images_per_s"])
        assert len(rec["losses"]) == 3 and all(map(positive, rec["losses"]))
        assert "loss_mb_tri" in rec["loss_terms"] and "loss_sab_align" in rec["loss_terms"]
        assert rec["params_without_grad"] == [] and rec["trainable_params"] > 0
        assert rec["channels_last"] and rec["conv_weights_channels_last"]
        # mixed precision is CUDA-only: on the CPU the engine runs without autocast or scaler
        assert rec["autocast_dtype"] is None and not rec["grad_scaler"]


def test_deployed_throughput_dry_run(gc: ModuleType, work: Path) -> None:
    f = dry_run(gc, "deployed_throughput", work)
    assert all(positive(f[p]["images_per_s"]) for p in ("fp32", "bf16", "fp16"))
    assert positive(f["cost"]["gflops"]) and f["cost"]["params"] > 0
    assert f["max_rel_diff_vs_full_model"] < 1e-4  # the same arithmetic on the CPU


def test_train_speed_dry_run(gc: ModuleType, work: Path) -> None:
    f = dry_run(gc, "train_speed", work)
    assert set(f["engines"]) == {"pgflkd", "baseline", "torchreid_resnet50"}
    for rec in f["engines"].values():
        assert positive(rec["images_per_s"]) and len(rec["step_seconds"]) == 2
    assert f["engines"]["torchreid_resnet50"]["ratio_vs_torchreid"] == 1.0


def test_evaluate_500k_dry_run(gc: ModuleType, work: Path) -> None:
    f = dry_run(gc, "evaluate_500k", work)
    assert (f["num_query"], f["num_gallery"], f["method"]) == (100, 2000, "blocked")
    assert 0 < f["mAP"] <= 1 and f["seconds"] > 0
    assert f["subset_check"]["abs_mAP_diff"] == 0.0  # CPU against CPU: identical


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no gloo backend for the CPU torchrun dry run",
)
def test_ddp_dry_run_under_torchrun_with_gloo(gc: ModuleType, work: Path) -> None:
    f = dry_run(gc, "ddp", work)
    assert (f["backend"], f["world_size"], f["model_wrapper"]) == (
        "gloo", 1, "DistributedDataParallel",
    )  # fmt: skip
    assert f["all_reduce_tensor"] == [0.0, 1.0, 2.0, 3.0]
    assert f["steps"] == 3 and all(map(positive, f["losses_all_reduced"]))


def test_pgflkd_run_dry_run(gc: ModuleType, work: Path) -> None:
    f = dry_run(gc, "pgflkd_run", work)
    assert set(f["models"]) == {"baseline", "pgflkd"}
    assert all(0 <= m["mAP"] <= 1 and m["device"] == "cpu" for m in f["models"].values())
    assert f["command"].startswith("pgflkd run --preset gpu")


def test_a_failed_part_is_recorded_and_fails_the_exit_code(
    gc: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(device, size, work):
        raise ValueError("no kernel image is available")

    monkeypatch.setitem(gc.PARTS, "evaluate_500k", broken)
    out = tmp_path / "report.json"
    argv = ["--part", "evaluate_500k", "--part", "deployed_throughput", "--device", "cpu"]
    assert gc.main([*argv, "--size", "tiny", "--output", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["failed"] == ["evaluate_500k"] and not report["ok"]
    failed = report["parts"]["evaluate_500k"]
    assert failed["error"] == "ValueError: no kernel image is available"
    assert "Traceback" in failed["traceback"]
    assert report["parts"]["deployed_throughput"]["ok"]  # the other parts still ran


def test_merge_records_parts_that_left_no_report(gc: ModuleType, tmp_path: Path) -> None:
    done = tmp_path / "evaluate_500k.json"
    done.write_text(json.dumps({"parts": {"evaluate_500k": {"ok": True, "seconds": 1.0}}}))
    exits = ["evaluate_500k:0:90", "ddp:124:70", "pgflkd_run:139:110"]
    parts = gc.merge([done, tmp_path / "ddp.json"], exits)
    assert list(parts) == ["ddp", "evaluate_500k", "pgflkd_run"]  # in the script's order
    assert parts["evaluate_500k"]["ok"]
    assert parts["ddp"] == {
        "ok": False, "seconds": 70.0, "error": "timed out: killed after 70 s by gpu_check.sh",
    }  # fmt: skip
    assert parts["pgflkd_run"]["error"] == "no report: the process exited with code 139"


def test_the_gpu_results_file_is_refused_on_a_cpu(gc: ModuleType) -> None:
    with pytest.raises(SystemExit, match="remain to be measured"):
        gc.main(["--device", "cpu", "--size", "tiny", "--output", str(gc.RESULT)])
    with pytest.raises(SystemExit, match="remain to be measured"):
        gc.refuse_results_path(gc.RESULT, torch.device("cuda"), "tiny")
    gc.refuse_results_path(gc.RESULT, torch.device("cuda"), "full")  # the one allowed


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("timeout")), reason="needs bash and timeout"
)
def test_the_shell_script_writes_nothing_without_cuda(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    env.pop("GPU_CHECK_DRY_RUN", None)
    proc = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_check.sh"), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert "the GPU figures remain to be measured" in proc.stderr
    assert not (tmp_path / "out.json").exists()
