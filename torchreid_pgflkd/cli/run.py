"""``pgflkd run``: the main job. Train the plain BNNeck baseline and PGFL-KD on the same
backbone, evaluate both pose-free, and print the comparison.

``--benchmark embedded`` (default) generates the procedural occluded benchmark and tests on
its occluded queries. ``--benchmark cuhk03`` trains on real CUHK03 crops with BlazePose
keypoints and tests on 100 other CUHK03 people and on Partial-REID (occluded and partial
queries). ``--validate`` runs on the validation split, where choices are made: on CUHK03 it
trains on 643 of the training people and evaluates on the 100 held out; on the embedded
benchmark it draws fresh people and occluders (data seed 1000 + ``--seed``). ``--tuned``
trains each model with its own choices from ``benchmarks/tune.py`` reports (made on the
validation split, the same number of tries per model).

Writes to ``--output``: ``results.json``, ``<variant>/last.pth`` (+ config), ``cmc.png``,
``ranked_list.png``, ``activations.png`` (pose maps and each branch's activation over a few
occluded queries) and, on real data, ``train_poses.png`` (keypoints and part maps of a few
training crops as the model sees them).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from torchreid_pgflkd.config.presets import VALIDATE_HELP
from torchreid_pgflkd.utils.io import write_json

HELP = "main job: baseline vs PGFL-KD on the embedded occluded benchmark (or --benchmark cuhk03)"
BENCHMARKS = ("embedded", "cuhk03")
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark", choices=BENCHMARKS, default="embedded", help="generated or real images"
    )
    parser.add_argument("--output", default="", help="results folder (outputs/<benchmark>)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument(
        "--preset", choices=("cpu", "gpu"), default="cpu", help="embedded: cpu = minutes on 2 cores"
    )
    parser.add_argument(
        "--data-root",
        default="",
        help="embedded: where it is generated; cuhk03: the folder holding cuhk03_pair1/, "
        "partial_reid/ and keypoints/blazepose/ (default reid-data)",
    )
    parser.add_argument("--validate", action="store_true", help=VALIDATE_HELP)
    parser.add_argument(
        "--variants",
        default="baseline,pgflkd",
        help="comma-separated model variants (baseline, pgflkd, +feb, +sab, +kd, +interaction)",
    )
    parser.add_argument(
        "--tuned",
        nargs="+",
        default=[],
        metavar="JSON",
        help="benchmarks/tune.py reports (this benchmark's validation split): each model trains "
        "with its own chosen settings (end the list with -- before KEY VALUE overrides)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")


def run(args: argparse.Namespace) -> int:
    from torchreid_pgflkd.config.experiment import (
        model_configs,
        model_of,
        train_variant,
        tuned_overrides,
    )

    opts = list(args.opts[1:] if args.opts[:1] == ["--"] else args.opts)
    if args.data_root:
        opts += ["data.root", args.data_root]
    try:
        tuned = tuned_overrides(args.tuned, args.benchmark)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    cfgs = model_configs(
        args.benchmark, tuned, seed=args.seed, preset=args.preset, validate=args.validate, opts=opts
    )
    default_out = f"outputs/{args.benchmark}" + ("_val" if args.validate else "")
    output = Path(args.output or default_out)
    progress = not args.no_progress
    start = time.perf_counter()
    records, engines = {}, {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        cfg = cfgs[model_of(variant)]
        records[variant], engines[variant] = train_variant(cfg, variant, output, progress=progress)
    summary = {
        "command": "pgflkd run",
        "benchmark": args.benchmark + (" (validation)" if args.validate else ""),
        "seed": args.seed,
        "preset": args.preset,
        "tuned": {"reports": list(args.tuned), "overrides": tuned},
        "total_seconds": time.perf_counter() - start,
        "models": records,
    }
    if "baseline" in records and "pgflkd" in records:
        b, p = records["baseline"], records["pgflkd"]
        summary["gain_points"] = {k: 100 * (p[k] - b[k]) for k in ("rank1", "mAP", "mINP")}
        summary["gain_points_per_target"] = {
            name: {k: 100 * (p["targets"][name][k] - res[k]) for k in ("rank1", "mAP", "mINP")}
            for name, res in b["targets"].items()
        }
    write_json(summary, output / "results.json")
    _figures(records, engines, output)
    print(_table(records))
    for name, g in summary.get("gain_points_per_target", {}).items():
        print(
            f"PGFL-KD vs baseline on {name}: Rank-1 {g['rank1']:+.1f}, mAP {g['mAP']:+.1f}, "
            f"mINP {g['mINP']:+.1f} points (seed {args.seed})"
        )
    print(f"results, checkpoints and figures in {output} ({summary['total_seconds']:.0f} s)")
    return 0


def _table(records: dict) -> str:
    from tabulate import tabulate

    rows = [
        [
            r["label"],
            name,
            f"{100 * t['rank1']:.1f}",
            f"{100 * t['rank5']:.1f}",
            f"{100 * t['mAP']:.1f}",
            f"{100 * t['mINP']:.1f}",
            f"{r['train_and_eval_seconds']:.0f}",
            f"{r['deployed']['params'] / 1e6:.2f}",
            f"{r['deployed']['gflops']:.3f}",
        ]
        for r in records.values()
        for name, t in r["targets"].items()
    ]
    headers = ["model (MB at test, no pose)", "test set", "Rank-1", "Rank-5", "mAP", "mINP",
               "train+eval s", "params M", "GFLOPs/img"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github")


def _figures(records: dict, engines: dict, output: Path) -> None:
    """CMC plot, a ranked-list image (PGFL-KD's) and the pose / branch-activation images."""
    from torchreid_pgflkd.evaluation import pairwise_distance, plot_cmc, save_ranked_lists
    from torchreid_pgflkd.evaluation.activations import save_activation_figure

    curves = {
        f"{r['label']}" + (f" | {t}" if len(r["targets"]) > 1 else ""): res["cmc"]
        for r in records.values()
        for t, res in r["targets"].items()
    }
    plot_cmc(curves, output / "cmc.png")
    name = "pgflkd" if "pgflkd" in engines else next(iter(engines))
    engine = engines[name]
    dm = engine.datamanager
    # The most occluded test set is the one to look at: Partial-REID's occluded queries if there.
    dataset = next(
        (t for t in engine.last_results if "occluded" in t), next(iter(engine.last_results))
    )
    q, g = engine.last_features[dataset]  # extracted by the final evaluation
    save_ranked_lists(
        pairwise_distance(q["feat"], g["feat"], "euclidean"),
        q["paths"], g["paths"], q["pids"], g["pids"], q["camids"], g["camids"],
        output / "ranked_list.png",
    )  # fmt: skip
    models = {n: e.model for n, e in engines.items()}
    figure = dict(preprocess=dm.preprocess_pil_img, image_hw=(dm.height, dm.width))
    meta = Path(q["paths"][0]).parent.parent / "meta.json"
    if meta.is_file():  # the embedded benchmark knows how occluded each query is
        paths, keypoints = _most_occluded_queries(meta.parent, 6)
    else:
        lookup = dm.test_keypoint_lookup(dataset, "query")
        paths = q["paths"][:: max(1, len(q["paths"]) // 6)][:6]
        keypoints = [lookup(p) for p in paths]
    save_activation_figure(models, paths, keypoints, output / "activations.png", **figure)
    if not meta.is_file():  # real crops: how the estimator's keypoints land on training images
        samples = dm.train_set.samples[:: max(1, len(dm.train_set.samples) // 6)][:6]
        lookups = dm.train_set.keypoints
        kps = [lookups[min(s[3], len(lookups) - 1)](s[0]) for s in samples]
        paths = [s[0] for s in samples]
        save_activation_figure(models, paths, kps, output / "train_poses.png", **figure)


def _most_occluded_queries(dataset_dir: Path, count: int):
    """The ``count`` queries with the largest occluded share of the body, and their keypoints."""
    from torchreid_pgflkd.data.synthetic import keypoint_path
    from torchreid_pgflkd.pose.formats import read_kpr_json

    meta = json.loads((dataset_dir / "meta.json").read_text())
    queries = sorted(meta["images"]["query"], key=lambda e: -e["occluded_fraction"])[:count]
    paths = [dataset_dir / "query" / e["file"] for e in queries]
    kps = [read_kpr_json(keypoint_path(dataset_dir, "query", e["file"])) for e in queries]
    return paths, kps
