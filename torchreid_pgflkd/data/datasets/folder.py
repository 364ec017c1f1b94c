"""Folders of crops whose file names give the person and camera, and the CUHK03 (camera pair 1)
benchmark built on them: train on CUHK03, validate on held-out CUHK03 people (queries occluded
at load time), test on Partial-REID.

Keypoints are looked up as in ``PoseImageDataset`` (``keypoints_dir=`` / ``keypoints_file=``,
else the KPR folder next to the images), then in the shared-data layout
``<ancestor>/keypoints/blazepose/<dataset path below that ancestor>/<split folder>/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from torchreid_pgflkd.data.datasets.base import PoseImageDataset, Sample, list_images
from torchreid_pgflkd.data.keypoint_source import split_keypoints
from torchreid_pgflkd.pose.cache import KeypointTable

logger = logging.getLogger(__name__)

SHARED_KEYPOINTS_SUBDIR = Path("keypoints") / "blazepose"
_FIELDS = {"pid": r"(?P<pid>-?\d+)", "cam": r"(?P<cam>.+?)", "any": r".*?"}
ImageHook = Callable[[Image.Image, str], Image.Image]


def shared_keypoint_dirs(dataset_dir: Path, levels: int = 3) -> list[Path]:
    """Existing ``<a>/keypoints/blazepose/<dataset_dir relative to a>`` for the ancestors ``a``
    of ``dataset_dir`` up to ``levels`` up (the layout of ``../shared/data``)."""
    dirs = []
    for anc in list(dataset_dir.parents)[:levels]:
        cand = anc / SHARED_KEYPOINTS_SUBDIR / dataset_dir.relative_to(anc)
        if cand.is_dir():
            dirs.append(cand)
    return dirs


def compile_pattern(pattern: str | re.Pattern) -> re.Pattern:
    """``"{pid}_{cam}.jpg"`` (fields ``pid``, ``cam``, optional ``any``) or a regular expression
    with named groups ``pid`` and ``cam`` -> a regex matched against whole file names."""
    if isinstance(pattern, str) and "(?P<" not in pattern:
        parts = re.split(r"\{(\w*)\}", pattern)
        unknown = sorted(set(parts[1::2]) - set(_FIELDS))
        if unknown:
            raise ValueError(
                f"pattern {pattern!r}: unknown field(s) {unknown}; "
                "allowed {pid}, {cam}, {any}"
            )
        pattern = "".join(_FIELDS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))
    regex = re.compile(pattern)
    missing = {"pid", "cam"} - set(regex.groupindex)
    if missing:
        raise ValueError(
            f"pattern {regex.pattern!r} lacks the field(s)/named group(s) {sorted(missing)}: use "
            "'{pid}_{cam}.jpg' or a regex like r'(?P<pid>\\d+)_c(?P<cam>\\d)'"
        )
    return regex


class CropFolderDataset(PoseImageDataset):
    """Crops in folders, person and camera read from each file name (``crop_folder``).

    Args:
        root: data root; relative folders are taken below ``root`` (``root/dataset_dir`` when
            ``dataset_dir`` is given).
        train_dir: train folder; None for a test-only set.
        query_dir, gallery_dir: query and gallery folders (may be the same folder when
            ``query_cams`` / ``gallery_cams`` split it by camera).
        pattern: ``"{pid}_{cam}.jpg"``-style pattern or a regex with groups ``pid``, ``cam``.
        camera_map: raw ``cam`` string -> camera id (dict or callable); default: the distinct
            raw values over all folders, sorted, relabelled 0..C-1.
        pid_offset: added to the person ids of every split (int) or per split (mapping), e.g.
            to keep the ids of two folders that both start at 0 apart.
        query_cams, gallery_cams: keep only these camera ids in the query / gallery.
        **kwargs: ``PoseImageDataset``'s (``keypoints_dir``, ...) and torchreid's.
    """

    split_dir_names: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(
        self,
        root: str = "",
        *,
        train_dir: str | None = None,
        query_dir: str | None = None,
        gallery_dir: str | None = None,
        pattern: str | re.Pattern = "{pid}_{cam}.jpg",
        camera_map: Mapping[Any, int] | Callable[[str], int] | None = None,
        pid_offset: int | Mapping[str, int] = 0,
        query_cams: Collection[int] | None = None,
        gallery_cams: Collection[int] | None = None,
        **kwargs: Any,
    ) -> None:
        self.pattern = compile_pattern(pattern)
        self.camera_map = camera_map
        self.pid_offset = pid_offset
        self.split_cams = {"query": query_cams, "gallery": gallery_cams}
        self._dirs = {"train": train_dir, "query": query_dir, "gallery": gallery_dir}
        if not self.split_dir_names and not (query_dir and gallery_dir):
            raise ValueError(f"{type(self).__name__}: pass query_dir= and gallery_dir= folders")
        if not self.split_dir_names:
            self.test_only = train_dir is None
        self._parsed: dict[Path, list[tuple[str, int, str]]] = {}
        self._cam_labels: dict[str, int] | None = None
        super().__init__(root, **kwargs)

    # -- layout ----------------------------------------------------------------------------
    def _resolve_layout(self, names: Any) -> tuple[Path, dict[str, Path]]:
        if self.split_dir_names:  # a subclass with a fixed layout (e.g. cuhk03_pair1)
            return super()._resolve_layout(names)
        base = self.root / names[0] if names else self.root
        dirs = {s: base / d for s, d in self._dirs.items() if d is not None}
        if not all(p.is_dir() for p in dirs.values()):
            found = ", ".join(
                f"{s}={p}: {len(list_images(p)) if p.is_dir() else 'missing'}"
                + (" images" if p.is_dir() else "")
                for s, p in dirs.items()
            )
            raise FileNotFoundError(
                f"{type(self).__name__}: no complete dataset under root {self.root}. Looked for "
                f"the folders {found}. Nothing is downloaded: fix root= or the *_dir= folders."
            )
        return Path(os.path.commonpath([str(p) for p in dirs.values()])), dirs

    def _parse_folder(self, folder: Path) -> list[tuple[str, int, str]]:
        """``(path, pid, raw cam)`` of every image in ``folder`` (read once)."""
        if folder not in self._parsed:
            rows = []
            for path in list_images(folder):
                m = self.pattern.fullmatch(path.name)
                if m is None:
                    raise ValueError(
                        f"{path}: file name does not match the pattern {self.pattern.pattern!r} "
                        "(person id 'pid' and camera 'cam')"
                    )
                rows.append((str(path), int(m.group("pid")), m.group("cam")))
            self._parsed[folder] = rows
        return self._parsed[folder]

    def _camera_id(self, raw: str, path: str) -> int:
        if self.camera_map is None:
            if self._cam_labels is None:
                raws = {r[2] for d in set(self.split_dirs.values()) for r in self._parse_folder(d)}
                numeric = all(r.lstrip("-").isdigit() for r in raws)
                ordered = sorted(raws, key=int if numeric else str)
                self._cam_labels = {r: i for i, r in enumerate(ordered)}
            return self._cam_labels[raw]
        if callable(self.camera_map):
            return int(self.camera_map(raw))
        for key in (raw, int(raw) if raw.lstrip("-").isdigit() else None):
            if key in self.camera_map:
                return int(self.camera_map[key])
        raise ValueError(f"{path}: camera {raw!r} is not in camera_map {dict(self.camera_map)}")

    def select(self, split: str, samples: list[Sample]) -> list[Sample]:
        """Filter the samples of a split (before train relabelling); subclasses add rules."""
        cams = self.split_cams.get(split)
        return samples if cams is None else [s for s in samples if s[2] in set(cams)]

    def parse_split(self, split: str, folder: Path) -> list[Sample]:
        off = self.pid_offset
        offset = int(off) if isinstance(off, int) else int(off.get(split, 0))
        rows = [
            (p, pid + offset, self._camera_id(raw, p), 0)
            for p, pid, raw in self._parse_folder(folder)
        ]
        rows = self.select(split, rows)
        if split == "train":
            labels = {pid: i for i, pid in enumerate(sorted({r[1] for r in rows}))}
            rows = [(p, labels[pid], cam, d) for p, pid, cam, d in rows]
        return rows

    # -- keypoints -------------------------------------------------------------------------
    def keypoint_search_dirs(self) -> list[Path]:
        dirs = super().keypoint_search_dirs()
        if self.keypoints_dir is not None:
            return dirs
        return dirs + shared_keypoint_dirs(self.dataset_dir)

    def keypoint_table(self, split: str) -> KeypointTable | None:
        """Keypoints of every image of the split's *folder*: splits that share a folder (query
        and gallery by camera, held-out ids) share one table and one cache file."""
        if split not in self._tables and self.keypoints_file is None:
            folder = self.split_dirs[split]
            table = split_keypoints(
                [r[0] for r in self._parse_folder(folder)],
                split_dir=folder,
                search_dirs=self.keypoint_search_dirs(),
                cache_dir=self.keypoint_cache_dir,
                what=f"{type(self).__name__} {folder.name}",
            )
            if table is not None:  # else the base class looks again and warns
                self._tables[split] = table
        return super().keypoint_table(split)

    def image_hook(self, split: str) -> ImageHook | None:
        """What the test loader applies to each image of ``split`` before the transform."""
        return None


def cuhk03_camera(raw: str) -> int:
    """CUHK03 image index ``II`` -> camera: 00-04 the first camera (0), 05-09 the second (1)."""
    return 0 if int(raw) < 5 else 1


class CUHK03Pair1(CropFolderDataset):
    """CUHK03 labeled boxes, camera pair 1 (``cuhk03_pair1``): ``<root>/cuhk03_pair1/labeled/
    {train,val}/PPPP_II.jpg``. Train: the ``train`` folder (7,239 crops, 743 ids). Test: the 100
    ``val`` people (ids offset by ``VAL_PID_OFFSET``), query camera 0, gallery camera 1.

    Args:
        holdout_ids: remove the last N train ids (sorted) from train, for
            ``cuhk03_pair1_holdout`` to validate on.
    """

    VAL_PID_OFFSET: ClassVar[int] = 100_000
    expected_counts: ClassVar[dict[str, int]] = {"query": 451, "gallery": 487}
    dataset_dir_names: ClassVar[tuple[str, ...]] = ("cuhk03_pair1",)
    split_dir_names: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("train",),
        "query": ("val",),
        "gallery": ("val",),
    }

    def __init__(self, root: str = "", *, holdout_ids: int = 0, **kwargs: Any) -> None:
        if holdout_ids < 0:
            raise ValueError(f"holdout_ids must be >= 0, got {holdout_ids}")
        self.holdout_ids = int(holdout_ids)
        if self.holdout_ids == 0:
            self.expected_counts = {**self.expected_counts, "train": 7239}
        kwargs.setdefault(
            "pid_offset", {"query": self.VAL_PID_OFFSET, "gallery": self.VAL_PID_OFFSET}
        )
        kwargs.setdefault("query_cams", [0])
        kwargs.setdefault("gallery_cams", [1])
        super().__init__(root, pattern="{pid}_{cam}.jpg", camera_map=cuhk03_camera, **kwargs)

    def held_out(self) -> set[int]:
        """Raw ids of the held-out train people (the last ``holdout_ids`` by sorted id)."""
        pids = sorted({pid for _, pid, _ in self._parse_folder(self.split_dirs["train"])})
        if self.holdout_ids >= len(pids):
            raise ValueError(
                f"holdout_ids={self.holdout_ids} leaves no train ids ({len(pids)} in "
                f"{self.split_dirs['train']})"
            )
        return set(pids[len(pids) - self.holdout_ids :]) if self.holdout_ids else set()

    def select(self, split: str, samples: list[Sample]) -> list[Sample]:
        samples = super().select(split, samples)
        if split == "train":
            held = self.held_out()
            samples = [s for s in samples if s[1] not in held]
        return samples


QUERY_VIEWS = ("rectangles", "whole", "partial", "blob")


class CUHK03Pair1Holdout(CUHK03Pair1):
    """The held-out CUHK03 train people as a validation set (``cuhk03_pair1_holdout``): train =
    the other ids, query = the held-out people's camera-0 crops, gallery = their camera-1 crops.

    The same queries can be seen in several *views*, each registered under its own name so that
    one validation run scores all of them (``cuhk03_val`` preset):

    ========================== =========== ====================================================
    name                       view        what the query looks like
    ========================== =========== ====================================================
    cuhk03_pair1_holdout       rectangles  a flat or noisy rectangle from the bottom or a side
                                           (``SeededOcclusion``; the occlusion augmentation
                                           draws the same kind of occluder)
    cuhk03_pair1_holdout_whole whole       as it is (holistic)
    ..._partial                partial     the top 50-80 % of the crop only, stretched back to
                                           the input size (``SeededPartialView``)
    ..._blob                   blob        an ellipse inside the frame, filled with a window of
                                           another held-out person's crop (``SeededBlobOcclusion``;
                                           a shape and a place the augmentation never draws)
    ========================== =========== ====================================================

    Every view is deterministic per file name: the same queries in every run.

    Args:
        holdout_ids: how many ids (the last by sorted id) to hold out.
        occlude_queries: False shows the queries whole whatever ``query_view`` says (kept for
            the callers that switched occlusion off this way).
        query_view: one of ``QUERY_VIEWS``.
    """

    default_view: ClassVar[str] = "rectangles"

    expected_counts: ClassVar[dict[str, int]] = {}
    split_dir_names: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("train",),
        "query": ("train",),
        "gallery": ("train",),
    }

    def __init__(
        self,
        root: str = "",
        *,
        holdout_ids: int = 100,
        occlude_queries: bool = True,
        query_view: str | None = None,
        **kwargs: Any,
    ) -> None:
        if holdout_ids < 1:
            raise ValueError(f"cuhk03_pair1_holdout needs holdout_ids >= 1, got {holdout_ids}")
        view = self.default_view if query_view is None else query_view
        if view not in QUERY_VIEWS:
            raise ValueError(f"query_view must be one of {QUERY_VIEWS}, got {view!r}")
        self.query_view = view if occlude_queries else "whole"
        self.occlude_queries = self.query_view != "whole"
        kwargs.setdefault("pid_offset", 0)
        super().__init__(root, holdout_ids=holdout_ids, **kwargs)

    def select(self, split: str, samples: list[Sample]) -> list[Sample]:
        samples = super().select(split, samples)
        if split != "train":
            held = self.held_out()
            samples = [s for s in samples if s[1] in held]
        return samples

    def image_hook(self, split: str) -> ImageHook | None:
        if split != "query" or self.query_view == "whole":
            return None
        if self.query_view == "partial":
            return SeededPartialView()
        if self.query_view == "blob":  # occluders from the other held-out people's crops
            return SeededBlobOcclusion(
                pool=[(s[0], s[1]) for s in self.gallery],
                people={Path(s[0]).name: s[1] for s in self.query},
            )
        return SeededOcclusion()


class CUHK03Pair1HoldoutWhole(CUHK03Pair1Holdout):
    """``cuhk03_pair1_holdout`` with the queries whole (``cuhk03_pair1_holdout_whole``)."""

    default_view: ClassVar[str] = "whole"


class CUHK03Pair1HoldoutPartial(CUHK03Pair1Holdout):
    """``cuhk03_pair1_holdout`` with partial queries (``cuhk03_pair1_holdout_partial``)."""

    default_view: ClassVar[str] = "partial"


class CUHK03Pair1HoldoutBlob(CUHK03Pair1Holdout):
    """``cuhk03_pair1_holdout`` with blob-occluded queries (``cuhk03_pair1_holdout_blob``)."""

    default_view: ClassVar[str] = "blob"


def _seeded_rng(seed: int, img_path: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and the file *name* (not its folder): the same draw for
    the same image wherever the data lives, in every run and worker."""
    digest = hashlib.sha256(f"{seed}:{Path(img_path).name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class SeededOcclusion:
    """Cover ``area`` (fraction range) of an image with a rectangle from the bottom, the left or
    the right, filled with one random colour or with noise. Every choice is seeded by the image
    file name (and ``seed``), so an image is occluded identically in every run and worker.
    """

    def __init__(self, *, area: tuple[float, float] = (0.3, 0.5), seed: int = 0) -> None:
        if not 0 < area[0] <= area[1] < 1:
            raise ValueError(f"area must satisfy 0 < low <= high < 1, got {area}")
        self.area, self.seed = area, int(seed)

    def __call__(self, image: Image.Image, img_path: str) -> Image.Image:
        rng = _seeded_rng(self.seed, img_path)
        frac = rng.uniform(*self.area)
        side = ("bottom", "left", "right")[int(rng.integers(3))]
        w, h = image.size
        arr = np.array(image.convert("RGB"))
        extent = h if side == "bottom" else w
        n = min(int(np.ceil(frac * extent)), int(self.area[1] * extent))  # keeps area in range
        box = {
            "bottom": np.s_[h - n :, :],
            "left": np.s_[:, :n],
            "right": np.s_[:, w - n :],
        }[side]
        if rng.random() < 0.5:
            arr[box] = rng.integers(0, 256, 3, dtype=np.uint8)
        else:
            arr[box] = rng.integers(0, 256, arr[box].shape, dtype=np.uint8)
        return Image.fromarray(arr)

    def __repr__(self) -> str:
        return f"SeededOcclusion(area={self.area}, seed={self.seed})"


class SeededPartialView:
    """Keep only the top ``keep`` (fraction range) of an image's height, as a partial query
    cut by the frame or an occluder; the transform then stretches it to the input size.
    Seeded by the file name (and ``seed``), like ``SeededOcclusion``.
    """

    def __init__(self, *, keep: tuple[float, float] = (0.5, 0.8), seed: int = 0) -> None:
        if not 0 < keep[0] <= keep[1] <= 1:
            raise ValueError(f"keep must satisfy 0 < low <= high <= 1, got {keep}")
        self.keep, self.seed = keep, int(seed)

    def __call__(self, image: Image.Image, img_path: str) -> Image.Image:
        frac = _seeded_rng(self.seed, img_path).uniform(*self.keep)
        w, h = image.size
        return image.crop((0, 0, w, max(1, int(round(frac * h)))))

    def __repr__(self) -> str:
        return f"SeededPartialView(keep={self.keep}, seed={self.seed})"


class SeededBlobOcclusion:
    """Cover ``area`` (fraction range) of an image with an ellipse inside the frame, filled with
    a window of another person's crop from ``pool`` (``(path, pid)`` pairs). A crop of the same
    person (by ``pool`` or by ``people``, file name -> pid) is never chosen. The centre lies in
    the lower three quarters, so the ellipse may touch an edge but is not anchored to one.
    Seeded by the file name (and ``seed``).

    Raises:
        ValueError: an empty pool, an image of no known person, or a pool with no other
            person than the image's.
        OSError: an occluder image that cannot be read (its path in the message).
    """

    def __init__(
        self,
        *,
        pool: Sequence[tuple[str, int]],
        people: Mapping[str, int] | None = None,
        area: tuple[float, float] = (0.25, 0.4),
        seed: int = 0,
    ) -> None:
        if not 0 < area[0] <= area[1] < 1:
            raise ValueError(f"area must satisfy 0 < low <= high < 1, got {area}")
        if not pool:
            raise ValueError("SeededBlobOcclusion needs a pool of (path, pid) occluder crops")
        self.pool = sorted((str(p), int(pid)) for p, pid in pool)
        self._pid_of = {Path(p).name: pid for p, pid in self.pool}
        self._pid_of.update({str(k): int(v) for k, v in (people or {}).items()})
        self.area, self.seed = area, int(seed)

    def __call__(self, image: Image.Image, img_path: str) -> Image.Image:
        rng = _seeded_rng(self.seed, img_path)
        own = self._pid_of.get(Path(img_path).name)
        if own is None:
            raise ValueError(f"{img_path}: not a known person of the occluder pool or `people`")
        others = [p for p, pid in self.pool if pid != own]
        if not others:
            raise ValueError(f"{img_path}: the occluder pool holds no other person")
        w, h = image.size
        frac = rng.uniform(*self.area)
        aspect = rng.uniform(0.5, 2.0)  # ellipse height / width, in units of the image's sides
        # area of an ellipse with semi-axes a (x) and b (y): pi a b = frac w h
        a = np.sqrt(frac * w * h / (np.pi * aspect * h / w))
        b = aspect * a * h / w
        a, b = min(a, 0.6 * w), min(b, 0.6 * h)
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.25, 0.9) * h
        path = others[int(rng.integers(len(others)))]
        try:
            with Image.open(path) as src:
                occluder = np.asarray(src.convert("RGB").resize((w, h), Image.BILINEAR))
        except OSError as exc:
            raise OSError(f"cannot read occluder image {path}: {exc}") from exc
        occluder = np.roll(occluder, (int(rng.integers(h)), int(rng.integers(w))), axis=(0, 1))
        yy, xx = np.mgrid[0:h, 0:w]
        inside = ((xx + 0.5 - cx) / a) ** 2 + ((yy + 0.5 - cy) / b) ** 2 <= 1.0
        arr = np.array(image.convert("RGB"))
        arr[inside] = occluder[inside]
        return Image.fromarray(arr)

    def __repr__(self) -> str:
        return (
            f"SeededBlobOcclusion(pool={len(self.pool)} crops, area={self.area}, seed={self.seed})"
        )
