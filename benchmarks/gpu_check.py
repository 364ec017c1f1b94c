"""GPU check: each CUDA code path of the package run once, with figures (see gpu_check.sh).

Before a GPU was lent, none of the CUDA, bf16 / fp16-with-scaler, channels-last-on-GPU or
NCCL code had run. Each part is one function ``part(device, size, work_dir) -> figures``:

  amp_train_step       PGFL-KD train-mode forward/backward through the engine (channels-last)
                       in bf16 autocast and in fp16 autocast + GradScaler: finite losses, a
                       finite gradient for every trainable parameter, scaler state, peak memory
  deployed_throughput  the deployed (pose-free MB) model: images/s in fp32 and bf16 / fp16
                       autocast, channels-last; parameters and GFLOPs (``models.cost``); its
                       features against the full model's
  train_speed          PGFL-KD vs the BNNeck baseline vs torchreid's resnet50 +
                       ImageTripletEngine: images/s on the same in-memory batches, interleaved
                       (``benchmarks/train_speed.py``'s pieces)
  ddp                  ``torchrun --nproc_per_node=1``: DDP through ``build_engine`` with NCCL
                       (gloo on a CPU) for a few steps, ``all_reduce_mean``, ``broadcast_object``
  evaluate_500k        ``evaluate_features`` (blocked, distances on the device) at Market-1501 +
                       500k distractors (3,368 x 520,000 x 2048), checked on a query subset
                       against the same evaluation on the CPU
  pgflkd_run           a short ``pgflkd run --preset gpu`` (baseline and PGFL-KD, 2 epochs, 32 ids)

``--size full`` is the GPU run. ``--size tiny`` (64x32 images, resnet_mini, 2 steps, a 2k
gallery, gloo) is the CPU dry run the tests make of every part, so the script cannot rot. A
failed part is recorded with its error and traceback; the script then exits non-zero.
``benchmarks/results/gpu_check.json`` is only ever written by a full run on CUDA.

    benchmarks/gpu_check.sh                                     # the GPU run, parts under timeouts
    python benchmarks/gpu_check.py --device cuda --size full \\
        --output benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --device cpu --size tiny --output /tmp/gpu_check_dry.json
    python benchmarks/gpu_check.py --part ddp --device cpu --size tiny --output /tmp/ddp.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _suite
import torch
import train_speed

from torchreid_pgflkd.config import adapters, build
from torchreid_pgflkd.config.experiment import VARIANTS
from torchreid_pgflkd.engine.distributed import (
    all_reduce_mean,
    broadcast_object,
    cleanup,
    init_distributed,
)
from torchreid_pgflkd.evaluation import evaluate_features
from torchreid_pgflkd.evaluation.extract import autocast
from torchreid_pgflkd.models import build_pgflkd, to_deploy
from torchreid_pgflkd.models.cost import inference_cost
from torchreid_pgflkd.utils.modules import unwrap_model

logger = logging.getLogger("gpu_check")
SCRIPT = Path(__file__).resolve()
RESULT = _suite.RESULTS / "gpu_check.json"


@dataclass(frozen=True)
class Size:
    """What one size of the check runs."""

    height: int
    width: int
    backbone: str
    batch: int  # P x 4
    steps: int  # timed steps per engine
    warmup: int  # untimed steps per engine
    num_train_ids: int  # of the generated embedded benchmark the train parts use
    deploy_batch: int
    deploy_iters: int
    eval_queries: int
    eval_gallery: int
    eval_dim: int
    eval_ids: int
    eval_gallery_real: int  # gallery items of the query ids; the rest are distractors (id 0)
    eval_check_queries: int  # evaluated again on the CPU
    subprocess_timeout_s: int
    run_opts: tuple[str, ...]  # KEY VALUE overrides of `pgflkd run --preset gpu`


SIZES: dict[str, Size] = {
    "full": Size(
        height=256, width=128, backbone="resnet50", batch=64, steps=10, warmup=3,
        num_train_ids=32, deploy_batch=256, deploy_iters=20,
        eval_queries=3368, eval_gallery=520_000, eval_dim=2048, eval_ids=750,
        eval_gallery_real=16_939, eval_check_queries=64, subprocess_timeout_s=300,
        run_opts=(
            "synthetic.num_train_ids", "32", "synthetic.num_test_ids", "16",
            "train.max_epoch", "2", "train.warmup_epochs", "1", "train.milestones", "[10]",
        ),
    ),
    "tiny": Size(
        height=64, width=32, backbone="resnet_mini", batch=8, steps=2, warmup=1,
        num_train_ids=8, deploy_batch=8, deploy_iters=2,
        eval_queries=100, eval_gallery=2000, eval_dim=64, eval_ids=50,
        eval_gallery_real=400, eval_check_queries=16, subprocess_timeout_s=240,
        run_opts=(
            "model.backbone", "resnet_mini", "data.height", "64", "data.width", "32",
            "data.pad", "2", "data.workers", "0", "synthetic.num_train_ids", "8",
            "synthetic.images_per_id", "4", "synthetic.num_test_ids", "4",
            "sampler.batch_size", "8", "sampler.num_instances", "2",
            "sampler.test_batch_size", "16", "train.max_epoch", "1",
            "train.warmup_epochs", "0", "train.milestones", "[10]", "train.device", "cpu",
        ),
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _require(condition: bool, message: str) -> None:
    """A check of the GPU path: a failure fails the part (recorded, non-zero exit)."""
    if not condition:
        raise RuntimeError(message)


def _settings(device: torch.device, s: Size, work: Path) -> SimpleNamespace:
    """train_speed.py's arguments at this size."""
    return SimpleNamespace(
        data_root=str(work / "synthetic"), height=s.height, width=s.width,
        num_train_ids=s.num_train_ids, batch=s.batch, backbone=s.backbone, lr=3.5e-4,
        device=device.type, seed=0,
    )  # fmt: skip


