"""Model variants as config overrides, and training one variant into its own folder.

The main command (``pgflkd run``) trains the baseline and PGFL-KD this way; the ablation and
comparison benchmarks train the other variants. Every variant shares the backbone, data,
schedule and seed; only the switches below differ. All are evaluated pose-free (MB only).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yacs.config import CfgNode as CN

from torchreid_pgflkd.config import adapters, build, load_config
from torchreid_pgflkd.config.presets import VALIDATION_DATA_SEED, preset_opts
from torchreid_pgflkd.models import to_deploy
from torchreid_pgflkd.models.cost import inference_cost
from torchreid_pgflkd.utils.io import write_json
from torchreid_pgflkd.utils.modules import unwrap_model

logger = logging.getLogger(__name__)

# Model variants as config overrides. The first two are the main command's; then the paper's
# ablations and the controls that ask whether *pose* causes the gain (benchmarks/ablation.py).
# KD = logit + feature + spatial distillation.
_NO_KD = ["loss.kd_logit", "0.0", "loss.kd_feat", "0.0", "loss.kd_attn", "0.0"]
_BASELINE = ["model.feb", "False", "model.sab", "False", "model.interaction", "False"]


def twice_the_schedule(cfg: CN) -> list[str]:
    """Epochs, warm-up and milestones of ``cfg`` stretched to twice the length."""
    t = cfg.train
    return [
        "train.max_epoch", str(2 * t.max_epoch),
        "train.warmup_epochs", str(2 * t.warmup_epochs),
        "train.milestones", str([2 * m for m in t.milestones]),
    ]  # fmt: skip


# A variant's switches: a list of KEY VALUE overrides, or a function of the config for those
# that scale what the benchmark set (C4's schedule); read them with ``variant_overrides``.
VARIANTS: dict[str, list[str] | Callable[[CN], list[str]]] = {
    "baseline": _BASELINE,
    "pgflkd": [],
    "+feb": ["model.sab", "False", "model.interaction", "False", *_NO_KD],
    "+sab": ["model.feb", "False", "model.interaction", "False", *_NO_KD],
    "+kd": ["model.interaction", "False"],
    "+interaction": list(_NO_KD),
    # Controls: the full model and losses, pose replaced...
    "stripes": ["data.pose_source", "stripes"],  # C1: by fixed priors
    "shuffled_pose": ["data.pose_source", "shuffled"],  # C2: by another image's pose
    # C3: no pose at all, independently initialised branches: mutual learning
    "mutual_no_pose": ["data.pose_source", "none", "model.branch_init", "independent"],
    # The other two cells of pose x branch initialisation (C3 changes both at once):
    # PGFL-KD with C3's independently initialised branches, and C3's pose-free model with
    # PGFL-KD's copied branches (the first control of the real-image issue)
    "independent_init": ["model.branch_init", "independent"],
    # (both cells name their initialisation: a tuned choice may have changed the default)
    "no_pose_copied": ["data.pose_source", "none", "model.branch_init", "copy"],
    # C4: the baseline given PGFL-KD's compute: the run's own schedule at twice the epochs
    "baseline_2x": lambda cfg: [*_BASELINE, *twice_the_schedule(cfg)],
    # C5: the spatial distillation without, and alone
    "no_kd_attn": ["loss.kd_attn", "0.0"],
    "only_kd_attn": ["model.interaction", "False", "loss.kd_logit", "0.0", "loss.kd_feat", "0.0"],
    # Occlusion augmentation (another person or an object over a side), for both models
    "baseline+occ": [*_BASELINE, "data.occlusion_prob", "0.5"],
    "pgflkd+occ": ["data.occlusion_prob", "0.5"],
    "soft_visibility": ["data.soft_visibility", "True"],  # keypoint confidence as a weight
    # A SAB part with no visible keypoint: zero feature, out of feature KD (not pooled whole)
    "sab_drop_invisible": ["model.sab_invisible", "drop"],
}
VARIANT_LABELS = {
    "baseline": "MB only (BNNeck baseline)",
    "+feb": "MB + FEB",
    "+sab": "MB + SAB",
    "+kd": "MB + FEB + SAB + KD",
    "+interaction": "MB + FEB + SAB + interaction",
    "pgflkd": "PGFL-KD (full)",
    "stripes": "C1 PGFL-KD, stripes for pose",
    "shuffled_pose": "C2 PGFL-KD, shuffled pose",
    "mutual_no_pose": "C3 three branches, no pose",
    "independent_init": "PGFL-KD, independently initialised branches",
    "no_pose_copied": "PGFL-KD, no pose, copied branches",
    "baseline_2x": "C4 baseline, 2x epochs",
    "no_kd_attn": "C5 PGFL-KD without kd_attn",
    "only_kd_attn": "C5 FEB + SAB, kd_attn only",
    "baseline+occ": "baseline + occlusion augmentation",
    "pgflkd+occ": "PGFL-KD + occlusion augmentation",
    "soft_visibility": "PGFL-KD, confidence-weighted pose maps",
    "sab_drop_invisible": "PGFL-KD, SAB drops invisible parts",
}


def embedded_config(*, seed: int, preset: str = "cpu", opts: list[str] | None = None) -> CN:
    """The embedded benchmark's config for ``seed`` (data and training), plus overrides."""
    seeds = ["synthetic.seed", str(seed), "train.seed", str(seed)]
    return load_config(None, [*preset_opts(preset), *seeds, *(opts or [])])


