"""The PGFL-KD objective: every loss term, named, then weighted and summed once.

Term names are ``loss_<branch>_<kind>[_<teacher>]``: the branch the term trains, its kind and,
for the terms through which MB learns from a teacher branch, that teacher (``feb``, ``sab``).
Kinds: ``id`` (label-smoothed cross-entropy), ``tri`` (batch-hard triplet), ``align`` (SAB's
part alignment), ``kdlogit`` / ``kdfeat`` (logit / feature distillation), ``kdattn`` (spatial
distillation, FEB only), ``inter`` (MB's feature through the teacher's classifier).
``LOSS_TABLE`` declares them, one row per term.

The paper's ablations (``config.experiment``) fall out of the branches the model was built
with, of its interaction switch (off: no teacher classifiers, hence no ``inter`` term) and of
zero weights:

============== ============== =========== ================================================
ablation       branches       interaction weights set to 0
============== ============== =========== ================================================
baseline       mb             off         none (nothing to distil)
+FEB           mb, feb        off         kd_logit, kd_feat, kd_attn
+SAB           mb, sab        off         kd_logit, kd_feat, kd_attn
+KD            mb, feb, sab   off         none
+interaction   mb, feb, sab   on          kd_logit, kd_feat, kd_attn
full           mb, feb, sab   on          none
============== ============== =========== ================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch

from torchreid_pgflkd.losses.alignment import ALIGN_KINDS, part_alignment_loss
from torchreid_pgflkd.losses.distillation import (
    attention_distillation,
    feature_distillation,
    interaction_loss,
    logit_distillation,
)
from torchreid_pgflkd.losses.identity import cross_entropy_label_smooth
from torchreid_pgflkd.losses.triplet import batch_hard_triplet_loss
from torchreid_pgflkd.models.outputs import (
    BRANCHES,
    STUDENT,
    TEACHERS,
    BranchOutput,
    TrainOutput,
)

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
    ``sab_teacher`` then multiplies every term through which MB learns from SAB (logit and
    feature distillation, interaction): how much SAB teaches, 1 as in the paper's reading.
    """

    id: float = 1.0
    tri: float = 1.0
    align: float = 1.0
    kd_logit: float = 4.0
    kd_feat: float = 10.0
    kd_attn: float = 1.0
    inter: float = 1.0
    sab_teacher: float = 1.0

    def of(self, name: str) -> float:
        """The weight of the term called ``name`` (``loss_<branch>_<kind>[_<teacher>]``)."""
        weight = getattr(self, KIND_TO_WEIGHT[term_kind(name)])
        return weight * self.sab_teacher if name.endswith("_sab") else weight

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


