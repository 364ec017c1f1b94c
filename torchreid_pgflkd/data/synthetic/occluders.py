"""Occluders: objects from below (car, bench, box), from the side (pillar, panel), and
other people, placed so that they cover a chosen fraction of the target's body pixels.

Occluders wear the textures and colours of another identity's clothes (the "confuser"),
so an occluded crop's global appearance drifts towards that identity; only knowing which
pixels belong to the target (the pose) undoes it. That suits occluding people, less cars and
pillars: with ``textures="outside"`` objects wear colours and patterns no identity wears
(``appearance.OUTSIDE_PALETTE``), drawn from their own generator, so that their shapes and
places, and everything else in the image, stay those of ``"identities"``.

Placement is a bisection on a shift of the occluder's silhouette: the covered fraction falls
monotonically as a below-occluder moves down or a side-occluder moves out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from torchreid_pgflkd.data.synthetic.appearance import (
    Appearance,
    Texture,
    sample_outside_texture,
    sample_texture,
)
from torchreid_pgflkd.data.synthetic.canvas import SUPERSAMPLE, Canvas, ellipse, polygon
from torchreid_pgflkd.data.synthetic.figures import Placement, draw_figure
from torchreid_pgflkd.data.synthetic.skeleton import sample_pose

OCCLUDER_GROUPS: dict[str, tuple[str, ...]] = {
    "below": ("car", "bench", "box"),
    "side": ("pillar", "panel"),
    "person": ("person",),
}
OCCLUDER_LABEL = 2
# Where object occluders' textures come from: other identities' clothes | outside them.
OCCLUDER_TEXTURES: tuple[str, ...] = ("identities", "outside")


@dataclass(frozen=True)
class Part:
    """One painted piece of an object: ``outline(dx, dy)`` -> a ``(pen, to_px)`` drawer."""

    outline: Callable[[float, float], Callable]
    texture: Texture
    origin: tuple[float, float]


def _rect(x0: float, y0: float, x1: float, y1: float) -> Callable[[float, float], Callable]:
    def outline(dx: float, dy: float) -> Callable:
        pts = [(x0 + dx, y0 + dy), (x1 + dx, y0 + dy), (x1 + dx, y1 + dy), (x0 + dx, y1 + dy)]
        return lambda pen, to: polygon(pen, to, pts)

    return outline


def _borrowed(rng: np.random.Generator, confuser: Appearance | None) -> Texture:
    """The confuser's garment texture most of the time, else a random palette texture."""
    if confuser is not None and rng.random() < 0.75:
        clothes = confuser.clothing()
        return clothes[int(rng.integers(len(clothes)))]
    return sample_texture(rng)


def _object_parts(
    kind: str,
    rng: np.random.Generator,
    *,
    height: int,
    width: int,
    texture: Texture,
    trim: Texture | None = None,
) -> list[Part]:
    """Parts of an object at its reference position: top edge at y = 0 for below-objects,
    covering the whole width and ending at x = width for side-objects (mirrored later).
    ``trim`` colours a car's wheel and windows (None: dark grey and blue-grey)."""
    h, w = float(height), float(width)
    dark = Texture("plain", (30, 32, 36), (30, 32, 36)) if trim is None else trim
    if kind == "car":
        cabin = rng.uniform(0.12, 0.2) * h
        x0, x1 = rng.uniform(-0.6, -0.1) * w, rng.uniform(1.1, 1.6) * w
        slope = rng.uniform(0.1, 0.3) * w

        def body(dx: float, dy: float) -> Callable:
            pts = [(x0 + slope + dx, dy), (x1 - slope + dx, dy), (x1 + dx, cabin + dy)]
            pts += [(x1 + dx, 2 * h + dy), (x0 + dx, 2 * h + dy), (x0 + dx, cabin + dy)]
            return lambda pen, to: polygon(pen, to, pts)

        tint = (70, 90, 110) if trim is None else trim.accent
        glass = Texture("plain", tint, tint)
        wheel_x, wheel_y = rng.uniform(0.1, 0.9) * w, cabin + rng.uniform(0.3, 0.45) * h

        def wheel(dx: float, dy: float) -> Callable:
            return lambda pen, to: ellipse(pen, to, (wheel_x + dx, wheel_y + dy), 0.2 * w, 0.1 * h)

        win = _rect(x0 + slope * 1.3, 0.2 * cabin, x1 - slope * 1.3, 0.85 * cabin)
        return [
            Part(body, texture, (0.0, 0.0)),
            Part(win, glass, (0.0, 0.0)),
            Part(wheel, dark, (wheel_x, wheel_y)),
        ]
    if kind == "bench":
        rim = Texture("plain", texture.accent, texture.accent)
        return [
            Part(_rect(-w, 0.0, 2 * w, 2 * h), texture, (0.0, 0.0)),
            Part(_rect(-w, 0.0, 2 * w, 0.035 * h), rim, (0.0, 0.0)),
        ]
    if kind == "box":
        left = rng.random() < 0.5
        x0, x1 = (-w, rng.uniform(0.65, 1.0) * w) if left else (rng.uniform(0.0, 0.35) * w, 2 * w)
        return [Part(_rect(x0, 0.0, x1, 2 * h), texture, (x0, 0.0))]
    if kind == "pillar":
        return [Part(_rect(-w, -h, w, 2 * h), texture, (w, 0.0))]
    if kind == "panel":
        top = rng.uniform(-0.2, 0.3) * h
        frame = Texture("plain", texture.accent, texture.accent)
        return [
            Part(_rect(-w, top, w, 2 * h), frame, (0.0, 0.0)),
            Part(_rect(-w, top + 0.03 * h, w - 0.04 * w, 2 * h), texture, (0.0, 0.0)),
        ]
    known = sum(OCCLUDER_GROUPS.values(), ())
    raise ValueError(f"occluder kind must be one of {known}, got {kind!r}")


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a bool array by whole pixels, filling with False."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src = mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def _fit_shift(
    target: np.ndarray, silhouette: np.ndarray, fraction: float, step: tuple[int, int], limit: int
) -> int:
    """Shift count ``n`` (moving by ``n * step``) whose coverage of ``target`` is nearest
    ``fraction``, by bisection on the decreasing coverage curve."""
    total = max(int(target.sum()), 1)

    def cover(n: int) -> float:
        return float((target & _shift(silhouette, n * step[0], n * step[1])).sum()) / total

    lo, hi = 0, limit
    best, best_err = 0, abs(cover(0) - fraction)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        c = cover(mid)
        if abs(c - fraction) < best_err:
            best, best_err = mid, abs(c - fraction)
        if c > fraction:
            lo = mid
        else:
            hi = mid
    return best


