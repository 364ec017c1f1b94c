"""SAB's treatment of a part with no visible keypoint: pooled whole (default) or dropped."""

from __future__ import annotations

import pytest
import torch

from torchreid_pgflkd.losses.distillation import feature_distillation
from torchreid_pgflkd.losses.objective import compute_losses
from torchreid_pgflkd.models import build_pgflkd

P = 6


def _model(mode: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_pgflkd(num_classes=3, backbone="resnet_mini", pretrained=False,
                        num_parts=P, sab_invisible=mode)  # fmt: skip


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    images = torch.randn(3, 3, 64, 32)
    model = _model("pool_all")
    h, w = model.feature_maps(images[:1])["mb"].shape[-2:]
    pose = torch.rand(3, P + 1, h, w)
    pose[0, 2] = 0  # image 0: part 2 invisible
    pose[1, :] = 0  # image 1: no pose at all
    return images, pose  # image 2: every part visible


def test_drop_zeroes_invisible_parts_and_masks_them() -> None:
    images, pose = _inputs()
    kept = _model("pool_all").train().forward_train(images, pose).branches["sab"]
    dropped = _model("drop").train().forward_train(images, pose).branches["sab"]
    assert kept.feat_mask is None
    mask = dropped.feat_mask
    group = torch.tensor_split(torch.arange(mask.shape[1]), P)[2]  # part 2's channels
    assert not mask[0, group].any() and not dropped.feat[0, group].any()
    assert kept.feat[0, group].abs().sum() > 0  # pooled whole under pool_all
    # Every other part, every part of an image with no pose, every part of a full pose: kept
    others = torch.ones(mask.shape[1], dtype=torch.bool)
    others[group] = False
    assert mask[0, others].eq(1).all() and mask[1:].eq(1).all()
    torch.testing.assert_close(dropped.feat * mask, kept.feat * mask)


def test_feature_distillation_ignores_masked_channels() -> None:
    torch.manual_seed(2)
    student, teacher = torch.randn(4, 12), torch.randn(4, 12)
    mask = torch.ones(4, 12)
    mask[:, 6:] = 0
    wild = teacher.clone()
    wild[:, 6:] = 100 * torch.randn(4, 6)  # only masked channels differ
    masked = feature_distillation(student, teacher, mask)
    torch.testing.assert_close(masked, feature_distillation(student, wild, mask))
    assert not torch.isclose(masked, feature_distillation(student, teacher))
    same = student.clone()
    same[:, 6:] = 0
    assert feature_distillation(same, student, mask) < 1e-6  # equal on the kept channels
    with pytest.raises(ValueError, match="mask"):
        feature_distillation(student, teacher, mask[:, :5])


def test_drop_trains_with_finite_losses_and_gradients() -> None:
    images, pose = _inputs()
    model = _model("drop").train()
    out = model.forward_train(images, pose)
    losses = compute_losses(out, torch.tensor([0, 1, 2]), pose)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="sab_invisible"):
        _model("skip")
