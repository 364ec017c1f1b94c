"""Ablations and controls on the embedded or the CUHK03 benchmark: several seeds, every test
set, mean, spread and the paired per-seed gain over the baseline.

Variants (all evaluated pose-free, main branch only): the paper's ablations (MB only = the
BNNeck baseline, +FEB, +SAB, +KD, +interaction, full PGFL-KD) and the controls of
``torchreid_pgflkd.config.experiment.VARIANTS``. On the embedded benchmark each seed changes
the data and the training; on CUHK03 (fixed data) the training only.

    python benchmarks/ablation.py [--benchmark embedded|cuhk03] [--seeds 0 1 2]
        [--variants ...] [--data-root DIR] [--validate] [--work-dir DIR] [--output JSON]
        [--restore-from JSON ...] [--tuned JSON ...] [KEY VALUE ...]

Writes ``benchmarks/results/ablation_<benchmark>.json`` (every run and the summary) and prints
the table. A run already in ``--work-dir`` (its ``record.json``) is reused, so an interrupted
sweep resumes and ``pgflkd run --seed N --output <work-dir>/seedN`` counts for its variants.
``--restore-from`` takes the runs of earlier reports of this script (their ``runs``) for the
variants and seeds asked for, after checking that each run's settings are the ones this
invocation would train with; the report's ``provenance`` says which records were trained,
reused or restored, and from where. ``--tuned`` applies the choices of ``benchmarks/tune.py``
reports (made on the validation split): the baseline's to the variants named ``baseline*``
(the baseline, C4, the baseline with occlusion), PGFL-KD's to every other variant, before the
variant's own switches (so C4 doubles the tuned schedule).
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

import _suite
from tabulate import tabulate

from torchreid_pgflkd.config.experiment import (
    VARIANT_LABELS,
    VARIANTS,
    check_reused,
    first_difference,
    model_configs,
    model_of,
    settings_of,
    train_variant,
    tuned_overrides,
    variant_config,
)
from torchreid_pgflkd.config.presets import VALIDATE_HELP
from torchreid_pgflkd.utils.io import write_json

ORDER = ["baseline", "+feb", "+sab", "+kd", "+interaction", "pgflkd"]
METRICS = ("rank1", "mAP", "mINP")
logger = logging.getLogger("ablation")


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def summarise(runs: dict[str, dict[int, dict]], reference: str = "baseline") -> dict[str, Any]:
    """Per variant and test set: mean / sample std of each metric (percent), and the paired
    per-seed gain over ``reference`` on the seeds both ran."""
    summary: dict[str, Any] = {}
    ref = runs.get(reference, {})
    for variant, by_seed in runs.items():
        if not by_seed:
            continue
        first = next(iter(by_seed.values()))
        targets: dict[str, Any] = {}
        for target in first["targets"]:
            entry = {m: _stats([100 * r["targets"][target][m] for r in by_seed.values()])
                     for m in METRICS}  # fmt: skip
            paired = sorted(set(by_seed) & set(ref))
            if variant != reference and paired:
                entry["gain_over_" + reference] = {
                    m: _stats([
                        100 * (by_seed[s]["targets"][target][m] - ref[s]["targets"][target][m])
                        for s in paired
                    ])
                    for m in METRICS
                }  # fmt: skip
                entry["paired_seeds"] = paired
            by_kind = [r["targets"][target].get("by_occluder") for r in by_seed.values()]
            if all(by_kind):  # the embedded benchmark: figures per occluder kind
                entry["by_occluder"] = {
                    kind: {m: _stats([100 * b[kind][m] for b in by_kind]) for m in METRICS}
                    for kind in sorted(set.intersection(*(set(b) for b in by_kind)))
                }  # fmt: skip
            targets[target] = entry
        seconds = [r["train_and_eval_seconds"] for r in by_seed.values()]
        summary[variant] = {
            "label": VARIANT_LABELS.get(variant, variant),
            "seeds": sorted(by_seed),
            "targets": targets,
            "train_and_eval_seconds": _stats(seconds),
        }
    return summary


# A record restored under another variant's name must state at least these settings.
_IDENTITY = ("seed", "feb", "sab", "interaction", "epochs", "lr", "loss_weights", "pose_source")


def restore_records(
    reports: list[Path], cfg: Any, seed: int, variants: list[str], seed_dir: Path
) -> dict[str, str]:
    """Write ``seed_dir/<variant>/record.json`` for each of ``variants`` that the work dir
    lacks and one of ``reports`` (earlier reports of this script) holds for ``seed``.

    A record is restored only when its settings equal those ``train_variant`` would train
    with here (``cfg`` plus the variant's switches; keys older reports lack are not
    compared): the variant's own record first, else a record of another variant with the
    same settings (a baseline tuned to twice the epochs is an earlier report's C4 run). A
    record of the variant with other settings is not restored (the variant then trains) and
    a warning names the report and the first setting that differs. Returns ``{variant:
    where it came from}`` for the records written.
    """
    loaded = _suite.load_reports(reports)
    restored: dict[str, str] = {}
    for variant in variants:
        done = seed_dir / variant / "record.json"
        if done.is_file():
            continue
        want = settings_of(variant_config(cfg, variant))
        # The variant's own records first, then other variants' records that say enough.
        candidates = [(p, variant, runs.get(variant, {})) for p, runs in loaded] + [
            (p, name, runs[name]) for p, runs in loaded for name in sorted(set(runs) - {variant})
        ]
        found = None
        for path, name, by_seed in candidates:
            record = by_seed.get(str(seed))
            have = (record or {}).get("settings", {})
            if record is None or (name != variant and not all(k in have for k in _IDENTITY)):
                continue
            why = first_difference(want, have)
            if why is None:
                found = found or (path, name, record)
            elif name == variant:
                logger.warning(
                    "--restore-from %s: seed %d %s not restored (trained with %s)",
                    path, seed, variant, why,
                )  # fmt: skip
        if found is None:
            continue
        path, name, record = found
        source = path if name == variant else f"{path} (its {name} run)"
        write_json({**record, "variant": variant, "restored_from": source}, done)
        restored[variant] = source
    return restored


def table(summary: dict[str, Any]) -> str:
    rows = []
    for s in summary.values():
        for target, t in s["targets"].items():
            gain = t.get("gain_over_baseline")
            rows.append([
                s["label"], target,
                *(f"{t[m]['mean']:.1f} ± {t[m]['std']:.1f}" for m in METRICS),
                f"{gain['rank1']['mean']:+.1f} / {gain['mAP']['mean']:+.1f}" if gain else "",
                f"{s['train_and_eval_seconds']['mean']:.0f}",
            ])  # fmt: skip
    headers = ["variant", "test set", "Rank-1", "mAP", "mINP",
               "paired gain R1 / mAP", "seconds"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github")


def main() -> None:
    parser = _suite.parser(__doc__, "ablation")
    parser.add_argument("--benchmark", choices=("embedded", "cuhk03"), default="embedded")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=ORDER, choices=sorted(VARIANTS))
    parser.add_argument("--preset", default="cpu", choices=("cpu", "gpu"), help="embedded only")
    parser.add_argument("--data-root", default="", help="cuhk03: folder with the real data")
    parser.add_argument("--validate", action="store_true", help=VALIDATE_HELP)
    parser.add_argument("--work-dir", type=Path, default=None, help="default outputs/ablation_*")
    _suite.add_restore_option(parser)
    parser.add_argument(
        "--tuned",
        type=Path,
        nargs="+",
        default=[],
        metavar="JSON",
        help="benchmarks/tune.py reports whose chosen settings the runs take (per model)",
    )
    _suite.add_run_options(parser)
    args = _suite.parse_args(parser)
    _suite.setup_logging()
    name = args.benchmark + ("_val" if args.validate else "")
    if args.output == _suite.RESULTS / "ablation.json":
        args.output = _suite.RESULTS / f"ablation_{name}.json"
    work_dir = args.work_dir or Path(f"outputs/ablation_{name}")
    opts = [*args.opts, *(["data.root", args.data_root] if args.data_root else [])]
    try:
        tuned = tuned_overrides(args.tuned, args.benchmark)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc

    runs: dict[str, dict[int, dict]] = {v: {} for v in args.variants}
    provenance: dict[str, dict[str, str]] = {v: {} for v in args.variants}
    for seed in args.seeds:
        cfgs = model_configs(
            args.benchmark, tuned, seed=seed, preset=args.preset, validate=args.validate, opts=opts
        )
        out = work_dir / f"seed{seed}"
        for model, cfg in cfgs.items():
            mine = [v for v in args.variants if model_of(v) == model]
            restore_records(args.restore_from, cfg, seed, mine, out)
        for variant in args.variants:
            cfg = cfgs[model_of(variant)]
            done = out / variant / "record.json"
            if done.is_file():
                runs[variant][seed] = record = json.loads(done.read_text())
                try:
                    check_reused(record, cfg, variant, done)
                except ValueError as exc:
                    raise SystemExit(str(exc)) from exc
                provenance[variant][str(seed)] = (
                    f"restored from {record['restored_from']}"
                    if "restored_from" in record
                    else f"reused from {done}"
                )
                logger.info("seed %d %s: %s", seed, variant, provenance[variant][str(seed)])
                continue
            if args.no_train:
                logger.warning("seed %d %s: no run in %s (skipped: --no-train)", seed, variant, out)
                continue
            record, _ = train_variant(cfg, variant, out, progress=False)  # writes record.json
            runs[variant][seed] = record
            provenance[variant][str(seed)] = "trained by this run"
            logger.info(
                "seed %d %s: %s", seed, variant,
                "; ".join(f"{t} R1 {100 * r['rank1']:.1f} mAP {100 * r['mAP']:.1f}"
                          for t, r in record["targets"].items()),
            )  # fmt: skip

    for by_seed in runs.values():
        for record in by_seed.values():
            record.pop("cmc", None)
            for res in record.get("targets", {}).values():
                res.pop("cmc", None)
    summary = summarise(runs)
    text = table(summary)
    print(text)
    first = next(r for by_seed in runs.values() for r in by_seed.values())
    report = {
        "benchmark": name,
        "seeds": args.seeds,
        "overrides": list(args.opts),
        "tuned": {"reports": [str(p) for p in args.tuned], "overrides": tuned},
        "settings": first["settings"],
        "note": "metrics in percent; mean and sample standard deviation over seeds; gains are "
        "paired per seed (same seed, same data) against the baseline",
        "summary": summary,
        "runs": {v: {str(s): r for s, r in by_seed.items()} for v, by_seed in runs.items()},
        "provenance": {v: p for v, p in provenance.items() if p},
        "table": text,
    }
    _suite.write_report(report, args.output)


if __name__ == "__main__":
    main()
