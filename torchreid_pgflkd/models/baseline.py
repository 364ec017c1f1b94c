"""A plain ResNet + BNNeck ReID model (BoT style), written independently of PGFL-KD.

It is the reference the deployed PGFL-KD is measured against (parameters, FLOPs, latency)
and a torchreid-registered baseline. Eval mode returns the BN feature; train mode returns
what torchreid's engines expect of ``loss``: ``logits`` for ``"softmax"``
(``ImageSoftmaxEngine``), ``(logits, feat)`` for ``"triplet"`` (``ImageTripletEngine``).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from torchreid_pgflkd.models.backbone import build_resnet
from torchreid_pgflkd.models.load_guard import LoadGuard

LOSSES: tuple[str, ...] = ("softmax", "triplet")


class BNNeckReID(LoadGuard, nn.Module):
    load_guard_fix = (
        "Build the model the checkpoint holds: torchreid_pgflkd.load_model(path) reads the "
        "architecture from the checkpoint, or build_model('bnneck_<its backbone>', ...)."
    )

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
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
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

    def forward(self, images: torch.Tensor, *, return_featuremaps: bool = False):
        """``(B, 3, H, W)`` -> eval: ``(B, D)`` BN feature; train: see the module docstring;
        ``return_featuremaps``: the layer4 map ``(B, D, h, w)``."""
        fmap = self.backbone(images)
        if return_featuremaps:
            return fmap
        feat = fmap.mean(dim=(2, 3))
        bn_feat = self.bottleneck(feat)
        if not self.training:
            return bn_feat
        logits = self.classifier(bn_feat)
        return logits if self.loss == "softmax" else (logits, feat)
