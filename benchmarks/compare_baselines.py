"""torchreid's own models, trained by torchreid's own engines, beside our BNNeck baseline and
PGFL-KD on the embedded or the CUHK03 benchmark: several seeds, every test set, one evaluator.

Rows (``--models``):

  baseline, pgflkd (or any variant of ``config.experiment.VARIANTS``)
      ours, trained by ``train_variant`` with the config's recipe;
  VARIANT@BACKBONE
      ours on another backbone of ``models.backbone.BACKBONES``, e.g. ``pgflkd@osnet_x0_25``
      (PGFL-KD's branches on torchreid's OSNet: a copy of conv4 + conv5 per branch);
  NAME[:ENGINE]
      torchreid's ``build_model(NAME)`` trained by torchreid's ``ImageSoftmaxEngine``
      (default) or ``ImageTripletEngine`` (``NAME:triplet``), e.g. ``osnet_x0_25``,
      ``osnet_x0_5``, ``resnet18``, ``resnet50_fc512``, ``resnet50:triplet``.

How torchreid's models are trained, with nothing written by hand: our ``PoseDataManager``
(the same images, augmentation and P x K batches, drawn by torchreid's
``RandomIdentitySampler``) feeds torchreid's ``Engine.run``; the optimiser and the schedule
are torchreid's ``build_optimizer`` and ``build_lr_scheduler``, with a linear warm-up chained
in front (``with_warmup``). The losses of every epoch are read from the engine's
``forward_backward`` summaries (``EngineLog``): an identity loss that stays at ln(number of
identities) is a model that learned nothing, and the table says so. Every model, ours and
torchreid's, is then scored by our exact evaluator on every test set, in eval mode, pose-free
(torchreid's own final test still runs inside ``Engine.run``; its Rank-1 on the last test set
is kept as a cross-check).

torchreid's rows get the same budget as ours by default: every flag below defaults to the
config's value (the CPU recipe of both benchmarks: Adam, lr 1e-3, weight decay 5e-4, 30
epochs, 3 warm-up epochs from lr/10, x0.1 at epochs 20 and 27, batches of 16 ids x 4 images
at 128x64, no ImageNet weights). A flag changes torchreid's rows only; ``KEY VALUE`` config
overrides change the data, our rows and the flags' defaults.

    python benchmarks/compare_baselines.py [--benchmark embedded|cuhk03] [--data-root DIR]
        [--validate] [--seeds 0 1 2] [--models baseline pgflkd osnet_x0_25 ...]
        [--epochs N] [--lr LR] [--warmup-epochs N] [--milestones E ...] [--optim NAME] ...
        [--work-dir DIR] [--output JSON] [--no-train] [--smoke] [-- KEY VALUE ...]

(``KEY VALUE`` overrides come last; after ``--`` when the flag before them takes a list.)

Writes ``benchmarks/results/compare_baselines_<benchmark>.json`` (every run, the mean and
spread over seeds, the paired gain over the baseline) and prints the table. A run already in
``--work-dir`` (``seed<N>/<model>/record.json``) is reused, so an interrupted sweep resumes;
one trained with other settings (another schedule, recipe or switch) stops the script with the
first setting that differs, rather than passing the old run off as a new one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _suite
import torch
from ablation import summarise
from tabulate import tabulate
from yacs.config import CfgNode as CN

from torchreid_pgflkd import compat
from torchreid_pgflkd.config import adapters, build
from torchreid_pgflkd.config.experiment import (
    VARIANT_LABELS,
    VARIANTS,
    benchmark_config,
    check_reused,
    embedded_config,
    first_difference,
    settings_of,
    train_variant,
)
from torchreid_pgflkd.config.presets import VALIDATE_HELP
from torchreid_pgflkd.engine.distributed import seed_everything
from torchreid_pgflkd.evaluation import evaluate_features
from torchreid_pgflkd.evaluation.extract import extract_features
from torchreid_pgflkd.models import MODEL_FACTORIES
from torchreid_pgflkd.models.backbone import BACKBONES
from torchreid_pgflkd.models.cost import inference_cost
from torchreid_pgflkd.utils.io import write_json

logger = logging.getLogger("compare_baselines")

DEFAULT_MODELS = ["baseline", "pgflkd", "osnet_x0_25", "osnet_x0_5", "resnet18", "resnet50_fc512"]
ENGINES = {"softmax": "ImageSoftmaxEngine", "triplet": "ImageTripletEngine"}
# The summary key holding the identity (cross-entropy) loss, per torchreid engine.
ID_LOSS_KEYS = {"softmax": "loss", "triplet": "loss_x"}
METRICS = ("rank1", "rank5", "mAP", "mINP")
# An identity loss still above this fraction of ln(identities) after the last epoch: not learned.
STUCK_FRACTION = 0.9
SMOKE_NOTE = (
    "SMOKE RUN, NOT AN ACCURACY CLAIM: a tiny embedded benchmark trained for an epoch or two on "
    "a shared CPU; it only shows that every code path runs end to end."
)


@dataclass(frozen=True)
class ModelSpec:
    """One row: ours (``engine`` None) or a torchreid model with the engine that trains it."""

    key: str  # the row's name: "baseline", "pgflkd@osnet_x0_25", "resnet50:triplet"
    torchreid_name: str | None = None
    engine: str | None = None  # "softmax" | "triplet"
    variant: str | None = None  # ours: the variant ("baseline", "pgflkd", ...)
    backbone: str | None = None  # ours: a backbone other than the config's

    @property
    def folder(self) -> str:
        if self.backbone:  # train_variant writes <backbone>/<variant>/
            return f"{self.backbone}/{self.variant}"
        return self.key.replace(":", "-")

    @property
    def label(self) -> str:
        if self.engine is None:
            label = VARIANT_LABELS.get(self.variant or self.key, self.key)
            return f"{label}, {self.backbone}" if self.backbone else label
        return f"torchreid {self.torchreid_name} + {ENGINES[self.engine]}"


def parse_model(item: str) -> ModelSpec:
    """``'baseline'`` -> ours; ``'pgflkd@osnet_x0_25'`` -> ours on another backbone of
    ``models.backbone.BACKBONES``; ``'osnet_x0_25'``, ``'resnet50:triplet'`` -> torchreid's."""
    if item in VARIANTS:
        return ModelSpec(item, variant=item)
    if "@" in item:
        variant, _, backbone = item.partition("@")
        if variant not in VARIANTS:
            raise ValueError(
                f"{item!r}: {variant!r} is not a variant of ours ({', '.join(sorted(VARIANTS))})"
            )
        if backbone not in BACKBONES:
            raise ValueError(
                f"{item!r}: unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}"
            )
        return ModelSpec(item, variant=variant, backbone=backbone)
    name, _, engine = item.partition(":")
    engine = engine or "softmax"
    if engine not in ENGINES:
        raise ValueError(f"{item!r}: the engine must be one of {sorted(ENGINES)}")
    if name in MODEL_FACTORIES:
        raise ValueError(
            f"{name!r} is one of ours: torchreid's engines cannot train it; ask for a variant "
            f"instead ({', '.join(sorted(VARIANTS))})"
        )
    known = sorted(set(compat.model_factory()) - set(MODEL_FACTORIES))
    if name not in known:
        raise ValueError(
            f"{name!r} is neither a variant of ours ({', '.join(sorted(VARIANTS))}) nor a "
            f"torchreid model ({', '.join(known)})"
        )
    return ModelSpec(name if engine == "softmax" else item, name, engine)


