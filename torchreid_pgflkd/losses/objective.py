"""The PGFL-KD objective: every loss term, named, then weighted and summed once.

Term names are ``loss_<branch>_<kind>`` with kinds ``id`` (label-smoothed cross-entropy),
``tri`` (batch-hard triplet), ``align`` (SAB's part alignment); distillation and
interaction terms go into MB and carry their teacher: ``loss_mb_kdlogit_<teacher>``,
``loss_mb_kdfeat_<teacher>``, ``loss_mb_inter_<teacher>`` with teacher ``feb`` or ``sab``.
The paper's ablations fall out of which branches the model returned and of zero weights:

============== ============================ ===========================================
ablation       branches in ``outputs``      weights
============== ============================ ===========================================
MB only        mb                           (KD, interaction: nothing to compute)
+FEB           mb, feb                      kd_logit = kd_feat = inter = 0
+SAB           mb, feb, sab                 kd_logit = kd_feat = inter = 0
+KD            mb, feb, sab                 inter = 0
+interaction   mb, feb, sab, interaction    defaults
============== ============================ ===========================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from torchreid_pgflkd.losses.alignment import part_alignment_loss
from torchreid_pgflkd.losses.distillation import (
    attention_distillation,
    feature_distillation,
    interaction_loss,
    logit_distillation,
)
from torchreid_pgflkd.losses.identity import cross_entropy_label_smooth
from torchreid_pgflkd.losses.triplet import batch_hard_triplet_loss

STUDENT = "mb"
TEACHERS: tuple[str, ...] = ("feb", "sab")
BRANCHES: tuple[str, ...] = (STUDENT, *TEACHERS)

# The kind as written in a term's name -> the ``LossWeights`` field that weights it.
KIND_TO_WEIGHT: dict[str, str] = {
    "id": "id",
    "tri": "tri",
    "align": "align",
    "kdlogit": "kd_logit",
    "kdfeat": "kd_feat",
    "kdattn": "kd_attn",
    "inter": "inter",
}


@dataclass(frozen=True)
class LossWeights:
    """One weight per kind of term; a zero weight means the term is not even computed.

    Defaults (our reading; the paper's abstract gives none): 1 for the identity, triplet,
    alignment, spatial-distillation and interaction terms; logit distillation 4 and feature
    distillation 10. The distillation weights were chosen on the embedded benchmark (seed 0):
    at 1 each, MB took in little of its teachers' gain (teachers +12 Rank-1 over MB with
    pose; see benchmarks/ablation.py and ``PGFLKDEngine.evaluate_branches``).
    A weight applies to every term of its kind (e.g. ``kd_logit`` to both teachers' terms).
    """

    id: float = 1.0
    tri: float = 1.0
    align: float = 1.0
    kd_logit: float = 4.0
    kd_feat: float = 10.0
    kd_attn: float = 1.0
    inter: float = 1.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"loss weight {field.name!r} must be a finite number >= 0, got {value!r}"
                )


def term_kind(name: str) -> str:
    """``"loss_mb_kdlogit_feb"`` -> ``"kdlogit"``; raises ``ValueError`` on other names."""
    parts = name.split("_")
    if len(parts) < 3 or parts[0] != "loss" or parts[2] not in KIND_TO_WEIGHT:
        raise ValueError(
            f"loss term name must be loss_<branch>_<kind>[_<teacher>] with kind in "
            f"{tuple(KIND_TO_WEIGHT)}, got {name!r}"
        )
    return parts[2]


def compute_losses(
    outputs: Mapping[str, Any],
    pids: torch.Tensor,
    pose_maps: torch.Tensor | None = None,
    *,
    weights: LossWeights = LossWeights(),  # frozen, hence safe as a default
    margin: float | None = 0.3,
    label_smoothing: float = 0.1,
    temperature: float = 4.0,
    align_kind: str = "mse",
) -> dict[str, torch.Tensor]:
    """Every unweighted loss term of one training batch, by name (see the module docstring).

    A term is computed only when its branch is in ``outputs`` and its weight is non-zero.

    Args:
        outputs: the model's train-mode output. ``outputs[b]`` for ``b`` in ``mb`` (required),
            ``feb``, ``sab`` (optional) holds ``"feat"`` ``(B, D)`` (triplet, feature KD),
            ``"logits"`` ``(B, C)`` (identity, logit KD); ``outputs["sab"]`` also holds
            ``"part_activations"`` ``(B, P, h, w)``; ``outputs["interaction"]`` (optional)
            maps a teacher name to its classifier weight ``(C, D)``, through which MB's
            BN feature is classified (the weight is detached: a teacher signal).
        pids: ``(B,)`` int64 identity labels in ``[0, C)``.
        pose_maps: ``(B, P + 1, h, w)`` pose maps; needed only for the alignment term.
        weights: which terms to compute (non-zero) and, in ``total_loss``, their weights.
        margin: triplet margin; ``None`` or ``0`` for the soft margin.
        label_smoothing: epsilon of the identity and interaction losses.
        temperature: logit distillation temperature (4 by default: with hundreds of
            identities, a softer teacher distribution shows which identities look alike).
        align_kind: ``"mse"`` or ``"kl"`` (``part_alignment_loss``).

    Returns:
        ``{name: scalar tensor}``, in a fixed order: per-branch terms, alignment,
        distillation, interaction.
    """
    if STUDENT not in outputs:
        raise ValueError(f"outputs must hold the main branch {STUDENT!r}, got {sorted(outputs)}")
    losses: dict[str, torch.Tensor] = {}

    for branch in (b for b in BRANCHES if b in outputs):
        head = outputs[branch]
        if weights.id:
            losses[f"loss_{branch}_id"] = cross_entropy_label_smooth(
                head["logits"], pids, epsilon=label_smoothing
            )
        if weights.tri:
            losses[f"loss_{branch}_tri"] = batch_hard_triplet_loss(
                head["feat"], pids, margin=margin
            )

    if "sab" in outputs and weights.align:
        if pose_maps is None:
            raise ValueError("the SAB alignment loss needs pose_maps (B, P + 1, h, w), got None")
        losses["loss_sab_align"] = part_alignment_loss(
            outputs["sab"]["part_activations"], pose_maps, kind=align_kind
        )

    student = outputs[STUDENT]
    for teacher in (t for t in TEACHERS if t in outputs):
        if weights.kd_logit:
            losses[f"loss_mb_kdlogit_{teacher}"] = logit_distillation(
                student["logits"], outputs[teacher]["logits"], temperature=temperature
            )
        if weights.kd_feat:
            losses[f"loss_mb_kdfeat_{teacher}"] = feature_distillation(
                student["feat"], outputs[teacher]["feat"]
            )
        # Spatial distillation of FEB's foreground focus (FEB is the foreground teacher).
        if weights.kd_attn and teacher == "feb" and "activation" in student:
            if pose_maps is None:
                raise ValueError("attention distillation needs pose_maps (B, P + 1, h, w)")
            losses["loss_mb_kdattn_feb"] = attention_distillation(
                student["activation"], outputs["feb"]["activation"], pose_maps[:, -1]
            )

    interaction = outputs.get("interaction") or {}
    unknown = set(interaction) - set(TEACHERS)
    if unknown:
        raise ValueError(
            f"outputs['interaction'] keys must be teacher names {TEACHERS}, got {sorted(unknown)}"
        )
    if weights.inter:
        for teacher in (t for t in TEACHERS if t in interaction):
            losses[f"loss_mb_inter_{teacher}"] = interaction_loss(
                student["bn_feat"], interaction[teacher], pids, epsilon=label_smoothing
            )
    return losses


def total_loss(losses: Mapping[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """The one weighted sum of the terms of ``compute_losses``: the tensor to backpropagate.

    Each term is weighted by the ``weights`` field of its kind (``KIND_TO_WEIGHT``).
    """
    if not losses:
        raise ValueError("no loss term to sum: every weight is 0 or no branch was returned")
    weighted = [getattr(weights, KIND_TO_WEIGHT[term_kind(n)]) * v for n, v in losses.items()]
    return torch.stack(weighted).sum()