@dataclass(frozen=True)
class LossSettings:
    """Everything the objective takes besides the batch; one object from config to engine.

    Attributes:
        weights: which terms to compute (non-zero) and, in ``total_loss``, their weights.
        margin: triplet margin; ``None`` or ``0`` for the soft margin.
        label_smoothing: epsilon of the identity and interaction losses, in ``[0, 1)``.
        temperature: logit distillation temperature (4 by default: with hundreds of
            identities, a softer teacher distribution shows which identities look alike).
        align_kind: SAB's alignment distance, one of ``ALIGN_KINDS`` (``part_alignment_loss``).
    """

    weights: LossWeights = LossWeights()  # frozen, hence safe as a default
    margin: float | None = 0.3
    label_smoothing: float = 0.1
    temperature: float = 4.0
    align_kind: str = "mse"

    def __post_init__(self) -> None:
        if not isinstance(self.weights, LossWeights):
            raise TypeError(f"weights must be a LossWeights, got {type(self.weights).__name__}")
        if self.margin is not None and not self.margin >= 0:
            raise ValueError(f"margin must be >= 0 or None (soft margin), got {self.margin!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.align_kind not in ALIGN_KINDS:
            raise ValueError(f"align_kind must be one of {ALIGN_KINDS}, got {self.align_kind!r}")


@dataclass(frozen=True)
class TermInputs:
    """What a row's function sees: one (branch, teacher) pair of one batch.

    Teacher tensors arrive as the model returned them: the distillation functions cut them
    from the graph, through ``distillation.as_teacher`` (the one place).
    """

    branch: BranchOutput  # the branch the term trains
    teacher: BranchOutput | None  # the branch it learns from, for distillation terms
    teacher_classifier: torch.Tensor | None  # (C, D), for the interaction term
    pids: torch.Tensor  # (B,)
    pose_maps: torch.Tensor | None  # (B, P + 1, h, w), for rows with needs_pose
    settings: LossSettings


@dataclass(frozen=True)
class LossTerm:
    """One row of the objective.

    Attributes:
        kind: the kind in the term's name, a key of ``KIND_TO_WEIGHT`` (which names its weight).
        branch: the branch the term trains, or ``"*"`` for every branch present.
        teacher: the teacher branch it learns from, ``"*"`` for every teacher present, or
            ``None`` for a term on the branch's own labels or pose.
        fn: ``TermInputs -> scalar tensor``.
        needs_pose: ``compute_losses`` raises ``ValueError`` naming the term when it has no
            pose maps.
        needs_classifier: computed only when the model returned the teacher's classifier
            (interaction on).
    """

    kind: str
    branch: str
    teacher: str | None
    fn: Callable[[TermInputs], torch.Tensor]
    needs_pose: bool = False
    needs_classifier: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KIND_TO_WEIGHT:
            raise ValueError(f"kind must be one of {tuple(KIND_TO_WEIGHT)}, got {self.kind!r}")
        if self.branch not in (*BRANCHES, "*"):
            raise ValueError(f"branch must be one of {BRANCHES} or '*', got {self.branch!r}")
        if self.teacher not in (*TEACHERS, "*", None):
            raise ValueError(
                f"teacher must be one of {TEACHERS}, '*' or None, got {self.teacher!r}"
            )

    def pairs(self, outputs: TrainOutput) -> list[tuple[str, str | None]]:
        """The ``(branch, teacher)`` pairs of this row that ``outputs`` can feed."""
        present = [b for b in BRANCHES if b in outputs.branches]
        branches = [b for b in present if self.branch in ("*", b)]
        teachers: list[str | None] = [None]
        if self.teacher is not None:
            teachers = [t for t in present if t in TEACHERS and self.teacher in ("*", t)]
            if self.needs_classifier:
                teachers = [t for t in teachers if t in outputs.teacher_classifiers]
        return [(b, t) for b in branches for t in teachers if b != t]


def term_name(kind: str, branch: str, teacher: str | None = None) -> str:
    """``("kdlogit", "mb", "feb")`` -> ``"loss_mb_kdlogit_feb"``."""
    return f"loss_{branch}_{kind}" + (f"_{teacher}" if teacher else "")


def _identity(x: TermInputs) -> torch.Tensor:
    return cross_entropy_label_smooth(x.branch.logits, x.pids, epsilon=x.settings.label_smoothing)


def _triplet(x: TermInputs) -> torch.Tensor:
    return batch_hard_triplet_loss(x.branch.feat, x.pids, margin=x.settings.margin)


def _alignment(x: TermInputs) -> torch.Tensor:
    return part_alignment_loss(x.branch.part_activations, x.pose_maps, kind=x.settings.align_kind)


def _kd_logit(x: TermInputs) -> torch.Tensor:
    return logit_distillation(x.branch.logits, x.teacher.logits, temperature=x.settings.temperature)


def _kd_feat(x: TermInputs) -> torch.Tensor:
    return feature_distillation(x.branch.feat, x.teacher.feat, x.teacher.feat_mask)


def _kd_attn(x: TermInputs) -> torch.Tensor:
    # FEB is the foreground teacher: its map, masked by the foreground, is MB's target.
    return attention_distillation(x.branch.activation, x.teacher.activation, x.pose_maps[:, -1])


def _interaction(x: TermInputs) -> torch.Tensor:
    return interaction_loss(
        x.branch.bn_feat, x.teacher_classifier, x.pids, epsilon=x.settings.label_smoothing
    )


# The objective, one row per term. Sections run in order; within a section, terms run branch
# by branch (teacher by teacher for MB's terms from a teacher), then row by row. That is the
# order of the log and of the sum (float addition is not associative: keep it).
LOSS_TABLE: tuple[tuple[LossTerm, ...], ...] = (
    (  # every branch learns the identities (BoT's two losses)
        LossTerm("id", "*", None, _identity),
        LossTerm("tri", "*", None, _triplet),
    ),
    (LossTerm("align", "sab", None, _alignment, needs_pose=True),),  # groups fire on parts
    (  # MB learns from each teacher's logits and feature, and where FEB looks
        LossTerm("kdlogit", STUDENT, "*", _kd_logit),
        LossTerm("kdfeat", STUDENT, "*", _kd_feat),
        LossTerm("kdattn", STUDENT, "feb", _kd_attn, needs_pose=True),
    ),
    (LossTerm("inter", STUDENT, "*", _interaction, needs_classifier=True),),
)


def compute_losses(
    outputs: TrainOutput,
    pids: torch.Tensor,
    pose_maps: torch.Tensor | None = None,
    settings: LossSettings = LossSettings(),  # frozen, hence safe as a default
) -> dict[str, torch.Tensor]:
    """Every unweighted loss term of one training batch, by name (see ``LOSS_TABLE``).

    A term is computed only when ``outputs`` holds its branch and teacher (and, for the
    interaction term, the teacher's classifier) and its weight is non-zero.

    Args:
        outputs: the model's train-mode output (in float32: ``TrainOutput.float()`` after
            autocast).
        pids: ``(B,)`` int64 identity labels in ``[0, C)``.
        pose_maps: ``(B, P + 1, h, w)`` pose maps; needed by the alignment and spatial
            distillation terms only.
        settings: weights and the options of the loss functions.

    Returns:
        ``{name: scalar tensor}`` in ``LOSS_TABLE``'s order: per-branch terms, alignment,
        distillation, interaction.
    """
    if not isinstance(outputs, TrainOutput):
        raise TypeError(
            f"outputs must be a TrainOutput (PGFLKD.forward_train), got {type(outputs).__name__}"
        )
    losses: dict[str, torch.Tensor] = {}
    for section in LOSS_TABLE:
        for branch, teacher, row in _section_terms(section, outputs, settings.weights):
            name = term_name(row.kind, branch, teacher)
            if row.needs_pose and pose_maps is None:
                raise ValueError(f"{name} needs pose_maps (B, P + 1, h, w), got None")
            losses[name] = row.fn(
                TermInputs(
                    branch=outputs.branches[branch],
                    teacher=outputs.branches[teacher] if teacher else None,
                    teacher_classifier=outputs.teacher_classifiers.get(teacher or ""),
                    pids=pids,
                    pose_maps=pose_maps,
                    settings=settings,
                )
            )
    return losses


def _section_terms(
    section: tuple[LossTerm, ...], outputs: TrainOutput, weights: LossWeights
) -> list[tuple[str, str | None, LossTerm]]:
    """``(branch, teacher, row)`` of a section's terms to compute, in order (``LOSS_TABLE``)."""
    terms = [
        (BRANCHES.index(teacher or branch), i, branch, teacher, row)
        for i, row in enumerate(section)
        for branch, teacher in row.pairs(outputs)
        if weights.of(term_name(row.kind, branch, teacher))
    ]
    terms.sort(key=lambda t: t[:2])
    return [(branch, teacher, row) for _, _, branch, teacher, row in terms]


def total_loss(losses: Mapping[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """The one weighted sum of the terms of ``compute_losses``: the tensor to backpropagate.

    Each term is weighted by the ``weights`` field of its kind (``KIND_TO_WEIGHT``), times
    ``weights.sab_teacher`` for MB's terms from SAB (``LossWeights.of``).
    """
    if not losses:
        raise ValueError("no loss term to sum: every weight is 0 or no branch was returned")
    weighted = [weights.of(n) * v for n, v in losses.items()]
    return torch.stack(weighted).sum()