@dataclass(frozen=True)
class Recipe:
    """How torchreid's models are trained: plain values, recorded with every run."""

    optim: str
    lr: float
    weight_decay: float
    epochs: int
    warmup_epochs: int
    milestones: tuple[int, ...]
    gamma: float
    margin: float
    warmup_factor: float = 0.1
    lr_scheduler: str = "multi_step"
    label_smooth: bool = True
    pretrained: bool = False


# Recipe field -> (type, the config key that gives its default, help): one flag each.
RECIPE_FLAGS: dict[str, tuple[type, str, str]] = {
    "optim": (str, "train.optim", "torchreid's build_optimizer: adam|amsgrad|sgd|rmsprop|radam"),
    "lr": (float, "train.lr", "learning rate"),
    "weight_decay": (float, "train.weight_decay", "weight decay"),
    "epochs": (int, "train.max_epoch", "epochs"),
    "warmup_epochs": (int, "train.warmup_epochs", "linear warm-up epochs (0 = none)"),
    "milestones": (int, "train.milestones", "epochs where the lr is multiplied by gamma"),
    "gamma": (float, "train.gamma", "lr decay factor"),
    "margin": (float, "loss.margin", "ImageTripletEngine's triplet margin"),
}


def _cfg_value(cfg: CN, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def recipe_from(args: argparse.Namespace, cfg: CN) -> Recipe:
    """The flags, each defaulting to the config's value (the budget our rows get)."""
    values = {
        field: _cfg_value(cfg, key) if getattr(args, field) is None else getattr(args, field)
        for field, (_, key, _) in RECIPE_FLAGS.items()
    }
    return Recipe(
        **{**values, "milestones": tuple(values["milestones"])},
        warmup_factor=args.warmup_factor,
        lr_scheduler=args.lr_scheduler,
        label_smooth=not args.no_label_smooth,
        pretrained=cfg.model.pretrained,
    )


def with_warmup(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    epochs: int,
    factor: float = 0.1,
) -> torch.optim.lr_scheduler.LRScheduler:
    """torchreid's ``scheduler`` with a linear warm-up from ``factor * lr`` chained in front.

    Both are stepped once per epoch (torchreid's ``Engine.update_lr``) and their factors
    multiply: at epoch ``e < epochs`` the lr is ``lr * (factor + (1 - factor) * e / epochs)``
    times the decay of ``scheduler``, the same schedule as our engine's ``build_scheduler``.
    """
    if epochs <= 0:
        return scheduler
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=factor, end_factor=1.0, total_iters=epochs
    )
    return torch.optim.lr_scheduler.ChainedScheduler([scheduler, warmup], optimizer=optimizer)


