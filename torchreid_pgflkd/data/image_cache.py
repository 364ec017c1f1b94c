"""Decode and resize every image of a split once; keep the pixels in one shared uint8 tensor.

Train and test pipelines both begin with ``Resize(height, width)``, their only deterministic
step, and decoding a JPEG and resizing it are about 45% of the loader's CPU time per image on
CUHK03 crops. An :class:`ImageCache` holds the output of that first step for every image of a
split as one ``(N, H, W, 3)`` uint8 tensor in shared memory, built in the main process before
the loader's workers start: forked workers read it without a copy (spawned ones receive a
handle, not the pixels), and the loader starts the transform after the resize
(:class:`AfterResize`). Batches are bit-identical to the uncached loader's: the same pixels,
keypoints scaled by the same ``Resize.scale_keypoints`` from each image's stored original
size, and the same RNG draws, because the resize draws none.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from torchreid_pgflkd.data.transforms import PoseCompose, Resize, Sample
from torchreid_pgflkd.data.verify import BadImagesError, VerifyReport

logger = logging.getLogger(__name__)

GB = 1e9  # cache sizes are in decimal gigabytes, as data.cache_max_gb
_SHM_DIR = "/dev/shm"
# Applied to a test image before the transform, e.g. a fixed occlusion of validation queries.
ImageHook = Callable[[Image.Image, str], Image.Image]


class ImageCacheTooLarge(ValueError):
    """The decoded pixels to cache would exceed ``data.cache_max_gb``; the message says how
    many images, at what size, and how many GB."""


def cache_nbytes(num_images: int, *, height: int, width: int) -> int:
    """Bytes of ``num_images`` cached images: ``N x H x W x 3`` (uint8 RGB)."""
    return int(num_images) * int(height) * int(width) * 3


def check_cache_size(
    num_images: int, *, height: int, width: int, max_gb: float, what: str = "images"
) -> int:
    """The cache's size in bytes; raises :class:`ImageCacheTooLarge` when over ``max_gb``."""
    nbytes = cache_nbytes(num_images, height=height, width=width)
    if nbytes > max_gb * GB:
        raise ImageCacheTooLarge(
            f"caching {num_images} {what} at {height}x{width} needs {nbytes / GB:.2f} GB "
            f"(N x H x W x 3 bytes), over data.cache_max_gb = {max_gb:g}: raise "
            "data.cache_max_gb (memory permitting) or set data.cache_images False"
        )
    return nbytes


def count_images(sample_lists: Iterable[Sequence]) -> int:
    """Images a set of caches holds: the distinct paths of each list, summed over lists
    (one cache per list; samples are ``(img_path, ...)`` tuples)."""
    return sum(len({s[0] for s in samples}) for samples in sample_lists)


def split_resize(transform: Callable) -> tuple[Resize, PoseCompose]:
    """A ``PoseCompose`` that starts with ``Resize`` -> ``(that resize, the steps after it)``."""
    steps = getattr(transform, "transforms", None)
    if not isinstance(transform, PoseCompose) or not steps or not isinstance(steps[0], Resize):
        raise ValueError(
            "cache_images needs a PoseCompose whose first step is Resize (as "
            f"build_pose_transforms makes), got {transform!r}"
        )
    return steps[0], PoseCompose(steps[1:])


class AfterResize:
    """The part of a pipeline after its first ``Resize``, for images the cache resized:
    ``(image, keypoints, source_hw) -> (tensor, keypoints)``, where ``keypoints`` are in pixels
    of the original image of ``source_hw`` ``(H, W)``, as for the full pipeline."""

    def __init__(self, transform: Callable) -> None:
        self.resize, self.rest = split_resize(transform)

    def __call__(self, image: Image.Image, keypoints: np.ndarray, source_hw) -> Sample:
        keypoints = np.array(keypoints, dtype=np.float32, copy=True)  # as PoseCompose does
        return self.rest(image, self.resize.scale_keypoints(keypoints, tuple(source_hw)))


