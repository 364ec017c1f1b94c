"""Open every image once before training, so a bad file stops the run at its start.

Without this a truncated gallery image surfaces only at the evaluation after the last epoch.
Each image is decoded the way the loaders read it (``Image.open(...).convert("RGB")``), which
catches truncated and broken JPEG streams that ``Image.verify()`` lets through; JPEGs are
decoded at 1/8 scale (``draft``), which still reads all of their data. A few threads decode
at once (PIL releases the GIL): CUHK03's 8k crops take a few seconds on two cores.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, MutableSequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

_MAX_LISTED = 20


class BadImagesError(ValueError):
    """Images of a dataset that cannot be read; the message lists them."""


@dataclass
class VerifyReport:
    """What ``verify_images`` found: images checked, unreadable ones, and how long it took.

    ``bad`` maps each split name to ``(path, reason)`` pairs; ``dropped`` counts the samples
    removed from the splits (``skip_bad=True``).
    """

    checked: int = 0
    bad: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    dropped: int = 0
    seconds: float = 0.0

    def listing(self) -> str:
        """``split: path (reason)`` for the first 20 unreadable images, and how many more."""
        pairs = [(split, p, why) for split, items in self.bad.items() for p, why in items]
        lines = [f"{split}: {p} ({why})" for split, p, why in pairs[:_MAX_LISTED]]
        more = len(pairs) - _MAX_LISTED
        return "; ".join(lines) + (f"; ... and {more} more" if more > 0 else "")


def _path(sample: Any) -> str:
    """The image path of a sample: torchreid's ``(img_path, pid, camid, dsetid)``, a dict with
    ``img_path``, or a path."""
    if isinstance(sample, Mapping):
        return str(sample["img_path"])
    if isinstance(sample, (tuple, list)):
        return str(sample[0])
    return os.fspath(sample)


def read_error(path: str) -> str | None:
    """Why the image at ``path`` cannot be read as RGB, or ``None`` when it can."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (1, 1))  # JPEG: decode every block at the smallest scale
            image.convert("RGB")
    except FileNotFoundError:
        return "no such file"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"{type(exc).__name__}: {exc}".replace(f" '{path}'", "")
    return None


def verify_images(
    samples_by_split: Mapping[str, MutableSequence[Any]],
    *,
    skip_bad: bool = False,
    progress: bool = False,
    threads: int | None = None,
    check: Callable[[str], str | None] = read_error,
) -> VerifyReport:
    """Open every image of every split once (an image shared by splits once in all).

    ``samples_by_split`` maps a name (``"market1501/gallery"``) to its samples. Unreadable
    images raise one ``BadImagesError`` naming the first 20 and their count, unless
    ``skip_bad``: then they are removed from the split lists in place (counted and logged),
    and a split left empty is still an error.
    """
    start = time.perf_counter()
    paths = list(dict.fromkeys(_path(s) for samples in samples_by_split.values() for s in samples))
    threads = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = pool.map(check, paths)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(paths), desc="verifying images", leave=False)
        errors = {p: why for p, why in zip(paths, results) if why is not None}
    report = VerifyReport(checked=len(paths), seconds=time.perf_counter() - start)
    for split, samples in samples_by_split.items():
        bad = [(p, errors[p]) for p in map(_path, samples) if p in errors]
        if bad:
            report.bad[split] = bad
    logger.info(
        "verified %d images in %.1fs: %d unreadable", report.checked, report.seconds, len(errors)
    )
    if not errors:
        return report
    if not skip_bad:
        raise BadImagesError(
            f"{len(errors)} of {report.checked} images cannot be read: {report.listing()}. "
            "Replace or remove them, or drop them from training and testing with "
            "skip_bad_images (config data.skip_bad_images True)"
        )
    for split, samples in samples_by_split.items():
        kept = [s for s in samples if _path(s) not in errors]
        if not kept and samples:
            raise BadImagesError(f"every image of {split} is unreadable: {report.listing()}")
        report.dropped += len(samples) - len(kept)
        samples[:] = kept
    logger.warning(
        "dropped %d samples of %d unreadable images (skip_bad_images): %s",
        report.dropped,
        len(errors),
        report.listing(),
    )
    return report
