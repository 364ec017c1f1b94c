"""One training step of PGFL-KD: forward with pose, every loss term, one backward, one update."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchreid_pgflkd.evaluation.extract import autocast, to_device
from torchreid_pgflkd.losses import LossSettings, compute_losses, total_loss
from torchreid_pgflkd.pose.contract import POSE_MAPS_KEY

AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the run stops before anything is saved."""


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    *,
    settings: LossSettings,
    device: torch.device,
    channels_last: bool = False,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float = 0.0,
    where: str = "",
) -> dict[str, float]:
    """Optimise on one batch; returns every loss term and the weighted ``loss`` as floats.

    ``batch`` holds ``img`` (B, 3, H, W), ``pid`` (B,) and, for a pose-guided model,
    ``pose_maps`` (B, P + 1, h, w). Losses are computed in float32 whatever the autocast
    precision. A non-finite term raises :class:`NonFiniteLossError` before any update;
    ``where`` (e.g. "step 12 (epoch 2, batch 3)") goes into its message.
    """
    images = to_device(batch["img"], device, channels_last=channels_last)
    pids = batch["pid"].to(device, non_blocking=True)
    pose_maps = batch.get(POSE_MAPS_KEY)
    if pose_maps is not None:
        pose_maps = pose_maps.to(device, non_blocking=True)

    with autocast(device, amp_dtype):
        outputs = model(images, pose_maps)
    terms = compute_losses(outputs.float(), pids, pose_maps, settings)
    loss = total_loss(terms, settings.weights)
    for name, value in (*terms.items(), ("loss", loss)):
        if not torch.isfinite(value):
            raise NonFiniteLossError(
                f"non-finite loss at {where or 'this step'}: {name} = {value.item()}. "
                "Stopped before saving; the last checkpoint is intact. Lower the learning "
                "rate, enable train.grad_clip, or check the input data."
            )

    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    summary = {name: value.item() for name, value in terms.items()}
    summary["loss"] = loss.item()
    return summary
