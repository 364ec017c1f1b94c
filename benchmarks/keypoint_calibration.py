"""Calibrate the synthetic benchmark's pose-estimator model on real BlazePose keypoints.

Reads the BlazePose keypoints made for Partial-REID and CUHK03 (camera pair 1) in
``../shared/data`` and measures what the embedded benchmark's oracle keypoints lack: images
with no skeleton, the confidence of joints, the share of joints at c >= 0.2, joints behind an
occluder still reported visible, and skeletons put on another person. The ``blazepose_like``
preset in ``torchreid_pgflkd/data/synthetic/estimator.py`` copies its figures from here.

Where a joint is behind an occluder: each Partial-REID ``partial_body_images/X.jpg`` is a
pixel crop of ``occluded_body_images/X.jpg`` that an operator cut around the visible part of
the person (found here by template matching), so a joint outside that box is (mostly) behind
the occluder. The whole-vs-occluded comparison of the same 60 people, which the issue
proposes, is reported beside it per joint. Which occluders are people, and whether the
skeleton sits on the occluding person, was labelled by eye (lists below).

usage: python benchmarks/keypoint_calibration.py [--output PATH]
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import _suite
import numpy as np
from PIL import Image

THRESHOLD = 0.2  # cfg.data.visibility_threshold
LEVELS = np.round(np.linspace(0.0, 1.0, 21), 2)  # quantile levels of the confidence tables
MARGIN = 0.05  # a joint is "behind the occluder" beyond 5 % of the image height from the box
MARGINS = (0.0, 0.05, 0.1, 0.2)
PARTIAL = Path("partial_reid") / "Partial-REID_Dataset"
BLAZE = Path("keypoints") / "blazepose"
FOLDERS = {
    "partial_reid/occluded_body_images": BLAZE / PARTIAL / "occluded_body_images",
    "partial_reid/partial_body_images": BLAZE / PARTIAL / "partial_body_images",
    "partial_reid/whole_body_images": BLAZE / PARTIAL / "whole_body_images",
    "cuhk03_pair1/train": BLAZE / "cuhk03_pair1" / "labeled" / "train",
    "cuhk03_pair1/val": BLAZE / "cuhk03_pair1" / "labeled" / "val",
}
JOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)  # fmt: skip
LOWER = tuple(range(11, 17))

# Labelled by eye from the 300 occluded_body_images (thumbnails): the occluder is (also) a
# person: 79 of 300.
PERSON_OCCLUDED = frozenset(
    """002_005 004_003 005_005 009_001 010_004 011_002 011_003 011_005 012_003 012_004 013_002
    013_003 014_001 014_002 014_003 015_002 015_003 016_001 016_002 018_002 019_002 019_003
    020_004 021_005 023_001 023_002 025_002 027_004 027_005 028_001 028_005 031_003 032_001
    035_003 035_005 036_001 036_005 037_001 037_002 037_003 037_004 038_001 038_005 039_001
    039_002 039_005 041_004 043_001 044_002 047_001 048_001 048_003 049_001 050_001 050_002
    051_002 052_002 052_003 052_005 054_002 054_003 054_004 054_005 055_001 055_003 055_004
    055_005 056_001 056_002 056_004 056_005 057_001 057_002 057_003 057_005 058_002 058_003
    058_004 058_005""".split()
)
# Labelled by eye among the 43 occluded images whose skeleton's torso centre lies outside the
# visible box (all 43 were looked at): the skeleton is on the occluding person ...
ON_OTHER_PERSON = frozenset("016_002 031_003 032_001 038_005 050_002 054_002 055_003".split())
# ... or spread over both people.
PARTLY_ON_OTHER_PERSON = frozenset("004_003 009_001 037_004 057_003".split())

logger = logging.getLogger("benchmarks.keypoint_calibration")


def load_folder(folder: Path) -> tuple[dict[str, np.ndarray | None], int]:
    """Image stem -> the target skeleton ``(17, 3)`` or None (no person found); file count."""
    files = sorted(folder.glob("*_keypoints.json"))
    if not files:
        raise SystemExit(f"no *_keypoints.json under {folder} (see ../shared/data/README.md)")
    out: dict[str, np.ndarray | None] = {}
    for file in files:
        skeletons = json.loads(file.read_text())
        target = [s for s in skeletons if s.get("is_target")] or skeletons[:1]
        stem = file.name[: -len("_keypoints.json")]
        out[stem] = np.asarray(target[0]["keypoints"], np.float64) if target else None
    return out, len(files)


def quantiles(values: np.ndarray) -> list[float]:
    """The confidence at each of ``LEVELS``."""
    if values.size == 0:
        return []
    return [round(float(q), 4) for q in np.quantile(values, LEVELS)]


def share(mask: np.ndarray) -> float | None:
    return round(float(np.mean(mask)), 4) if mask.size else None


def visible_box(occluded: Path, partial: Path) -> tuple[tuple[int, int, int, int], float]:
    """Where the partial crop lies in the occluded image: ``(x0, y0, x1, y1)`` and the RMS
    pixel difference of the best match (JPEG noise only when it is a true crop)."""
    big = np.asarray(Image.open(occluded).convert("RGB"), np.float32)
    small = np.asarray(Image.open(partial).convert("RGB"), np.float32)
    h, w = small.shape[:2]
    if h > big.shape[0] or w > big.shape[1]:
        raise ValueError(f"{partial} is larger than {occluded}")
    windows = np.lib.stride_tricks.sliding_window_view(big, (h, w, 3))[:, :, 0]
    ssd = ((windows - small) ** 2).sum(axis=(2, 3, 4))
    y0, x0 = np.unravel_index(int(np.argmin(ssd)), ssd.shape)
    rmse = float(np.sqrt(ssd[y0, x0] / small.size))
    return (int(x0), int(y0), int(x0 + w), int(y0 + h)), rmse


def folder_stats(skeletons: dict[str, np.ndarray | None], files: int) -> dict:
    found = np.stack([k for k in skeletons.values() if k is not None])
    c = found[:, :, 2]
    return {
        "images": files,
        "no_skeleton": round(1.0 - len(found) / files, 4),
        "joints_at_threshold": share(c >= THRESHOLD),
        "joints_at_threshold_per_image": round(float((c >= THRESHOLD).sum(1).mean()), 2),
        "joints_at_threshold_by_joint": dict(
            zip(JOINTS, (round(float(v), 3) for v in (c >= THRESHOLD).mean(0)), strict=True)
        ),
        "confidence_quantiles": quantiles(c.ravel()),
        "confidence_quantiles_at_threshold": quantiles(c[c >= THRESHOLD]),
    }


def boxes_of(root: Path, stems) -> dict[str, tuple[tuple[int, int, int, int], float, int]]:
    """Stem -> (visible box, match RMSE, image height) of each occluded Partial-REID image."""
    out = {}
    for stem in stems:
        image = root / PARTIAL / "occluded_body_images" / f"{stem}.jpg"
        box, rmse = visible_box(image, root / PARTIAL / "partial_body_images" / f"{stem}.jpg")
        out[stem] = (box, rmse, Image.open(image).height)
    return out


def position_spread(occluded: dict, partial: dict, boxes: dict) -> dict:
    """How far BlazePose moves a joint in view between an occluded image and its partial
    crop (the same pixels, less context): a floor for its position error."""
    dist = []
    for stem, kp in occluded.items():
        crop = partial.get(stem)
        if kp is None or crop is None:
            continue
        (x0, y0, x1, y1), _, height = boxes[stem]
        moved = crop[:, :2] + (x0, y0)
        inside = (moved[:, 0] >= x0) & (moved[:, 0] < x1) & (moved[:, 1] >= y0) & (moved[:, 1] < y1)
        sure = inside & (kp[:, 2] >= 0.5) & (crop[:, 2] >= 0.5)
        dist += (np.linalg.norm(kp[sure, :2] - moved[sure], axis=1) / height).tolist()
    d = np.asarray(dist)
    near = d[d < 0.1]  # beyond a tenth of the height one of the two is a different pose
    # |a - b| of two independent N(0, s^2) per axis errors has median s * sqrt(2 * 2 ln 2).
    sigma = float(np.median(near)) / np.sqrt(4.0 * np.log(2.0))
    return {
        "assumes": (
            "joints at c >= 0.5 in both the occluded image and its partial crop, inside the "
            "crop; pairs more than 0.1 image heights apart (a different pose) left out; the "
            "two errors independent and Gaussian, so this is a floor of the error"
        ),
        "joints": int(d.size),
        "apart_over_0.1_height": share(d >= 0.1),
        "median_distance_of_height": round(float(np.median(near)), 4),
        "sigma_per_axis_of_height": round(sigma, 4),
        "sigma_per_axis_px_at_128": round(sigma * 128, 2),
    }


def occluded_analysis(occluded: dict, whole: dict, boxes: dict) -> dict:
    """Joints behind the occluder (outside the visible box) vs in view, skeletons on another
    person, and the whole-vs-occluded comparison."""
    behind: dict[float, list] = {m: [] for m in MARGINS}  # (joint, c) beyond margin m
    in_view: list[float] = []
    torso_outside, person_found = [], 0
    for stem, kp in occluded.items():
        if kp is None:
            continue
        person_found += stem in PERSON_OCCLUDED
        (x0, y0, x1, y1), _, height = boxes[stem]
        x, y, c = kp[:, 0], kp[:, 1], kp[:, 2]
        outside = np.maximum.reduce([x0 - x, x - x1, y0 - y, y - y1])  # > 0: outside the box
        in_view += c[outside <= 0].tolist()
        for m in MARGINS:
            behind[m] += [(j, c[j]) for j in range(17) if outside[j] > m * height]
        cx, cy = kp[[5, 6, 11, 12], 0].mean(), kp[[5, 6, 11, 12], 1].mean()
        if not (x0 <= cx < x1 and y0 <= cy < y1):
            torso_outside.append(stem)
    by_margin = {}
    for m in MARGINS:
        arr = np.asarray(behind[m]).reshape(-1, 2)
        joint, c = arr[:, 0].astype(int), arr[:, 1]
        by_margin[str(m)] = {
            "joints": int(len(c)),
            "reported_visible": share(c >= THRESHOLD),
            "by_joint": {
                JOINTS[j]: [int((joint == j).sum()), share(c[joint == j] >= THRESHOLD)]
                for j in range(17)
                if (joint == j).any()
            },
        }
    covered_c = np.asarray(behind[MARGIN]).reshape(-1, 2)[:, 1]
    occ_found = np.stack([k for k in occluded.values() if k is not None])
    whole_found = np.stack([k for k in whole.values() if k is not None])
    r_occ = (occ_found[:, :, 2] >= THRESHOLD).mean(0)
    r_whole = (whole_found[:, :, 2] >= THRESHOLD).mean(0)
    # Share of skeletons with joint j outside the box: f in r_occ = (1 - f) r_whole + f q.
    f_box = np.bincount([int(j) for j, _ in behind[0.0]], minlength=17) / len(occ_found)
    comparison = {}
    for j in range(17):
        q = r_whole[j] - (r_whole[j] - r_occ[j]) / f_box[j] if f_box[j] > 0.2 else None
        comparison[JOINTS[j]] = {
            "whole": round(float(r_whole[j]), 3),
            "occluded": round(float(r_occ[j]), 3),
            "share_outside_box": round(float(f_box[j]), 3),
            "implied_reported_visible_when_behind": None if q is None else round(float(q), 3),
        }
    lower = list(LOWER)
    # Joints in view, pooled: every joint of the whole-body images and those in the box.
    view = np.concatenate([whole_found[:, :, 2].ravel(), np.asarray(in_view)])
    return {
        "template_match_rmse_max": round(max(rmse for _, rmse, _ in boxes.values()), 2),
        "behind_occluder": {
            "assumes": (
                "a joint of an occluded_body_images skeleton lies behind the occluder when it "
                f"is more than {MARGIN:.0%} of the image height outside the box of the "
                "matching partial_body_images crop (the operator's cut around the visible "
                "part); a rectangle also cuts away some visible parts (hence the margin, and "
                "the spread over margins in by_margin); images with no skeleton are not "
                "counted, and they are the most occluded ones"
            ),
            "margin_of_height": MARGIN,
            "joints": int(len(covered_c)),
            "reported_visible": share(covered_c >= THRESHOLD),
            "by_margin": by_margin,
            "confidence_quantiles": quantiles(covered_c),
            "confidence_quantiles_at_threshold": quantiles(covered_c[covered_c >= THRESHOLD]),
        },
        "in_view": {
            "assumes": (
                "joints in view: every joint of the whole_body_images skeletons, and the "
                "joints of occluded_body_images skeletons inside the visible box"
            ),
            "joints": int(view.size),
            "below_threshold": share(view < THRESHOLD),
            "below_threshold_in_box_only": share(np.asarray(in_view) < THRESHOLD),
            "confidence_quantiles_at_threshold": quantiles(view[view >= THRESHOLD]),
        },
        "whole_vs_occluded": {
            "assumes": (
                "the same 60 people, whole_body_images unoccluded; per joint the share at "
                "c >= 0.2, and q = whole - (whole - occluded) / f: the share of joints behind "
                "an occluder still reported, if a share f of them (outside the visible box, "
                "margin 0) is behind it and the rest behave as in whole images"
            ),
            "lower_body_whole": round(float(r_whole[lower].mean()), 3),
            "lower_body_occluded": round(float(r_occ[lower].mean()), 3),
            "by_joint": comparison,
        },
        "skeleton_on_other_person": {
            "assumes": (
                "occluders that are people, and skeletons on the occluding person, labelled "
                "by eye (lists in this script); a skeleton on the wrong person whose torso "
                "centre still falls in the visible box is not found"
            ),
            "person_occluded_images": len(PERSON_OCCLUDED),
            "person_occluded_with_skeleton": person_found,
            "torso_centre_outside_box": len(torso_outside),
            "on_other_person": len(ON_OTHER_PERSON),
            "partly_on_other_person": len(PARTLY_ON_OTHER_PERSON),
            "rate_given_person_occluder": round(len(ON_OTHER_PERSON) / person_found, 4),
            "rate_given_person_occluder_incl_partly": round(
                (len(ON_OTHER_PERSON) + len(PARTLY_ON_OTHER_PERSON)) / person_found, 4
            ),
            "torso_outside_not_labelled": sorted(
                set(torso_outside) - ON_OTHER_PERSON - PARTLY_ON_OTHER_PERSON
            ),
        },
    }


def main() -> None:
    args = _suite.parser(__doc__, "keypoint_calibration").parse_args()
    _suite.setup_logging()
    root = _suite.require_shared_data()
    loaded = {name: load_folder(root / rel) for name, rel in FOLDERS.items()}
    folders = {name: folder_stats(*loaded[name]) for name in FOLDERS}
    occluded = loaded["partial_reid/occluded_body_images"][0]
    whole = loaded["partial_reid/whole_body_images"][0]
    logger.info("locating %d partial crops in their occluded images", len(occluded))
    boxes = boxes_of(root, occluded)
    analysis = occluded_analysis(occluded, whole, boxes)
    partial = loaded["partial_reid/partial_body_images"][0]
    analysis["position_spread"] = position_spread(occluded, partial, boxes)
    no_whole = folders["partial_reid/whole_body_images"]["no_skeleton"]
    no_occ = folders["partial_reid/occluded_body_images"]["no_skeleton"]
    derived = {
        "miss_person": no_whole,
        "miss_occluded": round(1.0 - (1.0 - no_occ) / (1.0 - no_whole), 4),
        "keypoint_dropout": analysis["in_view"]["below_threshold"],
        "covered_visible": analysis["behind_occluder"]["reported_visible"],
        "wrong_person": analysis["skeleton_on_other_person"]["rate_given_person_occluder"],
        "keypoint_noise_px_at_128": analysis["position_spread"]["sigma_per_axis_px_at_128"],
        "covered_noise": "not measurable here (no ground truth behind occluders): assumed",
        "visible_confidence_quantiles": analysis["in_view"]["confidence_quantiles_at_threshold"],
        "covered_confidence_quantiles": analysis["behind_occluder"][
            "confidence_quantiles_at_threshold"
        ],
        "how": (
            "miss_person: Partial-REID whole-body images with no skeleton; miss_occluded: the "
            "extra chance for an occluded image, 1 - (1 - occluded share) / (1 - whole share); "
            "keypoint_dropout: joints in view below the threshold; keypoint_noise: a floor, "
            "see partial_reid_occluded.position_spread; covered_visible: joints "
            "behind the occluder at or above it; wrong_person: skeletons on the occluding "
            "person among person-occluded images with a skeleton; the quantile tables: the "
            "confidence of joints at or above the threshold, in view and behind the occluder"
        ),
    }
    report = {
        "what": (
            "MediaPipe BlazePose (full) keypoints of real crops (../shared/data), COCO-17, "
            "c = BlazePose visibility; threshold = cfg.data.visibility_threshold"
        ),
        "threshold": THRESHOLD,
        "quantile_levels": LEVELS.tolist(),
        "folders": folders,
        "partial_reid_occluded": analysis,
        "derived": derived,
    }
    _suite.write_report(report, args.output)


if __name__ == "__main__":
    main()
