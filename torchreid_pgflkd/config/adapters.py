"""Config node -> plain keyword arguments for the library (the config stops here)."""

from __future__ import annotations

from typing import Any

import torch
from yacs.config import CfgNode as CN

from torchreid_pgflkd.losses import LossSettings, LossWeights

SYNTHETIC_DATASET = "synthetic_occluded"


def model_kwargs(cfg: CN, num_classes: int) -> dict[str, Any]:
    m = cfg.model
    return dict(
        num_classes=num_classes,
        backbone=m.backbone,
        pretrained=m.pretrained,
        pretrained_path=m.pretrained_path or None,
        num_parts=m.num_parts,
        share_layer4=m.share_layer4,
        feb=m.feb,
        sab=m.sab,
        interaction=m.interaction,
        last_stride=m.last_stride,
        branch_init=m.branch_init,
        sab_invisible=m.sab_invisible,
    )


def dataset_kwargs(cfg: CN) -> dict[str, dict[str, Any]]:
    """Per dataset name, the constructor keywords the config sets."""
    out: dict[str, dict[str, Any]] = {}
    for name in {*cfg.data.sources, *cfg.data.targets}:
        kw: dict[str, Any] = {}
        if cfg.data.dataset_dir:
            kw["dataset_dir"] = cfg.data.dataset_dir
        if cfg.data.keypoints_dir:
            kw["keypoints_dir"] = cfg.data.keypoints_dir
        if name == "partial_reid":
            kw["query_folder"] = cfg.data.partial_reid_query
        out[name] = kw
    return out


def datamanager_kwargs(cfg: CN) -> dict[str, Any]:
    d = cfg.data
    return dict(
        root=d.root,
        sources=list(d.sources),
        targets=list(d.targets),
        height=d.height,
        width=d.width,
        batch_size_train=cfg.sampler.batch_size,
        batch_size_test=cfg.sampler.test_batch_size,
        num_instances=cfg.sampler.num_instances,
        num_workers=d.workers,
        persistent_workers=d.persistent_workers,
        dataset_kwargs=dataset_kwargs(cfg),
        visibility_threshold=d.visibility_threshold,
        flip_prob=d.flip_prob,
        padding=d.pad,
        erase_prob=d.erase_prob,
        color_jitter=d.color_jitter,
        pose_source=d.pose_source,
        soft_visibility=d.soft_visibility,
        occlusion_prob=d.occlusion_prob,
        skip_bad_images=d.skip_bad_images,
        allow_missing_pose=d.allow_missing_pose,
        cache_images=d.cache_images,
        cache_max_gb=d.cache_max_gb,
    )


def synthetic_kwargs(cfg: CN) -> dict[str, Any]:
    s = cfg.synthetic
    return dict(
        seed=s.seed,
        num_train_ids=s.num_train_ids,
        num_test_ids=s.num_test_ids,
        images_per_id=s.images_per_id,
        height=cfg.data.height,
        width=cfg.data.width,
        keypoints=s.keypoints,
        keypoint_noise=s.keypoint_noise,
        keypoint_dropout=s.keypoint_dropout,
        visible_confidence=s.visible_confidence,
        covered_visible=s.covered_visible,
        covered_noise=s.covered_noise,
        miss_person=s.miss_person,
        miss_occluded=s.miss_occluded,
        wrong_person=s.wrong_person,
        occluder_textures=s.occluder_textures,
    )


def loss_weights(cfg: CN) -> LossWeights:
    c = cfg.loss
    return LossWeights(
        id=c.id,
        tri=c.tri,
        align=c.align,
        kd_logit=c.kd_logit,
        kd_feat=c.kd_feat,
        kd_attn=c.kd_attn,
        inter=c.inter,
        sab_teacher=c.sab_teacher,
    )


def optimizer_kwargs(cfg: CN) -> dict[str, Any]:
    return dict(optim=cfg.train.optim, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def scheduler_kwargs(cfg: CN) -> dict[str, Any]:
    t = cfg.train
    return dict(warmup_epochs=t.warmup_epochs, milestones=list(t.milestones), gamma=t.gamma)


def resolve_device(cfg: CN) -> torch.device:
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("config train.device='cuda' but no CUDA device is available")
    if cfg.train.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.train.device)


def loss_settings(cfg: CN) -> LossSettings:
    c = cfg.loss
    return LossSettings(
        weights=loss_weights(cfg),
        margin=c.margin if c.margin > 0 else None,
        label_smoothing=c.label_smoothing,
        temperature=c.temperature,
        align_kind=c.align_kind,
    )


def engine_kwargs(cfg: CN) -> dict[str, Any]:
    return dict(
        loss_settings=loss_settings(cfg),
        amp=cfg.train.amp,
        channels_last=cfg.train.channels_last,
        grad_clip=cfg.train.grad_clip,
        print_freq=cfg.train.print_freq,
    )


def test_kwargs(cfg: CN) -> dict[str, Any]:
    t = cfg.test
    return dict(
        dist_metric=t.metric,
        normalize_feature=t.normalize_feature,
        rerank=t.rerank,
        visrank=t.visrank,
    )