class EngineLog:
    """What a torchreid engine reports, read without subclassing it: the ``forward_backward``
    summaries of every step (per-epoch means) and the start and Rank-1 of its final test."""

    def __init__(self) -> None:
        self._values: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.test_started: float | None = None
        self.torchreid_rank1: float | None = None

    @classmethod
    def attach(cls, engine: Any) -> EngineLog:
        log = cls()
        forward_backward, test = engine.forward_backward, engine.test

        def logged_forward_backward(data: dict[str, Any]) -> dict[str, float]:
            summary = forward_backward(data)
            for name, value in summary.items():
                log._values[engine.epoch][name].append(float(value))
            return summary

        def timed_test(**kwargs: Any) -> float:
            log.test_started = time.perf_counter()
            log.torchreid_rank1 = float(test(**kwargs))
            return log.torchreid_rank1

        engine.forward_backward, engine.test = logged_forward_backward, timed_test
        return log

    def epoch_means(self) -> list[dict[str, float]]:
        """``[{summary key: mean over the epoch's steps}]``, one entry per epoch."""
        return [
            {name: statistics.fmean(v) for name, v in self._values[epoch].items()}
            for epoch in sorted(self._values)
        ]


def torchreid_datamanager(cfg: CN, device: torch.device) -> Any:
    """Our data for torchreid's engines: torchreid's ``RandomIdentitySampler`` (the
    ``PoseDataManager`` default) and no pose maps (torchreid's models read ``img`` and ``pid``)."""
    from torchreid_pgflkd.data.datamanager import PoseDataManager

    kwargs = {**adapters.datamanager_kwargs(cfg), "pose_source": "none"}
    return PoseDataManager(
        geometry=build.pose_geometry(cfg), pin_memory=device.type == "cuda", **kwargs
    )


