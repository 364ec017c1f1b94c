"""A plain ResNet + BNNeck ReID model (BoT style), written independently of PGFL-KD.

It is the reference the deployed PGFL-KD is measured against (parameters, FLOPs, latency)
and a torchreid-registered baseline. Eval mode returns the BN feature; train mode returns
``(logits, feat)`` as torchreid's triplet engine expects.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from torchreid_pgflkd.models.backbone import build_resnet


class BNNeckReID(nn.Module):
    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool = False,
        pretrained_path: str | os.PathLike | None = None,
        last_stride: int = 1,
        loss: str = "triplet",
    ) -> None:
        super().__init__()
        self.loss = loss
        stem, layer4, dim = build_resnet(
            backbone,
            last_stride=last_stride,
            pretrained=pretrained,
            pretrained_path=pretrained_path,
        )
        self.backbone = nn.Sequential(stem, layer4)
        self.bottleneck = nn.BatchNorm1d(dim)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        self.feature_dim = dim

    def forward(self, images: torch.Tensor):
        feat = self.backbone(images).mean(dim=(2, 3))
        bn_feat = self.bottleneck(feat)
        if not self.training:
            return bn_feat
        logits = self.classifier(bn_feat)
        return logits if self.loss == "softmax" else (logits, feat)
