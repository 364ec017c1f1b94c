"""Seeing the pose: keypoints, skeleton, part maps and foreground drawn over an image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from torchreid_pgflkd.pose.contract import COCO17_BONES, VISIBILITY_THRESHOLD
from torchreid_pgflkd.pose.maps import PoseMapper

PALETTE = np.array(
    [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    ],
    dtype=np.float32,
)  # fmt: skip


def _overlay(base: np.ndarray, colour_map: np.ndarray, alpha: np.ndarray) -> Image.Image:
    out = base * (1 - alpha[..., None]) + colour_map * alpha[..., None]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def draw_pose(
    image: Image.Image | str | Path,
    keypoints: np.ndarray,
    pose_maps: torch.Tensor | np.ndarray | None = None,
    *,
    threshold: float = VISIBILITY_THRESHOLD,
) -> Image.Image:
    """Three panels side by side: skeleton, part maps (one colour per part), foreground mask.

    Args:
        image: PIL image or path.
        keypoints: ``(17, 3)`` COCO-17 pose in the image's pixels.
        pose_maps: ``(P + 1, h, w)``; computed with the default grouping when None.
    """
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    image = image.convert("RGB")
    kp = np.asarray(keypoints, dtype=np.float32)
    if pose_maps is None:
        pose_maps = PoseMapper(threshold=threshold)(kp, image_hw=(image.height, image.width))
    maps = torch.as_tensor(pose_maps, dtype=torch.float32)
    if maps.dim() != 3:
        raise ValueError(f"pose_maps must be (P + 1, h, w), got {tuple(maps.shape)}")
    up = torch.nn.functional.interpolate(
        maps[None], size=(image.height, image.width), mode="bilinear", align_corners=False
    )[0].numpy()
    base = np.asarray(image, dtype=np.float32)

    skeleton = image.copy()
    pen = ImageDraw.Draw(skeleton)
    radius = max(1, round(min(image.size) / 40))
    vis = kp[:, 2] >= threshold
    for i, (a, b) in enumerate(COCO17_BONES):
        if vis[a] and vis[b]:
            colour = tuple(int(c) for c in PALETTE[i % len(PALETTE)])
            pen.line([tuple(kp[a, :2]), tuple(kp[b, :2])], fill=colour, width=radius)
    for j in np.flatnonzero(vis):
        x, y = kp[j, :2]
        pen.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(255, 255, 255))

    parts = up[:-1]
    if len(parts):
        owner = parts.argmax(0)
        colours = PALETTE[owner % len(PALETTE)]
        part_panel = _overlay(base, colours, 0.7 * parts.max(0))
    else:
        part_panel = image.copy()
    fg_panel = _overlay(base, np.full_like(base, (255, 0, 0)), 0.6 * up[-1].clip(0, 1))

    canvas = Image.new("RGB", (3 * image.width, image.height))
    for i, panel in enumerate((skeleton, part_panel, fg_panel)):
        canvas.paste(panel, (i * image.width, 0))
    return canvas
