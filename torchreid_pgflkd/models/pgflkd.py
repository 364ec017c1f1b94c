"""The PGFL-KD network: a main branch (MB) and two pose-guided branches (FEB, SAB).

Shapes below are for a 256x128 image with ResNet-50 (D = 2048, feature map 16x8).

    images (B, 3, H, W) -> stem..layer3 (shared) -> per-branch layer4 -> (B, D, h, w)
      MB : global average pool                          -> BNNeck
      FEB: pool weighted by the foreground mask          -> BNNeck
      SAB: channels split into P groups; group p pooled with part map p, groups
           concatenated (D)                               -> BNNeck
           plus the channel-mean map of each group, (B, P, h, w), for the alignment loss

Eval mode runs MB only and returns its BN feature (B, D): no pose input. Train mode (and
``forward_train``) returns a ``TrainOutput`` (``models.outputs``): every branch's outputs and,
with interaction on, the teachers' classifiers.
"""

from __future__ import annotations

import copy
import os

import torch
from torch import nn

from torchreid_pgflkd.models.backbone import build_backbone
from torchreid_pgflkd.models.heads import BNNeck, weighted_avg_pool
from torchreid_pgflkd.models.load_guard import LoadGuard
from torchreid_pgflkd.models.outputs import BranchOutput, TrainOutput
from torchreid_pgflkd.pose.contract import DEFAULT_PARTS, check_pose_maps

BRANCH_INITS: tuple[str, ...] = ("copy", "independent")
# A SAB part whose map is empty (no visible keypoint of that part): ``pool_all`` pools the
# whole map (``weighted_avg_pool``'s fallback); ``drop`` gives the part a zero feature and
# leaves it out of feature distillation (``BranchOutput.feat_mask``).
SAB_INVISIBLE: tuple[str, ...] = ("pool_all", "drop")
# torchreid's ``build_model(..., loss=...)``. PGFL-KD's objective is identity + triplet +
# alignment + distillation + interaction (``losses``); ``"softmax"`` is the same objective
# without the triplet terms (torchreid's meaning: a classification-only model).
LOSSES: tuple[str, ...] = ("triplet", "softmax")
# What torchreid's engines get when they call a PGFL-KD model in train mode without pose.
NEEDS_POSE_HINT = (
    "torchreid's ImageSoftmaxEngine / ImageTripletEngine pass images only, so they cannot "
    "train PGFL-KD: train it with the drop-in pair torchreid_pgflkd.data.datamanager."
    "PoseDataManager (its batches carry pose maps) + torchreid_pgflkd.engine.PGFLKDEngine "
    "(the same engine.run(...) arguments), or from the command line with "
    "`pgflkd train --config FILE`. For pose-free inference, call model.eval() first."
)


