import math

import pytest
import torch

from torchreid_pgflkd.losses import batch_hard_triplet_loss, euclidean_distances


def _points(*coords):
    return torch.tensor(coords, dtype=torch.float32, requires_grad=True)


def test_one_dimensional_case_by_hand():
    # x = 0, 1 (id 0) and 3, 7 (id 1). Per anchor (d_ap, d_an): (1, 3), (1, 2), (4, 2), (4, 6);
    # with margin 0.3 only the anchor at 3 violates: 4 - 2 + 0.3 = 2.3; mean over 4 anchors.
    feat = _points([0.0], [1.0], [3.0], [7.0])
    pids = torch.tensor([0, 0, 1, 1])
    loss = batch_hard_triplet_loss(feat, pids, margin=0.3)
    assert math.isclose(loss.item(), 2.3 / 4, rel_tol=1e-5)


def test_two_dimensional_case_by_hand():
    # a=(0,0), b=(3,4) id 0; c=(0,1), d=(6,8) id 1.
    # d(a,b)=5, d(a,c)=1, d(a,d)=10, d(b,c)=sqrt(18), d(b,d)=5, d(c,d)=sqrt(85).
    # a: 5 - 1, b: 5 - sqrt(18), c: sqrt(85) - 1, d: sqrt(85) - 5, each + 0.3 (all positive).
    feat = _points([0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [6.0, 8.0])
    pids = torch.tensor([0, 0, 1, 1])
    gaps = [4.0, 5.0 - math.sqrt(18), math.sqrt(85) - 1.0, math.sqrt(85) - 5.0]
    expected = sum(g + 0.3 for g in gaps) / 4
    loss = batch_hard_triplet_loss(feat, pids, margin=0.3)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


@pytest.mark.parametrize("margin", [None, 0.0])
def test_soft_margin_is_softplus_of_the_gap(margin):
    feat = _points([0.0], [1.0], [3.0], [7.0])
    pids = torch.tensor([0, 0, 1, 1])
    gaps = [1.0 - 3.0, 1.0 - 2.0, 4.0 - 2.0, 4.0 - 6.0]
    expected = sum(math.log1p(math.exp(g)) for g in gaps) / 4
    loss = batch_hard_triplet_loss(feat, pids, margin=margin)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_anchors_without_positive_are_left_out_of_the_mean():
    # ids 1 and 2 are singletons: only the anchors at 0 and 1 count. With margin 1.5,
    # anchor 0: 1 - 3 + 1.5 < 0 -> 0; anchor 1: 1 - 2 + 1.5 = 0.5; mean over the 2 anchors.
    feat = _points([0.0], [1.0], [3.0], [7.0])
    pids = torch.tensor([0, 0, 1, 2])
    loss = batch_hard_triplet_loss(feat, pids, margin=1.5)
    assert math.isclose(loss.item(), 0.5 / 2, rel_tol=1e-5)


def test_single_identity_gives_attached_zero_without_nan():
    feat = torch.randn(4, 8, requires_grad=True)
    loss = batch_hard_triplet_loss(feat, torch.zeros(4, dtype=torch.long), margin=0.3)
    assert loss.item() == 0.0
    loss.backward()
    assert feat.grad is not None and torch.all(feat.grad == 0)


def test_coincident_features_have_finite_gradients():
    # Every distance is 0: the loss is the margin, and sqrt must not produce NaN gradients.
    feat = torch.ones(4, 3, requires_grad=True)
    loss = batch_hard_triplet_loss(feat, torch.tensor([0, 0, 1, 1]), margin=0.3)
    loss.backward()
    assert math.isclose(loss.item(), 0.3, abs_tol=1e-5)
    assert torch.isfinite(feat.grad).all()


def test_gradient_pulls_positive_in_and_pushes_negative_out():
    feat = _points([0.0], [1.0], [3.0], [7.0])
    batch_hard_triplet_loss(feat, torch.tensor([0, 0, 1, 1]), margin=0.3).backward()
    # Only anchor 3.0 violates: loss = (|7 - 3| - |3 - 1| + 0.3) / 4. Descent moves 7.0 down
    # (positive pulled in), 1.0 down (negative pushed out), 3.0 up; 0.0 takes no part.
    assert torch.allclose(feat.grad[:, 0], torch.tensor([0.0, 0.25, -0.5, 0.25]), atol=1e-5)


def test_euclidean_distances_are_accurate_for_far_from_origin_features():
    # Post-ReLU features share a large common offset: the expansion must not lose the small
    # differences to float32 cancellation.
    torch.manual_seed(0)
    x = 50.0 + torch.randn(6, 64)
    x[1] = x[0] + 0.01
    dist = euclidean_distances(x)
    exact = torch.cdist(x.double(), x.double()).float()
    assert torch.allclose(dist, exact, atol=2e-3)
    assert dist[0, 1].item() == pytest.approx(0.01 * 8, rel=0.05)
    assert torch.all(dist.diagonal() <= 1e-5)


def test_negative_margin_is_rejected():
    with pytest.raises(ValueError, match="margin"):
        batch_hard_triplet_loss(torch.randn(2, 2), torch.tensor([0, 1]), margin=-0.1)