def _config(device: torch.device, s: Size, work: Path, *extra: str) -> Any:
    """The embedded benchmark's config at this size (train_speed.py's), data generated."""
    cfg = train_speed.base_config(_settings(device, s, work), *extra)
    return build.prepare_synthetic(cfg, progress=False)


def _timed_steps(
    steps: dict[str, Callable[[dict[str, Any]], Any]],
    batches: list[dict[str, Any]],
    warmup: int,
    device: torch.device,
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, float]]]]:
    """Each round, one step of every engine on that round's batch; seconds after warm-up."""
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    summaries: dict[str, list[dict[str, float]]] = {name: [] for name in steps}
    for r, batch in enumerate(batches):
        for name, step in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            summaries[name].append(step(batch))
            _sync(device)
            if r >= warmup:
                seconds[name].append(time.perf_counter() - t0)
    return seconds, summaries


# ------------------------------------------------------------------------------- parts
def amp_train_step(device: torch.device, size: str, work: Path) -> dict[str, Any]:
    """PGFL-KD forward/backward in bf16 and in fp16 with the GradScaler (CUDA-only AMP)."""
    s = SIZES[size]
    cfg = _config(device, s, work)
    dm = build.build_datamanager(cfg)
    batches = train_speed.materialise_batches(dm, s.warmup + s.steps)
    out: dict[str, Any] = {
        "backbone": s.backbone,
        "batch": s.batch,
        "image_hw": [s.height, s.width],
    }
    for amp in ("bf16", "fp16"):
        step = train_speed.pgflkd_step(cfg, dm, amp)
        engine = step.__self__
        scales: list[float] = []
        _reset_peak(device)

        def scaled(batch: dict[str, Any], step=step, engine=engine, scales=scales) -> dict:
            summary = step(batch)
            if engine.scaler is not None:
                scales.append(float(engine.scaler.get_scale()))
            return summary

        seconds, summaries = _timed_steps({amp: scaled}, batches, s.warmup, device)
        model = unwrap_model(engine.model)
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        no_grad = [n for n, p in trainable if p.grad is None]
        bad_grad = [n for n, p in trainable if p.grad is not None and not p.grad.isfinite().all()]
        losses = [x["loss"] for x in summaries[amp]]
        rec = {
            "autocast_dtype": str(engine.amp_dtype) if engine.amp_dtype else None,
            "grad_scaler": engine.scaler is not None,
            "scale_per_step": scales,
            "channels_last": engine.channels_last,
            "conv_weights_channels_last": next(
                p for p in model.parameters() if p.dim() == 4
            ).is_contiguous(memory_format=torch.channels_last),
            "images_per_s": s.batch / statistics.median(seconds[amp]),
            "losses": losses,
            "loss_terms": sorted(summaries[amp][-1]),
            "trainable_params": len(trainable),
            "params_without_grad": no_grad,
            "params_with_nonfinite_grad": bad_grad,
            "peak_memory_mb": _peak_mb(device),
        }
        out[amp] = rec
        _require(all(map(math.isfinite, losses)), f"{amp}: non-finite loss {losses}")
        _require(not no_grad, f"{amp}: parameters without a gradient: {no_grad[:5]}")
        _require(not bad_grad or scales, f"{amp}: non-finite gradients without a scaler")
        if device.type == "cuda":
            _require(engine.amp_dtype is not None, f"{amp}: the engine runs without autocast")
            _require((engine.scaler is not None) == (amp == "fp16"), f"{amp}: scaler wrong")
            _require(rec["conv_weights_channels_last"], f"{amp}: model not channels-last")
    return out


