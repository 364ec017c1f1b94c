"""Keypoints -> keypoint heatmaps, part maps and foreground mask, vectorised in torch.

Coordinates: a keypoint at image pixel ``(x, y)`` of an ``(H, W)`` image lands at
``(x * w / W, y * h / H)`` on an ``(h, w)`` output grid whose cell ``(i, j)`` has its centre at
``(j + 0.5, i + 0.5)``. Distances are measured in output cells, so ``sigma=1.0`` is one
feature cell whatever the resolution.

Part maps: part ``p`` is the max of Gaussians around its visible keypoints and of
distance-to-segment Gaussians along its bones (``COCO17_BONES`` whose both ends belong to the
part, plus the torso diagonals in ``FILL_BONES`` so a wide torso is filled, not only outlined).
A bone counts only when both its ends are visible. The foreground mask is the max over parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from torchreid_pgflkd.pose.contract import (
    COCO17_BONES,
    DEFAULT_PARTS,
    FEATURE_STRIDE,
    NUM_KEYPOINTS,
    VISIBILITY_THRESHOLD,
    PoseGeometry,
    feature_size,
)

# Extra segments that fill a part's interior (shoulder to opposite hip).
FILL_BONES: tuple[tuple[int, int], ...] = ((5, 12), (6, 11))
DEFAULT_SIGMA = 1.0


def _as_batch(keypoints: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    kp = torch.as_tensor(keypoints, dtype=torch.float32)
    single = kp.dim() == 2
    if single:
        kp = kp.unsqueeze(0)
    if kp.dim() != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(
            f"keypoints must be (17, 3) or (B, 17, 3) COCO-17 (x, y, conf), got {tuple(kp.shape)}"
        )
    return kp, single


def _segment_gaussians(
    kp: torch.Tensor,
    ends: torch.Tensor,
    image_hw: Sequence[int],
    out_hw: Sequence[int],
    sigma: float,
    threshold: float,
    soft: bool = False,
) -> torch.Tensor:
    """Gaussian of the distance to each segment ``ends[e] = (a, b)``: ``(B, E, h, w)``.

    A segment with ``a == b`` is a keypoint. Invisible ends give an all-zero map.
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    scale = kp.new_tensor([w / float(image_hw[1]), h / float(image_hw[0])])
    xy = kp[..., :2] * scale  # (B, 17, 2) in output cells
    vis = kp[..., 2] >= threshold  # (B, 17)
    p, q = xy[:, ends[:, 0]], xy[:, ends[:, 1]]  # (B, E, 2)
    valid = (vis[:, ends[:, 0]] & vis[:, ends[:, 1]]).to(kp.dtype)  # (B, E)
    if soft:  # weight by the estimator's confidence in the weaker end, not all or nothing
        conf = kp[..., 2].clamp(0.0, 1.0)
        valid = valid * torch.minimum(conf[:, ends[:, 0]], conf[:, ends[:, 1]])
    gy = torch.arange(h, dtype=kp.dtype) + 0.5
    gx = torch.arange(w, dtype=kp.dtype) + 0.5
    d = q - p
    dd = (d * d).sum(-1).clamp_min(1e-6)  # (B, E)
    # Projection of each cell centre on the segment, clamped to its ends; separable in x/y.
    rx = gx.view(1, 1, 1, w) - p[..., 0, None, None]  # (B, E, 1, w)
    ry = gy.view(1, 1, h, 1) - p[..., 1, None, None]  # (B, E, h, 1)
    t = ((rx * d[..., 0, None, None] + ry * d[..., 1, None, None]) / dd[..., None, None]).clamp(
        0.0, 1.0
    )  # (B, E, h, w)
    ex = rx - t * d[..., 0, None, None]
    ey = ry - t * d[..., 1, None, None]
    dist2 = ex * ex + ey * ey
    return torch.exp(dist2 * (-0.5 / (sigma * sigma))) * valid[..., None, None]


