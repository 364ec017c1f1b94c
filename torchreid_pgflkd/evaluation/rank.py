"""Exact CMC / mAP / mINP from a distance matrix, fast and in query blocks.

The result equals torchreid's Python ``evaluate_rank`` (market1501 protocol): gallery items
with the query's id *and* camera are removed, queries without a remaining true match are
skipped, ranks follow ``np.argsort(distmat, axis=1)`` including its order among equal
distances.

Why it is fast: AP, CMC and INP only need the rank of each true match among the kept gallery
items. With no gallery item of another id at exactly a match's distance, that rank is
``#{other-id items closer} + #{true matches closer}``, which a batched ``searchsorted`` over
the (few) match distances counts without sorting the gallery. Rows where another id ties with
a true match are sorted with the very call torchreid makes, so the tie order is identical.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from torchreid_pgflkd.evaluation.checks import check_distmat, check_ids, check_max_rank

logger = logging.getLogger(__name__)

# Elements of one (block, gallery) slab; bounds the int64 temporaries at ~64 MB each.
_BLOCK_ELEMENTS = 1 << 23


@dataclass
class GalleryIndex:
    """Gallery ids grouped once so each query finds its same-id items without a dense scan."""

    pids: np.ndarray  # (G,) int64
    camids: np.ndarray  # (G,) int64
    order: np.ndarray = field(init=False)  # gallery indices sorted by id (stable)
    unique: np.ndarray = field(init=False)  # sorted distinct ids
    starts: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.order = np.argsort(self.pids, kind="stable")
        self.unique, self.starts, self.counts = np.unique(
            self.pids[self.order], return_index=True, return_counts=True
        )

    def same_id(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, gallery column) of every gallery item sharing its query's id, row-major."""
        pos = np.searchsorted(self.unique, q_pids)
        pos_c = np.minimum(pos, len(self.unique) - 1)
        found = self.unique[pos_c] == q_pids
        cnt = np.where(found, self.counts[pos_c], 0)
        rows = np.repeat(np.arange(len(q_pids)), cnt)
        first = np.cumsum(cnt) - cnt
        offs = np.arange(rows.size) - np.repeat(first, cnt)
        cols = self.order[np.repeat(self.starts[pos_c], cnt) + offs]
        return rows, cols


@dataclass
class BlockRanks:
    """Per-query results of one block: validity, rank of the first/last match, AP."""

    valid: np.ndarray  # (B,) bool, at least one true match after the camera rule
    first: np.ndarray  # (B,) int64, 0-based kept rank of the best match
    ap: np.ndarray  # (B,) float64
    inp: np.ndarray  # (B,) float64, num_matches / (rank of the last match + 1)


def _count_dtype(dtype: np.dtype) -> np.dtype:
    # float32/float64 are compared as they are; other types are widened exactly.
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _sort_rows(block: np.ndarray) -> np.ndarray:
    """Sorted copy of each row of a (B, G) block; row chunks on threads (numpy drops the GIL)."""
    workers = min(os.cpu_count() or 1, block.shape[0])
    if workers <= 1 or block.size < (1 << 20):
        return np.sort(block, axis=1)
    out = np.empty_like(block)
    edges = np.linspace(0, block.shape[0], workers + 1).astype(int)

    def work(i: int) -> None:
        out[edges[i] : edges[i + 1]] = np.sort(block[edges[i] : edges[i + 1]], axis=1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(workers)))
    return out


def _search_rows(srt: np.ndarray, thr: np.ndarray, *, strict: bool) -> np.ndarray:
    """Per row, #entries of ``srt`` (B, G) (sorted rows) that are < (strict) or <= ``thr`` (B, K).

    A binary search run on all (row, threshold) pairs at once: log2(G) gathers of (B, K).
    """
    n_rows, n_cols = srt.shape
    lo = np.zeros(thr.shape, dtype=np.int64)
    hi = np.full(thr.shape, n_cols, dtype=np.int64)
    row = np.arange(n_rows)[:, None]
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        v = srt[row, np.minimum(mid, n_cols - 1)]
        below = (v < thr) if strict else (v <= thr)
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)


