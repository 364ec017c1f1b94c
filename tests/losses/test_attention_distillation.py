"""Spatial distillation FEB -> MB: hand-worked values, teacher detached, empty poses skipped."""

from __future__ import annotations

import pytest
import torch

from torchreid_pgflkd.losses import LossSettings, LossWeights, compute_losses
from torchreid_pgflkd.losses.distillation import attention_distillation
from torchreid_pgflkd.models import BranchOutput, TrainOutput


def test_zero_when_student_matches_masked_teacher_up_to_scale() -> None:
    teacher = torch.rand(2, 4, 2)
    mask = torch.zeros(2, 4, 2)
    mask[:, 1:3] = 1.0
    student = 3.0 * teacher * mask
    assert attention_distillation(student, teacher, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_worked_value_on_two_cells() -> None:
    # target (1, 0) after masking; student uniform (0.5, 0.5): N * sum (a - t)^2 = 2 * 0.5 = 1.
    student = torch.tensor([[[1.0, 1.0]]])
    teacher = torch.tensor([[[5.0, 7.0]]])
    mask = torch.tensor([[[1.0, 0.0]]])
    assert attention_distillation(student, teacher, mask).item() == pytest.approx(1.0)


def test_teacher_gets_no_gradient_and_empty_pose_gives_nothing() -> None:
    student = torch.rand(3, 4, 2, requires_grad=True)
    teacher = torch.rand(3, 4, 2, requires_grad=True)
    mask = torch.rand(3, 4, 2)
    mask[1] = 0.0  # image without pose
    loss = attention_distillation(student, teacher, mask)
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    assert torch.all(student.grad[1] == 0)
    empty = attention_distillation(student, teacher, torch.zeros(3, 4, 2))
    assert empty.item() == 0.0 and empty.requires_grad


def test_objective_names_the_term_and_ablation_weight_switches_it_off() -> None:
    b, c, d, h, w = 4, 3, 8, 4, 2
    pids = torch.tensor([0, 0, 1, 1])
    pose = torch.rand(b, 7, h, w)

    def branch() -> BranchOutput:
        return BranchOutput(feat=torch.randn(b, d), bn_feat=torch.randn(b, d),
                            logits=torch.randn(b, c), activation=torch.rand(b, h, w))  # fmt: skip

    outputs = TrainOutput(branches={"mb": branch(), "feb": branch()})
    assert "loss_mb_kdattn_feb" in compute_losses(outputs, pids, pose)
    off = compute_losses(outputs, pids, pose, LossSettings(weights=LossWeights(kd_attn=0.0)))
    assert "loss_mb_kdattn_feb" not in off


def test_interaction_moves_mb_only_not_the_teacher_classifier() -> None:
    from torchreid_pgflkd.losses.distillation import interaction_loss

    student = torch.randn(4, 8, requires_grad=True)
    classifier = torch.randn(3, 8, requires_grad=True)
    loss = interaction_loss(student, classifier, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert classifier.grad is None and student.grad is not None and student.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(C, D\) with D = 8"):
        interaction_loss(student, torch.randn(3, 5), torch.tensor([0, 1, 2, 0]))
