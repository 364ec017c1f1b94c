"""Exact ReID evaluation straight from features, in blocks that fit a memory budget.

Three ways to get the same numbers:

- ``dense``: the whole (Q, G) distance matrix, then :func:`evaluate_rank` (the only way that
  supports k-reciprocal re-ranking);
- ``blocked``: query blocks of distances computed with torch (on ``device``, a GPU when there
  is one), each block ranked exactly by counting gallery items closer than each true match;
- ``faiss``: the same counting, with each block's distances from faiss's exact brute-force
  (flat) kernels instead of torch: no approximate index is involved.

Distances follow torchreid's ``compute_distance_matrix``: ``cosine`` is ``1 - <q/|q|, g/|g|>``
and ``euclidean`` is the *squared* Euclidean distance.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from torchreid_pgflkd.evaluation.checks import check_features, check_ids, check_max_rank
from torchreid_pgflkd.evaluation.rank import GalleryIndex, RankAccumulator, rank_block

logger = logging.getLogger(__name__)

METRICS = ("cosine", "euclidean")
METHODS = ("auto", "dense", "blocked", "faiss")
# Worst-case bytes per (query, gallery) entry of one ranked block: the float32 distances plus
# the counting temporaries (mask, nonzero indices, packed and sorted copies).
_BYTES_PER_ENTRY = 48


def pairwise_distance(query: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    """(Q, D) x (G, D) -> (Q, G) distances, torchreid's definitions (see module docstring)."""
    if metric == "cosine":
        return 1 - F.normalize(query, p=2, dim=1) @ F.normalize(gallery, p=2, dim=1).t()
    q2 = query.pow(2).sum(1, keepdim=True)
    g2 = gallery.pow(2).sum(1, keepdim=True).t()
    return torch.addmm(q2 + g2, query, gallery.t(), beta=1, alpha=-2)


def _rerank(qf: torch.Tensor, gf: torch.Tensor, metric: str) -> np.ndarray:
    from torchreid_pgflkd import compat

    re_ranking = compat.submodule("utils.rerank").re_ranking
    qg = pairwise_distance(qf, gf, metric).cpu().numpy()
    qq = pairwise_distance(qf, qf, metric).cpu().numpy()
    gg = pairwise_distance(gf, gf, metric).cpu().numpy()
    return re_ranking(qg, qq, gg)


def _faiss_blocks(qf: torch.Tensor, gf: torch.Tensor, metric: str, step: int):
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency here
        raise ImportError(
            "method='faiss' needs faiss: pip install faiss-cpu (or faiss-gpu)"
        ) from exc
    q = qf.detach().cpu().float().numpy()
    g = np.ascontiguousarray(gf.detach().cpu().float().numpy())
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        kind = faiss.METRIC_INNER_PRODUCT
    else:
        kind = faiss.METRIC_L2
    for start in range(0, q.shape[0], step):
        block = faiss.pairwise_distances(q[start : start + step], g, kind)
        if metric == "cosine":
            np.subtract(1.0, block, out=block)
        yield start, block


def _torch_blocks(qf: torch.Tensor, gf: torch.Tensor, metric: str, step: int, device):
    g = gf.to(device=device, dtype=torch.float32)
    if metric == "cosine":
        g = F.normalize(g, p=2, dim=1)
    g_sq = g.pow(2).sum(1).unsqueeze(0) if metric == "euclidean" else None
    with torch.no_grad():
        for start in range(0, qf.shape[0], step):
            q = qf[start : start + step].to(device=device, dtype=torch.float32)
            if metric == "cosine":
                block = 1 - F.normalize(q, p=2, dim=1) @ g.t()
            else:
                block = torch.addmm(q.pow(2).sum(1, keepdim=True) + g_sq, q, g.t(), alpha=-2)
            yield start, block.cpu().numpy()


def _choose_method(method: str, num_q: int, num_g: int, budget: int, rerank: bool) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dense_bytes = num_q * num_g * 4 * (4 if rerank else 2)
    if rerank and method not in ("auto", "dense"):
        raise ValueError(f"rerank=True needs method='dense' (or 'auto'), got {method!r}")
    if rerank and dense_bytes > budget:
        raise ValueError(
            f"rerank=True needs dense query/gallery matrices (~{dense_bytes / 2**20:.0f} MB) "
            f"but memory_budget_mb allows {budget / 2**20:.0f} MB"
        )
    if method == "auto":
        return "dense" if dense_bytes + 2 * num_g * _BYTES_PER_ENTRY * 64 <= budget else "blocked"
    return method


