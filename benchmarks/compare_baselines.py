"""PGFL-KD beside torchreid's own models and engines, trained and scored on the SAME data.

Rows (``--models``, comma list; default ``pgflkd,baseline,resnet50,osnet_x1_0,pcb_p6``):

  pgflkd, baseline      ours, through ``experiments.embedded.train_variant`` (PGFL-KD and the
                        MB-only BNNeck baseline; same backbone, data, schedule, seed)
  resnet50              torchreid's ``resnet50`` (last stride 2) + ``ImageTripletEngine``
  osnet_x1_0            torchreid's ``osnet_x1_0`` + ``ImageSoftmaxEngine``
  pcb_p6                torchreid's ``pcb_p6`` + ``ImageSoftmaxEngine`` (list of part logits,
                        summed by torchreid's DeepSupervision)
  NAME[:ENGINE]         any torchreid model name, ENGINE ``softmax`` or ``triplet``

torchreid's engines are fed by our ``PoseDataManager`` (same sampler, seed, transforms; they
read ``img`` and ``pid`` and ignore the pose maps) and trained with torchreid's own
``Engine.train`` epoch loop, torchreid's optimizer builder and multi-step scheduler, with the
config's optimizer, lr, weight decay, epochs and milestones (torchreid has no warm-up). Every
model is then scored by the same evaluator: features of the query and gallery loaders with the
model in eval mode, ranked by ``torchreid_pgflkd.evaluation.evaluate_features`` (the config's
``test.metric``). A model that fails is reported as ``failed: <reason>`` in the table and JSON.

Embedded procedural occluded benchmark (default; preset ``cpu`` trains PGFL-KD on its
``resnet_mini`` backbone, pass ``--backbone resnet50`` to compare like with like):

    python benchmarks/compare_baselines.py --epochs 30 --seed 0
    python benchmarks/compare_baselines.py --preset gpu --device cuda      # paper-sized

Real datasets (``configs/<dataset>.yaml`` with ``data.root`` set; a GPU is expected):

    python benchmarks/compare_baselines.py --root reid-data --dataset occluded_duke
    python benchmarks/compare_baselines.py --root reid-data \\
        --sources market1501_pose --targets occluded_reid

The CPU smoke run committed in ``benchmarks/results/compare_baselines_smoke.json``:

    TORCHREID_PGFLKD_CACHE=/tmp/bench_cache python benchmarks/compare_baselines.py \\
        --epochs 1 --backbone resnet50 --height 64 --width 32 --smoke --work-dir /tmp/bench_work \\
        --output benchmarks/results/compare_baselines_smoke.json \\
        data.root /tmp/bench_data synthetic.num_train_ids 32 synthetic.images_per_id 4 \\
        synthetic.num_test_ids 16 sampler.batch_size 32 data.workers 0 train.warmup_epochs 0
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from torch.utils.flop_counter import FlopCounterMode
from yacs.config import CfgNode as CN

import torchreid_pgflkd
from torchreid_pgflkd import compat
from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.config.experiment import VARIANTS, embedded_config, train_variant
from torchreid_pgflkd.engine.distributed import seed_everything
from torchreid_pgflkd.evaluation import evaluate_features, write_results_json

logger = logging.getLogger("compare_baselines")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_MODELS = "pgflkd,baseline,resnet50,osnet_x1_0,pcb_p6"
# torchreid model -> the torchreid engine its recipe uses (overridable as NAME:ENGINE).
TORCHREID_ENGINES = {"resnet50": "triplet", "osnet_x1_0": "softmax", "pcb_p6": "softmax"}
ENGINE_CLASSES = {"softmax": "ImageSoftmaxEngine", "triplet": "ImageTripletEngine"}
SMOKE_NOTE = (
    "SMOKE RUN, NOT AN ACCURACY CLAIM: tiny embedded benchmark, a single short training on a "
    "shared 2-core CPU, no ImageNet weights; it only proves that every code path (ours and "
    "torchreid's engines on our data, one evaluator) runs end to end."
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma list, NAME[:ENGINE]")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "compare_baselines.json")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("log/compare_baselines"),
        help="checkpoints and configs of every model",
    )
    parser.add_argument("--root", default=None, help="real data root (e.g. reid-data)")
    parser.add_argument(
        "--dataset",
        default=None,
        help="configs/<NAME>.yaml, or a dataset name used as source and target",
    )
    parser.add_argument("--config", default=None, help="explicit config file (real data)")
    parser.add_argument("--sources", default=None, help="comma list of train datasets")
    parser.add_argument("--targets", default=None, help="comma list of test datasets")
    parser.add_argument(
        "--preset",
        default=None,
        choices=("cpu", "gpu"),
        help="embedded benchmark preset (default: gpu on CUDA, else cpu)",
    )
    parser.add_argument("--backbone", default=None, help="PGFL-KD/baseline backbone")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"))
    parser.add_argument("--smoke", action="store_true", help="mark the JSON as a smoke run")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args()


def build_config(args: argparse.Namespace) -> CN:
    """The shared config: embedded benchmark by default, a real dataset with ``--root``."""
    opts: list[str] = []
    if args.epochs is not None:
        opts += ["train.max_epoch", str(args.epochs)]
    if args.backbone:
        opts += ["model.backbone", args.backbone]
    if args.height:
        opts += ["data.height", str(args.height)]
    if args.width:
        opts += ["data.width", str(args.width)]
    if args.device:
        opts += ["train.device", args.device]
    for key, value in (("data.sources", args.sources), ("data.targets", args.targets)):
        if value:
            opts += [key, str(value.split(","))]
    if args.root is None:
        if args.dataset or args.config:
            raise SystemExit("--dataset/--config need --root (the folder holding the datasets)")
        preset = args.preset or ("gpu" if torch.cuda.is_available() else "cpu")
        return embedded_config(seed=args.seed, preset=preset, opts=[*opts, *args.opts])
    path = args.config
    if args.dataset and not path:
        candidate = REPO / "configs" / f"{args.dataset}.yaml"
        if candidate.is_file():
            path = str(candidate)
        elif not args.sources:
            opts += ["data.sources", str([args.dataset]), "data.targets", str([args.dataset])]
    seeds = ["train.seed", str(args.seed)]
    cfg = load_config(path, ["data.root", args.root, *seeds, *opts, *args.opts])
    if not os.path.isdir(cfg.data.root):
        raise SystemExit(f"data root {cfg.data.root} does not exist (expected the datasets there)")
    return cfg


def parse_models(spec: str) -> list[tuple[str, str | None]]:
    """``'pgflkd,resnet50:softmax'`` -> ``[('pgflkd', None), ('resnet50', 'softmax')]``."""
    out: list[tuple[str, str | None]] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, engine = item.partition(":")
        if name in VARIANTS:
            out.append((name, None))
            continue
        engine = engine or TORCHREID_ENGINES.get(name, "softmax")
        if engine not in ENGINE_CLASSES:
            raise SystemExit(f"engine of {name!r} must be one of {sorted(ENGINE_CLASSES)}")
        out.append((name, engine))
    return out


@torch.no_grad()
def extract(model: torch.nn.Module, loader: Any, device: torch.device) -> dict[str, Any]:
    """Eval-mode features ``(N, D)`` with their ids and cameras."""
    feats, pids, camids = [], [], []
    for data in loader:
        feats.append(model(data["img"].to(device)).float().flatten(1).cpu())
        pids.append(torch.as_tensor(data["pid"]))
        camids.append(torch.as_tensor(data["camid"]))
    return {"feat": torch.cat(feats), "pids": torch.cat(pids), "camids": torch.cat(camids)}


def evaluate_model(
    model: torch.nn.Module, datamanager: Any, device: torch.device, metric: str
) -> dict[str, dict[str, Any]]:
    """Our evaluator on every target's query/gallery loaders."""
    model.eval()
    results = {}
    for name, loaders in datamanager.test_loader.items():
        q = extract(model, loaders["query"], device)
        g = extract(model, loaders["gallery"], device)
        results[name] = evaluate_features(
            q["feat"],
            g["feat"],
            q["pids"].numpy(),
            g["pids"].numpy(),
            q["camids"].numpy(),
            g["camids"].numpy(),
            metric=metric,
            device=device,
            progress=False,
        )
    return results


