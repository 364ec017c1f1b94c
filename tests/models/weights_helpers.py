"""Helpers shared by the model-loading tests (imported by name: this folder is on sys.path)."""

from __future__ import annotations

import torch


def trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every float tensor randomised, so branches differ and a wrong or skipped load shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.25)
    return model.eval()


def features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(images)
