"""Where each branch looks: pose maps and per-branch activation maps over query images."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from torchreid_pgflkd.utils.modules import unwrap_model


@torch.no_grad()
def branch_activations(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``(B, 3, H, W)`` -> ``{branch: (B, h, w)}`` channel-mean layer4 activation, in [0, 1].

    Each map is divided by its own maximum, so the figure shows where a branch looks, not
    how strongly.
    """
    net = unwrap_model(model)
    was_training = net.training
    net.eval()
    try:
        maps = net.feature_maps(images)
    finally:
        net.train(was_training)
    out = {}
    for name, fmap in maps.items():
        act = fmap.float().mean(dim=1)
        out[name] = act / act.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return out


def _heat(image: Image.Image, act: np.ndarray) -> Image.Image:
    """The activation as a jet-like heat map over a dimmed grey copy of the image."""
    up = Image.fromarray((act * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    a = np.asarray(up, dtype=np.float32) / 255.0
    # blue (low) -> cyan -> yellow -> red (high)
    heat = (
        np.stack(
            [
                np.clip(2 * a - 0.5, 0, 1),
                np.clip(1.5 - np.abs(2 * a - 1) * 1.5, 0, 1),
                np.clip(1 - 2 * a, 0, 1),
            ],
            axis=-1,
        )
        * 255
    )
    grey = np.asarray(image.convert("L"), dtype=np.float32)[..., None] * 0.5
    mixed = grey * 0.45 + heat * 0.55
    return Image.fromarray(mixed.clip(0, 255).astype(np.uint8))


def save_activation_figure(
    models: dict[str, torch.nn.Module],
    image_paths: Sequence[str | os.PathLike],
    keypoints: Sequence[np.ndarray],
    out_path: str | os.PathLike,
    *,
    preprocess: Callable[[Image.Image], torch.Tensor],
    image_hw: tuple[int, int],
) -> Path:
    """One PNG: a row per image with the image, its pose (skeleton, parts, foreground) and
    the activation of every branch of every model (e.g. ``{"baseline": m1, "pgflkd": m2}``).

    ``preprocess`` maps a PIL image to the model's normalised ``(3, H, W)`` input.
    """
    from torchreid_pgflkd.pose.draw import draw_pose

    rows = []
    images = [Image.open(p).convert("RGB").resize(image_hw[::-1]) for p in image_paths]
    batch = torch.stack([preprocess(img) for img in images])
    device = next(iter(models.values())).parameters().__next__().device
    acts = {name: branch_activations(m, batch.to(device)) for name, m in models.items()}
    header = ["image + pose (skeleton | parts | foreground)"]
    for img, path, kp in zip(images, image_paths, keypoints):
        orig = Image.open(path)
        sx, sy = img.width / orig.width, img.height / orig.height
        kp = np.asarray(kp, dtype=np.float32).copy()
        kp[:, 0] *= sx
        kp[:, 1] *= sy
        panels = [draw_pose(img, kp)]
        rows.append(panels)
    for model_name, branch_maps in acts.items():
        for branch, maps in branch_maps.items():
            header.append(f"{model_name}:{branch}")
            for row, img, act in zip(rows, images, maps.cpu().numpy()):
                row.append(_heat(img, act))
    label_h = 14
    widths = [p.width for p in rows[0]]
    height = rows[0][0].height
    canvas = Image.new(
        "RGB", (sum(widths) + 4 * len(widths), label_h + len(rows) * (height + 4)), "white"
    )
    pen = ImageDraw.Draw(canvas)
    x = 0
    for title, w in zip(header, widths):
        pen.text((x + 2, 1), title[: max(4, w // 6)], fill="black")
        x += w + 4
    for r, row in enumerate(rows):
        x = 0
        for panel in row:
            canvas.paste(panel, (x, label_h + r * (height + 4)))
            x += panel.width + 4
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
