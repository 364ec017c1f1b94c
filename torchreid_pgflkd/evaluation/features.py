"""Exact ReID evaluation straight from features, in blocks that fit a memory budget.

Three ways to get the same numbers:

- ``dense``: the whole (Q, G) distance matrix, then :func:`evaluate_rank` (the only way that
  supports k-reciprocal re-ranking);
- ``blocked``: query blocks of distances computed with torch (on ``device``, a GPU when there
  is one; one GEMM per gallery chunk), each block ranked exactly by counting the gallery
  items before each true match (see :mod:`torchreid_pgflkd.evaluation.rank`), so memory is
  the features plus one block;
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
from torchreid_pgflkd.evaluation.rank import TIES, GalleryIndex, RankAccumulator, rank_block

logger = logging.getLogger(__name__)

METRICS = ("cosine", "euclidean")
METHODS = ("auto", "dense", "blocked", "faiss")
# Bytes per (query, gallery) entry of a block beyond the distances: room for a host copy of a
# GPU block; the ranking itself works in fixed-size chunks, independent of the block.
_BYTES_PER_ENTRY = 8
# Gallery rows per product in _distance_rows: (rows, B) stays cache-sized.
_GALLERY_CHUNK = 8192


def pairwise_distance(query: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    """(Q, D) x (G, D) -> (Q, G) distances, torchreid's definitions (see module docstring)."""
    if metric == "cosine":
        return 1 - F.normalize(query, p=2, dim=1) @ F.normalize(gallery, p=2, dim=1).t()
    q2 = query.pow(2).sum(1, keepdim=True)
    g2 = gallery.pow(2).sum(1, keepdim=True).t()
    return torch.addmm(q2 + g2, query, gallery.t(), beta=1, alpha=-2)


def compute_dtype(*features: torch.Tensor) -> torch.dtype:
    """float64 when any input is float64, else float32 (float16/bfloat16/ints are widened)."""
    return torch.float64 if any(f.dtype == torch.float64 for f in features) else torch.float32


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
    # faiss computes in float32 only
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


def _distance_rows(
    q: torch.Tensor, g: torch.Tensor, g_sq: torch.Tensor | None, out: torch.Tensor
) -> None:
    """``out`` (B, G) = distances of ``q`` (B, D) to ``g`` (G, D) (normalised for cosine).

    Computed as gallery-major products ``g[chunk] @ q.T``: on CPU this GEMM shape runs ~25%
    faster than ``q @ g.T``; each (chunk, B) product is transposed into ``out`` while small.
    Per entry the arithmetic is torchreid's (``1 - <q, g>``, or ``q2 + g2 - 2 <q, g>`` with
    the same fused multiply-add); only the summation order inside the GEMM may differ.
    """
    qt = q.t()
    q_sq = q.pow(2).sum(1) if g_sq is not None else None
    one = torch.ones((), dtype=q.dtype, device=q.device)
    prod = torch.empty(min(_GALLERY_CHUNK, g.shape[0]), q.shape[0], dtype=q.dtype, device=q.device)
    for c0 in range(0, g.shape[0], _GALLERY_CHUNK):
        c1 = min(c0 + _GALLERY_CHUNK, g.shape[0])
        p = prod[: c1 - c0]  # reused: no fresh pages per chunk
        if g_sq is None:
            torch.mm(g[c0:c1], qt, out=p)
            torch.sub(one, p.t(), out=out[:, c0:c1])
        else:
            torch.add(g_sq[c0:c1, None], q_sq[None, :], out=p)
            p.addmm_(g[c0:c1], qt, beta=1, alpha=-2)
            out[:, c0:c1] = p.t()


def _torch_blocks(qf: torch.Tensor, gf: torch.Tensor, metric: str, step: int, device):
    dtype = compute_dtype(qf, gf)
    g = gf.to(device=device, dtype=dtype)
    if metric == "cosine":
        # in place when .to() already copied: one gallery-sized copy, not two
        denom = g.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12).expand_as(g)
        g = g.div_(denom) if g.data_ptr() != gf.data_ptr() else g / denom
    g_sq = g.pow(2).sum(1) if metric == "euclidean" else None
    out = None
    with torch.no_grad():
        for start in range(0, qf.shape[0], step):
            q = qf[start : start + step].to(device=device, dtype=dtype)
            if metric == "cosine":
                q = F.normalize(q, p=2, dim=1)
            if out is None or out.shape[0] != q.shape[0]:
                out = torch.empty(q.shape[0], g.shape[0], dtype=dtype, device=device)
            _distance_rows(q, g, g_sq, out)
            yield start, out.cpu().numpy()


