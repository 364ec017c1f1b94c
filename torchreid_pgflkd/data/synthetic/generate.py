"""Write the synthetic benchmark to disk in the Market-1501 + KPR keypoint layout.

::

    <root>/pgflkd_synthetic_s{seed}_{H}x{W}_{hash8}/
        bounding_box_train/  query/  bounding_box_test/     PPPP_cCs1_FFFFFF_00.jpg
        external_annotation/pifpaf_keypoints_pifpaf_maskrcnn_filtering/<split>/
            <image file name>_keypoints.json
                [{"keypoints": [[x, y, c] x 17], "is_target": true}, ...]  (target first)
        meta.json                                    written last: its presence means complete

Generation is deterministic (same settings -> byte-identical files, with or without
worker processes) and done once: a folder whose ``meta.json`` matches is reused.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from torchreid_pgflkd.data.synthetic.plan import (
    FORMAT_VERSION,
    SPLITS,
    ImageSpec,
    SyntheticSettings,
    plan_images,
)
from torchreid_pgflkd.data.synthetic.scene import occluder_group, render_sample

logger = logging.getLogger(__name__)

KEYPOINT_DIR = Path("external_annotation") / "pifpaf_keypoints_pifpaf_maskrcnn_filtering"
META_FILE = "meta.json"


def keypoint_path(dataset_dir: str | Path, split: str, image_name: str) -> Path:
    """Where the KPR-layout keypoints of ``image_name`` (with extension) in ``split`` live."""
    return Path(dataset_dir) / KEYPOINT_DIR / split / f"{image_name}_keypoints.json"


def _rounded(keypoints) -> list[list[float]]:
    """``(17, 3)`` -> JSON lists, rounded (pixels to 1/100, confidence to 1/1000)."""
    return [[round(float(x), 2), round(float(y), 2), round(float(c), 3)] for x, y, c in keypoints]


def _write_one(args: tuple[SyntheticSettings, ImageSpec, str]) -> dict:
    """Render and write one image and its keypoints; returns its meta.json entry."""
    settings, spec, out_dir = args
    sample = render_sample(settings, spec)
    name = f"{spec.filename}.{settings.image_format}"
    image = Image.fromarray(sample.image)
    if settings.image_format == "jpg":
        image.save(Path(out_dir) / spec.split / name, format="JPEG", quality=95)
    else:
        image.save(Path(out_dir) / spec.split / name, format="PNG")
    skeletons = [
        {"keypoints": _rounded(pts), "is_target": bool(is_target)}
        for pts, is_target in sample.skeletons
    ]
    keypoint_path(out_dir, spec.split, name).write_text(json.dumps(skeletons))
    target = sample.skeletons[0][0]
    return {
        "file": name,
        "pid": spec.pid,
        "camid": spec.camid,
        "occluder": spec.occluder,
        "occluder_group": occluder_group(spec.occluder),
        "occluder_pid": spec.confuser,
        "occluded_fraction": round(sample.occluded_fraction, 4),
        "visible_keypoints": int((target[:, 2] > 0).sum()),
    }


def _is_complete(path: Path, settings: SyntheticSettings) -> bool:
    meta_file = path / META_FILE
    if not meta_file.is_file():
        return False
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    same_format = meta.get("format_version") == FORMAT_VERSION
    return same_format and meta.get("settings") == settings.to_dict()


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
    if not overwrite and _is_complete(out, settings):
        logger.info("synthetic benchmark already generated at %s", out)
        return out
    if out.exists():
        if not out.name.startswith("pgflkd_synthetic_"):  # never delete what is not ours
            raise FileExistsError(f"{out} exists and is not a synthetic benchmark folder")
        logger.warning("regenerating %s (incomplete or overwrite=True)", out)
        shutil.rmtree(out)
    specs = plan_images(settings)
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        (out / KEYPOINT_DIR / split).mkdir(parents=True, exist_ok=True)
    jobs = [(settings, spec, str(out)) for split in SPLITS for spec in specs[split]]
    if num_workers is None:  # processes pay off only beyond a few hundred images
        num_workers = min(os.cpu_count() or 1, 8) if len(jobs) > 300 else 0
    if mp.current_process().daemon:  # e.g. inside a DataLoader worker: no children allowed
        num_workers = 0
    start = time.perf_counter()
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
    tmp = out / f"{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / META_FILE)  # last and atomic: its presence means "complete"
    logger.info("generated %d images in %.1f s at %s", len(jobs), time.perf_counter() - start, out)
    return out


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
    keypoint_noise: float = 0.0,
    keypoint_dropout: float = 0.0,
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
    camera never holds a gallery image of the same id. ``keypoint_noise`` (pixels) and
    ``keypoint_dropout`` (probability) imitate a pose estimator; with noise on, visible
    joints get confidences in [0.3, 1]. ``num_workers`` (None: automatic) never changes the
    output; ``overwrite`` regenerates even a complete folder.
    """
    settings = SyntheticSettings(
        seed=seed,
        num_train_ids=num_train_ids,
        images_per_id=images_per_id,
        num_test_ids=num_test_ids,
        queries_per_id=queries_per_id,
        gallery_per_id=gallery_per_id,
        height=height,
        width=width,
        keypoint_noise=keypoint_noise,
        keypoint_dropout=keypoint_dropout,
        train_occlusion_prob=train_occlusion_prob,
        gallery_occlusion_prob=gallery_occlusion_prob,
        image_format=image_format,
    )
    return generate_from_settings(
        root, settings, overwrite=overwrite, progress=progress, num_workers=num_workers
    )
