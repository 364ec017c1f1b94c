"""Deployed (pose-free) retrieval by how much of the query person the pose estimator sees.

For trained runs, each test set's queries are put in groups by their number of keypoints (of
17) with confidence at or above the run's ``data.visibility_threshold``, read from the test
set's own keypoint files (BlazePose for Partial-REID); each group is ranked against the whole
gallery with the main branch as deployed (no pose). Says whether a model's occluded-query
result comes from the lightly or the heavily occluded queries, and, with ``--reference``, the
gain of one variant over the others per group, paired per seed.

    python benchmarks/by_visibility.py --runs RUN [RUN ...] [--targets NAME ...]
        [--edges 0 1 15 17 18] [--reference pgflkd] [--restore-from JSON ...] [--output JSON]
    python benchmarks/by_visibility.py --count FOLDER [FOLDER ...] [--edges ...]
        [--threshold 0.2] [--output JSON]

Each RUN is a folder written by ``pgflkd run`` / ``ablation.py`` (``config.yaml``, ``last.pth``
and ``record.json``, whose variant and seed name the run). ``--edges`` are the group bounds:
the default ``0 1 15 17 18`` gives no visible keypoint (the estimator found no person), 1-14,
15-16 and all 17 (on Partial-REID's occluded queries: 53, 54, 109 and 84 queries). Writes
``benchmarks/results/by_visibility.json``. ``--restore-from`` takes the per-run figures of
earlier reports of this script (same ``--edges``), so runs whose folders are gone can still be
paired with new ones. ``--count`` only counts the keypoint files (``*.json``, any depth) of
each folder per group, with no run: how often a training or test set has poses with few
visible joints.
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

import _suite
import numpy as np
from tabulate import tabulate

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.engine.evaluate import evaluate_query_groups
from torchreid_pgflkd.pose.formats import KeypointFormatError, read_keypoint_file

logger = logging.getLogger("by_visibility")
METRICS = ("rank1", "mAP", "mINP")


def group_names(edges: list[int]) -> list[str]:
    """``[0, 1, 15, 17, 18]`` -> ``["0", "1-14", "15-16", "17"]``; edges rise from 0 past 17."""
    if len(edges) < 2 or edges[0] != 0 or edges[-1] < 18 or edges != sorted(set(edges)):
        raise ValueError(f"--edges must rise strictly from 0 to at least 18, got {edges}")
    return [f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])]


def visibility_group(keypoints: np.ndarray, threshold: float, edges: list[int]) -> str:
    """The group of a ``(17, 3)`` pose: its count of joints with confidence >= ``threshold``."""
    if keypoints.shape != (17, 3) or not np.isfinite(keypoints).all():
        raise ValueError(f"a pose must be a finite (17, 3) array, got {keypoints.shape}")
    visible = int((keypoints[:, 2] >= threshold).sum())
    index = int(np.searchsorted(edges, visible, side="right")) - 1
    return group_names(edges)[index]


def count_groups(folder: Path, threshold: float, edges: list[int]) -> dict[str, Any]:
    """Every keypoint JSON file under ``folder``, counted per group of visible joints (an
    empty skeleton list counts as none visible); exits naming a file it cannot read."""
    files = sorted(folder.rglob("*.json"))
    if not files:
        raise SystemExit(f"--count {folder}: no keypoint files (*.json) under it")
    counts = dict.fromkeys(group_names(edges), 0)
    for path in files:
        try:
            counts[visibility_group(read_keypoint_file(path), threshold, edges)] += 1
        except (KeypointFormatError, ValueError) as exc:
            raise SystemExit(f"{path}: {exc}") from exc
    return {
        "files": len(files),
        "counts": counts,
        "percent": {k: 100 * n / len(files) for k, n in counts.items()},
    }


def read_run(run: Path) -> tuple[str, int]:
    """(variant, seed) of a run folder, from its ``record.json``."""
    path = run / "record.json"
    try:
        record = json.loads(path.read_text())
        return str(record["variant"]), int(record["settings"]["seed"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not the record of a finished run ({exc})") from exc


def evaluate_run(run: Path, targets: list[str] | None, edges: list[int]) -> dict[str, Any]:
    """Every asked-for target of ``run``: the whole set's figures and each group's."""
    for name in ("config.yaml", "last.pth"):
        if not (run / name).is_file():
            raise SystemExit(f"{run}: no {name} (not a folder written by a training run)")
    cfg = load_config(run / "config.yaml")
    names = targets or list(cfg.data.targets)
    unknown = sorted(set(names) - set(cfg.data.targets))
    if unknown:
        raise SystemExit(f"{run}: no test set {unknown}; it has {list(cfg.data.targets)}")
    cfg.defrost()
    cfg.data.targets = names  # only the test sets asked for are extracted and ranked
    cfg.freeze()
    datamanager = build.build_datamanager(cfg, train=False)
    engine = build.build_engine(cfg, datamanager, progress=False)
    ckpt_io.load_checkpoint(run / "last.pth", model=engine.model, restore_rng=False)
    results = engine.evaluate()
    threshold = float(cfg.data.visibility_threshold)
    out: dict[str, Any] = {}
    for name in names:
        q, g = engine.last_features[name]
        lookup = datamanager.test_keypoint_lookup(name, "query")
        labels = []
        for path in q["paths"]:
            try:
                labels.append(visibility_group(np.asarray(lookup(path)), threshold, edges))
            except ValueError as exc:
                raise SystemExit(f"{name}: the keypoints of query {path}: {exc}") from exc
        found = evaluate_query_groups(q, g, labels, cfg.test.metric)
        groups = {k: found[k] for k in group_names(edges) if k in found}  # fewest joints first
        out[name] = {
            "all": {k: results[name][k] for k in METRICS},
            "groups": groups,
        }
        for group, res in groups.items():
            logger.info(
                "%s %s, %s visible keypoints (%d queries): Rank-1 %.1f%%  mAP %.1f%%",
                run, name, group, res["num_queries"], 100 * res["rank1"], 100 * res["mAP"],
            )  # fmt: skip
    return out


def restored_runs(
    paths: list[Path], edges: list[int], targets: list[str] | None
) -> dict[str, dict[str, Any]]:
    """The runs of earlier reports of this script, each keeping only ``targets`` (all when
    None) and marked with the report it came from; exits on other edges or a missing set."""
    out: dict[str, dict[str, Any]] = {}
    for path, runs in _suite.load_reports(paths):
        theirs = json.loads(Path(path).read_text()).get("edges")
        if theirs != edges:
            raise SystemExit(f"--restore-from {path}: its groups have edges {theirs}, not {edges}")
        for key, run in runs.items():
            missing = sorted(set(targets or []) - set(run["targets"]))
            if missing:
                raise SystemExit(f"--restore-from {path}: run {key} has no test set {missing}")
            kept = {t: r for t, r in run["targets"].items() if not targets or t in targets}
            out[key] = {**run, "targets": kept, "restored_from": path}
    return out


def summarise(
    runs: dict[str, dict[str, Any]], reference: str | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per variant, test set and group: mean figures over seeds (percent), and with a
    ``reference`` the paired per-seed gain of the reference over the variant."""
    by_variant: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs.values():
        by_variant.setdefault(run["variant"], {})[run["seed"]] = run["targets"]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    reference_seeds = set(by_variant.get(reference or "", {}))
    for variant, by_seed in by_variant.items():
        summary[variant] = {}
        seeds = sorted(by_seed)
        common = [s for s in seeds if s in reference_seeds] if variant != reference else []
        for name in by_seed[seeds[0]]:
            for group in ["all", *by_seed[seeds[0]][name]["groups"]]:

                def figures(s: int, v: str = variant, t: str = name, gr: str = group) -> dict:
                    res = by_variant[v][s][t]
                    return res["all"] if gr == "all" else res["groups"][gr]

                cell: dict[str, Any] = {"seeds": seeds}
                for m in METRICS:
                    cell[m] = 100 * statistics.fmean(figures(s)[m] for s in seeds)
                if group != "all":
                    cell["num_queries"] = figures(seeds[0])["num_queries"]
                if common:
                    cell["gain_of_reference"] = {
                        m: [100 * (figures(s, reference)[m] - figures(s)[m]) for s in common]
                        for m in ("rank1", "mAP")
                    }
                summary[variant][f"{name}/{group}"] = cell
    return summary


