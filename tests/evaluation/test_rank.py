"""evaluate_rank against torchreid's own Python evaluate_rank, on random and hard cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from torchreid_pgflkd.compat import torchreid_evaluate_rank
from torchreid_pgflkd.evaluation import evaluate_rank
from torchreid_pgflkd.evaluation import rank as rank_module


def _torchreid(*args, max_rank=50):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchreid_evaluate_rank()(*args, max_rank=max_rank, use_cython=False)


def _problem(rng, nq, ng, npid, ncam, levels=None, dtype=np.float32):
    g_pids = rng.integers(0, npid, ng)
    q_pids = rng.integers(0, npid, nq)
    dist = rng.random((nq, ng))
    if levels:  # quantised distances: many exact ties
        dist = np.round(dist * levels) / levels
    return dist.astype(dtype), q_pids, g_pids, rng.integers(0, ncam, nq), rng.integers(0, ncam, ng)


def _reference(dist, qp, gp, qc, gc, max_rank=50, kind=None):
    """(cmc, mAP, mINP) by the definition, from ``np.argsort(row, kind=kind)``."""
    cmcs, aps, inps = [], [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind=kind)
        keep = ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        hits = np.flatnonzero((gp[order] == qp[i])[keep])
        if hits.size:
            cmcs.append(np.arange(min(max_rank, dist.shape[1])) >= hits[0])
            aps.append(np.mean(np.arange(1, hits.size + 1) / (hits + 1.0)))
            inps.append(hits.size / (hits[-1] + 1.0))
    return np.mean(cmcs, 0), float(np.mean(aps)), float(np.mean(inps))


def _reference_minp(dist, qp, gp, qc, gc):
    return _reference(dist, qp, gp, qc, gc)[2]


def _assert_same(ours, ref):
    cmc, m_ap, _ = ours
    assert cmc.dtype == np.float32
    np.testing.assert_allclose(cmc, ref[0], atol=1e-6, rtol=0)
    assert abs(m_ap - ref[1]) <= 1e-6


@pytest.mark.parametrize("levels", [None, 4, 20])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torchreid_on_random_problems(levels, dtype):
    rng = np.random.default_rng(7 if levels is None else levels)
    for _ in range(25):
        args = _problem(
            rng,
            int(rng.integers(1, 30)),
            int(rng.integers(60, 150)),
            int(rng.integers(2, 12)),
            int(rng.integers(1, 4)),
            levels,
            dtype,
        )
        try:
            ref = _torchreid(*args, max_rank=20)
        except AssertionError:  # torchreid: no valid query at all
            with pytest.raises(ValueError, match="no query has a true match"):
                evaluate_rank(*args, max_rank=20)
            continue
        ours = evaluate_rank(*args, max_rank=20)
        _assert_same(ours, ref)
        assert ours[2] == pytest.approx(_reference_minp(*args), abs=1e-12)


def test_all_distances_tied_follows_argsort_order():
    rng = np.random.default_rng(1)
    _, qp, gp, qc, gc = _problem(rng, 20, 300, 5, 3)
    dist = np.zeros((20, 300), dtype=np.float32)
    _assert_same(
        evaluate_rank(dist, qp, gp, qc, gc, max_rank=10),
        _torchreid(dist, qp, gp, qc, gc, max_rank=10),
    )


def test_queries_without_valid_match_are_skipped():
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.5, 0.1, 0.2]], dtype=np.float32)
    q_pids, g_pids = np.array([1, 2, 9]), np.array([1, 2, 2])
    q_cams, g_cams = np.array([0, 0, 0]), np.array([1, 0, 1])
    cmc, m_ap, m_inp = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    # query 0: match at rank 1; query 1: the cam-0 match is removed, the other is 2nd of 2;
    # query 2 (id 9) has no match and is skipped.
    np.testing.assert_allclose(cmc, [0.5, 1.0, 1.0])
    assert m_ap == pytest.approx((1.0 + 0.5) / 2)
    assert m_inp == pytest.approx((1.0 + 0.5) / 2)
    # torchreid itself fails at max_rank=3 here (its per-query curves have unequal lengths)
    ref = _torchreid(dist, q_pids, g_pids, q_cams, g_cams, max_rank=2)
    _assert_same(evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=2), ref)


def test_single_gallery_image_and_short_gallery():
    dist = np.array([[0.3], [0.1]], dtype=np.float32)
    args = (dist, np.array([4, 4]), np.array([4]), np.array([0, 1]), np.array([1]))
    ours = evaluate_rank(*args, max_rank=50)
    assert ours[0].shape == (1,)
    _assert_same(ours, _torchreid(*args, max_rank=50))
    rng = np.random.default_rng(3)
    dist, qp, gp, _, _ = _problem(rng, 10, 30, 3, 1)
    args = (dist, qp, gp, np.zeros(10, int), np.ones(30, int))  # nothing removed: cut to 30
    ours = evaluate_rank(*args, max_rank=50)
    assert ours[0].shape == (30,)
    _assert_same(ours, _torchreid(*args, max_rank=50))


def test_every_match_removed_by_camera_rule_raises_value_error():
    dist = np.random.default_rng(0).random((3, 4))
    args = (dist, np.array([1, 2, 1]), np.array([1, 2, 1, 2]), np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(AssertionError):
        _torchreid(*args)
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_rank(*args)


def test_torch_tensor_input_and_float_ids():
    rng = np.random.default_rng(5)
    dist, qp, gp, qc, gc = _problem(rng, 15, 80, 6, 2)
    ours = evaluate_rank(torch.from_numpy(dist), qp.astype(float), gp, qc, gc, max_rank=5)
    _assert_same(ours, _torchreid(dist, qp, gp, qc, gc, max_rank=5))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "q_pids": a["q_pids"][:-1]}, "q_pids has 3 entries but 4"),
        (lambda a: {**a, "g_camids": a["g_camids"][:2]}, "g_camids has 2 entries"),
        (lambda a: {**a, "distmat": np.where(np.eye(4, 5, dtype=bool), np.nan, 1.0)}, "non-finite"),
        (lambda a: {**a, "distmat": np.full((4, 5), np.inf)}, "distmat has a non-finite"),
        (lambda a: {**a, "distmat": np.zeros((4, 0))}, "distmat is empty"),
        (lambda a: {**a, "distmat": np.zeros(5)}, "distmat must be 2-D"),
        (lambda a: {**a, "g_pids": a["g_pids"] + 0.5}, "g_pids must hold integer ids"),
        (lambda a: {**a, "q_camids": np.array(list("abcd"))}, "q_camids must hold integer"),
        (lambda a: {**a, "max_rank": 0}, "max_rank must be a positive integer"),
    ],
)
def test_bad_input_names_the_argument(change, message):
    base = {
        "distmat": np.ones((4, 5)),
        "q_pids": np.arange(4),
        "g_pids": np.arange(5),
        "q_camids": np.zeros(4, int),
        "g_camids": np.ones(5, int),
    }
    with pytest.raises(ValueError, match=message):
        evaluate_rank(**change(base))


@pytest.mark.parametrize("levels", [None, 3, 50])
def test_stable_ties_equal_a_stable_argsort(levels):
    rng = np.random.default_rng(11)
    for _ in range(15):
        args = _problem(rng, 25, int(rng.integers(100, 400)), 6, 3, levels)
        try:
            ref = _reference(*args, max_rank=20, kind="stable")
        except ValueError:  # no valid query: mean of nothing
            continue
        cmc, m_ap, m_inp = evaluate_rank(*args, max_rank=20, ties="stable")
        np.testing.assert_allclose(cmc, ref[0], atol=1e-6, rtol=0)
        assert m_ap == pytest.approx(ref[1], abs=1e-12)
        assert m_inp == pytest.approx(ref[2], abs=1e-12)


def test_low_rank_features_with_duplicates_match_torchreid():
    # distances of real-ish features: low rank, rounded, a third of the gallery duplicated
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((30, 4))
    g_pids, q_pids = rng.integers(0, 30, 900), rng.integers(0, 30, 60)
    gf = np.round(centres[g_pids] + 0.5 * rng.standard_normal((900, 4)), 1)
    gf[1::3] = gf[0::3]
    qf = np.round(centres[q_pids] + 0.5 * rng.standard_normal((60, 4)), 1)
    dist = ((qf[:, None] - gf[None]) ** 2).sum(-1).astype(np.float32)
    args = (dist, q_pids, g_pids, rng.integers(0, 3, 60), rng.integers(0, 3, 900))
    ours = evaluate_rank(*args, max_rank=50)
    _assert_same(ours, _torchreid(*args, max_rank=50))
    assert ours[2] == pytest.approx(_reference_minp(*args), abs=1e-12)


def _hostile(rng, mode, shape):
    if mode == "extreme":  # overflowing widths, both signs
        return rng.choice([-3.4e38, 3.4e38, 0.0], shape) * rng.random(shape)
    if mode == "zeros":  # -0.0 and 0.0 must count as equal
        return np.where(rng.random(shape) < 0.5, -0.0, 0.0)
    if mode == "tiny":
        return rng.standard_normal(shape) * 1e-40
    if mode == "offset":  # spread far below the resolution of the values
        return 1000.0 + rng.random(shape) * 1e-4
    return np.round(rng.random(shape) * 3)


@pytest.mark.parametrize("mode", ["extreme", "zeros", "tiny", "offset", "coarse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_below_is_exact_on_hostile_values(mode, dtype, monkeypatch):
    rng = np.random.default_rng(0)
    for chunk in (1, 64, 1 << 18):  # one row per chunk, a few rows, all rows
        monkeypatch.setattr(rank_module, "_CHUNK_ELEMENTS", chunk)
        with np.errstate(over="ignore", under="ignore"):
            block = np.ascontiguousarray(_hostile(rng, mode, (7, 150)).astype(dtype))
        pr, pc = rng.integers(0, 7, 20), rng.integers(0, 150, 20)
        order = np.lexsort((pc, block[pr, pc], pr))
        pr, pc = pr[order], pc[order]
        pv = block[pr, pc]
        less, equal = rank_module._count_below(block, pr, pc, pv, stable=False)
        np.testing.assert_array_equal(less, (block[pr] < pv[:, None]).sum(1))
        np.testing.assert_array_equal(equal, (block[pr] == pv[:, None]).sum(1))
        before, _ = rank_module._count_below(block, pr, pc, pv, stable=True)
        cols = np.arange(150)
        ref = (block[pr] < pv[:, None]) | ((block[pr] == pv[:, None]) & (cols < pc[:, None]))
        np.testing.assert_array_equal(before, ref.sum(1))


def test_bfloat16_distances_and_bad_ties():
    rng = np.random.default_rng(2)
    dist, qp, gp, qc, gc = _problem(rng, 12, 90, 4, 2)
    t = torch.from_numpy(dist).to(torch.bfloat16)
    ref = _torchreid(t.float().numpy(), qp, gp, qc, gc, max_rank=10)
    _assert_same(evaluate_rank(t, qp, gp, qc, gc, max_rank=10), ref)
    with pytest.raises(ValueError, match="ties must be one of"):
        evaluate_rank(dist, qp, gp, qc, gc, ties="random")
