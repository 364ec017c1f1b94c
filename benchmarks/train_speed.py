"""Training speed: PGFL-KD's ``forward_backward`` against torchreid's ``ImageTripletEngine``.

Both engines train on the SAME batches: ``N = warmup + steps`` batches are drawn once from the
``PoseDataManager`` train loader of the embedded benchmark (images, ids and pose maps, at the
chosen image size) and kept in memory, so data loading is not timed. Each round, every engine
runs one optimisation step on that round's batch (interleaved in one process, so machine load
affects all of them alike); the first ``--warmup`` rounds are not timed. Engines:

  pgflkd                PGFL-KD (all branches, pose maps in, our losses) on ``--backbone``
  pgflkd_share_layer4   PGFL-KD on resnet50 with ``model.share_layer4 True`` (one layer4)
  torchreid_resnet50    torchreid's own ``resnet50`` (loss='triplet') + ``ImageTripletEngine``
                        + torchreid's Adam; torchreid has no mixed precision, it runs fp32

On CUDA with ``--amp bf16|fp16`` the PGFL-KD engines are timed with and without mixed
precision (``*_amp_*`` rows). Figures: images/s (batch / median step wall time), the
ratio PGFL-KD / torchreid of images/s (same run), and on CPU the same ratio from process CPU
time, which other jobs on a shared machine disturb less. Writes
``benchmarks/results/train_speed.json``.

    python benchmarks/train_speed.py                                  # 256x128, batch 32
    # the committed CPU runs (one thread: stable timings on a shared machine)
    python benchmarks/train_speed.py --batch 16 --height 128 --width 64 --steps 5 --warmup 1 \\
        --threads 1 --data-root /tmp/bench_data --num-train-ids 32
    python benchmarks/train_speed.py --batch 16 --steps 3 --warmup 1 --threads 1 \\
        --data-root /tmp/bench_data --num-train-ids 32 \\
        --output benchmarks/results/train_speed_256x128.json
    python benchmarks/train_speed.py --device cuda --amp bf16 --batch 64 --steps 20
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import torchreid_pgflkd
from torchreid_pgflkd import compat
from torchreid_pgflkd.config import build
from torchreid_pgflkd.config.experiment import embedded_config
from torchreid_pgflkd.evaluation import write_results_json

logger = logging.getLogger("train_speed")
RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "torchreid_resnet50"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50", help="PGFL-KD backbone")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32, help="images per step (P x 4)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per engine")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per engine")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--amp",
        default="bf16",
        choices=("none", "bf16", "fp16"),
        help="mixed precision for PGFL-KD on CUDA (also timed without)",
    )
    parser.add_argument("--lr", type=float, default=3.5e-4)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument(
        "--no-share-layer4", action="store_true", help="skip the pgflkd_share_layer4 engine"
    )
    parser.add_argument(
        "--data-root",
        default="reid-data/synthetic",
        help="where the embedded benchmark is generated (cached)",
    )
    parser.add_argument("--num-train-ids", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "train_speed.json")
    return parser.parse_args()


def base_config(args: argparse.Namespace, *extra: str) -> Any:
    """The embedded benchmark's config at the requested size, batch and device."""
    opts = [
        "data.root",
        args.data_root,
        "data.height",
        str(args.height),
        "data.width",
        str(args.width),
        "data.workers",
        "0",
        "synthetic.num_train_ids",
        str(args.num_train_ids),
        "synthetic.images_per_id",
        "4",
        "synthetic.num_test_ids",
        "8",
        "sampler.batch_size",
        str(args.batch),
        "sampler.num_instances",
        "4",
        "model.backbone",
        args.backbone,
        "model.pretrained",
        "False",
        "train.lr",
        str(args.lr),
        "train.warmup_epochs",
        "0",
        "train.device",
        args.device,
        "train.amp",
        "none",
        *extra,
    ]
    return embedded_config(seed=args.seed, preset="cpu", opts=opts)


def materialise_batches(datamanager: Any, count: int) -> list[dict[str, Any]]:
    """``count`` train batches (epochs cycled), kept in memory so loading is not timed."""
    batches: list[dict[str, Any]] = []
    epoch = 0
    while len(batches) < count:
        sampler = datamanager.train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        before = len(batches)
        for batch in datamanager.train_loader:
            batches.append(batch)
            if len(batches) == count:
                break
        if len(batches) == before:
            raise RuntimeError("the train loader yielded no batch; raise --num-train-ids")
        epoch += 1
    return batches


def pgflkd_step(cfg: Any, datamanager: Any, amp: str) -> Callable[[dict[str, Any]], Any]:
    cfg = cfg.clone()
    cfg.defrost()
    cfg.train.amp = amp
    cfg.freeze()
    engine = build.build_engine(cfg, datamanager, progress=False)
    engine.set_model_mode("train")
    return engine.forward_backward


