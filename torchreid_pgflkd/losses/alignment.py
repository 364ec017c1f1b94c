"""SAB's alignment loss: each channel group's activation map against its body-part map."""

from __future__ import annotations

import torch

from torchreid_pgflkd.pose.contract import visible_parts

ALIGN_KINDS: tuple[str, ...] = ("mse", "kl")

# Keeps spatial normalisation and logarithms finite for all-zero maps (a dead group).
_EPS = 1e-12


def _spatial_distribution(maps: torch.Tensor) -> torch.Tensor:
    """``(n, N)`` non-negative maps -> ``(n, N)`` maps that sum to 1 (all-zero rows stay 0)."""
    return maps / maps.sum(dim=1, keepdim=True).clamp(min=_EPS)


def part_alignment_loss(
    part_activations: torch.Tensor, pose_maps: torch.Tensor, *, kind: str = "mse"
) -> torch.Tensor:
    """Distance between each group's activation map and its part map, visible parts only.

    Both maps of a pair are normalised to spatial distributions (sum 1 over the ``h * w``
    cells), so only where a group fires matters, not how strongly.

    - ``"mse"``: ``N * sum_cells (a - m) ** 2`` with ``N = h * w``, i.e. the mean squared
      error between the two maps expressed in units of the uniform density (a uniform map
      has value 1 in every cell). The scaling makes the loss O(1) whatever the feature
      resolution; without it the values would be about ``1 / N``.
    - ``"kl"``: ``KL(m || a) = sum_cells m * log(m / a)``, the part map being the target
      distribution and the activation the model.

    The loss is the mean over the visible (image, part) pairs (``visible_parts``); a part
    whose map is empty (occluded, off-image, image without pose) gives neither loss nor
    gradient. With no visible pair the loss is a zero attached to ``part_activations``.

    Args:
        part_activations: ``(B, P, h, w)`` non-negative channel-mean activation map of each
            of SAB's ``P`` channel groups.
        pose_maps: ``(B, P + 1, h, w)`` pose maps (``pose.contract``): part maps, then the
            foreground mask (unused here).
        kind: ``"mse"`` or ``"kl"``.

    Returns:
        A scalar tensor.
    """
    if kind not in ALIGN_KINDS:
        raise ValueError(f"alignment kind must be one of {ALIGN_KINDS}, got {kind!r}")
    b, p, h, w = part_activations.shape
    if tuple(pose_maps.shape) != (b, p + 1, h, w):
        raise ValueError(
            f"pose_maps must have shape (B, P + 1, h, w) = {(b, p + 1, h, w)} to match "
            f"part_activations {tuple(part_activations.shape)}, got {tuple(pose_maps.shape)}"
        )
    visible = visible_parts(pose_maps)  # (B, P)
    if not bool(visible.any()):
        return part_activations.sum() * 0.0
    act = _spatial_distribution(part_activations.float().flatten(2)[visible])  # (n, N)
    part = _spatial_distribution(pose_maps[:, :p].float().flatten(2)[visible])  # (n, N)
    if kind == "mse":
        per_pair = (act - part).pow(2).sum(dim=1) * (h * w)
    else:
        per_pair = (part * ((part + _EPS).log() - (act + _EPS).log())).sum(dim=1)
    return per_pair.mean()
