"""BNNeck head and pose-weighted pooling."""

from __future__ import annotations

import torch
from torch import nn


class BNNeck(nn.Module):
    """BatchNorm (bias frozen at 0) then a bias-free classifier, as in BoT.

    ``(B, D) -> ((B, D) bn feature, (B, C) logits)``.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_dim)
        self.bn.bias.requires_grad_(False)  # a shift would only blur the metric space
        self.classifier = nn.Linear(in_dim, num_classes, bias=False)
        nn.init.constant_(self.bn.weight, 1.0)
        nn.init.constant_(self.bn.bias, 0.0)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bn_feat = self.bn(feat)
        return bn_feat, self.classifier(bn_feat)


def weighted_avg_pool(fmap: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Pool ``fmap`` (B, C, h, w) with ``weight`` (B, h, w): ``sum(w * F) / (sum(w) + eps)``.

    An all-zero weight (no pose for the image, or an invisible part) falls back to plain
    average pooling, so an image without keypoints still trains on its whole map.
    """
    mass = weight.flatten(1).sum(dim=1)  # (B,)
    uniform = torch.ones_like(weight)
    weight = torch.where((mass > eps)[:, None, None], weight, uniform)
    weight = weight.to(fmap.dtype).unsqueeze(1)  # (B, 1, h, w)
    return (fmap * weight).sum(dim=(2, 3)) / (weight.sum(dim=(2, 3)) + eps)