class PGFLKD(LoadGuard, nn.Module):
    """PGFL-KD for person re-identification; see the module docstring for the data flow.

    Args:
        num_classes: training identities.
        backbone: ``resnet50`` (paper), ``resnet18`` / ``resnet34`` (CPU work), ``resnet101``.
        pretrained: load ImageNet weights (see ``backbone.resolve_pretrained``).
        pretrained_path: explicit ImageNet weights file.
        num_parts: P, the number of body parts (part maps and SAB channel groups).
        share_layer4: one layer4 for all branches (cheaper) instead of one copy per branch.
        feb, sab: build the pose-guided branches (both off gives the plain BNNeck baseline).
        interaction: also classify the MB feature with the FEB / SAB classifiers.
        last_stride: 1 (default, 16x8 maps at 256x128) or 2.
        branch_init: ``"copy"`` (default): every branch's layer4 starts from the same
            (ImageNet) weights; ``"independent"``: FEB's and SAB's layer4 are freshly,
            randomly initialised (a control: mutual learning between unlike branches).
        sab_invisible: what SAB does with a part that has no visible keypoint, one of
            ``SAB_INVISIBLE``: ``"pool_all"`` (default) pools the whole map for it;
            ``"drop"`` gives it a zero feature, masked out of feature distillation
            (``BranchOutput.feat_mask``). An image with no pose at all is pooled whole in
            both modes.
        loss: torchreid's ``build_model(..., loss=...)``, one of ``LOSSES``: ``"triplet"``
            trains the full objective; ``"softmax"`` drops its triplet terms (``PGFLKDEngine``
            reads it when it runs). The model itself is the same.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool = False,
        pretrained_path: str | os.PathLike | None = None,
        num_parts: int = len(DEFAULT_PARTS),
        share_layer4: bool = False,
        feb: bool = True,
        sab: bool = True,
        interaction: bool = True,
        last_stride: int = 1,
        branch_init: str = "copy",
        sab_invisible: str = "pool_all",
        loss: str = "triplet",
    ) -> None:
        super().__init__()
        if sab_invisible not in SAB_INVISIBLE:
            raise ValueError(f"sab_invisible must be one of {SAB_INVISIBLE}, got {sab_invisible!r}")
        if branch_init not in BRANCH_INITS:
            raise ValueError(f"branch_init must be one of {BRANCH_INITS}, got {branch_init!r}")
        if branch_init == "independent" and share_layer4:
            raise ValueError("branch_init='independent' needs a layer4 per branch (share_layer4)")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if num_parts < 1:
            raise ValueError(f"num_parts must be >= 1, got {num_parts}")
        if loss not in LOSSES:
            raise ValueError(
                f"loss must be one of {LOSSES} (PGFL-KD's objective with or without its "
                f"triplet terms), got {loss!r}"
            )
        self.num_classes = num_classes
        self.num_parts = num_parts
        self.backbone_name = backbone
        self.loss = loss
        self.sab_invisible = sab_invisible
        self.last_stride = last_stride
        self.share_layer4 = share_layer4
        self.interaction = interaction and (feb or sab)

        self.stem, layer4, self.feature_dim = build_backbone(
            backbone,
            last_stride=last_stride,
            pretrained=pretrained,
            pretrained_path=pretrained_path,
        )
        if num_parts > self.feature_dim:
            raise ValueError(f"num_parts ({num_parts}) exceeds the feature dim {self.feature_dim}")
        self.branch_names: tuple[str, ...] = ("mb",) + ("feb",) * feb + ("sab",) * sab

        # Every branch's layer4 starts from the same (ImageNet) weights, unless independent.
        def branch_layer4(name: str) -> nn.Module:
            if share_layer4 or name == "mb":
                return layer4
            if branch_init == "independent":
                return build_backbone(backbone, last_stride=last_stride, pretrained=False)[1]
            return copy.deepcopy(layer4)

        self.layer4 = nn.ModuleDict({name: branch_layer4(name) for name in self.branch_names})
        self.heads = nn.ModuleDict(
            {name: BNNeck(self.feature_dim, num_classes) for name in self.branch_names}
        )

    @property
    def uses_pose(self) -> bool:
        return len(self.branch_names) > 1

    def feature_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-branch layer4 maps ``{name: (B, D, h, w)}``; a shared layer4 runs once."""
        x = self.stem(images)
        if self.share_layer4:
            shared = self.layer4["mb"](x)
            return {name: shared for name in self.branch_names}
        return {name: self.layer4[name](x) for name in self.branch_names}

    def forward(
        self,
        images: torch.Tensor,
        pose_maps: torch.Tensor | None = None,
        *,
        return_featuremaps: bool = False,
    ) -> torch.Tensor | TrainOutput:
        """Eval: ``(B, 3, H, W) -> (B, D)`` MB BN feature, pose ignored.

        Train: ``images (B, 3, H, W)``, ``pose_maps (B, P + 1, h, w)`` (see
        ``pose.contract``; not needed by the MB-only model) -> ``forward_train``'s output.

        ``return_featuremaps=True`` (torchreid's activation-map tool): MB's layer4 map
        ``(B, D, h, w)``, in either mode, no pose needed.
        """
        if return_featuremaps:
            return self.layer4["mb"](self.stem(images))
        if not self.training:
            x = self.layer4["mb"](self.stem(images))
            return self.heads["mb"].bn(x.mean(dim=(2, 3)))
        return self.forward_train(images, pose_maps)

    def forward_train(self, images: torch.Tensor, pose_maps: torch.Tensor | None) -> TrainOutput:
        """All branches, as in training (also usable in eval mode, e.g. to evaluate branches).

        Returns every branch's ``feat``, ``bn_feat``, ``logits``; MB and FEB also their
        ``activation`` (B, h, w) when FEB exists, SAB its ``part_activations`` (B, P, h, w);
        with interaction on, each teacher's classifier weight (C, D).
        """
        maps = self.feature_maps(images)
        fmap_hw = maps["mb"].shape[-2:]
        if self.uses_pose:
            if pose_maps is None:
                raise ValueError(
                    "PGFL-KD's FEB/SAB branches need pose_maps in train mode, shape (B, P + 1, "
                    f"h, w) = {(images.shape[0], self.num_parts + 1, *fmap_hw)}. " + NEEDS_POSE_HINT
                )
            check_pose_maps(pose_maps, images.shape[0], self.num_parts, fmap_hw)
            pose_maps = pose_maps.to(device=images.device, dtype=maps["mb"].dtype)

        pooled = {"mb": maps["mb"].mean(dim=(2, 3))}
        activation: dict[str, torch.Tensor] = {}
        part_activations: torch.Tensor | None = None
        feat_mask: torch.Tensor | None = None
        if "feb" in maps:
            pooled["feb"] = weighted_avg_pool(maps["feb"], pose_maps[:, -1])
            # Channel-mean maps, (B, h, w), for the spatial distillation FEB -> MB.
            activation["mb"] = maps["mb"].mean(dim=1)
            activation["feb"] = maps["feb"].mean(dim=1)
        if "sab" in maps:
            pooled["sab"], part_activations, feat_mask = self._sab_pool(
                maps["sab"], pose_maps[:, :-1]
            )

        branches: dict[str, BranchOutput] = {}
        for name, feat in pooled.items():
            bn_feat, logits = self.heads[name](feat)
            branches[name] = BranchOutput(
                feat=feat,
                bn_feat=bn_feat,
                logits=logits,
                activation=activation.get(name),
                part_activations=part_activations if name == "sab" else None,
                feat_mask=feat_mask if name == "sab" else None,
            )
        teacher_classifiers: dict[str, torch.Tensor] = {}
        if self.interaction:
            # The teachers' classifiers, through which the loss classifies MB's BN feature.
            teacher_classifiers = {
                name: self.heads[name].classifier.weight for name in self.branch_names[1:]
            }
        return TrainOutput(branches=branches, teacher_classifiers=teacher_classifiers)

    def _sab_pool(
        self, fmap: torch.Tensor, part_maps: torch.Tensor, eps: float = 1e-6
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(B, D, h, w)``, ``(B, P, h, w)`` -> ``(B, D)`` pooled, ``(B, P, h, w)`` group maps
        and, with ``sab_invisible="drop"``, the ``(B, D)`` mask of the channels that saw a
        visible part (``None`` otherwise)."""
        groups = torch.tensor_split(fmap, self.num_parts, dim=1)  # P x (B, D/P, h, w)
        feats = [weighted_avg_pool(g, part_maps[:, p]) for p, g in enumerate(groups)]
        activations = torch.stack([g.mean(dim=1) for g in groups], dim=1)
        if self.sab_invisible == "pool_all":
            return torch.cat(feats, dim=1), activations, None
        visible = part_maps.flatten(2).sum(dim=2) > eps  # (B, P)
        # An image with no pose at all keeps every part, pooled whole (nothing to drop).
        keep = visible | ~visible.any(dim=1, keepdim=True)
        masks = [keep[:, p : p + 1].expand(-1, g.shape[1]) for p, g in enumerate(groups)]
        mask = torch.cat(masks, dim=1).to(fmap.dtype)  # (B, D)
        return torch.cat(feats, dim=1) * mask, activations, mask


# The public builder: ``PGFLKD``'s constructor is already keyword-only and typed, so the
# builder is the class itself (``build_pgflkd(num_classes=751, backbone="resnet18", ...)``).
build_pgflkd = PGFLKD
