"""``pgflkd run``: the main job. Generate the embedded occluded benchmark, train the plain
BNNeck baseline and PGFL-KD on the same backbone, evaluate both pose-free on the occluded
queries, and print the comparison.

Writes to ``--output``: ``results.json``, ``<variant>/last.pth`` (+ config), ``cmc.png``,
``ranked_list.png`` and ``activations.png`` (pose maps and each branch's activation over a
few occluded queries).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from torchreid_pgflkd.cli import common

HELP = "main job: baseline vs PGFL-KD on the embedded occluded benchmark (no data needed)"
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="outputs/embedded", help="results folder")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument(
        "--preset", choices=("cpu", "gpu"), default="cpu", help="cpu: minutes on 2 cores"
    )
    parser.add_argument("--data-root", default="", help="where the benchmark is generated")
    parser.add_argument(
        "--variants",
        default="baseline,pgflkd",
        help="comma-separated model variants (baseline, pgflkd, +feb, +sab, +kd, +interaction)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")


def run(args: argparse.Namespace) -> int:
    from torchreid_pgflkd.experiments.embedded import embedded_config, train_variant

    output = Path(args.output)
    opts = list(args.opts)
    if args.data_root:
        opts += ["data.root", args.data_root]
    cfg = embedded_config(seed=args.seed, preset=args.preset, opts=opts)
    progress = not args.no_progress
    start = time.perf_counter()
    records, engines = {}, {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        records[variant], engines[variant] = train_variant(cfg, variant, output, progress=progress)
    summary = {
        "command": "pgflkd run",
        "seed": args.seed,
        "preset": args.preset,
        "total_seconds": time.perf_counter() - start,
        "models": records,
    }
    if "baseline" in records and "pgflkd" in records:
        b, p = records["baseline"], records["pgflkd"]
        summary["gain_points"] = {k: 100 * (p[k] - b[k]) for k in ("rank1", "mAP", "mINP")}
    common.write_json(summary, output / "results.json")
    _figures(records, engines, output)
    print(_table(records))
    if "gain_points" in summary:
        g = summary["gain_points"]
        print(
            f"PGFL-KD vs baseline: Rank-1 {g['rank1']:+.1f}, mAP {g['mAP']:+.1f}, "
            f"mINP {g['mINP']:+.1f} points (seed {args.seed})"
        )
    print(f"results, checkpoints and figures in {output} ({summary['total_seconds']:.0f} s)")
    return 0


def _table(records: dict) -> str:
    from tabulate import tabulate

    rows = [
        [
            r["label"],
            f"{100 * r['rank1']:.1f}",
            f"{100 * r['rank5']:.1f}",
            f"{100 * r['mAP']:.1f}",
            f"{100 * r['mINP']:.1f}",
            f"{r['train_and_eval_seconds']:.0f}",
            f"{r['deployed']['params'] / 1e6:.2f}",
            f"{r['deployed']['gflops']:.3f}",
        ]
        for r in records.values()
    ]
    headers = ["model (MB at test, no pose)", "Rank-1", "Rank-5", "mAP", "mINP",
               "train+eval s", "params M", "GFLOPs/img"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github")


def _figures(records: dict, engines: dict, output: Path) -> None:
    """CMC plot, a ranked-list image (PGFL-KD's) and the pose / branch-activation image."""
    from torchreid_pgflkd.evaluation import pairwise_distance, plot_cmc, save_ranked_lists
    from torchreid_pgflkd.evaluation.activations import save_activation_figure

    plot_cmc({r["label"]: r["cmc"] for r in records.values()}, output / "cmc.png")
    name = "pgflkd" if "pgflkd" in engines else next(iter(engines))
    engine = engines[name]
    (dataset,) = engine.last_results
    dm = engine.datamanager
    q, g = engine.last_features[dataset]  # extracted by the final evaluation
    save_ranked_lists(
        pairwise_distance(q["feat"], g["feat"], "euclidean"),
        q["paths"], g["paths"], q["pids"], g["pids"], q["camids"], g["camids"],
        output / "ranked_list.png",
    )  # fmt: skip
    paths, keypoints = _most_occluded_queries(Path(q["paths"][0]).parent.parent, 6)
    save_activation_figure(
        {n: e.model for n, e in engines.items()},
        paths,
        keypoints,
        output / "activations.png",
        preprocess=dm.preprocess_pil_img,
        image_hw=(dm.height, dm.width),
    )


def _most_occluded_queries(dataset_dir: Path, count: int):
    """The ``count`` queries with the largest occluded share of the body, and their keypoints."""
    from torchreid_pgflkd.data.synthetic import keypoint_path
    from torchreid_pgflkd.pose.formats import read_kpr_json

    meta = json.loads((dataset_dir / "meta.json").read_text())
    queries = sorted(meta["images"]["query"], key=lambda e: -e["occluded_fraction"])[:count]
    paths = [dataset_dir / "query" / e["file"] for e in queries]
    kps = [read_kpr_json(keypoint_path(dataset_dir, "query", e["file"])) for e in queries]
    return paths, kps
