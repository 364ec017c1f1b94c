"""Knowledge distillation from the pose-guided branches (FEB, SAB) into the main branch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def as_teacher(x: torch.Tensor) -> torch.Tensor:
    """The one place where teacher signals are cut from the graph.

    Distillation moves the student (MB) towards the teacher, never the teacher towards
    the student: the teachers learn from their own identity, triplet and alignment losses
    only. Every distillation term goes through this function.
    """
    return x.detach()


def logit_distillation(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 4.0
) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch.

    The ``T^2`` factor (Hinton et al., 2015) keeps the gradient's magnitude roughly
    independent of ``T``, so the loss weight need not be retuned when ``T`` changes.

    Args:
        student_logits: ``(B, C)`` logits of the student (MB).
        teacher_logits: ``(B, C)`` logits of the teacher; detached here.
        temperature: softening temperature ``T > 0``.

    Returns:
        A scalar tensor, 0 when the two logits are equal.
    """
    if temperature <= 0:
        raise ValueError(f"distillation temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits must have the same shape (B, C), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(as_teacher(teacher_logits).float() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def feature_distillation(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||s / |s| - t / |t|||^2`` (equal to ``2 * (1 - cos(s, t))``).

    Comparing directions rather than raw vectors leaves the student its own feature scale
    (MB's and the teachers' pooling differ), and the value is bounded in ``[0, 4]``.

    Args:
        student_feat: ``(B, D)`` pooled features of the student (MB).
        teacher_feat: ``(B, D)`` pooled features of the teacher; detached here.

    Returns:
        A scalar tensor, 0 when the features point the same way.
    """
    if student_feat.shape != teacher_feat.shape:
        raise ValueError(
            f"student and teacher features must have the same shape (B, D), got "
            f"{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}"
        )
    student = F.normalize(student_feat.float(), dim=1)
    teacher = F.normalize(as_teacher(teacher_feat).float(), dim=1)
    return (student - teacher).pow(2).sum(dim=1).mean()