def deployed_throughput(device: torch.device, size: str, work: Path) -> dict[str, Any]:
    """Images/s of the deployed model in fp32 / bf16 / fp16 autocast, channels-last."""
    s = SIZES[size]
    cfg = train_speed.base_config(_settings(device, s, work))  # the model, no data
    torch.manual_seed(0)
    model = build_pgflkd(**adapters.model_kwargs(cfg, s.num_train_ids)).to(device).eval()
    deployed = to_deploy(model).to(device).to(memory_format=torch.channels_last)
    x = torch.randn(s.deploy_batch, 3, s.height, s.width, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        full, dep = model(x[:4]).float(), deployed(x[:4]).float()
    rel = float((full - dep).abs().max() / full.abs().max().clamp_min(1e-12))
    out: dict[str, Any] = {
        "batch": s.deploy_batch,
        "image_hw": [s.height, s.width],
        "cost": inference_cost(deployed, (s.height, s.width)),
        "feature_dim": int(dep.shape[1]),
        "max_rel_diff_vs_full_model": rel,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        times = []
        with torch.no_grad(), autocast(device, dtype):
            for i in range(s.deploy_iters + 3):
                _sync(device)
                t0 = time.perf_counter()
                feat = deployed(x)
                _sync(device)
                if i >= 3:
                    times.append(time.perf_counter() - t0)
        _require(bool(feat.float().isfinite().all()), f"{name}: non-finite features")
        out[name] = {
            "images_per_s": s.deploy_batch / statistics.median(times),
            "output_dtype": str(feat.dtype),
        }
    # TF32 convolutions (PyTorch's CUDA default) and another algorithm: not bit-equal on a GPU
    _require(rel < 5e-2, f"deployed features differ from the full model's by {rel:.3g}")
    return out


def train_speed_compare(device: torch.device, size: str, work: Path) -> dict[str, Any]:
    """PGFL-KD vs the BNNeck baseline vs torchreid's resnet50 + ImageTripletEngine, images/s."""
    s = SIZES[size]
    cfg = _config(device, s, work)
    base_cfg = _config(device, s, work, *VARIANTS["baseline"])
    dm = build.build_datamanager(cfg)
    batches = train_speed.materialise_batches(dm, s.warmup + s.steps)
    amps = ["none", "bf16"] if device.type == "cuda" else ["none"]
    steps: dict[str, Callable] = {}
    for amp in amps:
        suffix = "" if amp == "none" else f"_amp_{amp}"
        steps[f"pgflkd{suffix}"] = train_speed.pgflkd_step(cfg, dm, amp)
        steps[f"baseline{suffix}"] = train_speed.pgflkd_step(base_cfg, dm, amp)
    steps[train_speed.BASELINE] = train_speed.torchreid_step(dm, device, 3.5e-4, 0)
    seconds, _ = _timed_steps(steps, batches, s.warmup, device)
    ref = statistics.median(seconds[train_speed.BASELINE])
    return {
        "backbone": s.backbone,
        "batch": s.batch,
        "image_hw": [s.height, s.width],
        "timed_steps": s.steps,
        "engines": {
            name: {
                "images_per_s": s.batch / statistics.median(t),
                "ratio_vs_torchreid": ref / statistics.median(t),
                "step_seconds": t,
            }
            for name, t in seconds.items()
        },
        "note": "torchreid has no mixed precision: its resnet50 runs fp32 (last stride 2); "
        "PGFL-KD's ResNet-50 keeps last stride 1",
    }


def ddp(device: torch.device, size: str, work: Path) -> dict[str, Any]:
    """``torchrun --nproc_per_node=1`` running :func:`ddp_worker` (NCCL on CUDA, gloo on CPU)."""
    s = SIZES[size]
    result = work / f"ddp_{os.getpid()}_{time.monotonic_ns()}.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
        str(SCRIPT), "--ddp-worker", "--device", device.type, "--size", size,
        "--work-dir", str(work), "--output", str(result),
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=s.subprocess_timeout_s)
    if proc.returncode != 0 or not result.is_file():
        raise RuntimeError(
            f"torchrun exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-3000:]}"
        )
    out = json.loads(result.read_text())
    out["torchrun_wall_s"] = time.perf_counter() - t0
    return out


def ddp_worker(device: torch.device, size: str, work: Path, result: Path) -> None:
    """One rank under torchrun: a few DDP training steps through the package's builders."""
    import torch.distributed as dist

    s = SIZES[size]
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    # init_distributed() treats a world of one as a plain single-process run and starts no
    # process group; this check wants the DDP / NCCL path itself, so the group is started
    # here and init_distributed() picks it up.
    dist.init_process_group(backend=backend, init_method="env://")
    try:
        info = init_distributed()
        amp = "bf16" if device.type == "cuda" else "none"
        cfg = _config(device, s, work, "train.amp", amp)
        dm = build.build_datamanager(cfg, info)
        engine = build.build_engine(cfg, dm, info, progress=False)
        engine.set_model_mode("train")
        batches = train_speed.materialise_batches(dm, s.warmup + s.steps)
        seconds, summaries = _timed_steps(
            {"ddp": engine.forward_backward}, batches, s.warmup, device
        )
        means = [all_reduce_mean(x) for x in summaries["ddp"]]
        tensor_mean = all_reduce_mean(torch.arange(4.0, device=device)).tolist()
        shared = broadcast_object({"rank": info.rank, "steps": len(batches)})
        out = {
            "backend": dist.get_backend(),
            "world_size": info.world_size,
            "rank": info.rank,
            "model_wrapper": type(engine.model).__name__,
            "amp": amp,
            "device": str(engine.device),
            "steps": len(batches),
            "images_per_s": s.batch / statistics.median(seconds["ddp"]),
            "losses_all_reduced": [m["loss"] for m in means],
            "all_reduce_tensor": tensor_mean,
            "broadcast_object": shared,
        }
        _require(out["model_wrapper"] == "DistributedDataParallel", "model not DDP-wrapped")
        _require(out["backend"] == backend, f"backend {out['backend']}, expected {backend}")
        _require(tensor_mean == [0.0, 1.0, 2.0, 3.0], f"all_reduce_mean gave {tensor_mean}")
        _require(all(map(math.isfinite, out["losses_all_reduced"])), "non-finite DDP loss")
        result.write_text(json.dumps(out))
    finally:
        cleanup()


def make_features(
    s: Size, device: torch.device, seed: int = 0, chunk: int = 65536
) -> tuple[torch.Tensor, torch.Tensor, Any, Any, Any, Any]:
    """Market-1501-shaped synthetic features made on ``device``: ids with centres, camera
    offsets and heavy noise; gallery items past ``eval_gallery_real`` are distractors (id 0),
    each its own random person. Returns (qf, gf, q_pids, g_pids, q_cams, g_cams)."""
    g = torch.Generator(device=device).manual_seed(seed)
    nq, ng, dim, ncam = s.eval_queries, s.eval_gallery, s.eval_dim, 6

    def ints(low: int, high: int, n: int) -> torch.Tensor:
        return torch.randint(low, high, (n,), generator=g, device=device)

    centres = torch.randn(s.eval_ids + 1, dim, generator=g, device=device)
    cam_vec = 0.8 * torch.randn(ncam, dim, generator=g, device=device)
    q_pids, q_cams = ints(1, s.eval_ids + 1, nq), ints(0, ncam, nq)
    real = ints(1, s.eval_ids + 1, s.eval_gallery_real)
    g_pids = torch.cat([real, real.new_zeros(ng - s.eval_gallery_real)])
    g_cams = ints(0, ncam, ng)

    def feats(pids: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(pids), dim, device=device)
        for a in range(0, len(pids), chunk):
            p, c = pids[a : a + chunk], cams[a : a + chunk]
            noise = torch.randn(len(p), dim, generator=g, device=device).mul_(4.5)
            person = torch.randn(len(p), dim, generator=g, device=device)
            person = torch.where((p == 0)[:, None], person, centres[p])
            out[a : a + chunk] = noise.add_(cam_vec[c]).add_(person)
        return out

    qf, gf = feats(q_pids, q_cams), feats(g_pids, g_cams)
    ids = [t.cpu().numpy() for t in (q_pids, g_pids, q_cams, g_cams)]
    return qf, gf, *ids


def evaluate_500k(device: torch.device, size: str, work: Path) -> dict[str, Any]:
    """Blocked exact evaluation with distances on ``device``, at the 500k-distractor size."""
    s = SIZES[size]
    _reset_peak(device)
    t0 = time.perf_counter()
    qf, gf, qp, gp, qc, gc = make_features(s, device)
    _sync(device)
    generate_s = time.perf_counter() - t0
    kw = dict(metric="cosine", method="blocked", ties="stable", progress=False)
    res = evaluate_features(qf, gf, qp, gp, qc, gc, device=device, **kw)
    keep = ("rank1", "rank5", "mAP", "mINP", "seconds", "ranking_seconds", "cpu_seconds")
    out: dict[str, Any] = {
        "num_query": s.eval_queries,
        "num_gallery": s.eval_gallery,
        "dim": s.eval_dim,
        "generate_s": generate_s,
        "features_device": str(qf.device),
        "method": res["method"],
        **{k: res[k] for k in keep},
        "peak_memory_mb": _peak_mb(device),
    }
    # The same queries evaluated from CPU distances: the GPU GEMM may round differently,
    # which moves near-tied items only.
    n = s.eval_check_queries
    ids = (qp[:n], gp, qc[:n], gc)
    on_device = evaluate_features(qf[:n], gf, *ids, device=device, **kw)
    on_cpu = evaluate_features(qf[:n].cpu(), gf.cpu(), *ids, device="cpu", **kw)
    out["subset_check"] = {
        "num_query": n,
        "device_s": on_device["seconds"],
        "cpu_s": on_cpu["seconds"],
        "abs_mAP_diff": abs(on_device["mAP"] - on_cpu["mAP"]),
        "max_abs_cmc_diff": max(abs(a - b) for a, b in zip(on_device["cmc"], on_cpu["cmc"])),
    }
    _require(out["subset_check"]["abs_mAP_diff"] < 1e-3, f"GPU vs CPU: {out['subset_check']}")
    return out


def pgflkd_run(device: torch.device, size: str, work: Path) -> dict[str, Any]:
    """A short ``pgflkd run --preset gpu`` in a subprocess, as a user runs it."""
    s = SIZES[size]
    output = work / "pgflkd_run"
    cmd = [
        sys.executable, "-m", "torchreid_pgflkd.cli.main", "run", "--preset", "gpu",
        "--output", str(output), "--data-root", str(work / "run_data"), "--no-progress",
        *s.run_opts,
    ]  # fmt: skip
    if device.type != "cuda" and "train.device" not in s.run_opts:
        cmd += ["train.device", device.type]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=s.subprocess_timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"pgflkd run exited with {proc.returncode}: {proc.stderr[-3000:]}")
    results = json.loads((output / "results.json").read_text())
    models = {
        name: {
            "rank1": r["rank1"],
            "mAP": r["mAP"],
            "train_and_eval_seconds": r["train_and_eval_seconds"],
            "device": r["settings"]["device"],
            "amp": r["settings"]["amp"],
            "backbone": r["settings"]["backbone"],
        }
        for name, r in results["models"].items()
    }
    if device.type == "cuda":
        _require(
            all(m["device"].startswith("cuda") for m in models.values()), f"not on CUDA: {models}"
        )
    return {
        "command": " ".join(["pgflkd", *cmd[3:]]),
        "wall_s": time.perf_counter() - t0,
        "total_seconds": results["total_seconds"],
        "models": models,
        "gain_points": results.get("gain_points"),
    }


