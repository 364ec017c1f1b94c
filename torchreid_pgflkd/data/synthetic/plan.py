"""Settings of a synthetic dataset and the plan of its images (ids, cameras, occlusions).

Everything is a pure function of the settings: identity ``pid`` is drawn from
``default_rng([seed, 1, pid])`` and image ``i`` of a split from
``default_rng([seed, 2, split, i])``, so any image can be re-rendered alone, in any order
or process, and comes out the same. The keypoint estimator model draws from streams of its
own (4: noise and dropout; 5: the rest) and outside occluder textures from stream 6, so
turning those on changes no image, pose or occluder shape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from torchreid_pgflkd.data.synthetic.backgrounds import NUM_CAMERAS
from torchreid_pgflkd.data.synthetic.occluders import OCCLUDER_GROUPS, OCCLUDER_TEXTURES

FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("bounding_box_train", "query", "bounding_box_test")
MAX_PIDS = 1501  # Market-1501 readers (torchreid's included) assert 0 <= pid <= 1501
# Settings added after the first release: left out of to_dict() (so of meta.json and of the
# folder's hash) at their default, so that a folder made before them keeps its name and bytes.
LATER_DEFAULTS: dict[str, object] = {
    "visible_confidence": 0.0,
    "covered_visible": 0.0,
    "covered_noise": 0.0,
    "miss_person": 0.0,
    "miss_occluded": 0.0,
    "wrong_person": 0.0,
    "occluder_textures": "identities",
}


@dataclass(frozen=True)
class SyntheticSettings:
    """Everything that changes the generated files (and so the dataset folder's hash).

    The keypoint estimator model (``estimator.py``; each a number, 0 = off, all 0 = the exact
    oracle keypoints): ``keypoint_noise`` pixel std of visible joints, ``keypoint_dropout``
    probability a visible joint is reported missing, ``visible_confidence`` in [0, 1] how far
    visible joints' confidence moves from 1 to BlazePose's, ``covered_visible`` probability a
    joint behind an occluder is still reported (BlazePose-like confidence, moved by
    ``covered_noise`` pixels std), ``miss_person`` probability an image gets no skeleton,
    ``miss_occluded`` the extra probability for an occluded one, ``wrong_person`` probability
    that, behind another person, that person's skeleton is reported as the target.
    ``occluder_textures``: objects wear other identities' clothes (``"identities"``) or a
    palette no identity wears (``"outside"``).
    """

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
    visible_confidence: float = 0.0
    covered_visible: float = 0.0
    covered_noise: float = 0.0
    miss_person: float = 0.0
    miss_occluded: float = 0.0
    wrong_person: float = 0.0
    occluder_textures: str = "identities"

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
        for name in ("keypoint_noise", "covered_noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 pixels, got {getattr(self, name)}")
        probabilities = ("keypoint_dropout", "train_occlusion_prob", "gallery_occlusion_prob")
        estimator = ("visible_confidence", "covered_visible", "miss_person", "miss_occluded")
        for name in (*probabilities, *estimator, "wrong_person"):
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
        if self.occluder_textures not in OCCLUDER_TEXTURES:
            raise ValueError(
                f"occluder_textures must be one of {OCCLUDER_TEXTURES}, "
                f"got {self.occluder_textures!r}"
            )

    def to_dict(self) -> dict:
        """JSON-ready settings (tuples as lists); later settings only where they are set."""
        items = dataclasses.asdict(self).items()
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in items
            if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]
        }

    @property
    def estimator_on(self) -> bool:
        """Whether any option of the estimator model beyond noise and dropout is on."""
        names = ("visible_confidence", "covered_visible", "miss_person", "miss_occluded")
        return any(getattr(self, n) > 0 for n in (*names, "wrong_person"))

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
