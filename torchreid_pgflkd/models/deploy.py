"""Deploy: the main branch alone, as a plain ResNet + BNNeck model that needs no pose."""

from __future__ import annotations

import copy

import torch
from torch import nn

from torchreid_pgflkd.models.pgflkd import PGFLKD


class DeployedReID(nn.Module):
    """stem..layer3 -> layer4 -> global average pool -> BNNeck.

    ``forward``: ``(B, 3, H, W) -> (B, D)`` BN feature (the ReID descriptor). The classifier
    is kept so that the parameter count matches a plain BNNeck model and the copy can be
    fine-tuned; it is not used at inference.
    """

    def __init__(
        self, stem: nn.Module, layer4: nn.Module, bn: nn.BatchNorm1d, classifier: nn.Linear
    ):
        super().__init__()
        self.stem = stem
        self.layer4 = layer4
        self.bn = bn
        self.classifier = classifier
        self.feature_dim = bn.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.bn(self.layer4(self.stem(images)).mean(dim=(2, 3)))


def to_deploy(model: nn.Module) -> DeployedReID:
    """A copy of ``model``'s main branch, in eval mode; ``model`` is never modified.

    Accepts a :class:`PGFLKD` or one wrapped in ``DistributedDataParallel`` / ``DataParallel``.
    """
    model = getattr(model, "module", model)
    if not isinstance(model, PGFLKD):
        raise TypeError(f"to_deploy expects a PGFLKD model, got {type(model).__name__}")
    deployed = DeployedReID(
        stem=copy.deepcopy(model.stem),
        layer4=copy.deepcopy(model.layer4["mb"]),
        bn=copy.deepcopy(model.heads["mb"].bn),
        classifier=copy.deepcopy(model.heads["mb"].classifier),
    )
    return deployed.eval()
