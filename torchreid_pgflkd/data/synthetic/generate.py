"""Write the synthetic benchmark to disk in the Market-1501 + KPR keypoint layout.

::

    <root>/pgflkd_synthetic_s{seed}_{H}x{W}_{hash8}/
        bounding_box_train/  query/  bounding_box_test/     PPPP_cCs1_FFFFFF_00.jpg
        external_annotation/pifpaf_keypoints_pifpaf_maskrcnn_filtering/<split>/
            <image file name>_keypoints.json
                [{"keypoints": [[x, y, c] x 17], "is_target": true}, ...]  (target first)
        meta.json                                    written last; lists every file

Generation is deterministic (same settings -> byte-identical files, with or without
worker processes) and done once: a folder whose ``meta.json`` matches and whose listed files
are all there is reused; any other is rebuilt, with a warning. Processes that generate the
same benchmark at once take turns on a lock file beside the folder
(``.<folder>.lock``); the one that builds writes into a hidden sibling
(``.<folder>.tmp-<pid>``), fsyncs every file and renames it into place, so the folder under
its final name is always whole.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from tqdm import tqdm

from torchreid_pgflkd.data.synthetic.estimator import estimator_options
from torchreid_pgflkd.data.synthetic.plan import (
    FORMAT_VERSION,
    SPLITS,
    ImageSpec,
    SyntheticSettings,
    plan_images,
)
from torchreid_pgflkd.data.synthetic.scene import occluder_group, render_sample
from torchreid_pgflkd.utils.locking import file_lock

logger = logging.getLogger(__name__)

KEYPOINT_DIR = Path("external_annotation") / "pifpaf_keypoints_pifpaf_maskrcnn_filtering"
META_FILE = "meta.json"


def keypoint_path(dataset_dir: str | Path, split: str, image_name: str) -> Path:
    """Where the KPR-layout keypoints of ``image_name`` (with extension) in ``split`` live."""
    return Path(dataset_dir) / KEYPOINT_DIR / split / f"{image_name}_keypoints.json"


def _rounded(keypoints) -> list[list[float]]:
    """``(17, 3)`` -> JSON lists, rounded (pixels to 1/100, confidence to 1/1000)."""
    return [[round(float(x), 2), round(float(y), 2), round(float(c), 3)] for x, y, c in keypoints]


def _path_error(exc: OSError, path: Path | str) -> OSError:
    """``exc`` again, its message naming ``path`` (a full disk or a denied write says where)."""
    if exc.errno is None:
        return OSError(f"cannot write {path}: {exc}")
    return OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")


def _write_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(f)`` into a new file at ``path``, flushed to disk before returning."""
    try:
        with open(path, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise _path_error(exc, path) from exc


def _fsync_dir(path: Path) -> None:
    """Make the entries (new files, a rename) of directory ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_one(args: tuple[SyntheticSettings, ImageSpec, str]) -> dict:
    """Render and write one image and its keypoints; returns its meta.json entry."""
    settings, spec, out_dir = args
    sample = render_sample(settings, spec)
    name = f"{spec.filename}.{settings.image_format}"
    image = Image.fromarray(sample.image)
    if settings.image_format == "jpg":
        _write_file(Path(out_dir) / spec.split / name, lambda f: image.save(f, "JPEG", quality=95))
    else:
        _write_file(Path(out_dir) / spec.split / name, lambda f: image.save(f, format="PNG"))
    skeletons = [
        {"keypoints": _rounded(pts), "is_target": bool(is_target)}
        for pts, is_target in sample.skeletons
    ]
    text = json.dumps(skeletons).encode()
    _write_file(keypoint_path(out_dir, spec.split, name), lambda f: f.write(text))
    target = sample.skeletons[0][0] if sample.skeletons else np.zeros((17, 3))
    worn = spec.occluder == "person" or settings.occluder_textures == "identities"
    entry = {
        "file": name,
        "pid": spec.pid,
        "camid": spec.camid,
        "occluder": spec.occluder,
        "occluder_group": occluder_group(spec.occluder),
        "occluder_pid": spec.confuser if worn else None,  # whose clothes the occluder wears
        "occluded_fraction": round(sample.occluded_fraction, 4),
        "visible_keypoints": int((target[:, 2] > 0).sum()),
    }
    if settings.estimator_on:  # whom the target skeleton is on: target | occluder | none
        entry["keypoints_on"] = sample.reported
    return entry


def _problem(path: Path, settings: SyntheticSettings) -> str | None:
    """Why ``path`` is not a complete benchmark for ``settings``; None when it is one."""
    meta_file = path / META_FILE
    if not meta_file.is_file():
        return f"no {META_FILE} (generation did not finish)"
    try:
        meta = json.loads(meta_file.read_text())
        listed = [(split, e["file"]) for split in SPLITS for e in meta["images"][split]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {META_FILE} ({exc})"
    if meta.get("format_version") != FORMAT_VERSION or meta.get("settings") != settings.to_dict():
        return f"{META_FILE} is of another format version or other settings"
    missing = []
    for split, name in listed:
        for file in (path / split / name, keypoint_path(path, split, name)):
            try:
                if file.stat().st_size == 0:
                    missing.append(file)
            except OSError:
                missing.append(file)
    if missing:
        rel = missing[0].relative_to(path)
        return (
            f"{len(missing)} of the {2 * len(listed)} files {META_FILE} lists are missing or "
            f"empty (e.g. {rel})"
        )
    return None


def _remove(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot remove {path}: {exc.strerror or exc}") from exc


def generate_from_settings(
    root: str | Path,
    settings: SyntheticSettings,
    *,
    overwrite: bool = False,
    progress: bool = True,
    num_workers: int | None = None,
) -> Path:
    """``generate`` for a ready ``SyntheticSettings``; returns the dataset directory."""
    out = Path(root).expanduser() / settings.dirname
    if not overwrite and _problem(out, settings) is None:
        logger.info("synthetic benchmark already generated at %s", out)
        return out
    with file_lock(out.parent / f".{out.name}.lock"):
        problem = "overwrite=True" if overwrite else _problem(out, settings)
        if problem is None:  # another process built it while this one waited for the lock
            logger.info("synthetic benchmark generated by another process at %s", out)
            return out
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a synthetic benchmark folder")
        # Left by a builder that was killed: only the lock holder creates these.
        for stale in sorted(out.parent.glob(f".{out.name}.tmp-*")) + sorted(
            out.parent.glob(f".{out.name}.old-*")
        ):
            logger.info("removing %s, left by an interrupted generation", stale)
            _remove(stale)
        if out.exists():
            logger.warning("rebuilding the synthetic benchmark at %s: %s", out, problem)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        start = time.perf_counter()
        try:
            count = _build(tmp, settings, progress=progress, num_workers=num_workers)
            if out.exists():  # a directory cannot be renamed over a non-empty one
                os.rename(out, old)
            os.rename(tmp, out)
            _fsync_dir(out.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)  # what is left is removed by the next build
    logger.info("generated %d images in %.1f s at %s", count, time.perf_counter() - start, out)
    return out


def _build(
    out: Path, settings: SyntheticSettings, *, progress: bool, num_workers: int | None
) -> int:
    """Write every image, keypoint file and finally ``meta.json`` into the new folder ``out``;
    returns the number of images."""
    specs = plan_images(settings)
    for split in SPLITS:
        for folder in (out / split, out / KEYPOINT_DIR / split):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _path_error(exc, folder) from exc
    jobs = [(settings, spec, str(out)) for split in SPLITS for spec in specs[split]]
    if num_workers is None:  # processes pay off only beyond a few hundred images
        num_workers = min(os.cpu_count() or 1, 8) if len(jobs) > 300 else 0
    if mp.current_process().daemon:  # e.g. inside a DataLoader worker: no children allowed
        num_workers = 0
    bar = tqdm(total=len(jobs), desc="synthetic benchmark", unit="img", disable=not progress)
    if num_workers > 1:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        with ctx.Pool(num_workers) as pool:
            entries = []
            for entry in pool.imap(_write_one, jobs, chunksize=16):
                entries.append(entry)
                bar.update()
    else:
        entries = []
        for job in jobs:
            entries.append(_write_one(job))
            bar.update()
    bar.close()
    images: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for (_, spec, _), entry in zip(jobs, entries, strict=True):
        images[spec.split].append(entry)
    counts = {
        split: {
            "images": len(images[split]),
            "ids": len({e["pid"] for e in images[split]}),
            "occluded": sum(e["occluder"] is not None for e in images[split]),
        }
        for split in SPLITS
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "torchreid_pgflkd.data.synthetic",
        "dirname": settings.dirname,
        "settings": settings.to_dict(),
        "counts": counts,
        "keypoints": str(KEYPOINT_DIR / "<split>" / "<image file name>_keypoints.json"),
        "images": images,
    }
    for split in SPLITS:
        _fsync_dir(out / split)
        _fsync_dir(out / KEYPOINT_DIR / split)
    text = json.dumps(meta, indent=1).encode()
    _write_file(out / META_FILE, lambda f: f.write(text))
    _fsync_dir(out)
    return len(jobs)


def generate(
    root: str | Path,
    *,
    seed: int = 0,
    num_train_ids: int = 150,
    images_per_id: int = 8,
    num_test_ids: int = 100,
    queries_per_id: int = 2,
    gallery_per_id: int = 4,
    height: int = 128,
    width: int = 64,
    keypoints: str = "oracle",
    keypoint_noise: float | None = None,
    keypoint_dropout: float | None = None,
    visible_confidence: float | None = None,
    covered_visible: float | None = None,
    covered_noise: float | None = None,
    miss_person: float | None = None,
    miss_occluded: float | None = None,
    wrong_person: float | None = None,
    occluder_textures: str = "identities",
    train_occlusion_prob: float = 0.4,
    gallery_occlusion_prob: float = 0.15,
    image_format: str = "jpg",
    overwrite: bool = False,
    progress: bool = True,
    num_workers: int | None = None,
) -> Path:
    """Generate the synthetic occluded-ReID benchmark under ``root`` (once) and return its folder.

    Train ids are ``0001..num_train_ids``, test ids follow. Every query is occluded (a third
    to half of the body), ``gallery_occlusion_prob`` of the gallery lightly, and
    ``train_occlusion_prob`` of the train images by the same kinds of occluders. A query's
    camera never holds a gallery image of the same id.

    ``keypoints`` names a pose-estimator preset of ``estimator.ESTIMATOR_PRESETS``:
    ``"oracle"`` (exact keypoints; a joint is hidden exactly when covered) or
    ``"blazepose_like"`` (measured on real BlazePose keypoints); each option after it
    (``SyntheticSettings`` says what they do) overrides the preset's value unless None.
    ``keypoint_noise`` alone (the older option) gives visible joints confidences in
    [0.3, 1]. ``occluder_textures="outside"`` dresses object occluders in a palette no
    identity wears. ``num_workers`` (None: automatic) never changes the output;
    ``overwrite`` regenerates even a complete folder.
    """
    options = estimator_options(
        keypoints,
        height=height,
        keypoint_noise=keypoint_noise,
        keypoint_dropout=keypoint_dropout,
        visible_confidence=visible_confidence,
        covered_visible=covered_visible,
        covered_noise=covered_noise,
        miss_person=miss_person,
        miss_occluded=miss_occluded,
        wrong_person=wrong_person,
    )
    settings = SyntheticSettings(
        seed=seed,
        num_train_ids=num_train_ids,
        images_per_id=images_per_id,
        num_test_ids=num_test_ids,
        queries_per_id=queries_per_id,
        gallery_per_id=gallery_per_id,
        height=height,
        width=width,
        train_occlusion_prob=train_occlusion_prob,
        gallery_occlusion_prob=gallery_occlusion_prob,
        image_format=image_format,
        occluder_textures=occluder_textures,
        **options,
    )
    return generate_from_settings(
        root, settings, overwrite=overwrite, progress=progress, num_workers=num_workers
    )
