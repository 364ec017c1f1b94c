"""Backgrounds and camera looks for the synthetic benchmark.

A background is a wall-and-ground gradient or smooth noise, with clutter (windows, posts,
signs, blobs) painted in the clothing palette and textures, so that neither colour nor
pattern alone says "person". Each camera has its own colour cast and preferred scenery.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from torchreid_pgflkd.data.synthetic.appearance import sample_colour, sample_texture
from torchreid_pgflkd.data.synthetic.canvas import BACKGROUND, Canvas, ellipse, polygon

NUM_CAMERAS = 6


@dataclass(frozen=True)
class CameraLook:
    """A camera's rendering style: ``tint`` (per-channel gain), how cluttered, how noisy."""

    tint: tuple[float, float, float]
    clutter: float
    noise: float
    base_kind: str  # "gradient" | "noise"


@lru_cache(maxsize=64)
def camera_looks(seed: int) -> tuple[CameraLook, ...]:
    """The ``NUM_CAMERAS`` camera styles of a dataset generated from ``seed``."""
    rng = np.random.default_rng([seed, 7_001])
    looks = []
    for cam in range(NUM_CAMERAS):
        tint = tuple(float(t) for t in rng.uniform(0.88, 1.12, size=3))
        looks.append(
            CameraLook(
                tint=tint,
                clutter=float(rng.uniform(0.3, 1.0)),
                noise=float(rng.uniform(1.5, 5.0)),
                base_kind="gradient" if cam % 2 == 0 else "noise",
            )
        )
    return tuple(looks)


def base_background(rng: np.random.Generator, *, height: int, width: int, kind: str) -> np.ndarray:
    """``(H, W, 3)`` float32: a wall over a ground plane, as a gradient or smooth noise."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, mid, ground = (np.asarray(sample_colour(rng, jitter=25), np.float32) for _ in range(3))
    horizon = rng.uniform(0.55, 0.85)
    wall = top + (mid - top) * np.clip(y / horizon, 0, 1)
    img = np.where(y < horizon, wall, ground * (0.85 + 0.15 * y))
    img = np.broadcast_to(img, (height, width, 3)).astype(np.float32)
    if kind == "noise":
        coarse = rng.normal(0.0, 20.0, size=(6, 4, 3)).astype(np.float32)
        rows = np.linspace(0, 5, height)
        cols = np.linspace(0, 3, width)
        r0 = np.floor(rows).astype(int).clip(0, 4)
        c0 = np.floor(cols).astype(int).clip(0, 2)
        fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
        smooth = (
            coarse[r0][:, c0] * (1 - fr) * (1 - fc)
            + coarse[r0 + 1][:, c0] * fr * (1 - fc)
            + coarse[r0][:, c0 + 1] * (1 - fr) * fc
            + coarse[r0 + 1][:, c0 + 1] * fr * fc
        )
        img = img + smooth
    return np.clip(img, 0, 255)


def add_clutter(canvas: Canvas, rng: np.random.Generator, *, amount: float) -> None:
    """Paint up to ~8 palette-coloured shapes (windows, posts, signs, blobs) on the background."""
    h, w = canvas.height, canvas.width
    for _ in range(int(rng.poisson(6 * amount))):
        texture = sample_texture(rng, kind_probs=(0.55, 0.2, 0.15, 0.1))
        kind = rng.choice(["rect", "post", "blob"])
        x, y = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 0.95) * h
        if kind == "rect":
            bw, bh = rng.uniform(0.15, 0.6) * w, rng.uniform(0.08, 0.35) * h
            pts = [(x, y), (x + bw, y), (x + bw, y + bh), (x, y + bh)]
            draw = lambda pen, to, pts=pts: polygon(pen, to, pts)  # noqa: E731
        elif kind == "post":
            bw = rng.uniform(0.04, 0.12) * w
            pts = [(x, y), (x + bw, y), (x + bw, h), (x, h)]
            draw = lambda pen, to, pts=pts: polygon(pen, to, pts)  # noqa: E731
        else:
            rx, ry = rng.uniform(0.06, 0.25) * w, rng.uniform(0.03, 0.12) * h
            draw = lambda pen, to, c=(x, y), rx=rx, ry=ry: ellipse(pen, to, c, rx, ry)  # noqa: E731
        canvas.shape(draw, texture, origin=(x, y), scale=float(h), label=BACKGROUND)


def apply_camera(rgb: np.ndarray, rng: np.random.Generator, look: CameraLook) -> np.ndarray:
    """Camera colour cast, per-image exposure, sensor noise -> ``(H, W, 3)`` uint8."""
    gain = np.asarray(look.tint, np.float32) * np.float32(rng.uniform(0.82, 1.15))
    noisy = rgb * gain + np.float32(look.noise) * rng.standard_normal(rgb.shape, np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
