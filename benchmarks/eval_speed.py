"""Evaluation speed: ours vs torchreid's compiled Cython ``evaluate_cy`` (and its Python path).

Same inputs, same process, same run; speed is reported as ratios (the machine is shared and
noisy, so absolute seconds drift). Standard sizes: Occluded-Duke (2,210 x 17,661) and
Market-1501 (3,368 x 19,732), each with three distance matrices: uniform random float32
(as in the issue), cosine distances of synthetic features with id/camera structure, and
cosine distances of low-rank features with many exact duplicates (ties everywhere).
``--size 500k``: Market-1501 + 500k distractors (3,368 x 520,000, 2048-d), evaluated from
features with the blocked exact path, checked against the dense path on a query subsample.

The Cython anchor is built at run time into a temporary folder from
``../shared/anchors/torchreid_rank_cy/rank_cy.pyx`` (needs ``cython`` and a C compiler; it
is skipped with a message when either is missing). It is never part of the project.

    python benchmarks/eval_speed.py                  # standard sizes -> results/eval_speed.json
    python benchmarks/eval_speed.py --size 500k      # -> results/eval_speed_500k.json
    python benchmarks/eval_speed.py --scale 0.1 --output /tmp/quick.json   # quick look
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from torchreid_pgflkd.compat import torchreid_evaluate_rank
from torchreid_pgflkd.evaluation import (
    evaluate_features,
    evaluate_rank,
    pairwise_distance,
    write_results_json,
)

logger = logging.getLogger("eval_speed")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ANCHOR = ROOT.parent / "shared" / "anchors" / "torchreid_rank_cy"
SIZES = {  # name: (queries, gallery, query ids, gallery ids, cameras, distractors)
    "occluded_duke": (2210, 17661, 519, 1110, 8, 0),
    "market1501": (3368, 19732, 750, 750, 6, 2793),
    "market1501_500k": (3368, 520000, 750, 750, 6, 520000 - 16939),
}
_SETUP = """
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
ext = Extension("rank_cy", ["rank_cy.pyx"], include_dirs=[np.get_include()])
setup(ext_modules=cythonize([ext], quiet=True), script_args=["build_ext", "--inplace", "-q"])
"""


def build_anchor(anchor_dir: Path, build_dir: Path):
    """torchreid's ``evaluate_cy`` compiled into ``build_dir``, or None (with the reason)."""
    pyx = anchor_dir / "rank_cy.pyx"
    if not pyx.is_file():
        logger.warning("Cython anchor skipped: %s not found", pyx)
        return None, f"{pyx} not found"
    if importlib.util.find_spec("Cython") is None:
        logger.warning("Cython anchor skipped: cython is not installed (pip install cython)")
        return None, "cython not installed"
    shutil.copy(pyx, build_dir / "rank_cy.pyx")
    (build_dir / "setup.py").write_text(_SETUP)
    proc = subprocess.run(
        [sys.executable, "setup.py"], cwd=build_dir, capture_output=True, text=True
    )
    if proc.returncode != 0:
        logger.warning("Cython anchor skipped: build failed\n%s", proc.stderr[-2000:])
        return None, "build failed: " + proc.stderr[-300:]
    sys.path.insert(0, str(build_dir))
    return importlib.import_module("rank_cy").evaluate_cy, None


def make_problem(nq, ng, nq_ids, ng_ids, ncam, ndis, dim, seed=0, chunk=65536):
    """Synthetic (query feats, gallery feats, q_pids, g_pids, q_camids, g_camids), float32.

    Each id is seen by 2-4 cameras, queries share cameras with their gallery images (so the
    same-id-same-camera rule removes items), distractors have id 0 (Market style).
    """
    rng = np.random.default_rng(seed)
    cams_of = [rng.choice(ncam, size=rng.integers(2, 5), replace=False) for _ in range(ng_ids)]
    n_real = ng - ndis
    g_pids = np.concatenate([rng.integers(1, ng_ids + 1, n_real), np.zeros(ndis, np.int64)])
    g_cam = np.array([rng.choice(cams_of[p - 1]) if p else rng.integers(ncam) for p in g_pids])
    q_pids = rng.integers(1, nq_ids + 1, nq)
    q_cam = np.array([rng.choice(cams_of[p - 1]) for p in q_pids])
    centres = rng.standard_normal((ng_ids + 1, dim), dtype=np.float32)
    cam_vec = 0.8 * rng.standard_normal((ncam, dim), dtype=np.float32)

    def feats(pids, cams):
        out = np.empty((len(pids), dim), dtype=np.float32)
        for s in range(0, len(pids), chunk):
            p, c = pids[s : s + chunk], cams[s : s + chunk]
            noise = rng.standard_normal((len(p), dim), dtype=np.float32)
            noise *= 4.5
            noise += cam_vec[c]
            # distractors (id 0) get their own random "person"
            noise += np.where(
                (p == 0)[:, None], rng.standard_normal(noise.shape, np.float32), centres[p]
            )
            out[s : s + chunk] = noise
        return out

    return feats(q_pids, q_cam), feats(g_pids, g_cam), q_pids, g_pids, q_cam, g_cam


