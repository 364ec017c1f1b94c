"""Train the plain BNNeck baseline and PGFL-KD on the embedded benchmark and compare them.

Both models share the backbone, data, schedule and seed; only the pose-guided branches,
distillation and interaction differ. Both are evaluated pose-free (main branch only) on the
occluded queries.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from yacs.config import CfgNode as CN

from torchreid_pgflkd.cli import common
from torchreid_pgflkd.config import load_config
from torchreid_pgflkd.config.presets import preset_opts
from torchreid_pgflkd.engine.distributed import unwrap_model
from torchreid_pgflkd.models import to_deploy

logger = logging.getLogger(__name__)

# Model variants as config overrides. The first two are the main command's; the rest are
# the paper's ablations (benchmarks/ablation.py). KD = logit + feature distillation.
_NO_KD = ["loss.kd_logit", "0.0", "loss.kd_feat", "0.0", "loss.kd_attn", "0.0"]
VARIANTS: dict[str, list[str]] = {
    "baseline": ["model.feb", "False", "model.sab", "False", "model.interaction", "False"],
    "pgflkd": [],
    "+feb": ["model.sab", "False", "model.interaction", "False", *_NO_KD],
    "+sab": ["model.feb", "False", "model.interaction", "False", *_NO_KD],
    "+kd": ["model.interaction", "False"],
    "+interaction": list(_NO_KD),
}
VARIANT_LABELS = {
    "baseline": "MB only (BNNeck baseline)",
    "+feb": "MB + FEB",
    "+sab": "MB + SAB",
    "+kd": "MB + FEB + SAB + KD",
    "+interaction": "MB + FEB + SAB + interaction",
    "pgflkd": "PGFL-KD (full)",
}


def embedded_config(*, seed: int, preset: str = "cpu", opts: list[str] | None = None) -> CN:
    """The embedded benchmark's config for ``seed`` (data and training), plus overrides."""
    seeds = ["synthetic.seed", str(seed), "train.seed", str(seed)]
    return load_config(None, [*preset_opts(preset), *seeds, *(opts or [])])


def deployed_cost(model: torch.nn.Module, image_hw: tuple[int, int]) -> dict[str, float]:
    """Parameters and forward GFLOPs per image of the deployed (pose-free) model."""
    deployed = to_deploy(unwrap_model(model)).cpu()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        deployed(torch.zeros(1, 3, *image_hw))
    return {
        "params": sum(p.numel() for p in deployed.parameters()),
        "gflops": counter.get_total_flops() / 1e9,
    }


def train_variant(
    cfg: CN, variant: str, output: Path, *, progress: bool = True
) -> tuple[dict[str, Any], Any]:
    """Train one variant from ``cfg``; returns its result record and the trained engine."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.merge_from_list([*VARIANTS[variant], "train.save_dir", str(output / variant)])
    cfg.freeze()
    cfg = common.prepare_synthetic(cfg, progress=progress)
    common.save_config(cfg, output / variant)
    datamanager = common.build_datamanager(cfg)
    engine = common.build_engine(cfg, datamanager, progress=progress)
    logger.info("training %s (%s)", variant, VARIANT_LABELS.get(variant, variant))
    start = time.perf_counter()
    engine.run(
        save_dir=output / variant,
        max_epoch=cfg.train.max_epoch,
        keep_last=1,
        config=cfg.dump(),
        extra={"num_classes": datamanager.num_train_pids, "variant": variant},
        test_kwargs={"dist_metric": cfg.test.metric},
    )
    wall = time.perf_counter() - start
    (name,) = engine.last_results
    res = engine.last_results[name]
    record = {
        "variant": variant,
        "label": VARIANT_LABELS.get(variant, variant),
        "rank1": res["rank1"],
        "rank5": res["rank5"],
        "mAP": res["mAP"],
        "mINP": res["mINP"],
        "cmc": res["cmc"],
        "num_queries": res.get("num_valid_queries"),
        "train_and_eval_seconds": wall,
        "deployed": deployed_cost(engine.model, (cfg.data.height, cfg.data.width)),
        "settings": settings_of(cfg),
        "checkpoint": str(output / variant / "last.pth"),
    }
    common.write_json(record, output / variant / "record.json")
    return record, engine


def settings_of(cfg: CN) -> dict[str, Any]:
    return {
        "seed": cfg.train.seed,
        "data_seed": cfg.synthetic.seed,
        "backbone": cfg.model.backbone,
        "pretrained": cfg.model.pretrained,
        "image_size": [cfg.data.height, cfg.data.width],
        "epochs": cfg.train.max_epoch,
        "batch_size": cfg.sampler.batch_size,
        "lr": cfg.train.lr,
        "num_train_ids": cfg.synthetic.num_train_ids,
        "images_per_id": cfg.synthetic.images_per_id,
        "num_test_ids": cfg.synthetic.num_test_ids,
        "feb": cfg.model.feb,
        "sab": cfg.model.sab,
        "interaction": cfg.model.interaction,
        "loss_weights": {
            k: cfg.loss[k]
            for k in ("id", "tri", "align", "kd_logit", "kd_feat", "kd_attn", "inter")
        },
        "device": str(common.adapters.resolve_device(cfg)),
        "amp": cfg.train.amp,
        "dataset_dir": cfg.data.dataset_dir,
    }