def real_config(*, seed: int, preset: str = "cuhk03", opts: list[str] | None = None) -> CN:
    """A real-image benchmark's config (fixed data) for training seed ``seed``, plus overrides."""
    return load_config(None, [*preset_opts(preset), "train.seed", str(seed), *(opts or [])])


def benchmark_config(
    benchmark: str,
    *,
    seed: int,
    preset: str = "cpu",
    validate: bool = False,
    opts: list[str] | None = None,
) -> CN:
    """The config of one benchmark run: ``embedded`` (``preset`` cpu|gpu) or ``cuhk03``.

    ``validate`` selects the validation split, where choices are made: for ``cuhk03``, 643 of
    the training people for training and the other 100 for testing (preset ``cuhk03_val``);
    for ``embedded``, a fresh draw of the benchmark (data seed ``VALIDATION_DATA_SEED + seed``,
    training seed ``seed``). Test splits are for reported runs only."""
    if benchmark == "embedded":
        data_seed = ["synthetic.seed", str(VALIDATION_DATA_SEED + seed)] if validate else []
        return embedded_config(seed=seed, preset=preset, opts=[*data_seed, *(opts or [])])
    if benchmark != "cuhk03":
        raise ValueError(f"unknown benchmark {benchmark!r}; choose embedded or cuhk03")
    if preset != "cpu":
        raise ValueError("--preset applies to the embedded benchmark only")
    return real_config(seed=seed, preset="cuhk03_val" if validate else "cuhk03", opts=opts)


def deployed_cost(model: Any, image_hw: tuple[int, int]) -> dict[str, float]:
    """Parameters and forward GFLOPs per image of the deployed (pose-free) model."""
    return inference_cost(to_deploy(unwrap_model(model)).cpu(), image_hw)


