"""Input checks: every error names the argument; every float dtype users pass is accepted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchreid_pgflkd.evaluation.checks import (
    check_distmat,
    check_features,
    check_finite,
    check_ids,
    check_max_rank,
    to_numpy,
)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_to_numpy_reads_every_torch_float(dtype):
    t = torch.tensor([[0.5, -2.0], [1.25, 3.0]]).to(dtype)
    out = to_numpy(t, "x")
    np.testing.assert_array_equal(out, [[0.5, -2.0], [1.25, 3.0]])
    assert out.dtype == (np.float32 if dtype == torch.bfloat16 else t.numpy().dtype)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_reports_the_first_bad_index(bad):
    x = np.zeros((9000, 3), dtype=np.float32)
    check_finite(x, "d")  # fast path: nothing raised
    x[5000, 2] = bad
    with pytest.raises(ValueError, match=r"d has a non-finite value \(.*\) at index \(5000, 2\)"):
        check_finite(x, "d", rows=4096)


def test_check_distmat_keeps_dtype_and_rejects_non_numbers():
    assert check_distmat(np.zeros((2, 3), np.float16)).dtype == np.float16
    assert check_distmat(torch.zeros(2, 3, dtype=torch.bfloat16)).dtype == np.float32
    with pytest.raises(ValueError, match="distmat must hold real numbers"):
        check_distmat(np.zeros((2, 3), complex))
    with pytest.raises(ValueError, match="dist has a non-finite"):
        check_distmat(np.full((2, 3), np.nan), "dist")


@pytest.mark.parametrize(
    ("features", "dtype"),
    [
        (torch.ones(3, 4, dtype=torch.bfloat16), torch.bfloat16),
        (torch.ones(3, 4, dtype=torch.float16), torch.float16),
        (np.ones((3, 4), np.float64), torch.float64),
        (np.ones((3, 4), np.longdouble), torch.float64),
        (np.ones((3, 4), np.int16), torch.float32),
        ([[1.0, 2.0]], torch.float64),
    ],
)
def test_check_features_accepts_every_real_dtype(features, dtype):
    assert check_features(features, "f").dtype == dtype


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.ones(4), "f must be 2-D"),
        (np.ones((0, 4)), "f is empty"),
        (np.ones((2, 2), complex), "f must hold real numbers"),
        (torch.ones(2, 2, dtype=torch.bool), "f must hold real numbers"),
        (np.array([[1.0, np.inf]]), "f has a non-finite value in row 0"),
        (torch.tensor([[1.0], [float("nan")]], dtype=torch.bfloat16), "non-finite value in row 1"),
    ],
)
def test_check_features_errors_name_the_argument(features, message):
    with pytest.raises(ValueError, match=message):
        check_features(features, "f")


def test_check_ids_and_max_rank():
    np.testing.assert_array_equal(check_ids(np.array([1.0, 2.0]), "p", 2), [1, 2])
    assert check_ids(torch.tensor([3, 4], dtype=torch.int32), "p", 2).dtype == np.int64
    with pytest.raises(ValueError, match="p must hold integer ids"):
        check_ids(np.array([1.5, 2.0]), "p", 2)
    with pytest.raises(ValueError, match="p has 2 entries but 3"):
        check_ids(np.array([1, 2]), "p", 3)
    assert check_max_rank(50, 10) == 10
    with pytest.raises(ValueError, match="max_rank must be a positive integer"):
        check_max_rank(True, 10)