def keypoint_heatmaps(
    keypoints: np.ndarray | torch.Tensor,
    *,
    image_hw: Sequence[int],
    out_hw: Sequence[int] | None = None,
    sigma: float = DEFAULT_SIGMA,
    threshold: float = VISIBILITY_THRESHOLD,
) -> torch.Tensor:
    """Keypoints ``(B, 17, 3)`` -> Gaussian heatmaps ``(B, 17, h, w)`` (``(17, h, w)`` unbatched).

    ``out_hw`` defaults to ``feature_size(image_hw)``; invisible keypoints give zero maps.
    """
    kp, single = _as_batch(keypoints)
    out_hw = feature_size(image_hw) if out_hw is None else out_hw
    ends = torch.arange(NUM_KEYPOINTS).repeat(2, 1).T
    maps = _segment_gaussians(kp, ends, image_hw, out_hw, sigma, threshold)
    return maps[0] if single else maps


class PoseMapper:
    """Precomputed part grouping: keypoints -> part maps and foreground, ``(B, P + 1, h, w)``.

    Args:
        parts: part name -> COCO-17 keypoint indices (``DEFAULT_PARTS``: P = 6).
        sigma: Gaussian width in output cells.
        threshold: confidence below which a keypoint is invisible.
        limbs: fill the bones of each part with distance-to-segment Gaussians.
        stride: feature stride; the output size is ``feature_size(image_hw, stride)`` unless
            a call passes ``out_hw``.
        soft: scale each Gaussian by the confidence of its keypoint (of the weaker end for a
            bone) instead of drawing every visible keypoint at full strength.
    """

    def __init__(
        self,
        *,
        parts: Mapping[str, Sequence[int]] = DEFAULT_PARTS,
        sigma: float = DEFAULT_SIGMA,
        threshold: float = VISIBILITY_THRESHOLD,
        limbs: bool = True,
        stride: int = FEATURE_STRIDE,
        soft: bool = False,
    ) -> None:
        if not parts:
            raise ValueError("parts must name at least one part")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.part_names = tuple(parts)
        self.stride = int(stride)
        self.soft = bool(soft)
        feature_size((1, 1), self.stride)  # validates the stride
        self.sigma = float(sigma)
        self.threshold = float(threshold)
        elements: list[tuple[int, int]] = []
        members: list[list[int]] = []
        for name, joints in parts.items():
            joints = tuple(int(j) for j in joints)
            if not joints or any(j < 0 or j >= NUM_KEYPOINTS for j in joints):
                raise ValueError(f"part {name!r} needs COCO-17 indices 0..16, got {joints}")
            segs = [(j, j) for j in joints]
            if limbs:
                segs += [b for b in COCO17_BONES + FILL_BONES if b[0] in joints and b[1] in joints]
            idx = []
            for s in segs:
                if s not in elements:
                    elements.append(s)
                idx.append(elements.index(s))
            members.append(idx)
        self.ends = torch.tensor(elements, dtype=torch.long)  # (E, 2)
        self.members = [torch.tensor(m, dtype=torch.long) for m in members]

    @classmethod
    def from_geometry(
        cls,
        geometry: PoseGeometry,
        *,
        sigma: float = DEFAULT_SIGMA,
        threshold: float = VISIBILITY_THRESHOLD,
        soft: bool = False,
    ) -> PoseMapper:
        """The mapper drawing ``geometry``'s parts at its feature stride."""
        return cls(
            parts=geometry.part_dict,
            sigma=sigma,
            threshold=threshold,
            stride=geometry.stride,
            soft=soft,
        )

    @property
    def num_parts(self) -> int:
        return len(self.part_names)

    def __call__(
        self,
        keypoints: np.ndarray | torch.Tensor,
        *,
        image_hw: Sequence[int],
        out_hw: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """``(B, 17, 3)`` -> ``(B, P + 1, h, w)`` (part maps, then foreground); unbatched too."""
        kp, single = _as_batch(keypoints)
        out_hw = feature_size(image_hw, self.stride) if out_hw is None else out_hw
        seg = _segment_gaussians(
            kp, self.ends, image_hw, out_hw, self.sigma, self.threshold, soft=self.soft
        )
        out = seg.new_empty(seg.shape[0], self.num_parts + 1, seg.shape[2], seg.shape[3])
        for p, idx in enumerate(self.members):
            out[:, p] = seg.index_select(1, idx).amax(dim=1)
        out[:, -1] = out[:, :-1].amax(dim=1)
        return out[0] if single else out


def pose_maps(
    keypoints: np.ndarray | torch.Tensor,
    *,
    image_hw: Sequence[int],
    out_hw: Sequence[int] | None = None,
    parts: Mapping[str, Sequence[int]] = DEFAULT_PARTS,
    sigma: float = DEFAULT_SIGMA,
    threshold: float = VISIBILITY_THRESHOLD,
) -> torch.Tensor:
    """Keypoints ``(B, 17, 3)`` -> pose maps ``(B, P + 1, h, w)`` per the pose contract.

    For many calls build one :class:`PoseMapper` instead (it precomputes the grouping).
    """
    mapper = PoseMapper(parts=parts, sigma=sigma, threshold=threshold)
    return mapper(keypoints, image_hw=image_hw, out_hw=out_hw)


def part_maps(
    keypoints: np.ndarray | torch.Tensor,
    *,
    image_hw: Sequence[int],
    out_hw: Sequence[int] | None = None,
    parts: Mapping[str, Sequence[int]] = DEFAULT_PARTS,
    sigma: float = DEFAULT_SIGMA,
    threshold: float = VISIBILITY_THRESHOLD,
) -> torch.Tensor:
    """Keypoints ``(B, 17, 3)`` -> part maps ``(B, P, h, w)`` (``(P, h, w)`` if unbatched)."""
    maps = pose_maps(
        keypoints, image_hw=image_hw, out_hw=out_hw, parts=parts, sigma=sigma, threshold=threshold
    )
    return maps[..., :-1, :, :]


def foreground_mask(maps: torch.Tensor) -> torch.Tensor:
    """Part maps ``(B, P, h, w)`` -> foreground mask ``(B, h, w)`` in [0, 1] (max over parts)."""
    return maps.amax(dim=-3).clamp(0.0, 1.0)


class PriorMapper:
    """Pose maps that ignore the keypoints: a control for "does pose cause the gain?".

    ``kind="stripes"``: part ``p`` is the ``p``-th of ``P`` equal horizontal stripes of the
    map and the foreground a centred Gaussian prior (a person roughly fills a ReID crop);
    ``kind="empty"``: all zeros (no pose: FEB and SAB pool the whole map, SAB aligns nothing).
    Same call signature and output shape as :class:`PoseMapper`.
    """

    KINDS: tuple[str, ...] = ("stripes", "empty")

    def __init__(self, *, num_parts: int, kind: str = "stripes", stride: int = FEATURE_STRIDE):
        if kind not in self.KINDS:
            raise ValueError(f"prior kind must be one of {self.KINDS}, got {kind!r}")
        if num_parts < 1:
            raise ValueError(f"num_parts must be >= 1, got {num_parts}")
        self.kind = kind
        self.stride = int(stride)
        self.part_names = tuple(f"stripe{p}" for p in range(num_parts))

    @property
    def num_parts(self) -> int:
        return len(self.part_names)

    def maps(self, out_hw: Sequence[int]) -> torch.Tensor:
        """``(P + 1, h, w)`` prior maps at ``out_hw``."""
        h, w = int(out_hw[0]), int(out_hw[1])
        out = torch.zeros(self.num_parts + 1, h, w)
        if self.kind == "empty":
            return out
        rows = (torch.arange(h, dtype=torch.float32) + 0.5) * self.num_parts / h
        for p in range(self.num_parts):
            out[p] = ((rows >= p) & (rows < p + 1)).float()[:, None].expand(h, w)
        gy = ((torch.arange(h) + 0.5) / h - 0.5) / 0.35
        gx = ((torch.arange(w) + 0.5) / w - 0.5) / 0.3
        out[-1] = torch.exp(-0.5 * (gy[:, None] ** 2 + gx[None, :] ** 2))
        return out

    def __call__(
        self,
        keypoints: np.ndarray | torch.Tensor,
        *,
        image_hw: Sequence[int],
        out_hw: Sequence[int] | None = None,
    ) -> torch.Tensor:
        kp, single = _as_batch(keypoints)
        out_hw = feature_size(image_hw, self.stride) if out_hw is None else out_hw
        maps = self.maps(out_hw).expand(kp.shape[0], -1, -1, -1).clone()
        return maps[0] if single else maps