PARTS: dict[str, Callable[[torch.device, str, Path], dict[str, Any]]] = {
    "amp_train_step": amp_train_step,
    "deployed_throughput": deployed_throughput,
    "train_speed": train_speed_compare,
    "ddp": ddp,
    "evaluate_500k": evaluate_500k,
    "pgflkd_run": pgflkd_run,
}


# ------------------------------------------------------------------------------ driver
def run_part(name: str, device: torch.device, size: str, work: Path) -> dict[str, Any]:
    """``{"ok": True, "seconds", "figures"}`` or ``{"ok": False, "seconds", "error",
    "traceback"}``: a failed part is recorded, never hidden."""
    logger.info("part %s (%s, %s)", name, device, size)
    t0 = time.perf_counter()
    try:
        figures = PARTS[name](device, size, work)
    except Exception as exc:  # noqa: BLE001  (recorded with its traceback, exit code 1)
        logger.error("part %s failed: %s: %s", name, type(exc).__name__, exc)
        return {
            "ok": False,
            "seconds": time.perf_counter() - t0,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    seconds = time.perf_counter() - t0
    logger.info("part %s done in %.1fs", name, seconds)
    return {"ok": True, "seconds": seconds, "figures": figures}


def headline(name: str, rec: dict[str, Any]) -> str:
    """One line per part for the summary."""
    if not rec["ok"]:
        return rec["error"].splitlines()[0][:160]
    f = rec["figures"]
    if name == "amp_train_step":
        return " ".join(f"{a} {f[a]['images_per_s']:.0f} img/s" for a in ("bf16", "fp16"))
    if name == "deployed_throughput":
        return " ".join(f"{p} {f[p]['images_per_s']:.0f} img/s" for p in ("fp32", "bf16", "fp16"))
    if name == "train_speed":
        return " ".join(f"{k} {v['images_per_s']:.0f}" for k, v in f["engines"].items())
    if name == "ddp":
        return f"{f['backend']} {f['model_wrapper']} {f['images_per_s']:.0f} img/s"
    if name == "evaluate_500k":
        return f"{f['num_query']}x{f['num_gallery']} in {f['seconds']:.1f}s mAP {f['mAP']:.4f}"
    if name == "pgflkd_run":
        return " ".join(f"{k} mAP {v['mAP']:.3f}" for k, v in f["models"].items())
    return ""


def summary(parts: dict[str, dict[str, Any]]) -> str:
    rows = [
        f"{name:20s} {'ok' if r['ok'] else 'FAILED':6s} {r['seconds']:7.1f}s  {headline(name, r)}"
        for name, r in parts.items()
    ]
    return "\n".join(rows)


def refuse_results_path(output: Path, device: torch.device, size: str) -> None:
    """``results/gpu_check.json`` holds figures measured on a GPU at full size, nothing else."""
    if output.resolve() == RESULT.resolve() and (device.type != "cuda" or size != "full"):
        raise SystemExit(
            f"{RESULT} is for a full run on a CUDA device (got {device}, size {size}); the GPU "
            "figures remain to be measured. Write a dry run elsewhere with --output."
        )


def build_parser() -> argparse.ArgumentParser:
    p = _suite.parser(__doc__, "gpu_check")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", choices=sorted(SIZES), default=None, help="default: full on CUDA")
    p.add_argument("--part", action="append", choices=sorted(PARTS), help="default: all")
    p.add_argument("--work-dir", type=Path, default=None, help="generated data (default: temp)")
    p.add_argument("--merge", nargs="+", type=Path, help="part reports to merge into --output")
    p.add_argument(
        "--part-exit", action="append", default=[], help="NAME:EXIT_CODE:LIMIT_S (from the .sh)"
    )
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    return p


def merge(reports: Sequence[Path], exits: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The parts of several one-part reports (gpu_check.sh). ``exits`` holds
    ``NAME:EXIT_CODE:LIMIT_S`` per part the .sh ran: a part that left no report (killed at its
    timeout, or its process died) is recorded as failed with the reason."""
    parts: dict[str, dict[str, Any]] = {}
    for path in reports:
        if path.is_file():
            parts.update(json.loads(path.read_text())["parts"])
    for item in exits:
        name, code, limit = (item.split(":") + ["", ""])[:3]
        if name in parts:
            continue
        killed = code in ("124", "137")
        parts[name] = {
            "ok": False,
            "seconds": float(limit) if killed and limit else float("nan"),
            "error": f"timed out: killed after {limit} s by gpu_check.sh"
            if killed
            else f"no report: the process exited with code {code}",
        }
    return {name: parts[name] for name in PARTS if name in parts}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _suite.setup_logging()
    logging.getLogger("torchreid_pgflkd").setLevel(logging.WARNING)
    device = torch.device(args.device)
    size = args.size or ("full" if device.type == "cuda" else "tiny")
    if args.ddp_worker:
        ddp_worker(device, size, args.work_dir, args.output)
        return 0
    refuse_results_path(args.output, device, size)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but no CUDA device is available")
    if args.merge:
        parts = merge(args.merge, args.part_exit)
    else:
        with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
            work = args.work_dir or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            names = args.part or list(PARTS)
            parts = {name: run_part(name, device, size, work) for name in names}
    failed = [name for name, r in parts.items() if not r["ok"]]
    report = {
        "benchmark": "gpu_check",
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "size": size,
        "settings": asdict(SIZES[size]),
        "ok": not failed,
        "failed": failed,
        "parts": parts,
    }
    _suite.write_report(report, args.output)
    print(summary(parts))
    print(f"{'FAILED: ' + ', '.join(failed) if failed else 'all parts ok'} -> {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
