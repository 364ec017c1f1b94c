"""What a model costs: parameters and forward FLOPs (one counter for the whole project)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def forward_gflops(model: nn.Module, *inputs: torch.Tensor) -> float:
    """GFLOPs of one forward pass on ``inputs`` (a multiply-add counts as 2 FLOPs)."""
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / 1e9


def inference_cost(model: nn.Module, image_hw: tuple[int, int]) -> dict[str, float]:
    """Parameters and GFLOPs per image of ``model`` in eval mode on a ``(1, 3, H, W)`` input.

    The model is copied nowhere: it is put in eval mode for the count and restored after.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        gflops = forward_gflops(model, torch.zeros(1, 3, *image_hw, device=device))
    finally:
        model.train(was_training)
    return {"params": count_params(model), "gflops": gflops}
