"""Exact CMC / mAP / mINP from a distance matrix, fast and in query blocks.

The result equals torchreid's Python ``evaluate_rank`` (market1501 protocol): gallery items
with the query's id *and* camera are removed, queries without a remaining true match are
skipped, and with ``ties='torchreid'`` ranks follow ``np.argsort(distmat, axis=1)`` including
its order among equal distances (numpy's default sort is not stable, and its order differs
between machines). ``ties='stable'`` orders equal distances by gallery index instead, as a
stable sort does.

Why it is fast: AP, CMC and INP only need the rank of each true match among the kept gallery
items, i.e. how many other-id items are closer (plus, for equal distances, the tie rule).
Those counts come from a per-row histogram over monotone buckets of the distances, with exact
comparisons only for the few items sharing a bucket with a true match: a handful of linear
passes over each row, no sort. With ``ties='torchreid'``, rows where another id ties exactly
with a true match are sorted with the very call torchreid makes.
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

# Elements of one (block, gallery) slab that evaluate_rank ranks at a time.
_BLOCK_ELEMENTS = 1 << 23
# Elements per chunk of the counting passes: the buffers stay in cache.
_CHUNK_ELEMENTS = 1 << 18
TIES = ("torchreid", "stable")


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


def _num_buckets(num_gallery: int) -> int:
    # ~4 gallery items per bucket keeps the exact part small; capped to stay in cache.
    return int(min(1 << 16, max(16, num_gallery // 4)))


def _bucket_map(block: np.ndarray, pr: np.ndarray, pv: np.ndarray, nb: int):
    """Per row ``(lo, scale)``: ``trunc(clip((d - lo) * scale, 0, nb - 1))`` is a bucket.

    Each step is one correctly rounded IEEE operation, so the map is monotone: a smaller
    distance never lands in a higher bucket, which is all exactness needs. ``lo`` and
    ``scale`` only decide how many entries share a bucket with a threshold: the row's
    thresholds are spread over buckets 1..nb-2 (or, with one distinct threshold, buckets as
    wide as the row's spread / nb). Rows without thresholds map everything to bucket 0.
    """
    dt = block.dtype
    counts = np.bincount(pr, minlength=block.shape[0])
    has = counts > 0
    ends = np.cumsum(counts)
    t_min = np.where(has, pv[np.minimum(ends - counts, pv.size - 1)], 0).astype(dt)
    t_max = np.where(has, pv[np.maximum(ends - 1, 0)], 0).astype(dt)
    sample = block[:, :: max(1, block.shape[1] // 256)]
    info = np.finfo(dt)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        width = np.where(t_max > t_min, t_max - t_min, sample.max(1) - sample.min(1))
        # finite and > 0 even for overflowing widths, so (d - lo) * scale is never NaN
        scale = np.clip(np.where(width > 0, (nb - 4) / width, 1.0), info.tiny, 1e30).astype(dt)
        # two buckets of margin below the smallest threshold (at least one ulp)
        lo = np.minimum(t_min - 2 / scale, np.nextafter(t_min, -np.inf))
        lo = np.maximum(lo, info.min).astype(dt)
    return np.where(has, lo, 0).astype(dt), np.where(has, scale, 0).astype(dt)


def _count_below(
    block: np.ndarray, pr: np.ndarray, pc: np.ndarray, pv: np.ndarray, stable: bool
) -> tuple[np.ndarray, np.ndarray]:
    """How many entries of its row come before each threshold ``block[pr, pc]``.

    A bucketed count instead of a sort: every entry goes to a bucket by a monotone map, a
    per-row histogram counts the entries in buckets below a threshold's bucket, and only the
    entries that share a bucket with a threshold (a few each) are compared exactly. Rows go
    in cache-sized chunks through reused buffers, on one thread (a busy core cannot stall it).

    Args:
        block: (B, G) float32/float64 distances, C-contiguous.
        pr, pc, pv: (P,) row, column and value of each threshold, sorted by (row, value,
            column).
        stable: count entries before in (value, column) order instead of by value alone.

    Returns:
        ``before``: (P,) int64 entries smaller (stable: or equal with a smaller column);
        ``equal``: (P,) int64 entries equal to the threshold, itself included (zeros when
        ``stable``).
    """
    n_rows, n_cols = block.shape
    nb = _num_buckets(n_cols)
    lo, scale = _bucket_map(block, pr, pv, nb)
    # flat keys (row * nb + bucket) stay exact integers in the float type
    step = max(1, min(n_rows, _CHUNK_ELEMENTS // n_cols, (1 << 23) // nb))
    y = np.empty((step, n_cols), dtype=block.dtype)
    keys = np.empty((step, n_cols), dtype=np.intp)
    offsets = (np.arange(step) * nb).astype(block.dtype)[:, None]
    flag = np.zeros(step * nb, dtype=bool)
    ends = np.searchsorted(pr, np.arange(0, n_rows + step, step)[1:], side="left")
    base = np.empty(pr.size, dtype=np.int64)
    cand = []  # (row, column, value) of entries sharing a bucket with a threshold
    p0 = 0
    for r0, p1 in zip(range(0, n_rows, step), ends, strict=False):
        if p1 == p0:
            continue
        r1 = min(r0 + step, n_rows)
        n, rows = r1 - r0, block[r0:r1]
        yy, kk, ff = y[:n], keys[:n], flag[: n * nb]
        with np.errstate(over="ignore"):
            np.subtract(rows, lo[r0:r1, None], out=yy)
            np.multiply(yy, scale[r0:r1, None], out=yy)
        np.clip(yy, 0, nb - 1, out=yy)
        np.add(yy, offsets[:n], out=yy)
        np.copyto(kk, yy, casting="unsafe")
        hist = np.bincount(kk.ravel(), minlength=n * nb)
        tk = kk[pr[p0:p1] - r0, pc[p0:p1]]
        # entries outside the threshold buckets are counted by bucket alone
        hist[tk] = 0
        base[p0:p1] = np.cumsum(hist.reshape(n, nb), axis=1).ravel()[tk]
        ff[tk] = True
        pos = np.flatnonzero(np.take(ff, kk))
        ff[tk] = False
        cand.append((pos // n_cols + r0, pos % n_cols, rows.ravel()[pos]))
        p0 = p1
    cr, cc, cv = (np.concatenate(c) for c in zip(*cand, strict=True))
    before, equal = _exact_counts(pr, pc, pv, cr, cc, cv, stable)
    return base + before, equal


def _exact_counts(
    pr: np.ndarray,
    pc: np.ndarray,
    pv: np.ndarray,
    cr: np.ndarray,
    cc: np.ndarray,
    cv: np.ndarray,
    stable: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold, the candidates of its row before it and equal to it (see _count_below).

    One sort of thresholds and candidates together by (row, value[, column], thresholds
    first); thresholds come out in their input order, which is sorted that way already.
    """
    is_cand = np.r_[np.zeros(pr.size, dtype=np.int64), np.ones(cr.size, dtype=np.int64)]
    rows, vals = np.r_[pr, cr], np.r_[pv, cv]
    if stable:
        order = np.lexsort((is_cand, np.r_[pc, cc], vals, rows))
        is_cand, new_group = is_cand[order], None
    elif vals.dtype == np.float32:
        # one uint64 key: row, the value's order-preserving bits, then the kind
        bits = (vals + np.float32(0)).view(np.int32).astype(np.int64)  # + 0: -0.0 -> 0.0
        bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + (1 << 31)
        key = np.sort((rows << 33) | (bits << 1) | is_cand)
        is_cand, group = key & 1, key >> 1
        new_group = np.r_[True, group[1:] != group[:-1]]
    else:
        order = np.lexsort((is_cand, vals, rows))
        is_cand, rows, vals = is_cand[order], rows[order], vals[order]
        new_group = np.r_[True, (rows[1:] != rows[:-1]) | (vals[1:] != vals[:-1])]
    at = np.flatnonzero(is_cand == 0)
    n_cand = np.bincount(cr, minlength=int(pr.max()) + 1)
    before = np.cumsum(is_cand)[at] - (np.cumsum(n_cand) - n_cand)[pr]
    if new_group is None:
        return before, np.zeros_like(before)
    group_id = np.cumsum(new_group) - 1
    equal = np.bincount(group_id, weights=is_cand)[group_id[at]].astype(np.int64)
    return before, equal


def _segment_index(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """0-based position of each entry within its row, for ``rows`` sorted ascending."""
    counts = np.bincount(rows, minlength=n_rows)
    return np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)


def _argsort_rows(x: np.ndarray) -> np.ndarray:
    """``np.argsort(x, axis=1)`` (torchreid's call, row by row identical), rows on threads."""
    workers = min(os.cpu_count() or 1, torch.get_num_threads(), x.shape[0])
    if workers < 2 or x.size < (1 << 16):
        return np.argsort(x, axis=1)
    out = np.empty(x.shape, dtype=np.intp)
    edges = np.linspace(0, x.shape[0], workers + 1).astype(int)

    def work(i: int) -> None:  # numpy sorts without the GIL
        out[edges[i] : edges[i + 1]] = np.argsort(x[edges[i] : edges[i + 1]], axis=1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(workers)))
    return out


