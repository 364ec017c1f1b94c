"""Identity (classification) loss: cross-entropy with label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy_label_smooth(
    logits: torch.Tensor, targets: torch.Tensor, *, epsilon: float = 0.1
) -> torch.Tensor:
    """Cross-entropy against smoothed one-hot targets, averaged over the batch.

    The target of a sample of class ``y`` is ``(1 - epsilon) * onehot(y) + epsilon / C``
    (the BoT / torchreid convention), so ``epsilon = 0`` is the plain cross-entropy.

    Args:
        logits: ``(B, C)`` unnormalised class scores.
        targets: ``(B,)`` int64 class indices in ``[0, C)``.
        epsilon: smoothing mass spread uniformly over the ``C`` classes, in ``[0, 1)``.

    Returns:
        A scalar tensor.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
    # Computed in float32 so that half-precision logits do not overflow the softmax.
    return F.cross_entropy(logits.float(), targets, label_smoothing=epsilon)
