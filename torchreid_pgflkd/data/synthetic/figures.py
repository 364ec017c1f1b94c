"""Drawing an articulated, dressed figure and its COCO-17 keypoints.

Parts are painted back to front by their depth (a side view hides the far arm behind the
torso; a back view shows the backpack over it), each with its identity texture in
part-local coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from torchreid_pgflkd.data.synthetic.appearance import Appearance, Texture, sample_appearance
from torchreid_pgflkd.data.synthetic.canvas import (
    Canvas,
    capsule,
    downsample_mask,
    ellipse,
    polygon,
)
from torchreid_pgflkd.data.synthetic.skeleton import (
    HEAD_RADIUS,
    Pose,
    build_skeleton,
    sample_pose,
)

TARGET = 1


@dataclass(frozen=True)
class Placement:
    """Where a figure stands: ``scale`` pixels per body height, hip centre ``cx``, head ``top``."""

    scale: float
    cx: float
    top: float


def sample_placement(rng: np.random.Generator, *, height: int, width: int) -> Placement:
    """A pedestrian-detector-like crop: the figure fills 78-95 % of the height, jittered."""
    frac = rng.uniform(0.78, 0.95)
    top = rng.uniform(0.01, max(0.012, 0.99 - frac)) * height
    return Placement(float(frac * height), float(width * (0.5 + rng.uniform(-0.09, 0.09))), top)


def _plain(colour: tuple[int, int, int]) -> Texture:
    return Texture("plain", colour, colour)


def draw_figure(
    canvas: Canvas,
    appearance: Appearance,
    pose: Pose,
    placement: Placement,
    *,
    label: int = TARGET,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one figure; returns keypoints ``(17, 3)`` and its supersampled mask ``(kH, kW)``.

    Keypoint confidence here is 1, or 0 for face joints turned away from the camera;
    occlusion by later layers and the image border are applied by the caller.
    """
    sk = build_skeleton(pose, build=appearance.build)
    s = placement.scale
    offset = np.array([placement.cx - s * sk.joints[11:13, 0].mean(), placement.top])

    def px(p: np.ndarray) -> tuple[float, float]:
        q = offset + s * np.asarray(p)
        return float(q[0]), float(q[1])

    j = [px(p) for p in sk.joints]
    cos_f, sin_f = np.cos(pose.facing), np.sin(pose.facing)
    union = np.zeros_like(canvas.labels, dtype=bool)
    items: list[tuple[float, object]] = []

    def add(depth: float, fn) -> None:
        items.append((depth, fn))

    def paint(draw, texture: Texture, origin, axis=(0.0, 1.0), shade=None) -> None:
        mask = canvas.shape(
            draw, texture, origin=origin, axis=axis, scale=s, label=label, shade_halfwidth=shade
        )
        mask.paste_into(union)

    def limb(a, b, ra: float, rb: float, texture: Texture) -> None:
        n = max(float(np.hypot(b[0] - a[0], b[1] - a[1])), 1e-6)
        axis = ((b[0] - a[0]) / n, (b[1] - a[1]) / n)
        paint(lambda pen, to: capsule(pen, to, a, b, ra * s, rb * s), texture, a, axis, ra * s)

    shoulder_mid = ((j[5][0] + j[6][0]) / 2, (j[5][1] + j[6][1]) / 2)
    hip_mid = ((j[11][0] + j[12][0]) / 2, (j[11][1] + j[12][1]) / 2)
    tx, ty = hip_mid[0] - shoulder_mid[0], hip_mid[1] - shoulder_mid[1]
    tn = max(float(np.hypot(tx, ty)), 1e-6)
    ax_t = (tx / tn, ty / tn)  # down the torso
    nx, ny = ax_t[1], -ax_t[0]  # across it

    def torso() -> None:
        sw, hw = (sk.shoulder_halfwidth + 0.018) * s, (sk.hip_halfwidth + 0.004) * s
        up, down = 0.02 * s, 0.035 * s
        top = (shoulder_mid[0] - ax_t[0] * up, shoulder_mid[1] - ax_t[1] * up)
        bot = (hip_mid[0] + ax_t[0] * down, hip_mid[1] + ax_t[1] * down)
        quad = [(top[0] + nx * sw, top[1] + ny * sw), (bot[0] + nx * hw, bot[1] + ny * hw)]
        quad += [(bot[0] - nx * hw, bot[1] - ny * hw), (top[0] - nx * sw, top[1] - ny * sw)]
        paint(lambda pen, to: polygon(pen, to, quad), appearance.torso, shoulder_mid, ax_t, sw)
        if appearance.logo is not None and cos_f > 0.3:
            c = (shoulder_mid[0] + ax_t[0] * 0.09 * s, shoulder_mid[1] + ax_t[1] * 0.09 * s)
            r = 0.03 * s
            logo = _plain(appearance.logo)
            paint(lambda pen, to: ellipse(pen, to, c, r * abs(cos_f), r), logo, c)
        if appearance.bag_kind == "shoulder":  # strap across the chest or the back
            a = j[5] if appearance.bag_side > 0 else j[6]
            b = j[12] if appearance.bag_side > 0 else j[11]
            limb(a, b, 0.009, 0.009, _plain(appearance.bag.base))

    add(0.0, torso)
    add(-0.01, lambda: limb(px(sk.head), shoulder_mid, 0.028, 0.032, _plain(appearance.skin)))
    for k in (0, 1):  # left, right
        sleeve = appearance.sleeves[k]
        fore = sleeve if appearance.long_sleeves else _plain(appearance.skin)
        sh, el, wr = j[5 + k], j[7 + k], j[9 + k]

        def arm(sh=sh, el=el, wr=wr, sleeve=sleeve, fore=fore) -> None:
            limb(sh, el, 0.034, 0.028, sleeve)
            limb(el, wr, 0.027, 0.022, fore)
            hand = (wr[0] + (wr[0] - el[0]) * 0.15, wr[1] + (wr[1] - el[1]) * 0.15)
            limb(wr, hand, 0.022, 0.02, _plain(appearance.skin))

        add(float(sk.depth[[5 + k, 7 + k, 9 + k]].mean()) + 0.005, arm)
        leg_tex = appearance.legs[k]
        shin_tex = leg_tex if appearance.lower_kind == "trousers" else _plain(appearance.skin)
        thigh_tex = leg_tex if appearance.lower_kind != "skirt" else _plain(appearance.skin)
        hp, kn, an, toe = j[11 + k], j[13 + k], j[15 + k], px(sk.feet[k])

        def leg(hp=hp, kn=kn, an=an, toe=toe, thigh_tex=thigh_tex, shin_tex=shin_tex) -> None:
            limb(hp, kn, 0.047, 0.037, thigh_tex)
            limb(kn, an, 0.036, 0.027, shin_tex)
            limb(an, toe, 0.026, 0.024, _plain(appearance.shoes))

        add(float(sk.depth[[11 + k, 13 + k, 15 + k]].mean()) - 0.002, leg)
    if appearance.lower_kind == "skirt":
        knee_y = (j[13][1] + j[14][1]) / 2
        hw = (sk.hip_halfwidth + 0.012) * s
        flare = hw + 0.05 * s
        quad = [(hip_mid[0] - hw, hip_mid[1] - 0.02 * s), (hip_mid[0] + hw, hip_mid[1] - 0.02 * s)]
        quad += [(hip_mid[0] + flare, knee_y), (hip_mid[0] - flare, knee_y)]
        skirt_depth = float(sk.depth[11:17].max()) + 0.001
        skirt = appearance.legs[0]
        add(skirt_depth, lambda: paint(lambda p, t: polygon(p, t, quad), skirt, hip_mid))

    def body_point(x: float, y: float, z: float) -> tuple[tuple[float, float], float]:
        return px((sk.joints[11:13, 0].mean() + x * cos_f + z * sin_f, y)), -x * sin_f + z * cos_f

    if appearance.bag_kind == "backpack":
        c, d = body_point(0.0, 0.33, -0.085)
        bw = (0.08 * abs(cos_f) + 0.045 * abs(sin_f)) * s
        box = [(c[0] - bw, c[1] - 0.1 * s), (c[0] + bw, c[1] - 0.1 * s)]
        box += [(c[0] + bw, c[1] + 0.1 * s), (c[0] - bw, c[1] + 0.1 * s)]
        add(d, lambda: paint(lambda p, t: polygon(p, t, box), appearance.bag, c))
    elif appearance.bag_kind == "shoulder":
        c, d = body_point(appearance.bag_side * (0.072 * appearance.build + 0.05), 0.5, 0.0)
        bw = (0.035 + 0.02 * abs(sin_f)) * s
        box = [(c[0] - bw, c[1] - 0.05 * s), (c[0] + bw, c[1] - 0.05 * s)]
        box += [(c[0] + bw, c[1] + 0.05 * s), (c[0] - bw, c[1] + 0.05 * s)]
        add(d + 0.01, lambda: paint(lambda p, t: polygon(p, t, box), appearance.bag, c))
    head, r = px(sk.head), HEAD_RADIUS * s
    if appearance.hair_style == "long":
        hair_end = (head[0], head[1] + 0.14 * s)
        add(-0.06 * cos_f, lambda: limb(head, hair_end, 0.058, 0.05, _plain(appearance.hair)))

    def draw_head() -> None:
        paint(lambda p, t: ellipse(p, t, head, r, r), _plain(appearance.skin), head)
        hair = appearance.hat if appearance.hat is not None else _plain(appearance.hair)
        if appearance.hair_style != "bald" or appearance.hat is not None:
            if cos_f < -0.25:  # seen from behind: all hair
                paint(lambda p, t: ellipse(p, t, head, r * 1.04, r * 1.04), hair, head)
            hc = (head[0] - 0.25 * r * sin_f, head[1] - 0.35 * r)
            paint(lambda p, t: ellipse(p, t, hc, r * 1.05, r * 0.72), hair, hc)
        if appearance.hat is not None:
            brim = (head[0] + 0.6 * r * sin_f, head[1] - 0.25 * r)
            brim_w = r * (1.1 + 0.3 * abs(sin_f))
            paint(lambda p, t: ellipse(p, t, brim, brim_w, 0.22 * r), appearance.hat, brim)

    add(10.0, draw_head)
    for _, fn in sorted(items, key=lambda item: item[0]):
        fn()

    keypoints = np.ones((17, 3), dtype=np.float32)
    keypoints[:, :2] = offset + s * sk.joints
    facing_away = sk.depth[:5] - sk.head_depth < -0.15 * HEAD_RADIUS
    keypoints[:5, 2][facing_away] = 0.0
    return keypoints, union