def evaluate_targets(
    model: torch.nn.Module,
    datamanager: Any,
    *,
    device: torch.device,
    metric: str,
    channels_last: bool,
) -> dict[str, dict[str, Any]]:
    """Our exact evaluator on every test set: eval-mode features of query and gallery."""
    out = {}
    for name, loaders in datamanager.test_loader.items():
        q, g = (
            extract_features(model, loaders[split], device=device, channels_last=channels_last)
            for split in ("query", "gallery")
        )
        res = evaluate_features(
            q["feat"], g["feat"], q["pids"], g["pids"], q["camids"], g["camids"],
            metric=metric, device=device, progress=False,
        )  # fmt: skip
        out[name] = {**{k: res[k] for k in METRICS}, "num_queries": res.get("num_valid_queries")}
        logger.info(
            "%s: Rank-1 %.1f%%  mAP %.1f%%  mINP %.1f%%",
            name, 100 * res["rank1"], 100 * res["mAP"], 100 * res["mINP"],
        )  # fmt: skip
    return out


def data_settings(cfg: CN) -> dict[str, Any]:
    """The data side of ``settings_of`` (its model keys describe our rows only)."""
    keep = ("seed", "data_seed", "image_size", "batch_size", "num_train_ids", "images_per_id",
            "num_test_ids", "occlusion_prob", "device", "dataset_dir", "sources",
            "targets")  # fmt: skip
    settings = settings_of(cfg)
    return {
        **{k: settings[k] for k in keep},
        "num_instances": cfg.sampler.num_instances,
        "metric": cfg.test.metric,
        "channels_last": cfg.train.channels_last,
    }


def smallest_gallery(datamanager: Any) -> int:
    return min(len(datamanager.fetch_test_loaders(t)[1]) for t in datamanager.targets)