def _tie_ranks(
    block: np.ndarray, rows: np.ndarray, cols: np.ndarray, removed: np.ndarray
) -> np.ndarray:
    """Kept ranks of the same-id entries of ``rows`` through torchreid's own sort.

    Returns (n,) int64 aligned with the inputs; entries that are removed get -1.
    """
    tie_rows, local = np.unique(rows, return_inverse=True)
    order = _argsort_rows(block[tie_rows])
    # sorted positions of the same-id entries, matched back to the inputs by (row, column)
    mark = np.zeros(order.shape, dtype=bool)
    mark[local, cols] = True
    hit_r, hit_p = np.nonzero(np.take_along_axis(mark, order, axis=1))
    position = np.empty(rows.size, dtype=np.int64)
    position[np.lexsort((cols, local))] = hit_p[np.lexsort((order[hit_r, hit_p], hit_r))]
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
    ties: str = "torchreid",
) -> BlockRanks:
    """Exact per-query ranks of the true matches for one block of queries.

    Args:
        block: (B, G) finite distances of B queries to the whole gallery.
        q_pids, q_camids: (B,) int64.
        gallery: the gallery ids and cameras, grouped.
        ties: order of equal distances, one of :data:`TIES` (see the module docstring).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    n_rows = block.shape[0]
    rows, cols = gallery.same_id(q_pids)
    removed = gallery.camids[cols] == q_camids[rows]
    cdt = _count_dtype(block.dtype)
    vals = block[rows, cols].astype(cdt, copy=False)

    # Same-id entries sorted by (row, distance, column) (columns ascend within a row already);
    # runs of equal distance within a row.
    srt = np.lexsort((vals, rows))
    rows_s, vals_s, rem_s, cols_s = rows[srt], vals[srt], removed[srt], cols[srt]
    row_first = np.searchsorted(rows_s, rows_s, side="left")
    if ties == "stable":
        same_before = np.arange(rows_s.size) - row_first
        same_eq = np.zeros(rows_s.size, dtype=np.int64)
    else:
        new_run = np.r_[True, (rows_s[1:] != rows_s[:-1]) | (vals_s[1:] != vals_s[:-1])]
        run_start = np.flatnonzero(new_run)
        run_id = np.cumsum(new_run) - 1
        same_before = run_start[run_id] - row_first
        same_eq = np.diff(np.append(run_start, rows_s.size))[run_id]

    pos = ~rem_s
    pr, pv = rows_s[pos], vals_s[pos]
    num_pos = np.bincount(pr, minlength=n_rows)
    valid = num_pos > 0
    kept = np.zeros(pr.size, dtype=np.int64)
    if pr.size:
        dist = np.ascontiguousarray(block, dtype=cdt)
        before, equal = _count_below(dist, pr, cols_s[pos], pv, ties == "stable")
        # kept rank = other ids before it + true matches before it
        kept = before - same_before[pos] + _segment_index(pr, n_rows)
        tied = (equal - same_eq[pos]) > 0
        if tied.any():
            # another id at exactly a match's distance: the order is the sort's, not ours
            in_tie = np.zeros(n_rows, dtype=bool)
            in_tie[pr[tied]] = True
            sel = in_tie[rows_s]
            ranks = _tie_ranks(block, rows_s[sel], cols_s[sel], rem_s[sel])
            kept[in_tie[pr]] = ranks[~rem_s[sel]]

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
    *,
    ties: str = "torchreid",
) -> tuple[np.ndarray, float, float]:
    """CMC, mAP and mINP of a query x gallery distance matrix (market1501 protocol).

    Args:
        distmat: (Q, G) finite distances, smaller is closer; numpy array or torch tensor.
        q_pids, q_camids: (Q,) integer ids and cameras of the queries.
        g_pids, g_camids: (G,) integer ids and cameras of the gallery.
        max_rank: length of the CMC curve; like torchreid, a gallery smaller than this
            shortens the curve to G (with a warning).
        ties: ``'torchreid'`` (equal distances in ``np.argsort``'s order, identical to
            torchreid on the same machine; rows where another id ties with a true match are
            sorted) or ``'stable'`` (equal distances by gallery index; no sort at all).

    Returns:
        ``(cmc, mAP, mINP)``: cmc is (min(max_rank, G),) float32, cmc[k] = fraction of valid
        queries with a true match in the top k+1; mAP and mINP are fractions in [0, 1].

    Raises:
        ValueError: bad shapes, non-finite distances, non-integer ids, or no valid query.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
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
        acc.add(rank_block(dist[start:stop], qp[start:stop], qc[start:stop], gallery, ties))
    cmc, m_ap, m_inp, _ = acc.result()
    return cmc, m_ap, m_inp
