"""evaluate_features: dense, blocked and faiss paths agree with each other and torchreid."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from torchreid_pgflkd import compat
from torchreid_pgflkd.evaluation import evaluate_features, evaluate_rank, pairwise_distance


def _features(seed=0, nq=40, ng=300, npid=25, dim=16, dup=False):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(npid, dim))
    g_pids = rng.integers(0, npid, ng)
    q_pids = rng.choice(g_pids, nq)
    gf = centres[g_pids] + 1.5 * rng.normal(size=(ng, dim))
    qf = centres[q_pids] + 1.5 * rng.normal(size=(nq, dim))
    if dup:  # exact duplicates across ids: tied distances
        gf[1::7] = gf[0::7][: len(gf[1::7])]
    cams = (rng.integers(0, 4, nq), rng.integers(0, 4, ng))
    return qf.astype(np.float32), gf.astype(np.float32), q_pids, g_pids, *cams


def _keys(res):
    return [res[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP")] + res["cmc"]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("dup", [False, True])
def test_paths_agree_with_dense_and_torchreid(metric, dup):
    qf, gf, qp, gp, qc, gc = _features(seed=int(dup), dup=dup)
    dense = evaluate_features(
        qf, gf, qp, gp, qc, gc, metric=metric, method="dense", max_rank=20, progress=False
    )
    assert dense["method"] == "dense" and dense["num_valid_queries"] > 0
    for method in ("blocked", "faiss"):
        # a tiny budget forces one-query blocks
        res = evaluate_features(
            torch.from_numpy(qf),
            torch.from_numpy(gf),
            qp,
            gp,
            qc,
            gc,
            metric=metric,
            method=method,
            max_rank=20,
            memory_budget_mb=0.01,
            progress=False,
        )
        assert res["method"] == method
        np.testing.assert_allclose(_keys(res), _keys(dense), atol=1e-6)
    dist = (
        compat.submodule("metrics")
        .compute_distance_matrix(torch.from_numpy(qf), torch.from_numpy(gf), metric=metric)
        .numpy()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmc, m_ap = compat.torchreid_evaluate_rank()(
            dist, qp, gp, qc, gc, max_rank=20, use_cython=False
        )
    np.testing.assert_allclose(dense["cmc"], cmc, atol=1e-6)
    assert dense["mAP"] == pytest.approx(m_ap, abs=1e-6)
    assert 0.0 <= dense["mINP"] <= dense["mAP"] <= 1.0


def test_pairwise_distance_matches_torchreid():
    qf, gf, *_ = _features()
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    for metric in ("cosine", "euclidean"):
        ref = compat.submodule("metrics").compute_distance_matrix(q, g, metric=metric)
        torch.testing.assert_close(pairwise_distance(q, g, metric), ref, rtol=1e-5, atol=1e-4)


def test_auto_picks_blocked_when_dense_does_not_fit():
    qf, gf, qp, gp, qc, gc = _features(seed=3)
    small = evaluate_features(qf, gf, qp, gp, qc, gc, memory_budget_mb=0.05, progress=False)
    big = evaluate_features(qf, gf, qp, gp, qc, gc, progress=False)
    assert (small["method"], big["method"]) == ("blocked", "dense")
    assert small["mAP"] == pytest.approx(big["mAP"], abs=1e-9)


def test_rerank_equals_torchreid_rerank_then_rank():
    qf, gf, qp, gp, qc, gc = _features(seed=4, nq=20, ng=120)
    res = evaluate_features(
        qf, gf, qp, gp, qc, gc, metric="euclidean", rerank=True, max_rank=10, progress=False
    )
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    d = compat.submodule("metrics").compute_distance_matrix
    rr = compat.submodule("utils.rerank").re_ranking(
        d(q, g, "euclidean").numpy(), d(q, q, "euclidean").numpy(), d(g, g, "euclidean").numpy()
    )
    cmc, m_ap, _ = evaluate_rank(rr, qp, gp, qc, gc, max_rank=10)
    assert res["mAP"] == pytest.approx(m_ap, abs=1e-6)
    np.testing.assert_allclose(res["cmc"], cmc, atol=1e-6)
    with pytest.raises(ValueError, match="rerank=True needs method='dense'"):
        evaluate_features(qf, gf, qp, gp, qc, gc, rerank=True, method="faiss", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "manhattan"}, "metric must be one of"),
        ({"method": "annoy"}, "method must be one of"),
        ({"memory_budget_mb": 0}, "memory_budget_mb must be positive"),
    ],
)
def test_bad_options(kwargs, message):
    qf, gf, qp, gp, qc, gc = _features()
    with pytest.raises(ValueError, match=message):
        evaluate_features(qf, gf, qp, gp, qc, gc, progress=False, **kwargs)


def test_bad_features():
    qf, gf, qp, gp, qc, gc = _features()
    bad = qf.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="query_features has a non-finite value in row 3"):
        evaluate_features(bad, gf, qp, gp, qc, gc, progress=False)
    with pytest.raises(ValueError, match="dimension 16 but gallery_features 8"):
        evaluate_features(qf, gf[:, :8], qp, gp, qc, gc, progress=False)
    with pytest.raises(ValueError, match="gallery_features is empty"):
        evaluate_features(qf, gf[:0], qp, gp[:0], qc, gc[:0], progress=False)
    with pytest.raises(ValueError, match="g_pids has 299 entries"):
        evaluate_features(qf, gf, qp, gp[1:], qc, gc, progress=False)


@pytest.mark.parametrize("method", ["dense", "blocked", "faiss"])
def test_overflowing_distances_raise_instead_of_wrong_numbers(method):
    # finite features whose squared Euclidean distances overflow float32 (mAP was 2.33)
    qf, gf, qp, gp, qc, gc = _features(seed=5)
    with pytest.raises(ValueError, match="overflowed.*Scale or L2-normalise"):
        evaluate_features(
            qf * 1e19, gf * 1e19, qp, gp, qc, gc, metric="euclidean", method=method,
            progress=False,
        )  # fmt: skip
    if method != "faiss":  # float64 has the range for it
        res = evaluate_features(
            qf.astype(np.float64) * 1e19, gf.astype(np.float64) * 1e19, qp, gp, qc, gc,
            metric="euclidean", method=method, progress=False,
        )  # fmt: skip
        assert 0.0 <= res["mINP"] <= res["mAP"] <= 1.0


@pytest.mark.parametrize(
    ("convert", "computed_in"),
    [
        (lambda x: torch.from_numpy(x).to(torch.float16), torch.float32),
        (lambda x: torch.from_numpy(x).to(torch.bfloat16), torch.float32),
        (lambda x: x.astype(np.float16), torch.float32),
        (lambda x: x.astype(np.longdouble), torch.float64),
        (lambda x: x.astype(np.float64), torch.float64),
        (lambda x: torch.from_numpy(x).double(), torch.float64),
    ],
    ids=["torch-f16", "torch-bf16", "np-f16", "np-longdouble", "np-f64", "torch-f64"],
)
@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_every_float_dtype_is_accepted_and_widened(convert, computed_in, method):
    qf, gf, qp, gp, qc, gc = _features(seed=6)
    q, g = convert(qf), convert(gf)
    res = evaluate_features(q, g, qp, gp, qc, gc, metric="euclidean", method=method, progress=False)
    # the same values widened by hand give the same numbers
    qw, gw = (
        (x if torch.is_tensor(x) else torch.from_numpy(x.astype(np.float64))).to(computed_in)
        for x in (q, g)
    )
    cmc, m_ap, _ = evaluate_rank(pairwise_distance(qw, gw, "euclidean"), qp, gp, qc, gc, 50)
    assert res["mAP"] == pytest.approx(m_ap, abs=1e-9)
    np.testing.assert_allclose(res["cmc"], cmc, atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_stable_ties_agree_between_paths(metric):
    qf, gf, qp, gp, qc, gc = _features(seed=7, dup=True)
    kw = {"metric": metric, "ties": "stable", "progress": False, "max_rank": 20}
    dense = evaluate_features(qf, gf, qp, gp, qc, gc, method="dense", **kw)
    for method in ("blocked", "faiss"):
        res = evaluate_features(qf, gf, qp, gp, qc, gc, method=method, memory_budget_mb=0.01, **kw)
        np.testing.assert_allclose(_keys(res), _keys(dense), atol=1e-6)
    dist = pairwise_distance(torch.from_numpy(qf), torch.from_numpy(gf), metric)
    cmc, m_ap, _ = evaluate_rank(dist, qp, gp, qc, gc, max_rank=20, ties="stable")
    assert dense["mAP"] == pytest.approx(m_ap, abs=1e-6) and dense["ties"] == "stable"
    with pytest.raises(ValueError, match="ties must be one of"):
        evaluate_features(qf, gf, qp, gp, qc, gc, ties="first", progress=False)
