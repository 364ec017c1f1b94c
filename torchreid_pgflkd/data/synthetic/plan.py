"""Settings of a synthetic dataset and the plan of its images (ids, cameras, occlusions).

Everything is a pure function of the settings: identity ``pid`` is drawn from
``default_rng([seed, 1, pid])`` and image ``i`` of a split from
``default_rng([seed, 2, split, i])``, so any image can be re-rendered alone, in any order
or process, and comes out the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from torchreid_pgflkd.data.synthetic.backgrounds import NUM_CAMERAS
from torchreid_pgflkd.data.synthetic.occluders import OCCLUDER_GROUPS

FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("bounding_box_train", "query", "bounding_box_test")
MAX_PIDS = 1501  # Market-1501 readers (torchreid's included) assert 0 <= pid <= 1501


@dataclass(frozen=True)
class SyntheticSettings:
    """Everything that changes the generated files (and so the dataset folder's hash)."""

    seed: int = 0
    num_train_ids: int = 150
    images_per_id: int = 8
    num_test_ids: int = 100
    queries_per_id: int = 2
    gallery_per_id: int = 4
    height: int = 128
    width: int = 64
    keypoint_noise: float = 0.0
    keypoint_dropout: float = 0.0
    train_occlusion_prob: float = 0.4
    train_occlusion: tuple[float, float] = (0.15, 0.5)
    query_occlusion: tuple[float, float] = (0.35, 0.48)
    gallery_occlusion_prob: float = 0.15
    gallery_occlusion: tuple[float, float] = (0.08, 0.22)
    image_format: str = "jpg"

    def __post_init__(self) -> None:
        positive = ("num_train_ids", "images_per_id", "num_test_ids", "queries_per_id")
        for name in (*positive, "gallery_per_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_train_ids + self.num_test_ids > MAX_PIDS:
            raise ValueError(
                f"num_train_ids + num_test_ids must be at most {MAX_PIDS} (Market-1501 readers "
                f"reject larger pids), got {self.num_train_ids} + {self.num_test_ids}"
            )
        if self.height < 32 or self.width < 16:
            raise ValueError(
                f"height and width must be at least 32 and 16, got {self.height}x{self.width}"
            )
        if self.keypoint_noise < 0:
            raise ValueError(f"keypoint_noise must be >= 0 pixels, got {self.keypoint_noise}")
        for name in ("keypoint_dropout", "train_occlusion_prob", "gallery_occlusion_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        for name in ("train_occlusion", "query_occlusion", "gallery_occlusion"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi < 1.0:
                raise ValueError(
                    f"{name} must be (low, high) with 0 <= low <= high < 1, got {(lo, hi)}"
                )
        if self.image_format not in ("jpg", "png"):
            raise ValueError(f"image_format must be 'jpg' or 'png', got {self.image_format!r}")

    def to_dict(self) -> dict:
        """JSON-ready settings (tuples as lists)."""
        items = dataclasses.asdict(self).items()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in items}

    @property
    def dirname(self) -> str:
        """``pgflkd_synthetic_s{seed}_{H}x{W}_{hash8}``; the hash covers every setting."""
        blob = json.dumps({"format_version": FORMAT_VERSION, **self.to_dict()}, sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
        return f"pgflkd_synthetic_s{self.seed}_{self.height}x{self.width}_{digest}"

    @property
    def train_pids(self) -> range:
        return range(1, self.num_train_ids + 1)

    @property
    def test_pids(self) -> range:
        return range(self.num_train_ids + 1, self.num_train_ids + self.num_test_ids + 1)


@dataclass(frozen=True)
class ImageSpec:
    """One image to render. ``occluder`` is a kind from ``OCCLUDER_GROUPS`` or None."""

    split: str
    index: int
    pid: int
    camid: int  # 1..6
    occluder: str | None
    fraction: float  # wanted share of the target's body pixels covered
    confuser: int | None  # pid whose clothes (or body) the occluder wears

    @property
    def filename(self) -> str:
        return f"{self.pid:04d}_c{self.camid}s1_{self.index + 1:06d}_00"

    def entropy(self, seed: int, stream: int = 2) -> list[int]:
        return [seed, stream, SPLITS.index(self.split), self.index]


def _occlusion(
    rng: np.random.Generator, prob: float, span: tuple[float, float], others: range, pid: int
) -> tuple[str | None, float, int | None]:
    """Draw whether and how an image is occluded."""
    if rng.random() >= prob:
        return None, 0.0, None
    group = ("below", "side", "person")[int(rng.integers(3))]
    kinds = OCCLUDER_GROUPS[group]
    kind = kinds[int(rng.integers(len(kinds)))]
    confuser = pid
    while confuser == pid and len(others) > 1:
        confuser = int(others[int(rng.integers(len(others)))])
    return kind, float(rng.uniform(*span)), (confuser if confuser != pid else None)


def plan_images(settings: SyntheticSettings) -> dict[str, list[ImageSpec]]:
    """Split folder -> the images to render, in file order."""
    st = settings
    specs: dict[str, list[ImageSpec]] = {split: [] for split in SPLITS}
    train, test = st.train_pids, st.test_pids

    def add(split: str, rng, pid: int, cam: int, prob: float, span, pool: range) -> None:
        kind, fraction, confuser = _occlusion(rng, prob, span, pool, pid)
        index = len(specs[split])
        specs[split].append(ImageSpec(split, index, pid, cam, kind, fraction, confuser))

    for pid in st.train_pids:
        rng = np.random.default_rng([st.seed, 3, pid])
        for _ in range(st.images_per_id):
            cam = int(rng.integers(1, NUM_CAMERAS + 1))
            add(SPLITS[0], rng, pid, cam, st.train_occlusion_prob, st.train_occlusion, pool=train)
    for pid in st.test_pids:
        rng = np.random.default_rng([st.seed, 3, pid])
        query_cam = int(rng.integers(1, NUM_CAMERAS + 1))
        others = [c for c in range(1, NUM_CAMERAS + 1) if c != query_cam]
        for _ in range(st.queries_per_id):
            add(SPLITS[1], rng, pid, query_cam, 1.0, st.query_occlusion, pool=test)
        for _ in range(st.gallery_per_id):
            cam = others[int(rng.integers(len(others)))]
            prob, span = st.gallery_occlusion_prob, st.gallery_occlusion
            add(SPLITS[2], rng, pid, cam, prob, span, pool=test)
    return specs
