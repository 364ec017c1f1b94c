"""Identity appearance of the synthetic benchmark: a colour palette, textures, clothing.

An identity is the appearance of its body parts: hair and skin, an upper garment, each
sleeve, each trouser leg (or shorts, or a skirt), shoes, and accessories (hat, bag, chest
logo). Backgrounds and occluders draw from the same palette and texture kinds, so colour
alone never tells a person from clutter. ``OUTSIDE_PALETTE`` and ``OUTSIDE_KINDS`` are a
palette and patterns no identity wears, for occluders that must not look like anyone.

Textures are painted in part-local coordinates ``(u, v)`` measured in body heights (a
standing figure is 1 unit tall), so stripes and checks move and scale with the part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Clothing palette, shared by clothes, backgrounds and occluders (RGB).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (25, 25, 28), (62, 62, 68), (128, 128, 128), (190, 190, 190), (236, 236, 232),
    (30, 40, 92), (40, 90, 190), (120, 170, 222), (72, 96, 132), (20, 120, 120),
    (40, 120, 52), (112, 112, 40), (182, 166, 110), (216, 200, 166), (112, 70, 40),
    (122, 26, 36), (204, 40, 40), (232, 122, 30), (232, 202, 42), (232, 142, 172),
    (112, 52, 142), (172, 152, 212),
)  # fmt: skip

SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (255, 222, 196), (240, 196, 160), (224, 172, 128), (190, 134, 92), (142, 94, 62),
    (96, 62, 42),
)  # fmt: skip

HAIR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (20, 16, 14), (58, 38, 24), (104, 70, 40), (200, 170, 100), (150, 150, 150), (140, 60, 30),
)  # fmt: skip

TEXTURE_KINDS: tuple[str, ...] = ("plain", "stripes", "checks", "dots")

# Saturated colours at least 75 RGB units (Euclidean) from every colour above, so that even
# jittered they never match an identity's clothes, skin or hair; and patterns no identity
# wears. Occluders use them with ``occluder_textures="outside"``.
OUTSIDE_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 255), (0, 255, 255), (0, 255, 128), (128, 255, 0), (255, 0, 128),
    (0, 128, 255), (150, 0, 255), (0, 200, 0), (0, 0, 255), (255, 150, 255),
)  # fmt: skip
OUTSIDE_KINDS: tuple[str, ...] = ("hatch", "zigzag")
OUTSIDE_JITTER = 6


@dataclass(frozen=True)
class Texture:
    """A two-colour pattern.

    ``kind`` is one of ``TEXTURE_KINDS``; ``period`` is in body heights; ``angle`` (radians)
    orients stripes; ``duty`` is the share of a period painted in ``base`` (stripes) or the
    dot radius as a share of the period (dots).
    """

    kind: str
    base: tuple[int, int, int]
    accent: tuple[int, int, int]
    period: float = 0.06
    angle: float = 0.0
    duty: float = 0.5

    def paint(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Colours at part-local coordinates: ``(N,)`` and ``(N,)`` -> ``(N, 3)`` float32."""
        base = np.asarray(self.base, dtype=np.float32)
        accent = np.asarray(self.accent, dtype=np.float32)
        if self.kind == "plain":
            return np.tile(base, (u.shape[0], 1))
        if self.kind == "stripes":
            t = (u * np.cos(self.angle) + v * np.sin(self.angle)) / self.period
            use_accent = (t - np.floor(t)) >= self.duty
        elif self.kind == "checks":
            cells = np.floor(u / self.period) + np.floor(v / self.period)
            use_accent = (cells.astype(np.int64) & 1).astype(bool)
        elif self.kind == "dots":
            fu = u / self.period - np.floor(u / self.period) - 0.5
            fv = v / self.period - np.floor(v / self.period) - 0.5
            use_accent = fu * fu + fv * fv < (0.5 * self.duty) ** 2
        elif self.kind == "hatch":  # two crossing families of thin lines
            a = (u + v) / self.period
            b = (u - v) / self.period
            use_accent = ((a - np.floor(a)) >= self.duty) | ((b - np.floor(b)) >= self.duty)
        elif self.kind == "zigzag":  # bands along a triangle wave
            wave = np.abs((u / self.period) % 2.0 - 1.0) * 0.5 * self.period
            t = (v + wave) / self.period
            use_accent = (t - np.floor(t)) >= self.duty
        else:
            kinds = TEXTURE_KINDS + OUTSIDE_KINDS
            raise ValueError(f"Texture.kind must be one of {kinds}, got {self.kind!r}")
        return np.where(use_accent[:, None], accent, base).astype(np.float32)


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int) -> tuple:
    """A palette colour moved by up to ``amount`` per channel (no two swatches exact)."""
    moved = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return tuple(int(c) for c in moved)


