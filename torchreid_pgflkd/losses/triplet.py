"""Batch-hard triplet loss (Hermans et al., 2017) on pooled features."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Squared distances are clamped to this before the square root: the derivative of sqrt is
# infinite at 0, which would turn coincident features (and the diagonal) into NaN gradients.
_MIN_SQUARED_DISTANCE = 1e-12


def euclidean_distances(x: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` -> ``(B, B)`` pairwise Euclidean distances, safe to differentiate at 0.

    Uses ``|x|^2 + |y|^2 - 2 x.y`` (one matrix product, no ``(B, B, D)`` tensor). Distances
    do not change under translation, so the batch mean is subtracted first: it shrinks the
    norms and with them the float32 cancellation error of the expansion (post-ReLU pooled
    features all lie far from the origin in the same orthant). The diagonal is exactly 0
    before the clamp.
    """
    x = x.float()
    x = x - x.mean(dim=0, keepdim=True)
    sq_norms = x.pow(2).sum(dim=1)
    squared = sq_norms[:, None] + sq_norms[None, :] - 2.0 * (x @ x.t())
    squared = squared.fill_diagonal_(0.0)
    return squared.clamp(min=_MIN_SQUARED_DISTANCE).sqrt()


def batch_hard_triplet_loss(
    feat: torch.Tensor, pids: torch.Tensor, *, margin: float | None = 0.3
) -> torch.Tensor:
    """Hardest positive against hardest negative, per anchor, averaged over anchors.

    For anchor ``i``: ``d_ap = max_{j != i, pid_j = pid_i} d(i, j)`` and
    ``d_an = min_{pid_j != pid_i} d(i, j)``; the anchor's loss is
    ``max(0, d_ap - d_an + margin)``, or ``softplus(d_ap - d_an)`` (soft margin) when
    ``margin`` is ``None`` or ``0``. Anchors without a positive or without a negative in
    the batch are left out of the mean; when none is left the loss is a zero that is still
    attached to ``feat``'s graph, so ``backward()`` works on every batch.

    Args:
        feat: ``(B, D)`` features (not normalised: the BoT recipe uses raw pooled features).
        pids: ``(B,)`` identity labels.
        margin: the hinge margin, or ``None`` / ``0`` for the soft margin.

    Returns:
        A scalar tensor.
    """
    if margin is not None and margin < 0:
        raise ValueError(f"triplet margin must be >= 0 or None (soft margin), got {margin}")
    dist = euclidean_distances(feat)  # (B, B)
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    positive = same & ~eye
    negative = ~same
    valid = positive.any(dim=1) & negative.any(dim=1)  # (B,)
    if not bool(valid.any()):
        return feat.sum() * 0.0
    dist, positive, negative = dist[valid], positive[valid], negative[valid]
    hardest_positive = dist.masked_fill(~positive, float("-inf")).amax(dim=1)
    hardest_negative = dist.masked_fill(~negative, float("inf")).amin(dim=1)
    gap = hardest_positive - hardest_negative
    if not margin:
        return F.softplus(gap).mean()
    return F.relu(gap + margin).mean()