def train_torchreid(cfg: CN, spec: ModelSpec, recipe: Recipe, output: Path) -> dict[str, Any]:
    """Train torchreid's model with torchreid's engine on our data, score it with our
    evaluator; writes ``output/<model>/record.json`` and returns the record."""
    out = output / spec.folder
    cfg = build.prepare_synthetic(cfg, progress=False)
    device = adapters.resolve_device(cfg)
    datamanager = torchreid_datamanager(cfg, device)
    seed_everything(cfg.train.seed)
    num_classes = datamanager.num_train_pids
    model = compat.build_torchreid_model(
        spec.torchreid_name,
        num_classes,
        loss=spec.engine,
        pretrained=recipe.pretrained,
        use_gpu=device.type == "cuda",
    ).to(device)
    if cfg.train.channels_last:  # as our engine: NHWC convolutions (about 10x on a CPU)
        model = model.to(memory_format=torch.channels_last)
    optim = compat.submodule("optim")
    optimizer = optim.build_optimizer(
        model, optim=recipe.optim, lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    scheduler = optim.build_lr_scheduler(
        optimizer,
        lr_scheduler=recipe.lr_scheduler,
        stepsize=list(recipe.milestones),
        gamma=recipe.gamma,
        max_epoch=recipe.epochs,
    )
    scheduler = with_warmup(
        optimizer, scheduler, epochs=recipe.warmup_epochs, factor=recipe.warmup_factor
    )
    engine_kwargs: dict[str, Any] = {"label_smooth": recipe.label_smooth}
    if spec.engine == "triplet":
        engine_kwargs["margin"] = recipe.margin
    engine = getattr(compat.submodule("engine"), ENGINES[spec.engine])(
        datamanager,
        model,
        optimizer,
        scheduler=scheduler,
        use_gpu=device.type == "cuda",
        **engine_kwargs,
    )
    log = EngineLog.attach(engine)
    logger.info("training %s (%d identities, %d epochs)", spec.label, num_classes, recipe.epochs)
    start = time.perf_counter()
    engine.run(
        save_dir=str(out),
        max_epoch=recipe.epochs,
        print_freq=max(1, len(datamanager.train_loader)),  # one line per epoch
        dist_metric=cfg.test.metric,
        # torchreid prints these CMC ranks and fails on one beyond the smallest gallery
        ranks=[r for r in (1, 5, 10, 20) if r <= smallest_gallery(datamanager)],
    )
    train_seconds = (log.test_started or time.perf_counter()) - start
    targets = evaluate_targets(
        model, datamanager, device=device, metric=cfg.test.metric,
        channels_last=cfg.train.channels_last,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    epochs = log.epoch_means()
    id_loss = [e[ID_LOSS_KEYS[spec.engine]] for e in epochs]
    chance = math.log(num_classes)
    cost = inference_cost(model, (cfg.data.height, cfg.data.width))
    record = {
        "model": spec.key,
        "label": spec.label,
        "torchreid_name": spec.torchreid_name,
        "engine": ENGINES[spec.engine],
        # The first test set's figures at the top level, as in our records.
        **{k: v for k, v in next(iter(targets.values())).items() if k in METRICS},
        "targets": targets,
        "torchreid_rank1_last_target": {
            "target": cfg.data.targets[-1],
            "rank1": log.torchreid_rank1,
        },
        "params": cost["params"],
        "gflops": cost["gflops"],
        "train_seconds": train_seconds,
        "train_and_eval_seconds": seconds,
        "num_classes": num_classes,
        "epoch_losses": epochs,
        "id_loss_per_epoch": id_loss,
        "id_loss_chance": chance,
        "learned": bool(id_loss) and id_loss[-1] < STUCK_FRACTION * chance,
        "recipe": asdict(recipe),
        "settings": data_settings(cfg),
    }
    if not record["learned"]:
        logger.warning(
            "%s: identity loss %.2f after %d epochs, chance level ln(%d) = %.2f: it did not learn",
            spec.key, id_loss[-1] if id_loss else float("nan"), len(id_loss), num_classes, chance,
        )  # fmt: skip
    write_json(record, out / "record.json")
    return record


def row_config(cfg: CN, spec: ModelSpec) -> CN:
    """``cfg`` with the row's own backbone, if it names one (the config itself untouched)."""
    if not spec.backbone:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.model.backbone = spec.backbone
    cfg.freeze()
    return cfg


def run_model(cfg: CN, spec: ModelSpec, recipe: Recipe, output: Path) -> dict[str, Any]:
    if spec.engine is None:
        if spec.backbone:
            output = output / spec.backbone
        record, _ = train_variant(row_config(cfg, spec), spec.variant, output, progress=False)
        return {**record, "model": spec.key}
    return train_torchreid(cfg, spec, recipe, output)


def check_row_reused(
    record: dict[str, Any], cfg: CN, spec: ModelSpec, recipe: Recipe, path: Path
) -> None:
    """Refuse a run kept in the work dir (``path``) that this invocation would not train the
    same way: ours by every setting ``check_reused`` compares, torchreid's by the data side
    and the recipe (``--epochs``, ``--lr``, ...). Keys a record does not state are not
    compared, so records written before a key existed are still reused."""
    if spec.engine is None:
        check_reused(record, row_config(cfg, spec), spec.variant or spec.key, path)
        return
    wanted = json.loads(json.dumps(asdict(recipe)))  # as the record holds it: lists, not tuples
    why = first_difference(data_settings(cfg), record.get("settings", {})) or first_difference(
        wanted, record.get("recipe", {})
    )
    if why is not None:
        raise ValueError(
            f"{path}: this {spec.key} run was trained with {why}; use another work dir, or "
            "remove the run to train it again"
        )


def row_facts(record: dict[str, Any]) -> dict[str, Any]:
    """Cost, time and identity loss of a record, ours (``deployed``) or torchreid's."""
    if "engine" in record:
        facts = {k: record[k] for k in ("params", "gflops", "train_seconds", "id_loss_per_epoch")}
        return {**facts, "final_id_loss": (record["id_loss_per_epoch"] or [None])[-1]}
    return {
        "params": record["deployed"]["params"],
        "gflops": record["deployed"]["gflops"],
        "train_seconds": None,
        "id_loss_per_epoch": None,  # our engine keeps the last epoch's losses only
        "final_id_loss": record.get("final_losses", {}).get("loss_mb_id"),
    }


def summarise_models(runs: dict[str, dict[int, dict]], specs: list[ModelSpec]) -> dict[str, Any]:
    """Per model: mean / std of every metric per test set (percent) and the paired gain over
    the baseline (``ablation.summarise``), plus torchreid name, engine, cost, time, id loss."""
    summary = summarise(runs)
    for spec in specs:
        if spec.key not in summary:
            continue
        by_seed = runs[spec.key]
        facts = {seed: row_facts(r) for seed, r in by_seed.items()}
        first = next(iter(by_seed.values()))
        last_id = [f["final_id_loss"] for f in facts.values() if f["final_id_loss"] is not None]
        train = [f["train_seconds"] for f in facts.values() if f["train_seconds"] is not None]
        summary[spec.key].update(
            label=spec.label,
            torchreid_name=spec.torchreid_name,
            engine=ENGINES.get(spec.engine or "", "ours"),
            params=facts[min(facts)]["params"],
            gflops=facts[min(facts)]["gflops"],
            train_seconds={"mean": statistics.fmean(train), "values": train} if train else None,
            id_loss_per_epoch={str(s): f["id_loss_per_epoch"] for s, f in facts.items()},
            final_id_loss=statistics.fmean(last_id) if last_id else None,
            id_loss_chance=first.get("id_loss_chance"),
            learned=all(r["learned"] for r in by_seed.values()) if "learned" in first else None,
        )
    return summary


def table(summary: dict[str, Any]) -> str:
    rows = []
    for key, s in summary.items():
        losses = [v for v in s["id_loss_per_epoch"].values() if v]
        loss = "" if s["final_id_loss"] is None else f"{s['final_id_loss']:.2f}"
        if losses:
            loss = f"{statistics.fmean(v[0] for v in losses):.2f} -> {loss}"
        if s.get("id_loss_chance"):
            loss += f" (ln C {s['id_loss_chance']:.2f})"
        for target, t in s["targets"].items():
            gain = t.get("gain_over_baseline")
            rows.append([
                key, s["engine"], target,
                *(f"{t[m]['mean']:.1f} ± {t[m]['std']:.1f}" for m in ("rank1", "mAP", "mINP")),
                f"{gain['rank1']['mean']:+.1f} / {gain['mAP']['mean']:+.1f}" if gain else "",
                f"{s['params'] / 1e6:.2f}M", f"{s['gflops']:.3f}",
                f"{s['train_and_eval_seconds']['mean']:.0f}", loss,
                {True: "yes", False: "NO", None: ""}[s["learned"]],
            ])  # fmt: skip
    headers = ["model", "engine", "test set", "Rank-1", "mAP", "mINP", "gain R1 / mAP",
               "params", "GFLOPs", "seconds", "id loss (first ->) last", "learned"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github")


def build_parser() -> argparse.ArgumentParser:
    parser = _suite.parser(__doc__, "compare_baselines")
    parser.add_argument("--benchmark", choices=("embedded", "cuhk03"), default="embedded")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--models", nargs="+", default=DEFAULT_MODELS, help="variants of ours, NAME[:ENGINE]"
    )
    parser.add_argument("--preset", default="cpu", choices=("cpu", "gpu"), help="embedded only")
    parser.add_argument("--data-root", default="", help="cuhk03: folder with the real data")
    parser.add_argument("--validate", action="store_true", help=VALIDATE_HELP)
    parser.add_argument("--work-dir", type=Path, default=None, help="default outputs/compare_*")
    parser.add_argument(
        "--no-train", action="store_true", help="summarise the runs already in --work-dir only"
    )
    parser.add_argument("--smoke", action="store_true", help="mark the report as a smoke run")
    group = parser.add_argument_group(
        "torchreid's models",
        "Each flag defaults to the config's value, the budget our rows get "
        "(shown: the CPU presets of both benchmarks).",
    )
    cpu = embedded_config(seed=0)
    for field, (kind, key, text) in RECIPE_FLAGS.items():
        group.add_argument(
            "--" + field.replace("_", "-"), type=kind, default=None,
            nargs="+" if field == "milestones" else None,
            help=f"{text} (default: {key} = {_cfg_value(cpu, key)})",
        )  # fmt: skip
    group.add_argument("--warmup-factor", type=float, default=0.1,
                       help="the warm-up starts at lr x this (default: 0.1)")  # fmt: skip
    group.add_argument("--lr-scheduler", default="multi_step",
                       choices=("single_step", "multi_step", "cosine"),
                       help="torchreid's build_lr_scheduler (default: multi_step)")  # fmt: skip
    group.add_argument("--no-label-smooth", action="store_true",
                       help="cross-entropy without label smoothing")  # fmt: skip
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    _suite.setup_logging()
    try:
        specs = [parse_model(m) for m in args.models]
    except ValueError as exc:
        parser.error(str(exc))
    name = args.benchmark + ("_val" if args.validate else "")
    if args.output == _suite.RESULTS / "compare_baselines.json":
        args.output = _suite.RESULTS / f"compare_baselines_{name}.json"
    work_dir = args.work_dir or Path(f"outputs/compare_baselines_{name}")
    overrides = args.opts[1:] if args.opts[:1] == ["--"] else args.opts
    opts = [*overrides, *(["data.root", args.data_root] if args.data_root else [])]

    runs: dict[str, dict[int, dict]] = {s.key: {} for s in specs}
    failures: dict[str, dict[str, str]] = defaultdict(dict)
    provenance: dict[str, dict[str, str]] = defaultdict(dict)  # where each record came from
    recipe = None
    for seed in args.seeds:
        cfg = benchmark_config(
            args.benchmark, seed=seed, preset=args.preset, validate=args.validate, opts=opts
        )
        recipe = recipe_from(args, cfg)
        for spec in specs:
            out = work_dir / f"seed{seed}"
            done = out / spec.folder / "record.json"
            if done.is_file():
                record = json.loads(done.read_text())
                check_row_reused(record, cfg, spec, recipe, done)
                runs[spec.key][seed] = record
                provenance[spec.key][str(seed)] = record.get(
                    "restored_from", f"reused from {done} (an earlier run of this script)"
                )
                logger.info("seed %d %s: reusing %s", seed, spec.key, done)
                continue
            if args.no_train:
                logger.warning(
                    "seed %d %s: no run in %s (skipped: --no-train)", seed, spec.key, out
                )
                continue
            try:
                runs[spec.key][seed] = run_model(cfg, spec, recipe, out)
                provenance[spec.key][str(seed)] = "trained by this run"
            except Exception as exc:  # report it, go on with the other models
                logger.exception("seed %d %s failed", seed, spec.key)
                failures[spec.key][str(seed)] = f"{type(exc).__name__}: {exc}"[:500]

    for by_seed in runs.values():
        for record in by_seed.values():
            record.pop("cmc", None)
            for res in record.get("targets", {}).values():
                res.pop("cmc", None)
    summary = summarise_models(runs, specs)
    text = table(summary)
    print(text)
    for key, reasons in failures.items():
        print(f"FAILED {key}: " + "; ".join(f"seed {s}: {r}" for s, r in reasons.items()))
    report = {
        "benchmark": name,
        "smoke": args.smoke,
        "note": (SMOKE_NOTE + " " if args.smoke else "")
        + "metrics in percent; mean and sample standard deviation over seeds; gains are paired "
        "per seed against the baseline; params and GFLOPs per image of the model as evaluated "
        "(ours: the deployed main branch), classifiers included",
        "command": " ".join(["python", "benchmarks/compare_baselines.py", *(argv or sys.argv[1:])]),
        "seeds": args.seeds,
        "models": [s.key for s in specs],
        "overrides": overrides,
        "torchreid_recipe": asdict(recipe) if recipe else None,
        "summary": summary,
        "failures": dict(failures),
        "provenance": dict(provenance),
        "runs": {k: {str(s): r for s, r in by_seed.items()} for k, by_seed in runs.items()},
        "table": text,
    }
    _suite.write_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
