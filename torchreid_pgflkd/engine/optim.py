"""Optimizer and learning-rate schedule of the default recipe (Adam, warm-up, step decay)."""

from __future__ import annotations

import torch
from torch import nn

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")


def build_optimizer(
    model: nn.Module, *, optim: str = "adam", lr: float = 3.5e-4, weight_decay: float = 5e-4
) -> torch.optim.Optimizer:
    """Adam (default) or SGD with momentum over the trainable parameters of ``model``.

    BatchNorm and bias parameters get no weight decay: decaying a BN scale only shrinks
    features that the next layer rescales anyway.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if optim == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if optim == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    raise ValueError(f"optim must be one of {OPTIMIZERS}, got {optim!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    warmup_epochs: int = 10,
    milestones: list[int] | tuple[int, ...] = (40, 70),
    gamma: float = 0.1,
    warmup_factor: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule: linear warm-up from ``warmup_factor * lr``, then x``gamma`` steps."""
    milestones = sorted(int(m) for m in milestones)

    def factor(epoch: int) -> float:
        decay = gamma ** sum(epoch >= m for m in milestones)
        if epoch < warmup_epochs:
            alpha = epoch / warmup_epochs
            return decay * (warmup_factor * (1 - alpha) + alpha)
        return decay

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
