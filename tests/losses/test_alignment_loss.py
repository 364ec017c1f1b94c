import math

import pytest
import torch

from torchreid_pgflkd.losses import part_alignment_loss


def _pose_maps(parts: torch.Tensor) -> torch.Tensor:
    """(B, P, h, w) part maps -> (B, P + 1, h, w) pose maps with the max as foreground."""
    return torch.cat([parts, parts.amax(dim=1, keepdim=True)], dim=1)


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_zero_when_activation_is_the_part_map_up_to_a_scale(kind):
    parts = torch.rand(2, 3, 4, 2)
    activations = parts * torch.tensor([5.0, 0.1, 30.0]).view(1, 3, 1, 1)
    loss = part_alignment_loss(activations, _pose_maps(parts), kind=kind)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_mse_and_kl_by_hand():
    # One image, one part, a 1 x 2 map. Part map (1, 0) -> m = (1, 0); activation (1, 1)
    # -> a = (0.5, 0.5). mse = N * sum (a - m)^2 = 2 * (0.25 + 0.25) = 1; KL(m || a) = ln 2.
    parts = torch.tensor([[[[1.0, 0.0]]]])
    activations = torch.tensor([[[[1.0, 1.0]]]])
    pose_maps = _pose_maps(parts)
    assert part_alignment_loss(activations, pose_maps, kind="mse").item() == pytest.approx(1.0)
    kl = part_alignment_loss(activations, pose_maps, kind="kl").item()
    assert kl == pytest.approx(math.log(2.0), rel=1e-5)


def test_mse_scale_does_not_depend_on_resolution():
    # Part on the top half, activation on the bottom half: m = a = 2 / N on disjoint halves,
    # so sum (a - m)^2 = N * (2 / N)^2 = 4 / N and the scaled loss is 4 at every N.
    for h, w in [(2, 2), (16, 8)]:
        parts = torch.zeros(1, 1, h, w)
        parts[..., : h // 2, :] = 1.0
        activations = 1.0 - parts
        loss = part_alignment_loss(activations, _pose_maps(parts), kind="mse")
        assert loss.item() == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_invisible_parts_give_neither_loss_nor_gradient(kind):
    torch.manual_seed(0)
    parts = torch.rand(2, 3, 4, 2)
    parts[0, 1] = 0.0  # part 1 of image 0 is occluded
    parts[1, 2] = 0.0  # part 2 of image 1 is occluded
    activations = torch.rand(2, 3, 4, 2, requires_grad=True)
    loss = part_alignment_loss(activations, _pose_maps(parts), kind=kind)
    loss.backward()
    assert torch.all(activations.grad[0, 1] == 0)
    assert torch.all(activations.grad[1, 2] == 0)
    assert activations.grad[0, 0].abs().sum() > 0
    # Changing an invisible group's activation changes nothing.
    changed = activations.detach().clone()
    changed[0, 1] = torch.rand(4, 2) * 100
    again = part_alignment_loss(changed, _pose_maps(parts), kind=kind)
    assert again.item() == pytest.approx(loss.item(), rel=1e-6)


def test_mean_over_visible_pairs_only():
    # Two images, one part; image 1 has no pose. The loss is image 0's alone (1, by hand above).
    parts = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])
    activations = torch.tensor([[[[1.0, 1.0]]], [[[0.0, 7.0]]]])
    loss = part_alignment_loss(activations, _pose_maps(parts), kind="mse")
    assert loss.item() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_all_parts_invisible_is_an_attached_zero(kind):
    activations = torch.rand(3, 6, 4, 2, requires_grad=True)
    loss = part_alignment_loss(activations, torch.zeros(3, 7, 4, 2), kind=kind)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(activations.grad == 0)


def test_dead_group_on_a_visible_part_stays_finite():
    parts = torch.rand(1, 2, 4, 2)
    activations = torch.zeros(1, 2, 4, 2, requires_grad=True)
    for kind in ("mse", "kl"):
        loss = part_alignment_loss(activations, _pose_maps(parts), kind=kind)
        (grad,) = torch.autograd.grad(loss, activations)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_shape_mismatch_and_unknown_kind_are_reported():
    activations = torch.rand(2, 6, 4, 2)
    with pytest.raises(ValueError, match=r"\(B, P \+ 1, h, w\)"):
        part_alignment_loss(activations, torch.rand(2, 6, 4, 2))
    with pytest.raises(ValueError, match="mse"):
        part_alignment_loss(activations, torch.rand(2, 7, 4, 2), kind="l1")
