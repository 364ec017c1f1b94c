"""Choices made on the validation split, with the same number of tries for every model.

Each model (the BNNeck baseline, PGFL-KD) gets a named search space of the same size: a list
of tries, each a set of config overrides on top of the benchmark's defaults (the defaults are
always one of the tries). Every try trains on the validation split (``--validate`` of the other
scripts: CUHK03, 643 training people tested on the other 100, queries whole, partial and
occluded by another person's ellipse (``cuhk03_val`` preset); embedded,
a fresh draw of people, poses and occluders, data seed 1000 + seed) and is scored there; no
test set is read. The chosen try of each model is the one with the best validation mAP
(mean over ``--seeds`` and validation test sets; Rank-1 breaks ties).

    python benchmarks/tune.py --benchmark embedded|cuhk03 --space NAME [--seeds 0]
        [--data-root DIR] [--work-dir DIR] [--output JSON] [--no-train]
        [--models M ...] [--tries T ...] [--restore-from JSON ...] [[--] KEY VALUE ...]

Spaces (``--list`` prints them): ``weights`` gives PGFL-KD its distillation weights at half
and twice the defaults, and the baseline its learning rate at half and twice; ``schedule``
gives both models the same tries: the benchmark's epochs, twice the epochs (schedule
stretched), and a light occlusion augmentation (``data.occlusion_prob 0.2``); ``design`` gives
both twice the epochs; the baseline its learning rate at twice the default and random erasing
on 80 % of the crops instead of 50 %; PGFL-KD a quarter of SAB's teaching weight
(``loss.sab_teacher 0.25``) and four times the spatial distillation (``loss.kd_attn 4``); and,
added after the pose x initialisation diagnosis, one more try each on top of the doubled
schedule: the baseline at four times the epochs (PGFL-KD's compute), PGFL-KD with FEB's and
SAB's layer4 initialised apart from MB's (``model.branch_init independent``).

Writes ``benchmarks/results/tune_<benchmark>_<space>.json``: every try's validation figures,
the chosen try per model, and its overrides (``chosen``), which ``ablation.py --tuned`` applies
to the test runs. Runs are kept in ``--work-dir`` (``seedN/<try>/<model>/record.json``) and
reused, so an interrupted search resumes. ``--models`` / ``--tries`` train only those (to
split a search between processes or machines sharing the work dir; a run folder in use by
another process is refused, not shared); a last call without them, or with ``--no-train``,
makes the choice from every run there. ``--restore-from`` takes the runs of earlier reports of
this script (a space grown by a try keeps the tries already trained) after checking that each
run's settings are the ones this invocation would train with; a restored run says where it
came from (``restored_from``).
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _suite
from tabulate import tabulate
from yacs.config import CfgNode as CN

from torchreid_pgflkd.config.experiment import (
    benchmark_config,
    check_reused,
    first_difference,
    resolve_switches,
    settings_of,
    train_variant,
    twice_the_schedule,
    variant_config,
)
from torchreid_pgflkd.utils.io import write_json

logger = logging.getLogger("tune")

Overrides = list[str] | Callable[[CN], list[str]]


def _kd(scale: float) -> list[str]:
    """The logit and feature distillation weights at ``scale`` times the defaults (4, 10)."""
    return ["loss.kd_logit", str(4.0 * scale), "loss.kd_feat", str(10.0 * scale)]


def _four_times_the_schedule(cfg: CN) -> list[str]:
    """Twice the stretched schedule: four times the benchmark's epochs (C4's budget after the
    schedule choice doubled it)."""
    stretched = cfg.clone()
    stretched.defrost()
    stretched.merge_from_list(twice_the_schedule(cfg))
    return twice_the_schedule(stretched)


def _lr(scale: float) -> list[str]:
    """The learning rate at ``scale`` times the CPU recipe's 1e-3."""
    return ["train.lr", str(1e-3 * scale)]