def torchreid_step(
    datamanager: Any, device: torch.device, lr: float, seed: int
) -> Callable[[dict[str, Any]], Any]:
    """torchreid's resnet50 + Adam + ImageTripletEngine (its defaults: margin 0.3, LS)."""
    torch.manual_seed(seed)
    model = compat.build_torchreid_model(
        "resnet50", num_classes=datamanager.num_train_pids, loss="triplet", pretrained=False
    ).to(device)
    optimizer = compat.submodule("optim").build_optimizer(model, optim="adam", lr=lr)
    engine = compat.triplet_engine()(
        datamanager, model, optimizer, margin=0.3, use_gpu=device.type == "cuda"
    )
    engine.set_model_mode("train")
    return engine.forward_backward


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("torchreid_pgflkd").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.batch % 4:
        raise SystemExit(f"--batch must be a multiple of 4 (4 images per id), got {args.batch}")
    cfg = build.prepare_synthetic(base_config(args), progress=False)
    datamanager = build.build_datamanager(cfg)
    batches = materialise_batches(datamanager, args.warmup + args.steps)
    logger.info(
        "%d batches of %d images at %dx%d, %d pose channels",
        len(batches),
        args.batch,
        args.height,
        args.width,
        batches[0]["pose_maps"].shape[1],
    )

    amp_modes = ["none"]
    if device.type == "cuda" and args.amp != "none":
        amp_modes.append(args.amp)
    elif args.amp != "none":
        logger.info("--amp %s ignored: mixed precision is CUDA-only", args.amp)
    steps: dict[str, Callable[[dict[str, Any]], Any]] = {}
    for amp in amp_modes:
        suffix = "" if amp == "none" else f"_amp_{amp}"
        steps[f"pgflkd{suffix}"] = pgflkd_step(cfg, datamanager, amp)
        if not args.no_share_layer4:
            shared = base_config(args, "model.backbone", "resnet50", "model.share_layer4", "True")
            shared = build.prepare_synthetic(shared, progress=False)
            steps[f"pgflkd_share_layer4{suffix}"] = pgflkd_step(shared, datamanager, amp)
    steps[BASELINE] = torchreid_step(datamanager, device, args.lr, args.seed)

    seconds: dict[str, list[float]] = {name: [] for name in steps}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in steps}
    for r, batch in enumerate(batches):
        timed = r >= args.warmup
        for name, step in steps.items():
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            step(batch)
            sync(device)
            if timed:
                seconds[name].append(time.perf_counter() - start)
                cpu_seconds[name].append(time.process_time() - cpu_start)
        logger.info("round %d/%d%s", r + 1, len(batches), "" if timed else " (warm-up)")

    figures: dict[str, dict[str, Any]] = {}
    base, base_cpu = (statistics.median(x[BASELINE]) for x in (seconds, cpu_seconds))
    for name, times in seconds.items():
        rounds = [t_base / t for t, t_base in zip(times, seconds[BASELINE], strict=True)]
        figures[name] = {
            "images_per_s": args.batch / statistics.median(times),
            "ratio_vs_torchreid": base / statistics.median(times),
            "ratio_vs_torchreid_per_round_median": statistics.median(rounds),
            "images_per_s_best": args.batch / min(times),
            "ratio_vs_torchreid_best": min(seconds[BASELINE]) / min(times),
            "cpu_time_ratio_vs_torchreid": base_cpu / statistics.median(cpu_seconds[name]),
            "step_seconds": times,
            "step_cpu_seconds": cpu_seconds[name],
        }
        logger.info(
            "%-26s %7.2f images/s (best %7.2f)  x%.3f of torchreid (best x%.3f, CPU time x%.3f)",
            name,
            figures[name]["images_per_s"],
            figures[name]["images_per_s_best"],
            figures[name]["ratio_vs_torchreid"],
            figures[name]["ratio_vs_torchreid_best"],
            figures[name]["cpu_time_ratio_vs_torchreid"],
        )

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    report = {
        "command": " ".join(["python", *sys.argv]),
        "device": str(device),
        "gpu": gpu,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pgflkd_version": torchreid_pgflkd.__version__,
        "settings": {
            "backbone": args.backbone,
            "pgflkd_last_stride": cfg.model.last_stride,
            "torchreid_resnet50_last_stride": 2,
            "image_size": [args.height, args.width],
            "batch": args.batch,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "amp_modes": amp_modes,
            "lr": args.lr,
            "optimizer": "adam (ours for PGFL-KD, torchreid's build_optimizer for torchreid)",
            "num_train_ids": datamanager.num_train_pids,
            "pose_channels": int(batches[0]["pose_maps"].shape[1]),
            "seed": args.seed,
        },
        "figures": figures,
        "note": (
            "images/s = batch / median forward_backward wall seconds over the same in-memory "
            "batches, engines interleaved round by round in one process after warm-up; "
            "ratio_vs_torchreid = engine images/s / torchreid images/s (> 1: faster than "
            "torchreid); cpu_time_ratio_vs_torchreid is the same ratio from process CPU "
            "seconds (less sensitive to other jobs on a shared CPU; CPU runs only; on a GPU "
            "use the wall ratio). *_best: from the fastest step of each engine, the least "
            "disturbed by other jobs. ratio_vs_torchreid_per_round_median = median over rounds of "
            "(torchreid step time / engine step time). PGFL-KD's ResNet-50 keeps last stride 1 "
            "(BoT/paper) where torchreid's resnet50 has stride 2: its layer4 maps hold 4x the "
            "positions, part of the gap. "
            + (
                "Measured on a GPU."
                if gpu
                else "No GPU was available here, so GPU and mixed-precision figures were not "
                "measured; CPU figures were taken on a shared 2-core machine while other jobs "
                "ran, so absolute images/s are noisy and only the same-run ratio is meaningful."
            )
        ),
    }
    write_results_json(report, args.output)
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