def sample_colour(rng: np.random.Generator, *, jitter: int = 10) -> tuple[int, int, int]:
    """One palette colour, slightly jittered."""
    return _jitter(rng, PALETTE[int(rng.integers(len(PALETTE)))], jitter)


def sample_texture(
    rng: np.random.Generator,
    *,
    kind_probs: tuple[float, float, float, float] = (0.45, 0.25, 0.15, 0.15),
    base: tuple[int, int, int] | None = None,
) -> Texture:
    """A random texture from the palette; ``kind_probs`` weighs ``TEXTURE_KINDS``."""
    kind = TEXTURE_KINDS[int(rng.choice(len(TEXTURE_KINDS), p=np.asarray(kind_probs)))]
    base = sample_colour(rng) if base is None else base
    accent = base
    while np.abs(np.subtract(accent, base)).sum() < 120:  # the pattern must be visible
        accent = sample_colour(rng)
    angle = float(rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4]))
    duty = float(rng.uniform(0.35, 0.65)) if kind != "dots" else float(rng.uniform(0.45, 0.7))
    return Texture(kind, base, accent, float(rng.uniform(0.045, 0.09)), angle, duty)


def sample_outside_texture(rng: np.random.Generator) -> Texture:
    """A texture no identity wears: ``OUTSIDE_PALETTE`` colours, plain or an outside pattern."""
    kinds = ("plain", *OUTSIDE_KINDS)
    kind = kinds[int(rng.integers(len(kinds)))]
    base = _jitter(rng, OUTSIDE_PALETTE[int(rng.integers(len(OUTSIDE_PALETTE)))], OUTSIDE_JITTER)
    accent = base
    while np.abs(np.subtract(accent, base)).sum() < 120:  # the pattern must be visible
        colour = OUTSIDE_PALETTE[int(rng.integers(len(OUTSIDE_PALETTE)))]
        accent = _jitter(rng, colour, OUTSIDE_JITTER)
    duty = float(rng.uniform(0.55, 0.8))
    return Texture(kind, base, accent, float(rng.uniform(0.05, 0.1)), 0.0, duty)


@dataclass(frozen=True)
class Appearance:
    """What makes an identity: per-part textures, colours, accessories and build.

    Sequences of two are ``(left, right)`` in the person's own left and right (COCO sense).
    """

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str  # "short" | "long" | "bald"
    hat: Texture | None
    torso: Texture
    sleeves: tuple[Texture, Texture]
    long_sleeves: bool
    lower_kind: str  # "trousers" | "shorts" | "skirt"
    legs: tuple[Texture, Texture]
    shoes: tuple[int, int, int]
    bag_kind: str | None  # None | "backpack" | "shoulder"
    bag_side: int  # +1 left, -1 right
    bag: Texture
    logo: tuple[int, int, int] | None
    build: float  # width factor around 1

    def clothing(self) -> tuple[Texture, ...]:
        """The identity's garment textures, which occluders may borrow to confuse a model."""
        return (self.torso, *self.sleeves, *self.legs, self.bag)


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random identity. Same generator state -> same identity."""
    skin = _jitter(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 8)
    hair = _jitter(rng, HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))], 8)
    hair_style = str(rng.choice(["short", "long", "bald"], p=[0.55, 0.38, 0.07]))
    hat = sample_texture(rng, kind_probs=(0.7, 0.2, 0.1, 0.0)) if rng.random() < 0.2 else None
    torso = sample_texture(rng)
    if rng.random() < 0.55:
        sleeves = (torso, torso)
    else:
        sleeve = sample_texture(rng, kind_probs=(0.7, 0.2, 0.1, 0.0))
        other = sample_texture(rng, kind_probs=(0.8, 0.2, 0.0, 0.0))
        sleeves = (sleeve, other) if rng.random() < 0.25 else (sleeve, sleeve)
    lower_kind = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.65, 0.2, 0.15]))
    leg = sample_texture(rng, kind_probs=(0.7, 0.15, 0.1, 0.05))
    if rng.random() < 0.15:  # a patched or two-tone pair: a part-level identity cue
        legs = (leg, sample_texture(rng, kind_probs=(0.8, 0.2, 0.0, 0.0)))
    else:
        legs = (leg, leg)
    bag_kind = rng.choice([None, "backpack", "shoulder"], p=[0.5, 0.25, 0.25])
    return Appearance(
        skin=skin,
        hair=hair,
        hair_style=hair_style,
        hat=hat,
        torso=torso,
        sleeves=sleeves,
        long_sleeves=bool(rng.random() < 0.6),
        lower_kind=lower_kind,
        legs=legs,
        shoes=sample_colour(rng),
        bag_kind=None if bag_kind is None else str(bag_kind),
        bag_side=int(rng.choice([-1, 1])),
        bag=sample_texture(rng, kind_probs=(0.8, 0.1, 0.1, 0.0)),
        logo=sample_colour(rng) if rng.random() < 0.3 else None,
        build=float(rng.uniform(0.88, 1.15)),
    )
