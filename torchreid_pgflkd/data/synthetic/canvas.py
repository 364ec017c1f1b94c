"""A supersampled painter's canvas that remembers which layer owns each pixel.

Shapes are given in output-image pixels (the pose contract's convention: origin at the
top-left pixel corner), rasterised by PIL at ``SUPERSAMPLE`` times the resolution, filled
with a texture in shape-local coordinates, and tagged with a layer label (0 background,
1 the target person, 2 and up occluders). ``finish`` averages down to the output size;
a layer's mask there is the pixels it owns for at least half their area.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from torchreid_pgflkd.data.synthetic.appearance import Texture

SUPERSAMPLE = 2
BACKGROUND = 0

Point = tuple[float, float]


@dataclass(frozen=True)
class Mask:
    """A supersampled bool ``array`` whose top-left element sits at (``row``, ``col``)."""

    array: np.ndarray
    row: int
    col: int

    def paste_into(self, full: np.ndarray) -> None:
        """OR this mask into a full-size supersampled bool array."""
        h, w = self.array.shape
        full[self.row : self.row + h, self.col : self.col + w] |= self.array


class Canvas:
    """``(height, width)`` output image painted back to front."""

    def __init__(self, *, height: int, width: int, background: np.ndarray) -> None:
        if background.shape != (height, width, 3):
            raise ValueError(
                f"background must have shape (height, width, 3) = {(height, width, 3)}, "
                f"got {background.shape}"
            )
        k = SUPERSAMPLE
        self.height, self.width = height, width
        self.rgb = np.repeat(np.repeat(background.astype(np.float32), k, 0), k, 1)
        self.labels = np.zeros((height * k, width * k), dtype=np.uint8)
        self._scratch = Image.new("L", (width * k, height * k), 0)  # reused: cleared after use

    def layer_mask(self, draw: Callable[[ImageDraw.ImageDraw, Callable], None]) -> Mask:
        """Supersampled mask of what ``draw(pen, to_px)`` paints (``to_px`` maps points)."""
        k = SUPERSAMPLE
        img = self._scratch
        pen = ImageDraw.Draw(img)
        draw(pen, lambda pts: [(x * k - 0.5, y * k - 0.5) for x, y in pts])
        box = img.getbbox()
        if box is None:
            return Mask(np.zeros((0, 0), dtype=bool), 0, 0)
        mask = Mask(np.asarray(img.crop(box)) > 0, box[1], box[0])
        pen.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=0)
        return mask

    def fill(
        self,
        mask: Mask,
        texture: Texture,
        *,
        origin: Point,
        axis: Point = (0.0, 1.0),
        scale: float,
        label: int,
        shade_halfwidth: float | None = None,
    ) -> None:
        """Paint the supersampled ``mask`` with ``texture`` and give its pixels to ``label``.

        Texture coordinates: ``v`` along the unit ``axis`` from ``origin``, ``u`` across it,
        both in units of ``scale`` pixels (the body height, so patterns follow the part).
        ``shade_halfwidth`` (pixels) darkens towards the edges like a lit cylinder.
        """
        h, w = mask.array.shape
        window = (slice(mask.row, mask.row + h), slice(mask.col, mask.col + w))
        if texture.kind == "plain" and not shade_halfwidth:  # fast path: one flat colour
            self.rgb[window][mask.array] = texture.base
            self.labels[window][mask.array] = label
            return
        rows, cols = np.nonzero(mask.array)
        if rows.size == 0:
            return
        rows += mask.row
        cols += mask.col
        k = SUPERSAMPLE
        x = (cols + 0.5) / k - origin[0]
        y = (rows + 0.5) / k - origin[1]
        ax, ay = axis
        v = x * ax + y * ay
        u = x * ay - y * ax
        colour = texture.paint(u / scale, v / scale)
        if shade_halfwidth:
            t = np.clip(np.abs(u) / shade_halfwidth, 0.0, 1.0)
            colour *= (1.0 - 0.28 * t * t)[:, None]
        self.rgb[rows, cols] = colour
        self.labels[rows, cols] = label

    def shape(
        self,
        draw: Callable[[ImageDraw.ImageDraw, Callable], None],
        texture: Texture,
        *,
        origin: Point,
        scale: float,
        label: int,
        axis: Point = (0.0, 1.0),
        shade_halfwidth: float | None = None,
    ) -> Mask:
        """Rasterise ``draw``, paint it, and return its supersampled mask."""
        mask = self.layer_mask(draw)
        self.fill(
            mask,
            texture,
            origin=origin,
            axis=axis,
            scale=scale,
            label=label,
            shade_halfwidth=shade_halfwidth,
        )
        return mask

    def finish(self) -> np.ndarray:
        """The output image ``(H, W, 3)`` float32 (supersampled pixels averaged)."""
        return _block_mean(self.rgb)

    def owned(self, label: int) -> np.ndarray:
        """``(H, W)`` bool: output pixels ``label`` owns for at least half their area."""
        return downsample_mask(self.labels == label)


def _block_mean(a: np.ndarray) -> np.ndarray:
    """Mean over ``SUPERSAMPLE`` x ``SUPERSAMPLE`` blocks (strided sums beat a 5-D mean)."""
    k = SUPERSAMPLE
    total = np.zeros((a.shape[0] // k, a.shape[1] // k, *a.shape[2:]), dtype=np.float32)
    for i in range(k):
        for j in range(k):
            total += a[i::k, j::k]
    return total / (k * k)


def downsample_mask(mask: np.ndarray) -> np.ndarray:
    """Supersampled bool mask -> output-resolution bool mask (owned at least half)."""
    return _block_mean(mask) >= 0.5


def capsule(pen: ImageDraw.ImageDraw, to_px: Callable, a: Point, b: Point, ra: float, rb: float):
    """A limb: a tapered quad from ``a`` (radius ``ra``) to ``b`` (radius ``rb``), round ends."""
    k = SUPERSAMPLE
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    n = max(float(np.hypot(dx, dy)), 1e-6)
    px, py = -dy / n, dx / n
    quad = [(ax + px * ra, ay + py * ra), (bx + px * rb, by + py * rb)]
    quad += [(bx - px * rb, by - py * rb), (ax - px * ra, ay - py * ra)]
    pen.polygon(to_px(quad), fill=255)
    for (cx, cy), r in ((a, ra), (b, rb)):
        ((qx, qy),) = to_px([(cx, cy)])
        pen.ellipse([qx - r * k, qy - r * k, qx + r * k, qy + r * k], fill=255)


def polygon(pen: ImageDraw.ImageDraw, to_px: Callable, points: Sequence[Point]) -> None:
    """A filled polygon."""
    pen.polygon(to_px(points), fill=255)


def ellipse(pen: ImageDraw.ImageDraw, to_px: Callable, c: Point, rx: float, ry: float) -> None:
    """A filled axis-aligned ellipse centred at ``c``."""
    k = SUPERSAMPLE
    ((qx, qy),) = to_px([c])
    pen.ellipse([qx - rx * k, qy - ry * k, qx + rx * k, qy + ry * k], fill=255)