def add_occluder(
    canvas: Canvas,
    rng: np.random.Generator,
    *,
    kind: str,
    target_mask: np.ndarray,
    fraction: float,
    placement: Placement,
    confuser: Appearance | None,
    textures: str = "identities",
    texture_rng: np.random.Generator | None = None,
) -> np.ndarray | None:
    """Paint an occluder of ``kind`` covering about ``fraction`` of ``target_mask``
    (supersampled bool). Returns the occluding person's keypoints ``(17, 3)``, else None.

    ``textures``: ``"identities"`` (objects wear the confuser's clothes most of the time) or
    ``"outside"`` (objects wear ``OUTSIDE_PALETTE`` textures drawn from ``texture_rng``;
    people still wear the confuser's appearance)."""
    if textures not in OCCLUDER_TEXTURES:
        raise ValueError(f"textures must be one of {OCCLUDER_TEXTURES}, got {textures!r}")
    k = SUPERSAMPLE
    h, w = canvas.height, canvas.width
    if kind == "person":
        if confuser is None:
            raise ValueError("a 'person' occluder needs a confuser appearance, got None")
        pose = sample_pose(rng)
        grow = rng.uniform(1.0, 1.15)  # a little closer to the camera than the target
        scale = placement.scale * grow
        top = placement.top + rng.uniform(0.0, 0.12) * placement.scale
        ref = Placement(scale, placement.cx, top)
        scratch = Canvas(height=h, width=w, background=np.zeros((h, w, 3), np.float32))
        _, silhouette = draw_figure(scratch, confuser, pose, ref, label=OCCLUDER_LABEL)
        sign = int(rng.choice([-1, 1]))
        n = _fit_shift(target_mask, silhouette, fraction, (0, sign), w * k)
        moved = Placement(scale, placement.cx + sign * n / k, top)
        keypoints, _ = draw_figure(canvas, confuser, pose, moved, label=OCCLUDER_LABEL)
        return keypoints
    texture = _borrowed(rng, confuser)  # drawn either way: what follows from rng stays the same
    trim = None
    if textures == "outside":
        if texture_rng is None:
            raise ValueError("textures='outside' needs a texture_rng, got None")
        texture, trim = sample_outside_texture(texture_rng), sample_outside_texture(texture_rng)
    parts = _object_parts(kind, rng, height=h, width=w, texture=texture, trim=trim)
    mirror = kind in OCCLUDER_GROUPS["side"] and rng.random() < 0.5
    silhouette = np.zeros_like(target_mask)
    for part in parts:
        canvas.layer_mask(part.outline(0.0, 0.0)).paste_into(silhouette)
    if mirror:  # the reference side-object hugs the left edge; flip it to the right
        silhouette = silhouette[:, ::-1]
    if kind in OCCLUDER_GROUPS["below"]:
        step, limit = (1, 0), h * k
    else:
        step, limit = (0, 1 if mirror else -1), w * k
    n = _fit_shift(target_mask, silhouette, fraction, step, limit)
    dy, dx = n * step[0] / k, n * step[1] / k
    for part in parts:
        outline = part.outline
        if mirror:
            drawer = _mirrored(outline, dx, w)
        else:
            drawer = outline(dx, dy)
        origin = (part.origin[0] + dx, part.origin[1] + dy)
        mask = canvas.layer_mask(drawer)
        canvas.fill(mask, part.texture, origin=origin, scale=placement.scale, label=OCCLUDER_LABEL)
    return None


def _mirrored(outline: Callable[[float, float], Callable], dx: float, width: int) -> Callable:
    """Drawer of ``outline`` reflected about the image's vertical midline, then moved by ``dx``."""
    drawer = outline(0.0, 0.0)

    def draw(pen, to) -> None:
        drawer(pen, lambda pts: to([(width - x + dx, y) for x, y in pts]))

    return draw
