import math

import torch
import torch.nn.functional as F

from torchreid_pgflkd.losses import cross_entropy_label_smooth


def test_matches_the_smoothed_target_formula_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    targets = torch.tensor([0, 2])
    eps, c = 0.1, 3
    expected = 0.0
    for row, y in zip(logits.tolist(), targets.tolist(), strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        log_p = [v - log_z for v in row]
        q = [(1 - eps) * (k == y) + eps / c for k in range(c)]
        expected += -sum(qk * lp for qk, lp in zip(q, log_p, strict=True))
    expected /= 2
    got = cross_entropy_label_smooth(logits, targets, epsilon=eps)
    assert math.isclose(got.item(), expected, rel_tol=1e-6)


def test_zero_epsilon_is_plain_cross_entropy_and_smoothing_raises_a_confident_loss():
    logits = torch.tensor([[10.0, 0.0, 0.0]])
    targets = torch.tensor([0])
    plain = cross_entropy_label_smooth(logits, targets, epsilon=0.0)
    assert torch.allclose(plain, F.cross_entropy(logits, targets))
    # A very confident correct prediction is penalised once targets are smoothed.
    assert cross_entropy_label_smooth(logits, targets, epsilon=0.1) > plain + 0.5


def test_rejects_epsilon_outside_unit_interval():
    import pytest

    with pytest.raises(ValueError, match="epsilon"):
        cross_entropy_label_smooth(torch.zeros(1, 2), torch.tensor([0]), epsilon=1.0)
