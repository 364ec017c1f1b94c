"""What PGFL-KD returns in training: one typed record per branch, and the teachers' classifiers.

This is the contract between the model and the losses (``losses.compute_losses``). Shapes for
a batch of ``B`` images, ``C`` identities, feature dim ``D``, ``P`` parts and an ``(h, w)``
layer4 map (16x8 at 256x128 with last stride 1).

Both classes are registered as pytree nodes, so that torch utilities that walk a module's
output (``DistributedDataParallel`` with ``find_unused_parameters``, ``torch.compile``) see
the tensors inside them, as they did in the dict this replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch

STUDENT = "mb"
TEACHERS: tuple[str, ...] = ("feb", "sab")
BRANCHES: tuple[str, ...] = (STUDENT, *TEACHERS)


@dataclass
class BranchOutput:
    """One branch's training outputs.

    Attributes:
        feat: ``(B, D)`` pooled feature, before the BNNeck (triplet loss, feature KD).
        bn_feat: ``(B, D)`` BN feature (the test-time feature; interaction loss).
        logits: ``(B, C)`` identity logits (identity loss, logit KD).
        activation: ``(B, h, w)`` channel-mean of the layer4 map; MB and FEB, when the model
            has FEB (spatial distillation FEB -> MB).
        part_activations: ``(B, P, h, w)`` channel-mean map of each of SAB's ``P`` channel
            groups; SAB only (alignment loss).
        feat_mask: ``(B, D)`` 1 on the channels of ``feat`` that saw a visible part, 0 on
            those of dropped parts; SAB with ``sab_invisible="drop"`` only (feature
            distillation compares the student with the teacher on the kept channels).
    """

    feat: torch.Tensor
    bn_feat: torch.Tensor
    logits: torch.Tensor
    activation: torch.Tensor | None = None
    part_activations: torch.Tensor | None = None
    feat_mask: torch.Tensor | None = None

    def float(self) -> BranchOutput:
        """A copy with every tensor in float32 (no copy of tensors already in float32)."""
        return replace(self, **{f.name: _float(getattr(self, f.name)) for f in fields(self)})


@dataclass
class TrainOutput:
    """The model's train-mode output.

    Attributes:
        branches: branch name -> its outputs; names among ``BRANCHES``, MB first.
        teacher_classifiers: teacher name -> its classifier weight ``(C, D)``, through which
            the interaction loss classifies MB's BN feature; empty when interaction is off.

    Raises ``ValueError`` on construction when the branches break the contract above (no MB,
    an unknown name, a classifier of a branch that is not there, SAB without
    ``part_activations``, MB or FEB without ``activation`` when FEB is there).
    """

    branches: dict[str, BranchOutput]
    teacher_classifiers: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = list(self.branches)
        if not names or names[0] != STUDENT:
            raise ValueError(f"branches must start with the main branch {STUDENT!r}, got {names}")
        unknown = [n for n in names if n not in BRANCHES]
        if unknown:
            raise ValueError(f"branch names must be among {BRANCHES}, got {unknown}")
        teachers = [n for n in names if n != STUDENT]
        stray = [t for t in self.teacher_classifiers if t not in teachers]
        if stray:
            raise ValueError(
                f"teacher_classifiers keys must be teacher branches present ({teachers}), "
                f"got {stray}"
            )
        for name, branch in self.branches.items():
            if not isinstance(branch, BranchOutput):
                raise TypeError(f"branches[{name!r}] must be a BranchOutput, got {type(branch)}")
        if "sab" in self.branches and self.branches["sab"].part_activations is None:
            raise ValueError("branches['sab'] needs part_activations (B, P, h, w)")
        if "feb" in self.branches:
            missing = [n for n in (STUDENT, "feb") if self.branches[n].activation is None]
            if missing:
                raise ValueError(f"with FEB, branches {missing} need activation (B, h, w)")

    def float(self) -> TrainOutput:
        """A copy with every tensor in float32, for losses computed after autocast."""
        return TrainOutput(
            branches={name: branch.float() for name, branch in self.branches.items()},
            teacher_classifiers={n: w.float() for n, w in self.teacher_classifiers.items()},
        )


def _float(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.float()


for _cls in (BranchOutput, TrainOutput):
    torch.export.register_dataclass(_cls, serialized_type_name=f"{__name__}.{_cls.__name__}")
