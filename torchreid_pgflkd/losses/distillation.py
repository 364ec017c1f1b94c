"""Knowledge distillation from the pose-guided branches (FEB, SAB) into the main branch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchreid_pgflkd.losses.identity import cross_entropy_label_smooth


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


def feature_distillation(
    student_feat: torch.Tensor, teacher_feat: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over the batch of ``||s / |s| - t / |t|||^2`` (equal to ``2 * (1 - cos(s, t))``).

    Comparing directions rather than raw vectors leaves the student its own feature scale
    (MB's and the teachers' pooling differ), and the value is bounded in ``[0, 4]``.

    Args:
        student_feat: ``(B, D)`` pooled features of the student (MB).
        teacher_feat: ``(B, D)`` pooled features of the teacher; detached here.
        mask: optional ``(B, D)`` 0/1 mask of the teacher's channels to compare on (SAB's
            ``feat_mask``: the channels of a part with no visible keypoint say nothing);
            both features are masked before the comparison.

    Returns:
        A scalar tensor, 0 when the features point the same way.
    """
    if student_feat.shape != teacher_feat.shape:
        raise ValueError(
            f"student and teacher features must have the same shape (B, D), got "
            f"{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}"
        )
    student, teacher = student_feat.float(), as_teacher(teacher_feat).float()
    if mask is not None:
        if mask.shape != student.shape:
            raise ValueError(
                f"mask must have the features' shape {tuple(student.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        mask = mask.detach().float()
        student, teacher = student * mask, teacher * mask
    student = F.normalize(student, dim=1)
    teacher = F.normalize(teacher, dim=1)
    return (student - teacher).pow(2).sum(dim=1).mean()


def attention_distillation(
    student_act: torch.Tensor, teacher_act: torch.Tensor, foreground: torch.Tensor
) -> torch.Tensor:
    """Where the student fires vs where the teacher fires on the visible body (our reading).

    The teacher's channel-mean activation map, masked by the foreground, is the target
    spatial distribution; the student's is compared with it as in SAB's alignment loss
    (``N * sum_cells (a - t) ** 2``, ``N = h * w``, both maps normalised to sum 1). This is
    how FEB's foreground focus reaches MB's *own* map, which MB average-pools at test time
    without any pose: MB learns to stay quiet on occluders and background. Images without
    pose (empty foreground) give no loss.

    Args:
        student_act: ``(B, h, w)`` non-negative activation map of the student (MB).
        teacher_act: ``(B, h, w)`` non-negative activation map of the teacher; detached here.
        foreground: ``(B, h, w)`` foreground mask in ``[0, 1]``.

    Returns:
        A scalar tensor; 0 when the student's map equals the masked teacher map up to scale.
    """
    if not student_act.shape == teacher_act.shape == foreground.shape:
        raise ValueError(
            "student, teacher activations and foreground must share the shape (B, h, w), got "
            f"{tuple(student_act.shape)}, {tuple(teacher_act.shape)}, {tuple(foreground.shape)}"
        )
    _, h, w = student_act.shape
    target = (as_teacher(teacher_act).float() * foreground.float()).flatten(1)
    has_pose = target.sum(dim=1) > 0
    if not bool(has_pose.any()):
        return student_act.sum() * 0.0
    target = target[has_pose] / target[has_pose].sum(dim=1, keepdim=True)
    student = student_act.float().flatten(1)[has_pose]
    student = student / student.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return ((student - target).pow(2).sum(dim=1) * (h * w)).mean()


def interaction_loss(
    student_bn_feat: torch.Tensor,
    teacher_classifier: torch.Tensor,
    pids: torch.Tensor,
    *,
    epsilon: float = 0.1,
) -> torch.Tensor:
    """MB's BN feature classified by a teacher's (detached) classifier: label-smoothed CE.

    Our reading of "interaction-based training": MB must be discriminative *in the teacher's
    feature space*. The teacher's classifier is a teacher signal, so it is detached here and
    only MB moves; otherwise the teacher classifier would drift towards MB's features.

    Args:
        student_bn_feat: ``(B, D)`` MB's BN feature.
        teacher_classifier: ``(C, D)`` weight of the teacher branch's bias-free classifier.
        pids: ``(B,)`` identity labels.
    """
    if teacher_classifier.dim() != 2 or teacher_classifier.shape[1] != student_bn_feat.shape[1]:
        raise ValueError(
            f"teacher classifier must be (C, D) with D = {student_bn_feat.shape[1]}, got "
            f"{tuple(teacher_classifier.shape)}"
        )
    logits = F.linear(student_bn_feat, as_teacher(teacher_classifier))
    return cross_entropy_label_smooth(logits, pids, epsilon=epsilon)