@dataclass(frozen=True)
class RenderedPerson:
    """A single figure: ``image`` ``(H, W, 3)`` uint8, ``mask`` ``(H, W)`` bool, ``keypoints``
    ``(17, 3)`` float32 (COCO-17, image pixels, confidence 1 visible / 0 hidden)."""

    image: np.ndarray
    mask: np.ndarray
    keypoints: np.ndarray
    appearance: Appearance
    pose: Pose


def finalize_keypoints(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Zero the confidence of joints outside the image or on pixels ``visible`` does not own."""
    h, w = visible.shape
    out = keypoints.copy()
    x, y = out[:, 0], out[:, 1]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    cols = np.clip(np.floor(x).astype(int), 0, w - 1)
    rows = np.clip(np.floor(y).astype(int), 0, h - 1)
    out[:, 2] *= (inside & visible[rows, cols]).astype(np.float32)
    return out


def render_person(
    appearance: Appearance | None = None,
    pose: Pose | None = None,
    *,
    height: int = 128,
    width: int = 64,
    seed: int = 0,
    placement: Placement | None = None,
    background: tuple[int, int, int] = (128, 128, 128),
) -> RenderedPerson:
    """Draw one figure on a plain background; what is not given is sampled from ``seed``."""
    if height < 16 or width < 8:
        raise ValueError(f"height and width must be at least 16 and 8, got {height}x{width}")
    rng = np.random.default_rng(seed)
    appearance = sample_appearance(rng) if appearance is None else appearance
    pose = sample_pose(rng) if pose is None else pose
    if placement is None:
        placement = sample_placement(rng, height=height, width=width)
    bg = np.broadcast_to(np.asarray(background, np.float32), (height, width, 3))
    canvas = Canvas(height=height, width=width, background=np.ascontiguousarray(bg))
    keypoints, _ = draw_figure(canvas, appearance, pose, placement, label=TARGET)
    rgb = canvas.finish()
    mask = canvas.owned(TARGET)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return RenderedPerson(image, mask, finalize_keypoints(keypoints, mask), appearance, pose)


__all__ = [
    "Placement",
    "RenderedPerson",
    "downsample_mask",
    "draw_figure",
    "finalize_keypoints",
    "render_person",
    "sample_placement",
]