def evaluate_features(
    query_features: Any,
    gallery_features: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    *,
    metric: str = "cosine",
    max_rank: int = 50,
    memory_budget_mb: float = 2048,
    device: str | torch.device | None = None,
    method: str = "auto",
    rerank: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Exact CMC / mAP / mINP from query and gallery features (market1501 protocol).

    Args:
        query_features: (Q, D) torch tensor or numpy array.
        gallery_features: (G, D).
        q_pids, q_camids: (Q,) integer ids and cameras; g_pids, g_camids: (G,).
        metric: ``'cosine'`` or ``'euclidean'`` (squared, as torchreid).
        max_rank: CMC length (cut to G when the gallery is smaller).
        memory_budget_mb: working memory for distances, beyond the features themselves.
        device: where torch computes distances; default CUDA when available, else CPU.
        method: ``'auto'`` (dense when the matrix fits the budget, else blocked),
            ``'dense'``, ``'blocked'`` or ``'faiss'``; all exact.
        rerank: k-reciprocal re-ranking (torchreid's ``re_ranking``), dense only.
        progress: show a tqdm bar over query blocks.

    Returns:
        dict with ``rank1``, ``rank5``, ``rank10``, ``mAP``, ``mINP`` as fractions in [0, 1],
        ``cmc`` (list of floats), ``num_valid_queries``, ``num_queries``, ``num_gallery``,
        ``metric``, ``method`` (the one used) and ``seconds``.
    """
    t0 = time.perf_counter()
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if isinstance(memory_budget_mb, bool) or not memory_budget_mb > 0:
        raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb!r}")
    qf = check_features(query_features, "query_features")
    gf = check_features(gallery_features, "gallery_features")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(
            f"query_features have dimension {qf.shape[1]} but gallery_features {gf.shape[1]}"
        )
    num_q, num_g = qf.shape[0], gf.shape[0]
    qp, qc = check_ids(q_pids, "q_pids", num_q), check_ids(q_camids, "q_camids", num_q)
    gp, gc = check_ids(g_pids, "g_pids", num_g), check_ids(g_camids, "g_camids", num_g)
    max_rank = check_max_rank(max_rank, num_g)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    budget = int(memory_budget_mb * 2**20)
    used = _choose_method(method, num_q, num_g, budget, rerank)

    gallery = GalleryIndex(gp, gc)
    acc = RankAccumulator(max_rank)
    if used == "dense":
        if rerank:
            dist = _rerank(qf.to(device), gf.to(device), metric)
            blocks = iter([(0, dist)])
        else:
            blocks = _torch_blocks(qf, gf, metric, num_q, device)
        step = num_q
    else:
        step = max(1, min(num_q, budget // (num_g * _BYTES_PER_ENTRY)))
        maker = _faiss_blocks if used == "faiss" else _torch_blocks
        args = (device,) if used == "blocked" else ()
        blocks = maker(qf, gf, metric, step, *args)
    sub = max(1, min(step, (1 << 23) // num_g))  # bounds rank_block's temporaries
    bar = tqdm(total=num_q, desc=f"eval ({used})", unit="q", disable=not progress)
    for start, block in blocks:
        for s in range(0, block.shape[0], sub):
            a, b = start + s, start + min(s + sub, block.shape[0])
            acc.add(rank_block(block[s : s + sub], qp[a:b], qc[a:b], gallery))
            bar.update(b - a)
    bar.close()
    cmc, m_ap, m_inp, num_valid = acc.result()

    def at(k: int) -> float:
        return float(cmc[min(k, len(cmc)) - 1])

    out = {
        "rank1": at(1),
        "rank5": at(5),
        "rank10": at(10),
        "mAP": m_ap,
        "mINP": m_inp,
        "cmc": [float(c) for c in cmc],
        "num_valid_queries": num_valid,
        "num_queries": num_q,
        "num_gallery": num_g,
        "metric": metric,
        "method": used,
        "seconds": time.perf_counter() - t0,
    }
    logger.info(
        "evaluated %d queries x %d gallery (%s, %s): rank1 %.4f mAP %.4f mINP %.4f in %.1fs",
        num_q,
        num_g,
        used,
        metric,
        out["rank1"],
        m_ap,
        m_inp,
        out["seconds"],
    )
    return out