_SCHEDULE: dict[str, Overrides] = {
    "default": [],
    "epochs_x2": twice_the_schedule,
    "occlusion_0.2": ["data.occlusion_prob", "0.2"],
}
# model -> try name -> overrides. Every model of a space has the same number of tries.
SPACES: dict[str, dict[str, dict[str, Overrides]]] = {
    "weights": {
        "baseline": {"default": [], "lr_x0.5": _lr(0.5), "lr_x2": _lr(2.0)},
        "pgflkd": {"default": [], "kd_x0.5": _kd(0.5), "kd_x2": _kd(2.0)},
    },
    "schedule": {"baseline": dict(_SCHEDULE), "pgflkd": dict(_SCHEDULE)},
    # After the diagnosis on CUHK03 (SAB scores below MB yet teaches it with FEB's weight; the
    # spatial distillation is what moves the occluded queries; the baseline at twice the epochs
    # ties PGFL-KD): both models may train twice as long, and each gets two knobs of its own.
    "design": {
        "baseline": {
            "default": [],
            "epochs_x2": twice_the_schedule,
            "lr_x2": _lr(2.0),
            "erase_0.8": ["data.erase_prob", "0.8"],  # the pose-free occlusion augmentation
            # Added after the pose x initialisation 2x2 (one more try for each model, on top of
            # the chosen schedule): the baseline at twice that schedule (C4's budget) ...
            "epochs_x4": _four_times_the_schedule,
        },
        "pgflkd": {
            "default": [],
            "epochs_x2": twice_the_schedule,
            "sab_teacher_0.25": ["loss.sab_teacher", "0.25"],
            "kd_attn_x4": ["loss.kd_attn", "4.0"],
            # ... and PGFL-KD with FEB's and SAB's layer4 initialised apart from MB's.
            "epochs_x2+independent": lambda cfg: [
                *twice_the_schedule(cfg),
                "model.branch_init",
                "independent",
            ],
        },
    },
}