def distance_kinds(nq, ng, nqi, ngi, ncam, ndis, seed=0):
    """{kind: (Q, G) float32 distances} and the shared ids/cameras."""
    qf, gf, qp, gp, qc, gc = make_problem(nq, ng, nqi, ngi, ncam, ndis, 256, seed)
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    rng = np.random.default_rng(seed + 1)
    # low rank (8), rounded to a coarse grid, a third of the gallery duplicated: many ties
    basis = rng.standard_normal((8, 256), dtype=np.float32)
    low_q = np.round(qf[:, :8] / 4, 1) @ basis
    low_g = np.round(gf[:, :8] / 4, 1) @ basis
    low_g[1::3] = low_g[0::3][: len(low_g[1::3])]
    kinds = {
        "random": rng.random((nq, ng), dtype=np.float32),
        "features": pairwise_distance(q, g, "cosine").numpy(),
        "lowrank_ties": pairwise_distance(
            torch.from_numpy(low_q), torch.from_numpy(low_g), "euclidean"
        ).numpy(),
    }
    return kinds, (q, g), (qp, gp, qc, gc)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def timed_cpu(fn, *args, **kwargs):
    """(result, wall seconds, process CPU seconds): CPU time is what a busy machine distorts
    least (a descheduled process accrues none)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def diff(a, b) -> dict[str, float]:
    """Largest |CMC| difference and |mAP| difference of two (cmc, mAP, ...) results."""
    return {
        "max_abs_cmc": float(np.abs(np.asarray(a[0]) - np.asarray(b[0])).max()),
        "abs_mAP": abs(float(a[1]) - float(b[1])),
    }


def bench_rank(dist, ids, cython, repeats, py_queries) -> dict:
    """Ours vs Cython (interleaved, ``repeats`` times) and torchreid's Python path."""
    rec: dict = {}
    ours_s, stable_s, cy_s, ours_cpu, cy_cpu = [], [], [], [], []
    for _ in range(repeats):
        ours, t, c = timed_cpu(evaluate_rank, dist, *ids, max_rank=50)
        ours_s.append(t)
        ours_cpu.append(c)
        stable, t = timed(evaluate_rank, dist, *ids, max_rank=50, ties="stable")
        stable_s.append(t)
        if cython is not None:
            ref, t, c = timed_cpu(cython, dist, *ids, 50, False)
            cy_s.append(t)
            cy_cpu.append(c)
    rec["ours_s"], rec["ours_stable_ties_s"], rec["ours_cpu_s"] = ours_s, stable_s, ours_cpu
    rec["ours"] = {"rank1": float(ours[0][0]), "mAP": ours[1], "mINP": ours[2]}
    if cython is not None:
        rec["cython_s"], rec["cython_cpu_s"] = cy_s, cy_cpu
        rec["ratio_cython_over_ours_best"] = min(cy_s) / min(ours_s)
        rec["ratio_cython_over_ours_median"] = float(np.median(np.divide(cy_s, ours_s)))
        rec["ratio_cython_over_ours_cpu_best"] = min(cy_cpu) / min(ours_cpu)
        rec["ratio_cython_over_ours_stable_best"] = min(cy_s) / min(stable_s)
        rec["diff_vs_cython"] = diff(ours, ref)
        rec["diff_stable_ties_vs_cython"] = diff(stable, ref)
    if py_queries:
        n = min(py_queries, dist.shape[0])
        sub = (dist[:n], ids[0][:n], ids[1], ids[2][:n], ids[3])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref, t_py = timed(torchreid_evaluate_rank(), *sub, max_rank=50, use_cython=False)
        mine, t = timed(evaluate_rank, *sub, max_rank=50)
        rec["torchreid_python"] = {
            "num_query": n,
            "python_s": t_py,
            "ours_s": t,
            "ratio_python_over_ours": t_py / t,
            "diff_vs_python": diff(mine, ref),
        }
    logger.info(
        "ours best %.3fs (stable ties %.3fs), cython best %s, ratio %s (CPU time %s)",
        min(ours_s),
        min(stable_s),
        f"{min(cy_s):.3f}s" if cy_s else "-",
        f"{rec.get('ratio_cython_over_ours_best', float('nan')):.2f}",
        f"{rec.get('ratio_cython_over_ours_cpu_best', float('nan')):.2f}",
    )
    return rec


def standard(args, cython) -> dict:
    sizes = {}
    for name in ("occluded_duke", "market1501"):
        nq, ng, nqi, ngi, ncam, ndis = SIZES[name]
        s = args.scale
        nq, ng, ndis = max(10, int(nq * s)), max(100, int(ng * s)), int(ndis * s)
        kinds, (q, g), ids = distance_kinds(nq, ng, nqi, ngi, ncam, ndis)
        rec = {"num_query": nq, "num_gallery": ng, "kinds": {}}
        for kind, dist in kinds.items():
            logger.info("%s %s: %d x %d", name, kind, nq, ng)
            py_q = args.python_queries if kind == "random" else 0
            rec["kinds"][kind] = bench_rank(dist, ids, cython, args.repeats, py_q)
        for method in ("dense", "blocked", "faiss"):
            res = evaluate_features(
                q, g, *ids, metric="cosine", method=method, progress=False, ties="torchreid"
            )
            rec[f"features_{method}_s"] = res["seconds"]
            rec[f"features_{method}_mAP"] = res["mAP"]
        sizes[name] = rec
    return sizes