def variant_overrides(cfg: CN, variant: str) -> list[str]:
    """The KEY VALUE overrides that turn ``cfg`` into ``variant``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return resolve_switches(VARIANTS[variant], cfg)


def resolve_switches(switches: list[str] | Callable[[CN], list[str]], cfg: CN) -> list[str]:
    """KEY VALUE overrides given as a list, or as a function of ``cfg`` (C4's schedule)."""
    return list(switches(cfg) if callable(switches) else switches)


def variant_config(cfg: CN, variant: str, extra: list[str] | None = None) -> CN:
    """A frozen copy of ``cfg`` with ``variant``'s switches (and ``extra`` KEY VALUE pairs)."""
    switches = variant_overrides(cfg, variant)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.merge_from_list([*switches, *(extra or [])])
    cfg.freeze()
    return cfg


def model_configs(
    benchmark: str,
    tuned: dict[str, list[str]],
    *,
    seed: int,
    preset: str = "cpu",
    validate: bool = False,
    opts: list[str] | None = None,
) -> dict[str, CN]:
    """``benchmark_config`` once per model of ``tuned`` (``tuned_overrides``), each with its
    own chosen overrides after ``opts``; pick a variant's with ``model_of``."""
    return {
        model: benchmark_config(
            benchmark, seed=seed, preset=preset, validate=validate, opts=[*(opts or []), *extra]
        )
        for model, extra in tuned.items()
    }


def model_of(variant: str) -> str:
    """Whose tuned choices a variant takes: the baseline's or PGFL-KD's."""
    return "baseline" if variant.startswith("baseline") else "pgflkd"


def tuned_overrides(reports: list[Path], benchmark: str) -> dict[str, list[str]]:
    """``{"baseline": [...], "pgflkd": [...]}``: the KEY VALUE overrides chosen in ``reports``
    (``benchmarks/tune.py`` reports on ``benchmark``'s validation split), in order."""
    tuned: dict[str, list[str]] = {"baseline": [], "pgflkd": []}
    for path in reports:
        try:
            report = json.loads(Path(path).read_text())
            chosen, split, on = report["chosen"], report["split"], report["benchmark"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"--tuned {path}: not a report of benchmarks/tune.py ({exc})") from exc
        if split != "validation" or on != benchmark:
            raise ValueError(
                f"--tuned {path}: choices made on {on}'s {split} split; this run needs "
                f"{benchmark}'s validation split"
            )
        for model in tuned:
            if model not in chosen:
                raise ValueError(f"--tuned {path}: no choice for {model}")
            tuned[model] += [str(v) for v in chosen[model]["overrides"]]
    return tuned


def train_variant(
    cfg: CN, variant: str, output: Path, *, progress: bool = True
) -> tuple[dict[str, Any], Any]:
    """Train one variant from ``cfg``; returns its result record and the trained engine."""
    cfg = variant_config(cfg, variant, ["train.save_dir", str(output / variant)])
    cfg = build.prepare_synthetic(cfg, progress=progress)
    build.save_config(cfg, output / variant)
    datamanager = build.build_datamanager(cfg)
    engine = build.build_engine(cfg, datamanager, progress=progress)
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
    targets = {name: _metrics(res) for name, res in engine.last_results.items()}
    record = {
        "variant": variant,
        "label": VARIANT_LABELS.get(variant, variant),
        # The first target's figures at the top level (the embedded benchmark has one).
        **next(iter(targets.values())),
        "targets": targets,
        "final_losses": dict(engine.epoch_losses),
        "train_and_eval_seconds": wall,
        "deployed": deployed_cost(engine.model, (cfg.data.height, cfg.data.width)),
        "settings": settings_of(cfg),
        "checkpoint": str(output / variant / "last.pth"),
    }
    write_json(record, output / variant / "record.json")
    return record, engine


def _metrics(res: dict[str, Any]) -> dict[str, Any]:
    return {
        "rank1": res["rank1"],
        "rank5": res["rank5"],
        "mAP": res["mAP"],
        "mINP": res["mINP"],
        "cmc": res["cmc"],
        "num_queries": res.get("num_valid_queries"),
        **({"by_occluder": res["by_occluder"]} if "by_occluder" in res else {}),
    }


# Settings that say where or how fast a run went, not what it trained.
_NOT_COMPARED = ("device", "dataset_dir")


def first_difference(want: dict[str, Any], have: dict[str, Any]) -> str | None:
    """The first setting (of those both state) in which ``have`` differs from ``want``, as
    text, or None; where and how fast a run went (device, dataset folder) does not count."""
    for key in sorted(set(want) & set(have)):
        if key not in _NOT_COMPARED and want[key] != have[key]:
            return f"{key} = {have[key]!r}, this run asks for {want[key]!r}"
    return None


def check_reused(record: dict[str, Any], cfg: CN, variant: str, path: Path) -> None:
    """Refuse a saved run (``path``, its ``record``) whose settings are not those ``cfg``
    trains ``variant`` with: a work dir kept across a changed choice (a new tuned schedule,
    another switch) must not pass an old run off as a new one. Records that state no settings
    are taken as they are."""
    why = first_difference(settings_of(variant_config(cfg, variant)), record.get("settings", {}))
    if why is not None:
        raise ValueError(
            f"{path}: this {variant} run was trained with {why}; use another work dir, or "
            "remove the run to train it again"
        )


def settings_of(cfg: CN) -> dict[str, Any]:
    return {
        "seed": cfg.train.seed,
        "data_seed": cfg.synthetic.seed,
        "backbone": cfg.model.backbone,
        "pretrained": cfg.model.pretrained,
        "image_size": [cfg.data.height, cfg.data.width],
        "epochs": cfg.train.max_epoch,
        "warmup_epochs": cfg.train.warmup_epochs,
        "milestones": list(cfg.train.milestones),
        "batch_size": cfg.sampler.batch_size,
        "lr": cfg.train.lr,
        "num_train_ids": cfg.synthetic.num_train_ids,
        "images_per_id": cfg.synthetic.images_per_id,
        "num_test_ids": cfg.synthetic.num_test_ids,
        "synthetic_keypoints": cfg.synthetic.keypoints,
        "occluder_textures": cfg.synthetic.occluder_textures,
        "feb": cfg.model.feb,
        "sab": cfg.model.sab,
        "interaction": cfg.model.interaction,
        "pose_source": cfg.data.pose_source,
        "occlusion_prob": cfg.data.occlusion_prob,
        "soft_visibility": cfg.data.soft_visibility,
        "branch_init": cfg.model.branch_init,
        "sab_invisible": cfg.model.sab_invisible,
        "loss_weights": {
            k: cfg.loss[k]
            for k in ("id", "tri", "align", "kd_logit", "kd_feat", "kd_attn", "inter")
        },
        # apart from loss_weights, so that records made before it existed still compare equal
        "sab_teacher": cfg.loss.sab_teacher,
        "device": str(adapters.resolve_device(cfg)),
        "amp": cfg.train.amp,
        "dataset_dir": cfg.data.dataset_dir,
        "sources": list(cfg.data.sources),
        "targets": list(cfg.data.targets),
    }