def check_space(space: dict[str, dict[str, Overrides]]) -> None:
    """Refuse a space that gives the models different numbers of tries or lacks the defaults."""
    sizes = {model: len(tries) for model, tries in space.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every model needs the same number of tries; this space has {sizes}")
    for model, tries in space.items():
        if "default" not in tries:
            raise ValueError(f"{model}: the defaults must be one of the tries")


def score(record: dict[str, Any]) -> tuple[float, float]:
    """(mAP, Rank-1), each the mean over the record's validation test sets."""
    targets = record["targets"].values()
    return (
        statistics.fmean(t["mAP"] for t in targets),
        statistics.fmean(t["rank1"] for t in targets),
    )


def choose(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """Per model, the try with the best (validation mAP, Rank-1) in ``summary``."""
    return {
        model: max(tries, key=lambda name: (tries[name]["mAP"], tries[name]["rank1"]))
        for model, tries in summary.items()
        if tries  # a model with no run yet has no choice
    }


def restore_try(
    reports: list[tuple[str, dict[str, Any]]],
    cfg: CN,
    seed: int,
    model: str,
    try_name: str,
    done: Path,
) -> str | None:
    """Write ``done`` (a try's ``record.json``) from the first of ``reports`` that holds this
    model's try for ``seed`` trained with the settings ``cfg`` (the try's config) gives it;
    returns where it came from, or None. A run with other settings is not restored, and a
    warning names the report and the first setting that differs."""
    want = settings_of(variant_config(cfg, model))
    for path, runs in reports:
        for record in runs.get(model, {}).get(try_name, []):
            if record.get("seed") != seed:
                continue
            why = first_difference(want, record.get("settings", {}))
            if why is not None:
                logger.warning(
                    "--restore-from %s: seed %d %s %s not restored (trained with %s)",
                    path, seed, model, try_name, why,
                )  # fmt: skip
                continue
            kept = {k: v for k, v in record.items() if k != "seed"}
            write_json({**kept, "restored_from": path}, done)
            return path
    return None


def main() -> None:
    parser = _suite.parser(__doc__, "tune")
    parser.add_argument("--benchmark", choices=("embedded", "cuhk03"), default="embedded")
    parser.add_argument("--space", choices=sorted(SPACES), default="weights")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-root", default="", help="cuhk03: folder with the real data")
    parser.add_argument("--work-dir", type=Path, default=None, help="default outputs/tune_*")
    parser.add_argument("--list", action="store_true", help="print the spaces and exit")
    parser.add_argument("--models", nargs="+", default=None, help="train only these models")
    parser.add_argument("--tries", nargs="+", default=None, help="train only these tries")
    _suite.add_restore_option(parser)
    _suite.add_run_options(parser)
    args = _suite.parse_args(parser)
    if args.list:
        for name, space in SPACES.items():
            for model, tries in space.items():
                print(f"{name} {model}: " + ", ".join(tries))
        return
    _suite.setup_logging()
    space = SPACES[args.space]
    check_space(space)
    name = f"{args.benchmark}_{args.space}"
    if args.output == _suite.RESULTS / "tune.json":
        args.output = _suite.RESULTS / f"tune_{name}.json"
    work_dir = args.work_dir or Path(f"outputs/tune_{name}")
    opts = [*args.opts, *(["data.root", args.data_root] if args.data_root else [])]
    all_tries = {t for tries in space.values() for t in tries}
    for asked, known in ((args.models, space), (args.tries, all_tries)):
        unknown = sorted(set(asked or ()) - set(known))
        if unknown:
            raise SystemExit(f"space {args.space!r} has no {unknown}; it has {sorted(known)}")

    def wanted(model: str, try_name: str) -> bool:
        return (args.models is None or model in args.models) and (
            args.tries is None or try_name in args.tries
        )

    reports = _suite.load_reports(args.restore_from)
    results: dict[str, dict[str, list[dict]]] = {m: {t: [] for t in space[m]} for m in space}
    overrides: dict[str, dict[str, list[str]]] = {m: {} for m in space}
    for seed in args.seeds:
        base = benchmark_config(args.benchmark, seed=seed, validate=True, opts=opts)
        for model, tries in space.items():
            for try_name, switches in tries.items():
                extra = resolve_switches(switches, base)
                overrides[model][try_name] = extra
                out = work_dir / f"seed{seed}" / try_name
                done = out / model / "record.json"
                cfg = benchmark_config(
                    args.benchmark, seed=seed, validate=True, opts=[*opts, *extra]
                )
                if not done.is_file() and restore_try(reports, cfg, seed, model, try_name, done):
                    logger.info("seed %d %s %s: restored from an earlier report",
                                seed, model, try_name)  # fmt: skip
                if done.is_file():
                    record = json.loads(done.read_text())
                    try:
                        check_reused(record, cfg, model, done)
                    except ValueError as exc:
                        raise SystemExit(str(exc)) from exc
                    logger.info("seed %d %s %s: reused %s", seed, model, try_name, done)
                elif args.no_train or not wanted(model, try_name):
                    logger.warning("seed %d %s %s: no run here (not asked to train it)",
                                   seed, model, try_name)  # fmt: skip
                    continue
                else:
                    record, _ = train_variant(cfg, model, out, progress=False)
                for res in record["targets"].values():
                    res.pop("cmc", None)
                record.pop("cmc", None)
                results[model][try_name].append({**record, "seed": seed})
                m_ap, rank1 = score(record)
                logger.info(
                    "seed %d %s %s: validation R1 %.1f mAP %.1f",
                    seed, model, try_name, 100 * rank1, 100 * m_ap,
                )  # fmt: skip

    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for model, tries in results.items():
        summary[model] = {}
        for try_name, records in tries.items():
            if not records:
                continue
            m_ap, rank1 = (statistics.fmean(s) for s in zip(*(score(r) for r in records)))
            summary[model][try_name] = {
                "overrides": overrides[model][try_name],
                "seeds": [r["seed"] for r in records],
                "rank1": 100 * rank1,
                "mAP": 100 * m_ap,
                "mINP": 100 * statistics.fmean(
                    statistics.fmean(t["mINP"] for t in r["targets"].values()) for r in records
                ),
                "train_and_eval_seconds": statistics.fmean(
                    r["train_and_eval_seconds"] for r in records
                ),
            }  # fmt: skip
    chosen = choose(summary)
    rows = [
        [model, try_name, " ".join(s["overrides"]) or "(defaults)",
         *(f"{s[m]:.1f}" for m in ("rank1", "mAP", "mINP")),
         "chosen" if chosen.get(model) == try_name else ""]
        for model, tries in summary.items()
        for try_name, s in tries.items()
    ]  # fmt: skip
    text = tabulate(
        rows,
        headers=["model", "try", "overrides", "val Rank-1", "val mAP", "val mINP", ""],
        tablefmt="github",
    )
    print(text)
    report = {
        "benchmark": args.benchmark,
        "split": "validation",
        "space": args.space,
        "seeds": args.seeds,
        "overrides": list(args.opts),
        "tries_per_model": {m: len(t) for m, t in space.items()},
        "criterion": "validation mAP (mean over seeds and validation test sets); Rank-1 on ties",
        "note": "metrics in percent; no test set was read",
        "chosen": {m: {"try": t, "overrides": overrides[m][t]} for m, t in chosen.items()},
        "summary": summary,
        "runs": {m: {t: rs for t, rs in tries.items()} for m, tries in results.items()},
        "table": text,
    }
    _suite.write_report(report, args.output)


if __name__ == "__main__":
    main()