def gemm_reference(q: torch.Tensor, g: torch.Tensor, flops: float) -> dict:
    """Wall and CPU seconds of the bare float32 GEMM alone, scaled to ``flops``."""
    qs, gs = q[:256], g[:131072]
    torch.mm(gs[:8192], qs.t())  # warm up
    t0, c0 = time.perf_counter(), time.process_time()
    torch.mm(gs, qs.t())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    scale = flops / (2 * qs.shape[0] * gs.shape[0] * gs.shape[1])
    return {"wall_s_scaled": wall * scale, "cpu_s_scaled": cpu * scale, "sample_scale": scale}


def big(args, cython) -> dict:
    nq, ng, nqi, ngi, ncam, ndis = SIZES["market1501_500k"]
    s = args.scale
    nq, ng, ndis = max(10, int(nq * s)), max(100, int(ng * s)), int(ndis * s)
    (qf, gf, qp, gp, qc, gc), t_gen = timed(make_problem, nq, ng, nqi, ngi, ncam, ndis, 2048)
    logger.info("generated %d x %d x 2048 in %.0fs", nq, ng, t_gen)
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    rec = {"num_query": nq, "num_gallery": ng, "dim": 2048, "generate_s": t_gen}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load0 = os.getloadavg()
    res = evaluate_features(
        q, g, qp, gp, qc, gc, metric="cosine", method="blocked", ties="stable", progress=True
    )
    keys = ("rank1", "rank5", "mAP", "mINP", "seconds", "ranking_seconds")
    rec["blocked_stable_ties"] = {k: res[k] for k in keys}
    rec["blocked_stable_ties"].update(
        cpu_seconds=res["cpu_seconds"],
        ranking_cpu_seconds=res["ranking_cpu_seconds"],
        cpu_share_of_2_cores=res["cpu_seconds"] / (2 * res["seconds"]),
        # what the wall time would be with both cores to ourselves: the GEMM and the
        # normalisation use both threads, the ranking one
        quiet_2core_estimate_s=res["ranking_cpu_seconds"]
        + (res["cpu_seconds"] - res["ranking_cpu_seconds"]) / 2,
        load_average_before=load0,
        load_average_after=os.getloadavg(),
    )
    rec["ru_maxrss_mb_before_eval"] = rss0
    rec["ru_maxrss_mb_after_eval"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logger.info("blocked (stable ties): %s", rec["blocked_stable_ties"])
    rec["gemm_only"] = gemm_reference(q, g, nq * ng * 2048 * 2)

    # equality on a query subsample: blocked vs the dense matrix ranked by evaluate_rank
    n = min(args.check_queries, nq)
    ids = (qp[:n], gp, qc[:n], gc)
    dist = pairwise_distance(q[:n], g, "cosine").numpy()
    check = {"num_query": n}
    for ties in ("stable", "torchreid"):
        blk = evaluate_features(
            q[:n], g, *ids, metric="cosine", method="blocked", ties=ties, progress=False
        )
        dense = evaluate_rank(dist, *ids, max_rank=50, ties=ties)
        check[f"blocked_vs_dense_{ties}"] = diff((blk["cmc"], blk["mAP"]), dense)
        check[f"blocked_{ties}_s"] = blk["seconds"]
        if ties == "torchreid" and cython is not None:
            ref, check["cython_s"] = timed(cython, dist, *ids, 50, False)
            check["dense_torchreid_vs_cython"] = diff(dense, ref)
            check["dense_stable_vs_cython"] = diff(
                evaluate_rank(dist, *ids, max_rank=50, ties="stable"), ref
            )
    rec["subsample_check"] = check
    return {"market1501_500k": rec}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("standard", "500k"), default="standard")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the sizes by this")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (best is reported)")
    ap.add_argument(
        "--python-queries", type=int, default=300, help="queries for torchreid's Python path"
    )
    ap.add_argument("--check-queries", type=int, default=100, help="500k: dense check queries")
    ap.add_argument("--anchor-dir", type=Path, default=ANCHOR)
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    default = "eval_speed_500k.json" if args.size == "500k" else "eval_speed.json"
    out = args.output or RESULTS / default
    report = {
        "command": " ".join(["python", "benchmarks/eval_speed.py", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "gpu": f"not used (torch.cuda.is_available() is {torch.cuda.is_available()})",
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory(prefix="rank_cy_") as tmp:
        cython, why = build_anchor(args.anchor_dir, Path(tmp))
        report["cython_anchor"] = "built" if cython else f"skipped: {why}"
        sizes = big(args, cython) if args.size == "500k" else standard(args, cython)
    report["sizes"] = sizes
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_results_json(report, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