def table(summary: dict[str, dict[str, dict[str, Any]]], reference: str | None) -> str:
    rows = []
    for variant, cells in summary.items():
        for key, c in cells.items():
            gain = c.get("gain_of_reference")
            rows.append([
                variant, key, c.get("num_queries", ""), f"{c['rank1']:.1f}", f"{c['mAP']:.1f}",
                "" if gain is None else
                f"{statistics.fmean(gain['rank1']):+.1f} / {statistics.fmean(gain['mAP']):+.1f}",
            ])  # fmt: skip
    headers = ["variant", "test set / visible keypoints", "queries", "Rank-1", "mAP",
               f"{reference} minus it (R1 / mAP)" if reference else ""]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github")


def main() -> None:
    parser = _suite.parser(__doc__, "by_visibility")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders")
    parser.add_argument("--targets", nargs="+", default=None, help="default: every test set")
    parser.add_argument("--edges", type=int, nargs="+", default=[0, 1, 15, 17, 18])
    parser.add_argument("--reference", default=None, help="a variant to pair the others with")
    _suite.add_restore_option(parser)
    parser.add_argument("--count", type=Path, nargs="+", default=[], metavar="FOLDER",
                        help="only count the keypoint files of these folders per group")
    parser.add_argument("--threshold", type=float, default=0.2,
                        help="--count: the visibility threshold (default 0.2, the config's)")
    args = parser.parse_args()  # fmt: skip
    _suite.setup_logging()
    try:
        group_names(args.edges)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if args.count:
        if args.runs or args.restore_from:
            parser.error("--count takes no runs")
        counts = {str(f): count_groups(f, args.threshold, args.edges) for f in args.count}
        rows = [[f, c["files"], *(f"{n} ({c['percent'][g]:.1f}%)" for g, n in c["counts"].items())]
                for f, c in counts.items()]  # fmt: skip
        text = tabulate(rows, headers=["folder", "files", *group_names(args.edges)],
                        tablefmt="github")  # fmt: skip
        print(text)
        report = {"edges": args.edges, "threshold": args.threshold, "counts": counts,
                  "table": text}  # fmt: skip
        _suite.write_report(report, args.output)
        return
    if not args.runs and not args.restore_from:
        parser.error("give run folders (--runs), earlier reports (--restore-from), or both")
    runs = restored_runs(args.restore_from, args.edges, args.targets)
    seen: dict[tuple[str, int], str] = {(r["variant"], r["seed"]): k for k, r in runs.items()}
    for run in args.runs:
        variant, seed = read_run(run)
        if (variant, seed) in seen:
            raise SystemExit(f"{run} and {seen[variant, seed]} are both {variant}, seed {seed}")
        seen[variant, seed] = str(run)
        runs[str(run)] = {
            "variant": variant,
            "seed": seed,
            "targets": evaluate_run(run, args.targets, args.edges),
        }
    sets = {tuple(sorted(r["targets"])) for r in runs.values()}
    if len(sets) > 1:
        raise SystemExit(f"the runs hold different test sets {sorted(sets)}: pass --targets")
    if args.reference and args.reference not in {r["variant"] for r in runs.values()}:
        raise SystemExit(f"--reference {args.reference}: no run of that variant")
    summary = summarise(runs, args.reference)
    text = table(summary, args.reference)
    print(text)
    report = {
        "edges": args.edges,
        "groups": group_names(args.edges),
        "note": "deployed main branch, no pose; queries grouped by their count of keypoints at "
        "or above the run's data.visibility_threshold; each group ranked against the whole "
        "gallery; summary in percent, gains paired per seed",
        "runs": runs,
        "summary": summary,
        "table": text,
    }
    _suite.write_report(report, args.output)


if __name__ == "__main__":
    main()
