import math

import pytest
import torch

from torchreid_pgflkd.losses import as_teacher, feature_distillation, logit_distillation


def test_logit_kd_by_hand_with_t_squared_scaling():
    # Teacher logits (4 ln 3, 0) at T = 4 soften to softmax(ln 3, 0) = (3/4, 1/4); the student
    # (0, 0) is uniform. KL = 3/4 ln(3/2) + 1/4 ln(1/2), times T^2 = 16.
    student = torch.zeros(1, 2)
    teacher = torch.tensor([[4 * math.log(3.0), 0.0]])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = logit_distillation(student, teacher, temperature=4.0)
    assert got.item() == pytest.approx(16 * kl, rel=1e-5)
    # The same softened distributions at T = 1 give the bare KL: the factor is exactly T^2.
    at_one = logit_distillation(student, teacher / 4, temperature=1.0)
    assert at_one.item() == pytest.approx(kl, rel=1e-5)


def test_logit_kd_is_a_batch_mean():
    student = torch.zeros(2, 2)
    teacher = torch.tensor([[4 * math.log(3.0), 0.0], [0.0, 0.0]])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = logit_distillation(student, teacher, temperature=4.0)
    assert got.item() == pytest.approx(16 * kl / 2, rel=1e-5)


def test_feature_kd_by_hand():
    # Row 0: directions (1, 0) and (0, 1): squared distance 2. Row 1: same direction: 0.
    student = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    assert feature_distillation(student, teacher).item() == pytest.approx(1.0, rel=1e-6)


def test_zero_when_student_equals_teacher():
    torch.manual_seed(0)
    logits, feat = torch.randn(4, 10), torch.randn(4, 16)
    assert logit_distillation(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert feature_distillation(feat, feat.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_gets_no_gradient_and_student_does():
    torch.manual_seed(0)
    s_logits = torch.randn(4, 10, requires_grad=True)
    t_logits = torch.randn(4, 10, requires_grad=True)
    s_feat = torch.randn(4, 16, requires_grad=True)
    t_feat = torch.randn(4, 16, requires_grad=True)
    loss = logit_distillation(s_logits, t_logits) + feature_distillation(s_feat, t_feat)
    loss.backward()
    assert t_logits.grad is None and t_feat.grad is None
    assert s_logits.grad.abs().sum() > 0 and s_feat.grad.abs().sum() > 0


def test_as_teacher_cuts_the_graph_without_copying():
    x = torch.randn(3, requires_grad=True)
    y = as_teacher(x)
    assert not y.requires_grad and y.data_ptr() == x.data_ptr()


def test_bad_temperature_and_shapes_are_reported():
    with pytest.raises(ValueError, match="temperature"):
        logit_distillation(torch.zeros(1, 2), torch.zeros(1, 2), temperature=0.0)
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        logit_distillation(torch.zeros(1, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        feature_distillation(torch.zeros(1, 2), torch.zeros(1, 3))