def inference_cost(model: torch.nn.Module, image_hw: tuple[int, int]) -> dict[str, float]:
    """Parameters used at test time (classifiers excluded) and forward GFLOPs per image."""
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("classifier"))
    model = model.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *image_hw, device=device))
    return {"params": params, "gflops": counter.get_total_flops() / 1e9}


def train_torchreid(cfg: CN, name: str, engine_kind: str, work_dir: Path) -> dict[str, Any]:
    """Train torchreid's ``name`` with its ``engine_kind`` engine on our data; score it."""
    cfg = build.prepare_synthetic(cfg, progress=False)
    device = build.adapters.resolve_device(cfg)
    datamanager = build.build_datamanager(cfg)
    seed_everything(cfg.train.seed)
    model = compat.build_torchreid_model(
        name, datamanager.num_train_pids, loss=engine_kind, pretrained=cfg.model.pretrained
    ).to(device)
    if cfg.train.channels_last:
        # As our engine does: NHWC weights make convolutions pick the fast NHWC kernels
        # (about 10x on a CPU); torchreid's engines are otherwise unchanged.
        model = model.to(memory_format=torch.channels_last)
    optim = compat.submodule("optim")
    optimizer = optim.build_optimizer(
        model, optim=cfg.train.optim, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    scheduler = optim.build_lr_scheduler(
        optimizer,
        lr_scheduler="multi_step",
        stepsize=list(cfg.train.milestones),
        gamma=cfg.train.gamma,
    )
    engine_cls = getattr(compat.submodule("engine"), ENGINE_CLASSES[engine_kind])
    kwargs: dict[str, Any] = {"scheduler": scheduler, "use_gpu": device.type == "cuda"}
    if engine_kind == "triplet":
        kwargs["margin"] = cfg.loss.margin
    engine = engine_cls(datamanager, model, optimizer, **kwargs)

    start = time.perf_counter()
    engine.max_epoch = cfg.train.max_epoch
    sampler = datamanager.train_loader.sampler
    for epoch in range(cfg.train.max_epoch):
        engine.epoch = epoch
        if hasattr(sampler, "set_epoch"):  # same order per epoch as PGFL-KD's engine
            sampler.set_epoch(epoch)
        # torchreid prints one line per print_freq batches: once per epoch.
        engine.train(print_freq=max(1, len(datamanager.train_loader)))
    train_seconds = time.perf_counter() - start
    results = evaluate_model(model, datamanager, device, cfg.test.metric)
    wall = time.perf_counter() - start
    (work_dir / name).mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), work_dir / name / "model.pth")
    (target, res), *_ = results.items()
    return {
        "model": name,
        "label": f"torchreid {name} + {ENGINE_CLASSES[engine_kind]}",
        "backbone": name,
        "target": target,
        **{k: res[k] for k in ("rank1", "rank5", "mAP", "mINP")},
        "per_target": {
            t: {k: r[k] for k in ("rank1", "rank5", "mAP", "mINP")} for t, r in results.items()
        },
        "train_seconds": train_seconds,
        "train_and_eval_seconds": wall,
        "inference": inference_cost(model, (cfg.data.height, cfg.data.width)),
        "status": "ok",
    }