class ImageCache:
    """Resized RGB pixels of a list of images, one row per distinct path.

    Attributes:
        pixels: ``(N, H, W, 3)`` uint8, in shared memory where ``/dev/shm`` has room.
        source_hw: ``(N, 2)`` int64, each image's ``(H, W)`` before the resize.
        rows: ``img_path -> row``.
    """

    def __init__(self, paths: Sequence[str], pixels: torch.Tensor, source_hw: torch.Tensor):
        if pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"pixels must be (N, H, W, 3) uint8, got {tuple(pixels.shape)}")
        if not len(paths) == pixels.shape[0] == source_hw.shape[0]:
            raise ValueError("paths, pixels and source_hw must have one row per image")
        self.pixels, self.source_hw = pixels, source_hw
        self.rows = {p: i for i, p in enumerate(paths)}

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __contains__(self, img_path: str) -> bool:
        return img_path in self.rows

    @property
    def nbytes(self) -> int:
        return self.pixels.numel()

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(H, W)`` of the cached (resized) images."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])

    def __getitem__(self, img_path: str) -> tuple[Image.Image, tuple[int, int]]:
        """The cached image of ``img_path`` (a new PIL image) and its size before the resize."""
        try:
            row = self.rows[img_path]
        except KeyError:
            raise KeyError(f"{img_path} is not in the image cache ({len(self)} images)") from None
        h, w = self.source_hw[row].tolist()
        return Image.fromarray(self.pixels[row].numpy()), (h, w)


def _shared_uint8(shape: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
    """An uninitialised uint8 tensor in shared memory when ``/dev/shm`` has room for it (and
    for the loader's own batches), else in ordinary memory; and whether it is shared."""
    tensor = torch.empty(shape, dtype=torch.uint8)
    try:
        free = shutil.disk_usage(_SHM_DIR).free
    except OSError:
        free = 0
    if tensor.numel() < 0.8 * free:
        return tensor.share_memory_(), True
    logger.warning(
        "%s has %.2f GB free, too little for the %.2f GB image cache: it stays in ordinary "
        "memory, which forked loader workers share copy-on-write (spawned ones would copy it)",
        _SHM_DIR,
        free / GB,
        tensor.numel() / GB,
    )
    return tensor, False


def build_image_cache(
    paths: Iterable[str],
    *,
    resize: Resize,
    image_hook: ImageHook | None = None,
    max_gb: float = 8.0,
    what: str = "images",
    threads: int | None = None,
    progress: bool = True,
) -> ImageCache:
    """Decode each distinct path once (``Image.open(path).convert("RGB")``, then
    ``image_hook(image, path)`` if given, then ``resize``), as the uncached loader does.

    ``image_hook`` is applied once here, so it must depend only on the image and its path
    (e.g. ``SeededOcclusion``); the loader then must not apply it again. The size is checked
    against ``max_gb`` before anything is decoded (:class:`ImageCacheTooLarge`); unreadable
    images raise one ``BadImagesError`` naming them. A few threads decode at once (PIL
    releases the GIL); a progress bar appears when it takes more than 2 s.
    """
    unique = list(dict.fromkeys(paths))
    h, w = resize.height, resize.width
    check_cache_size(len(unique), height=h, width=w, max_gb=max_gb, what=what)
    start = time.perf_counter()
    pixels, shared = _shared_uint8((len(unique), h, w, 3))
    source_hw = torch.empty((len(unique), 2), dtype=torch.int64)
    out, hw_out = pixels.numpy(), source_hw.numpy()  # views: the threads write in place
    no_pose = np.zeros((17, 3), dtype=np.float32)

    def load(row: int) -> tuple[str, str] | None:
        path = unique[row]
        try:
            with Image.open(path) as file:
                image = file.convert("RGB")
        except FileNotFoundError:
            return path, "no such file"
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            return path, f"{type(exc).__name__}: {exc}".replace(f" '{path}'", "")
        if image_hook is not None:
            image = image_hook(image, path)
        hw_out[row] = (image.height, image.width)
        out[row] = np.asarray(resize(image, no_pose)[0])
        return None

    threads = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = tqdm(
            pool.map(load, range(len(unique))),
            total=len(unique),
            desc=f"caching {what}",
            unit="img",
            delay=2.0,
            leave=False,
            disable=not progress,
        )
        bad = [r for r in results if r is not None]
    if bad:
        listing = VerifyReport(bad={what: bad}).listing()
        raise BadImagesError(
            f"{len(bad)} of {len(unique)} images cannot be read while caching {what}: "
            f"{listing}. Replace or remove them, or drop them with data.skip_bad_images True "
            "(PoseDataManager checks every image before caching unless verify_images=False)"
        )
    logger.info(
        "cached %d %s at %dx%d in %.1fs: %.2f GB%s",
        len(unique),
        what,
        h,
        w,
        time.perf_counter() - start,
        pixels.numel() / GB,
        " in shared memory" if shared else "",
    )
    return ImageCache(unique, pixels, source_hw)
