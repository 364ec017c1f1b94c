"""The one feature-extraction loop: a model over a test loader -> features, ids, cameras, paths.

Used by the engine's evaluation, branch evaluation (every branch, with pose), the baseline
comparisons and the activation figures, so batches go to the device, in the memory format
and precision, in one way.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from torchreid_pgflkd.pose.contract import POSE_MAPS_KEY
from torchreid_pgflkd.utils.modules import unwrap_model


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA when ``dtype`` is set; a no-op otherwise."""
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def to_device(
    images: torch.Tensor, device: torch.device, *, channels_last: bool = False
) -> torch.Tensor:
    """Images ``(B, 3, H, W)`` on ``device``, NHWC when ``channels_last``."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    *,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    amp_dtype: torch.dtype | None = None,
    with_pose: bool = False,
    progress: bool = False,
    desc: str = "features",
) -> dict[str, Any]:
    """Features of every image of ``loader`` (the model is put in eval mode, then restored).

    Without pose, ``model(images)`` gives one ``(N, D)`` tensor under ``"feat"`` (the
    deployed, pose-free feature). With pose (``with_pose=True``, batches carrying
    ``pose_maps``), ``model.forward_train`` runs every branch and ``"feat"`` maps each branch
    name to its ``(N, D)`` BN feature. Also returns ``"pids"``, ``"camids"`` (numpy) and
    ``"paths"``; features are float32 on the CPU.
    """
    device = torch.device(device)
    net = unwrap_model(model)
    was_training = net.training
    net.eval()
    feats: dict[str, list[torch.Tensor]] = defaultdict(list)
    pids, camids, paths = [], [], []
    try:
        for data in tqdm(loader, desc=desc, leave=False, disable=not progress):
            images = to_device(data["img"], device, channels_last=channels_last)
            with autocast(device, amp_dtype):
                if with_pose:
                    out = net.forward_train(images, data[POSE_MAPS_KEY].to(device))
                    for name, branch in out.branches.items():
                        feats[name].append(branch.bn_feat.float().cpu())
                else:
                    feats[""].append(net(images).float().cpu())
            pids.append(torch.as_tensor(data["pid"]))
            camids.append(torch.as_tensor(data["camid"]))
            paths.extend(data.get("impath", []))
    finally:
        net.train(was_training)
    if not pids:
        raise ValueError(f"{desc}: the loader yielded no batch (empty query or gallery set?)")
    stacked = {name: torch.cat(v) for name, v in feats.items()}
    return {
        "feat": stacked if with_pose else stacked[""],
        "pids": torch.cat(pids).numpy(),
        "camids": torch.cat(camids).numpy(),
        "paths": paths,
    }
