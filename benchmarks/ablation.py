"""The paper's ablations on the embedded benchmark, several seeds, mean and spread.

Variants (all evaluated pose-free, main branch only, on the occluded queries):
MB only (the BNNeck baseline) / MB + FEB / MB + SAB / MB + FEB + SAB + KD /
MB + FEB + SAB + interaction / full PGFL-KD. Each seed changes the data and the training.

    python benchmarks/ablation.py [--seeds 0 1 2] [--variants ...] [--output DIR] [KEY VALUE ...]

Writes ``benchmarks/results/ablation.json`` (every run and the summary) and prints the table.
A run already in ``--output`` (its ``record.json``) is reused, so an interrupted sweep resumes
and ``pgflkd run --seed N --output outputs/ablation/seedN`` counts for baseline and full.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
from pathlib import Path

import torch
from tabulate import tabulate

from torchreid_pgflkd.experiments.embedded import (
    VARIANT_LABELS,
    VARIANTS,
    embedded_config,
    train_variant,
)

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ["baseline", "+feb", "+sab", "+kd", "+interaction", "pgflkd"]
logger = logging.getLogger("ablation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=ORDER, choices=sorted(VARIANTS))
    parser.add_argument("--preset", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--output", type=Path, default=Path("outputs/ablation"))
    parser.add_argument("--json", type=Path, default=RESULTS / "ablation.json")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    runs: dict[str, dict[int, dict]] = {v: {} for v in args.variants}
    for seed in args.seeds:
        cfg = embedded_config(seed=seed, preset=args.preset, opts=list(args.opts))
        for variant in args.variants:
            out = args.output / f"seed{seed}"
            done = out / variant / "record.json"
            if done.is_file():
                runs[variant][seed] = json.loads(done.read_text())
                logger.info("seed %d %s: reusing %s", seed, variant, done)
                continue
            record, _ = train_variant(cfg, variant, out, progress=False)  # writes record.json
            runs[variant][seed] = record
            logger.info(
                "seed %d %s: Rank-1 %.1f mAP %.1f",
                seed,
                variant,
                100 * record["rank1"],
                100 * record["mAP"],
            )

    summary = {}
    for by_seed in runs.values():
        for record in by_seed.values():
            record.pop("cmc", None)
    for variant, by_seed in runs.items():
        stats = {}
        for key in ("rank1", "mAP", "mINP", "train_and_eval_seconds"):
            values = [
                r[key] * (100 if key != "train_and_eval_seconds" else 1) for r in by_seed.values()
            ]
            stats[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "values": values,
            }
        summary[variant] = {"label": VARIANT_LABELS[variant], **stats}
    rows = [
        [
            s["label"],
            f"{s['rank1']['mean']:.1f} ± {s['rank1']['std']:.1f}",
            f"{s['mAP']['mean']:.1f} ± {s['mAP']['std']:.1f}",
            f"{s['mINP']['mean']:.1f} ± {s['mINP']['std']:.1f}",
            f"{s['train_and_eval_seconds']['mean']:.0f}",
        ]
        for s in summary.values()
    ]
    table = tabulate(
        rows, headers=["variant", "Rank-1", "mAP", "mINP", "seconds"], tablefmt="github"
    )
    print(table)
    first = next(iter(runs[args.variants[0]].values()))
    report = {
        "benchmark": "embedded procedural occluded benchmark (synthetic)",
        "seeds": args.seeds,
        "preset": args.preset,
        "overrides": list(args.opts),
        "settings": first["settings"],
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
        "note": "metrics in percent; mean and sample standard deviation over seeds; "
        "each seed changes both the generated data and the training seed",
        "summary": summary,
        "runs": {v: {str(s): r for s, r in by_seed.items()} for v, by_seed in runs.items()},
        "table": table,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    logger.info("wrote %s", args.json)


if __name__ == "__main__":
    main()