def _count_below(block: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how many entries of ``block`` are < and <= each threshold.

    Args:
        block: (B, G) distances.
        thr: (B, K) thresholds, same dtype as ``block``.

    Returns:
        ``less``, ``leq``: (B, K) int64 counts.
    """
    # Only entries up to a row's largest threshold can be counted: sort just those (+inf pads).
    tmax = thr.max(axis=1, initial=-np.inf, where=np.isfinite(thr))
    rows, cols = np.nonzero(block <= tmax[:, None])
    width = int(np.bincount(rows, minlength=block.shape[0]).max()) if rows.size else 0
    packed = np.full((block.shape[0], max(width, 1)), np.inf, dtype=block.dtype)
    packed[rows, _segment_index(rows, block.shape[0])] = block[rows, cols]
    srt = _sort_rows(packed)
    return _search_rows(srt, thr, strict=True), _search_rows(srt, thr, strict=False)


def _segment_index(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """0-based position of each entry within its row, for ``rows`` sorted ascending."""
    counts = np.bincount(rows, minlength=n_rows)
    return np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)


def _tie_ranks(
    block: np.ndarray, rows: np.ndarray, cols: np.ndarray, removed: np.ndarray
) -> np.ndarray:
    """Kept ranks of the same-id entries of ``rows`` through torchreid's own sort.

    Returns (n,) int64 aligned with the inputs; entries that are removed get -1.
    """
    tie_rows, local = np.unique(rows, return_inverse=True)
    # The same call as torchreid (default kind, along the last axis), row by row identical.
    order = np.argsort(block[tie_rows], axis=1)
    inv = np.empty_like(order)
    np.put_along_axis(inv, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), 1)
    position = inv[local, cols]
    srt = np.lexsort((position, local))
    rem_before = np.cumsum(removed[srt]) - removed[srt]
    row_first = np.searchsorted(local[srt], local[srt], side="left")
    rem_before = rem_before - rem_before[row_first]
    kept = np.empty(rows.size, dtype=np.int64)
    kept[srt] = position[srt] - rem_before
    kept[removed] = -1
    return kept


def rank_block(
    block: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    gallery: GalleryIndex,
) -> BlockRanks:
    """Exact per-query ranks of the true matches for one block of queries.

    Args:
        block: (B, G) finite distances of B queries to the whole gallery.
        q_pids, q_camids: (B,) int64.
        gallery: the gallery ids and cameras, grouped.
    """
    n_rows = block.shape[0]
    rows, cols = gallery.same_id(q_pids)
    removed = gallery.camids[cols] == q_camids[rows]
    cdt = _count_dtype(block.dtype)
    vals = block[rows, cols].astype(cdt, copy=False)

    # Same-id entries sorted by (row, distance); runs of equal distance within a row.
    srt = np.lexsort((vals, rows))
    rows_s, vals_s, rem_s, cols_s = rows[srt], vals[srt], removed[srt], cols[srt]
    new_run = np.ones(rows_s.size, dtype=bool)
    new_run[1:] = (rows_s[1:] != rows_s[:-1]) | (vals_s[1:] != vals_s[:-1])
    run_start = np.flatnonzero(new_run)
    run_id = np.cumsum(new_run) - 1
    run_len = np.diff(np.append(run_start, rows_s.size))
    row_first = np.searchsorted(rows_s, rows_s, side="left")
    same_less = run_start[run_id] - row_first
    same_eq = run_len[run_id]

    pos = ~rem_s
    pr, pv = rows_s[pos], vals_s[pos]
    num_pos = np.bincount(pr, minlength=n_rows)
    valid = num_pos > 0
    j = _segment_index(pr, n_rows)
    kept = np.zeros(pr.size, dtype=np.int64)
    if pr.size:
        k = int(num_pos.max())
        thr = np.full((n_rows, k), np.inf, dtype=cdt)
        thr[pr, j] = pv
        # Rows without a match have an all-inf threshold row: harmless, ignored below.
        less, leq = _count_below(block.astype(cdt, copy=False), thr)
        other_less = less[pr, j] - same_less[pos]
        other_eq = (leq[pr, j] - less[pr, j]) - same_eq[pos]
        kept = other_less + j
        tied = other_eq > 0
        if tied.any():
            tie_rows = np.unique(pr[tied])
            in_tie = np.isin(rows_s, tie_rows)
            ranks = _tie_ranks(block, rows_s[in_tie], cols_s[in_tie], rem_s[in_tie])
            kept[np.isin(pr, tie_rows)] = ranks[~rem_s[in_tie]]

    # Matches of each row in rank order: AP = mean_j (j + 1) / (rank_j + 1).
    srt = np.lexsort((kept, pr))
    pr, kept = pr[srt], kept[srt]
    j = _segment_index(pr, n_rows)
    ap = np.bincount(pr, weights=(j + 1) / (kept + 1.0), minlength=n_rows)
    ap = np.divide(ap, num_pos, out=np.zeros(n_rows), where=valid)
    first = np.zeros(n_rows, dtype=np.int64)
    last = np.zeros(n_rows, dtype=np.int64)
    first[pr[j == 0]] = kept[j == 0]
    is_last = j == num_pos[pr] - 1
    last[pr[is_last]] = kept[is_last]
    inp = np.divide(num_pos, last + 1.0, out=np.zeros(n_rows), where=valid)
    return BlockRanks(valid=valid, first=first, ap=ap, inp=inp)


class RankAccumulator:
    """Collects :class:`BlockRanks` and reduces them to (cmc, mAP, mINP)."""

    def __init__(self, max_rank: int) -> None:
        self.max_rank = max_rank
        self.parts: list[BlockRanks] = []

    def add(self, part: BlockRanks) -> None:
        self.parts.append(part)

    def result(self) -> tuple[np.ndarray, float, float, int]:
        """(cmc (max_rank,) float32, mAP, mINP, number of valid queries)."""
        valid = np.concatenate([p.valid for p in self.parts])
        num_valid = int(valid.sum())
        if num_valid == 0:
            raise ValueError(
                "no query has a true match in the gallery after removing gallery images with "
                "the query's id and camera; check q_pids/g_pids/q_camids/g_camids"
            )
        first = np.concatenate([p.first for p in self.parts])[valid]
        hits = np.bincount(np.minimum(first, self.max_rank), minlength=self.max_rank + 1)
        # A valid query stays matched past its last kept item, so the curve is padded with hits.
        cmc = np.cumsum(hits[: self.max_rank]).astype(np.float32) / float(num_valid)
        ap = np.concatenate([p.ap for p in self.parts])[valid]
        inp = np.concatenate([p.inp for p in self.parts])[valid]
        return cmc.astype(np.float32), float(np.mean(ap)), float(np.mean(inp)), num_valid


def block_rows(num_gallery: int, elements: int = _BLOCK_ELEMENTS) -> int:
    """Query rows per block so that one (rows, G) slab holds about ``elements`` entries."""
    return max(1, elements // max(1, num_gallery))


def evaluate_rank(
    distmat: np.ndarray | torch.Tensor,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> tuple[np.ndarray, float, float]:
    """CMC, mAP and mINP of a query x gallery distance matrix (market1501 protocol).

    Args:
        distmat: (Q, G) finite distances, smaller is closer; numpy array or torch tensor.
        q_pids, q_camids: (Q,) integer ids and cameras of the queries.
        g_pids, g_camids: (G,) integer ids and cameras of the gallery.
        max_rank: length of the CMC curve; like torchreid, a gallery smaller than this
            shortens the curve to G (with a warning).

    Returns:
        ``(cmc, mAP, mINP)``: cmc is (min(max_rank, G),) float32, cmc[k] = fraction of valid
        queries with a true match in the top k+1; mAP and mINP are fractions in [0, 1].

    Raises:
        ValueError: bad shapes, non-finite distances, non-integer ids, or no valid query.
    """
    dist = check_distmat(distmat, "distmat")
    num_q, num_g = dist.shape
    qp = check_ids(q_pids, "q_pids", num_q)
    gp = check_ids(g_pids, "g_pids", num_g)
    qc = check_ids(q_camids, "q_camids", num_q)
    gc = check_ids(g_camids, "g_camids", num_g)
    max_rank = check_max_rank(max_rank, num_g)
    gallery = GalleryIndex(gp, gc)
    acc = RankAccumulator(max_rank)
    step = block_rows(num_g)
    for start in range(0, num_q, step):
        stop = min(start + step, num_q)
        acc.add(rank_block(dist[start:stop], qp[start:stop], qc[start:stop], gallery))
    cmc, m_ap, m_inp, _ = acc.result()
    return cmc, m_ap, m_inp
