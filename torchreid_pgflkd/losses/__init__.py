"""Losses of PGFL-KD as plain functions, and the one function that names and combines them."""

from torchreid_pgflkd.losses.alignment import ALIGN_KINDS, part_alignment_loss
from torchreid_pgflkd.losses.distillation import (
    as_teacher,
    feature_distillation,
    logit_distillation,
)
from torchreid_pgflkd.losses.identity import cross_entropy_label_smooth
from torchreid_pgflkd.losses.objective import (
    BRANCHES,
    KIND_TO_WEIGHT,
    LOSS_TABLE,
    STUDENT,
    TEACHERS,
    LossSettings,
    LossTerm,
    LossWeights,
    TermInputs,
    compute_losses,
    term_kind,
    term_name,
    total_loss,
)
from torchreid_pgflkd.losses.triplet import batch_hard_triplet_loss, euclidean_distances

__all__ = [
    "ALIGN_KINDS",
    "BRANCHES",
    "KIND_TO_WEIGHT",
    "LOSS_TABLE",
    "STUDENT",
    "TEACHERS",
    "LossSettings",
    "LossTerm",
    "LossWeights",
    "TermInputs",
    "as_teacher",
    "batch_hard_triplet_loss",
    "compute_losses",
    "cross_entropy_label_smooth",
    "euclidean_distances",
    "feature_distillation",
    "logit_distillation",
    "part_alignment_loss",
    "term_kind",
    "term_name",
    "total_loss",
]
