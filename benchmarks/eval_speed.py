"""Evaluation speed: torchreid's Python evaluate_rank vs ours (dense, blocked, faiss).

Same synthetic inputs, same process, same run. Sizes: Occluded-Duke (2210 x 17661),
Market-1501 (3368 x 19732) and Market-1501 + 500k distractors (3368 x 520,000, 2048-d; ours
only). Features have id and camera structure (each id seen by 2-4 cameras, queries share
cameras with their gallery images so the same-id-same-camera rule removes items, Market-style
distractors with id 0). Writes ``benchmarks/results/eval_speed.json``.

    python benchmarks/eval_speed.py                 # full run
    python benchmarks/eval_speed.py --scale 0.1 --skip-500k   # quick
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import time
import tracemalloc
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
OUT = Path(__file__).resolve().parent / "results" / "eval_speed.json"
SIZES = {  # name: (queries, gallery, query ids, gallery ids, cameras, distractors)
    "occluded_duke": (2210, 17661, 519, 1110, 8, 0),
    "market1501": (3368, 19732, 750, 750, 6, 2793),
    "market1501_500k": (3368, 520000, 750, 750, 6, 520000 - 16939),
}


def make_problem(nq, ng, nq_ids, ng_ids, ncam, ndis, dim, seed=0, chunk=65536):
    """Synthetic (query feats, gallery feats, q_pids, g_pids, q_camids, g_camids), float32."""
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


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def peak_traced_mb(fn, *args, **kwargs) -> float:
    tracemalloc.start()
    fn(*args, **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def bench_size(name, spec, scale, dim, with_torchreid, budget_mb):
    nq, ng, nqi, ngi, ncam, ndis = spec
    nq, ng, ndis = max(10, int(nq * scale)), max(50, int(ng * scale)), int(ndis * scale)
    ngi, nqi = max(5, int(ngi * min(1.0, scale * 4))), max(5, int(nqi * min(1.0, scale * 4)))
    (qf, gf, qp, gp, qc, gc), t_gen = timed(make_problem, nq, ng, nqi, ngi, ncam, ndis, dim)
    logger.info("%s: %d x %d x %d generated in %.1fs", name, nq, ng, dim, t_gen)
    rec = {"num_query": nq, "num_gallery": ng, "dim": dim, "generate_s": t_gen}
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    if with_torchreid:
        dist, rec["distance_matrix_s"] = timed(lambda: pairwise_distance(q, g, "cosine").numpy())
        _, rec["full_argsort_s"] = timed(np.argsort, dist, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (ref_cmc, ref_map), rec["torchreid_python_s"] = timed(
                torchreid_evaluate_rank(), dist, qp, gp, qc, gc, max_rank=50, use_cython=False
            )
        (cmc, m_ap, m_inp), rec["ours_evaluate_rank_s"] = timed(
            evaluate_rank, dist, qp, gp, qc, gc, max_rank=50
        )
        rec["ours_evaluate_rank_peak_traced_mb"] = peak_traced_mb(
            evaluate_rank, dist, qp, gp, qc, gc, max_rank=50
        )
        rec["speedup_evaluate_rank"] = rec["torchreid_python_s"] / rec["ours_evaluate_rank_s"]
        rec["max_abs_cmc_diff_vs_torchreid"] = float(np.abs(cmc - ref_cmc).max())
        rec["abs_mAP_diff_vs_torchreid"] = abs(m_ap - float(ref_map))
        rec["torchreid"] = {"rank1": float(ref_cmc[0]), "mAP": float(ref_map)}
        del dist
    methods = ("dense", "blocked", "faiss") if with_torchreid else ("blocked", "faiss")
    for method in methods:
        res, secs = timed(
            evaluate_features,
            q,
            g,
            qp,
            gp,
            qc,
            gc,
            metric="cosine",
            method=method,
            memory_budget_mb=budget_mb,
            progress=True,
        )
        rec[f"features_{method}_s"] = secs
        rec[f"features_{method}"] = {k: res[k] for k in ("rank1", "rank5", "mAP", "mINP")}
        if with_torchreid:
            rec[f"speedup_features_{method}_incl_distances"] = rec["torchreid_python_s"] / secs
        logger.info("%s %s: %.1fs %s", name, method, secs, rec[f"features_{method}"])
    rec["ru_maxrss_mb_so_far"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every size by this")
    ap.add_argument("--skip-500k", action="store_true", help="skip the 520k-gallery size")
    ap.add_argument("--only-500k", action="store_true", help="run the 520k-gallery size only")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--budget-mb", type=float, default=2048, help="evaluate_features budget")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "gpu": "not measured: no GPU on this machine (torch.cuda.is_available() is "
        f"{torch.cuda.is_available()})",
        "args": {k: str(v) for k, v in vars(args).items()},
        "sizes": {},
    }
    for name, spec in SIZES.items():
        big = name.endswith("500k")
        if (big and args.skip_500k) or (args.only_500k and not big):
            continue
        report["sizes"][name] = bench_size(
            name, spec, args.scale, args.dim, not big, args.budget_mb
        )
        write_results_json(report, args.out)  # partial results survive a later failure
    report["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_results_json(report, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