def _check_distances(block: np.ndarray, start: int, metric: str, method: str) -> None:
    """Raise when computed distances are not finite (the inputs were checked already)."""
    if block.size and np.isfinite(block.min()) and np.isfinite(block.max()):
        return
    row = start + int(np.flatnonzero(~np.isfinite(block).all(1))[0])
    fix = "pass float64 features"
    if method == "faiss":  # faiss has float32 only
        fix = "use method='blocked' with float64 features"
    raise ValueError(
        f"the {metric} distance of query {row} to some gallery item is not finite although "
        f"the features are: computing it in {block.dtype} overflowed (features of very "
        f"large magnitude). Scale or L2-normalise the features, use metric='cosine', or {fix}"
    )


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
    ties: str = "torchreid",
    progress: bool = True,
) -> dict[str, Any]:
    """Exact CMC / mAP / mINP from query and gallery features (market1501 protocol).

    Args:
        query_features: (Q, D) torch tensor or numpy array, any real dtype: distances are
            computed in float64 when either side is float64, else in float32 (float16,
            bfloat16 and integers are widened; faiss always uses float32).
        gallery_features: (G, D).
        q_pids, q_camids: (Q,) integer ids and cameras; g_pids, g_camids: (G,).
        metric: ``'cosine'`` or ``'euclidean'`` (squared, as torchreid).
        max_rank: CMC length (cut to G when the gallery is smaller).
        memory_budget_mb: working memory for distances, beyond the features themselves.
        device: where torch computes distances; default CUDA when available, else CPU.
        method: ``'auto'`` (dense when the matrix fits the budget, else blocked),
            ``'dense'``, ``'blocked'`` or ``'faiss'``; all exact.
        rerank: k-reciprocal re-ranking (torchreid's ``re_ranking``), dense only.
        ties: order of equal distances: ``'torchreid'`` (``np.argsort``'s, identical to
            torchreid; rows where another id ties with a true match are sorted, which costs
            a full sort of such rows on huge galleries) or ``'stable'`` (by gallery index,
            counted without any sort). See :mod:`torchreid_pgflkd.evaluation.rank`.
        progress: show a tqdm bar over query blocks.

    Returns:
        dict with ``rank1``, ``rank5``, ``rank10``, ``mAP``, ``mINP`` as fractions in [0, 1],
        ``cmc`` (list of floats), ``num_valid_queries``, ``num_queries``, ``num_gallery``,
        ``metric``, ``method`` (the one used), ``ties``, ``seconds`` (wall), of which
        ``ranking_seconds`` ranking (``ranking_cpu_seconds`` of CPU: it runs on one thread),
        and ``cpu_seconds`` (process CPU time, all threads).

    Raises:
        ValueError: bad options, shapes, ids or non-finite features, or distances that
            overflow to infinity (the message says how to fix the features).
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    rank_s = rank_cpu = 0.0
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
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

    dtype = torch.float32 if used == "faiss" else compute_dtype(qf, gf)
    gallery = GalleryIndex(gp, gc)
    acc = RankAccumulator(max_rank)
    if used == "dense":
        if rerank:
            dist = _rerank(qf.to(device, dtype), gf.to(device, dtype), metric)
            blocks = iter([(0, dist)])
        else:
            blocks = _torch_blocks(qf, gf, metric, num_q, device)
        step = num_q
    else:
        item = torch.finfo(dtype).bits // 8
        step = max(1, min(num_q, budget // (num_g * (item + _BYTES_PER_ENTRY))))
        maker = _faiss_blocks if used == "faiss" else _torch_blocks
        args = (device,) if used == "blocked" else ()
        blocks = maker(qf, gf, metric, step, *args)
    sub = max(1, min(step, (1 << 23) // num_g))  # bounds rank_block's temporaries
    bar = tqdm(total=num_q, desc=f"eval ({used})", unit="q", disable=not progress)
    for start, block in blocks:
        _check_distances(block, start, metric, used)
        for s in range(0, block.shape[0], sub):
            a, b = start + s, start + min(s + sub, block.shape[0])
            r0, c0 = time.perf_counter(), time.thread_time()
            acc.add(rank_block(block[s : s + sub], qp[a:b], qc[a:b], gallery, ties))
            rank_s, rank_cpu = rank_s + time.perf_counter() - r0, rank_cpu + time.thread_time() - c0
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
        "ties": ties,
        "seconds": time.perf_counter() - t0,
        "ranking_seconds": rank_s,
        "ranking_cpu_seconds": rank_cpu,
        "cpu_seconds": time.process_time() - cpu0,
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