def run_ours(cfg: CN, variant: str, work_dir: Path) -> dict[str, Any]:
    record, engine = train_variant(cfg, variant, work_dir, progress=False)
    del engine
    return {
        "model": variant,
        "label": record["label"],
        "backbone": record["settings"]["backbone"],
        "target": ",".join(cfg.data.targets),
        **{k: record[k] for k in ("rank1", "rank5", "mAP", "mINP")},
        "train_seconds": None,
        "train_and_eval_seconds": record["train_and_eval_seconds"],
        "inference": record["deployed"],
        "settings": record["settings"],
        "status": "ok",
    }


def table(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        if r["status"] != "ok":
            rows.append([r["model"], r["label"], *["-"] * 7, r["status"][:80]])
            continue
        rows.append(
            [
                r["model"],
                r["label"],
                r["backbone"],
                *(f"{100 * r[k]:.1f}" for k in ("rank1", "rank5", "mAP", "mINP")),
                f"{r['train_and_eval_seconds']:.0f}",
                f"{r['inference']['params'] / 1e6:.1f}M / {r['inference']['gflops']:.2f}",
                "ok",
            ]
        )
    headers = [
        "model",
        "engine",
        "backbone",
        "R1 %",
        "R5 %",
        "mAP %",
        "mINP %",
        "train+eval s",
        "params / GFLOPs",
        "status",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = build_config(args)
    models = parse_models(args.models)
    device = build.adapters.resolve_device(cfg)
    logger.info(
        "data %s -> %s at %dx%d, %d epochs, seed %d, device %s",
        list(cfg.data.sources),
        list(cfg.data.targets),
        cfg.data.height,
        cfg.data.width,
        cfg.train.max_epoch,
        cfg.train.seed,
        device,
    )
    records: list[dict[str, Any]] = []
    for name, engine_kind in models:
        logger.info("=== %s%s", name, f" ({ENGINE_CLASSES[engine_kind]})" if engine_kind else "")
        label = f"torchreid {name} + {ENGINE_CLASSES[engine_kind]}" if engine_kind else name
        try:
            if engine_kind is None:
                records.append(run_ours(cfg, name, args.work_dir))
            else:
                records.append(train_torchreid(cfg, name, engine_kind, args.work_dir))
        except Exception as exc:  # report every failure in the table, keep going
            logger.exception("%s failed", name)
            reason = f"failed: {type(exc).__name__}: {exc}".splitlines()[0][:500]
            records.append({"model": name, "label": label, "status": reason})
    print(table(records))

    prepared = build.prepare_synthetic(cfg, progress=False)
    note = (
        SMOKE_NOTE
        if args.smoke
        else ("One training per model with the settings below; compare rows of the same run only.")
    )
    if cfg.train.max_epoch <= cfg.train.warmup_epochs:
        note += (
            f" PGFL-KD and the baseline never left their {cfg.train.warmup_epochs}-epoch lr "
            "warm-up (from lr/10); torchreid's engines have no warm-up."
        )
    report = {
        "note": note,
        "command": " ".join(["python", *sys.argv]),
        "settings": {
            "seed": cfg.train.seed,
            "epochs": cfg.train.max_epoch,
            "image_size": [cfg.data.height, cfg.data.width],
            "batch_size": cfg.sampler.batch_size,
            "num_instances": cfg.sampler.num_instances,
            "optim": cfg.train.optim,
            "lr": cfg.train.lr,
            "weight_decay": cfg.train.weight_decay,
            "milestones": list(cfg.train.milestones),
            "warmup_epochs_pgflkd_only": cfg.train.warmup_epochs,
            "pretrained": cfg.model.pretrained,
            "metric": cfg.test.metric,
            "models": args.models,
        },
        "data": {
            "root": prepared.data.root,
            "dataset_dir": prepared.data.dataset_dir,
            "sources": list(cfg.data.sources),
            "targets": list(cfg.data.targets),
            "synthetic": dict(cfg.synthetic) if args.root is None else None,
        },
        "hardware": {
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "torchreid": importlib.metadata.version("torchreid"),
            "pgflkd_version": torchreid_pgflkd.__version__,
        },
        "models": {r["model"]: r for r in records},
    }
    write_results_json(report, args.output)
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
