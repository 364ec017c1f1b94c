"""A pose-estimator model for the synthetic benchmark's keypoints, calibrated on BlazePose.

The generator knows every joint exactly, and which an occluder covers: left alone, its
keypoints are an oracle. A real estimator guesses covered joints (often with a confidence
above the threshold), misses people, and puts the skeleton on the occluding person. The
options below imitate that; each is a number and 0 turns it off, so that with all of them at
0 (the ``"oracle"`` preset) the files are byte-identical to those made before they existed.

Randomness: ``keypoint_noise`` and ``keypoint_dropout`` (``scene._estimator_noise``) draw from
stream 4 of the image's seed, everything here from stream 5, a fixed number of draws per
image whatever the options, so no option changes an image, a pose, an occluder, or another
option's draws.

``ESTIMATOR_PRESETS["blazepose_like"]`` holds the figures measured by
``benchmarks/keypoint_calibration.py`` on real BlazePose keypoints of Partial-REID and CUHK03
(``benchmarks/results/keypoint_calibration.json``); pixel options are given for an image 128
pixels high and scale with the height.
"""

from __future__ import annotations

import numpy as np

from torchreid_pgflkd.data.synthetic.figures import finalize_keypoints

ESTIMATOR_STREAM = 5
REFERENCE_HEIGHT = 128  # the height the presets' pixel options are given for
PIXEL_OPTIONS = ("keypoint_noise", "covered_noise")
ESTIMATOR_OPTIONS: tuple[str, ...] = (
    "keypoint_noise",
    "keypoint_dropout",
    "visible_confidence",
    "covered_visible",
    "covered_noise",
    "miss_person",
    "miss_occluded",
    "wrong_person",
)

# BlazePose confidence of joints reported visible (c >= 0.2), at quantile levels 0, 0.05, ...,
# 1: joints in view (Partial-REID whole-body images, and the joints of occluded images inside
# the operator's visible box; 7,877 joints), and joints behind an occluder (occluded images,
# more than 5 % of the height outside that box; 946 joints). keypoint_calibration.json:
# partial_reid_occluded.in_view / .behind_occluder, confidence_quantiles_at_threshold.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)
VISIBLE_CONFIDENCE = np.array([
    0.2013, 0.5605, 0.7855, 0.8893, 0.9387, 0.9640, 0.9774, 0.9859, 0.9911, 0.9944, 0.9969,
    0.9983, 0.9990, 0.9994, 0.9996, 0.9997, 0.9998, 0.9999, 0.9999, 1.0, 1.0,
])  # fmt: skip
COVERED_CONFIDENCE = np.array([
    0.2003, 0.2330, 0.2670, 0.3112, 0.3512, 0.4018, 0.4540, 0.5148, 0.5716, 0.6438, 0.7245,
    0.8040, 0.8494, 0.9221, 0.9644, 0.9828, 0.9911, 0.9956, 0.9977, 0.9993, 1.0,
])  # fmt: skip

ESTIMATOR_PRESETS: dict[str, dict[str, float]] = {
    "oracle": dict.fromkeys(ESTIMATOR_OPTIONS, 0.0),
    # Measured (benchmarks/results/keypoint_calibration.json, threshold c >= 0.2):
    "blazepose_like": {
        # Floor of BlazePose's position error: sigma per axis 0.52 % of the image height,
        # from the same joint in an occluded image and its partial crop (2,310 joints).
        "keypoint_noise": 0.67,
        # 2.7 % of joints in view are reported below 0.2 (whole-body 1.3 %, in box 5.2 %).
        "keypoint_dropout": 0.027,
        # Visible joints get BlazePose's confidence (VISIBLE_CONFIDENCE) instead of 1.
        "visible_confidence": 1.0,
        # 75.5 % of joints behind an occluder are still reported at c >= 0.2 (80.1 % right
        # outside the visible box, 72.0 % / 64.7 % beyond 10 % / 20 % of the height; ankles
        # 45-50 %, wrists 64-67 %, knees 79-89 %, hips 95-96 %). The whole-vs-occluded
        # comparison agrees: lower-body joints at c >= 0.2 in 99.4 % of whole and 84.2 % of
        # occluded images, which implies 47-49 % for ankles behind an occluder.
        "covered_visible": 0.755,
        # Assumed, not measured (no ground truth behind occluders): a guessed joint lands
        # about 4 % of the height (5 px at 128) from the true one, per axis.
        "covered_noise": 5.0,
        # No skeleton: 1.0 % of whole-body, 17.7 % of occluded Partial-REID images (CUHK03
        # pair 1: 3.5 % train, 7.8 % val); 1 - 0.823 / 0.990 = 16.8 % more when occluded.
        "miss_person": 0.010,
        "miss_occluded": 0.168,
        # On the occluding person: 7 of the 73 person-occluded images with a skeleton,
        # labelled by eye (11 of 73, 15 %, counting skeletons spread over both people).
        "wrong_person": 0.096,
    },
}


def estimator_options(
    keypoints: str = "oracle", *, height: int = REFERENCE_HEIGHT, **overrides: float | None
) -> dict[str, float]:
    """The estimator options of preset ``keypoints`` for images ``height`` pixels high, with
    every ``overrides`` value that is not None taking the place of the preset's."""
    if keypoints not in ESTIMATOR_PRESETS:
        raise ValueError(f"keypoints must be one of {tuple(ESTIMATOR_PRESETS)}, got {keypoints!r}")
    unknown = set(overrides) - set(ESTIMATOR_OPTIONS)
    if unknown:
        raise ValueError(f"unknown estimator options {sorted(unknown)}; {ESTIMATOR_OPTIONS}")
    options = dict(ESTIMATOR_PRESETS[keypoints])
    for name in PIXEL_OPTIONS:
        options[name] = round(options[name] * height / REFERENCE_HEIGHT, 4)
    options.update({k: v for k, v in overrides.items() if v is not None})  # types kept: hash
    return options


def _confidence(u: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws from a quantile table: uniforms ``(N,)`` -> confidences ``(N,)``."""
    return np.interp(u, QUANTILE_LEVELS, table).astype(np.float32)


def estimate(
    skeletons: list[tuple[np.ndarray, bool]],
    *,
    covered: np.ndarray,
    occluder_keypoints: np.ndarray | None,
    occluded: bool,
    size: tuple[int, int],
    rng: np.random.Generator,
    keypoint_noise: float,
    keypoint_dropout: float,
    visible_confidence: float,
    covered_visible: float,
    covered_noise: float,
    miss_person: float,
    miss_occluded: float,
    wrong_person: float,
) -> tuple[list[tuple[np.ndarray, bool]], str]:
    """What an estimator reports instead of the exact ``skeletons`` (target first, then the
    occluding person's, each ``(17, 3)`` after noise and dropout).

    ``covered`` ``(17,)`` bool: target joints in the image on the occluder's pixels;
    ``occluder_keypoints`` ``(17, 3)``: the occluding person's joints before visibility
    (None for objects); ``size`` ``(H, W)``. Returns the skeletons and which person the
    target skeleton is on: ``"target"``, ``"occluder"`` or ``"none"`` (no skeleton at all).
    """
    h, w = size
    u_miss, u_wrong = rng.random(2)
    u_covered, u_covered_c = rng.random(17), rng.random(17)
    covered_jitter = rng.normal(0.0, 1.0, size=(17, 2))
    u_visible_c = rng.random((2, 17))
    wrong_jitter = rng.normal(0.0, 1.0, size=(17, 2))
    u_wrong_drop = rng.random(17)

    def confident(kp: np.ndarray, u: np.ndarray) -> np.ndarray:
        if visible_confidence > 0:
            seen = kp[:, 2] > 0
            kp[seen, 2] = 1.0 - visible_confidence * (
                1.0 - _confidence(u[seen], VISIBLE_CONFIDENCE)
            )
        return kp

    miss = 1.0 - (1.0 - miss_person) * (1.0 - (miss_occluded if occluded else 0.0))
    if u_miss < miss:
        return [], "none"
    target = confident(skeletons[0][0].copy(), u_visible_c[0])
    guessed = covered & (u_covered < covered_visible)
    if guessed.any():  # joints behind the occluder, reported anyway, somewhat off
        moved = target[guessed, :2] + covered_noise * covered_jitter[guessed]
        target[guessed, 0] = np.clip(moved[:, 0], 0.0, w - 1.0)
        target[guessed, 1] = np.clip(moved[:, 1], 0.0, h - 1.0)
        target[guessed, 2] = _confidence(u_covered_c[guessed], COVERED_CONFIDENCE)
    others = [(confident(kp.copy(), u_visible_c[1]), t) for kp, t in skeletons[1:]]
    if occluder_keypoints is not None and u_wrong < wrong_person:
        # The occluding person's skeleton, clipped to the crop, reported as the target's.
        wrong = finalize_keypoints(occluder_keypoints, np.ones((h, w), dtype=bool))
        seen = wrong[:, 2] > 0
        wrong[seen, :2] += keypoint_noise * wrong_jitter[seen]
        wrong[seen & (u_wrong_drop < keypoint_dropout), 2] = 0.0
        wrong = confident(wrong, u_visible_c[1])
        return [(wrong, True), (target, False)], "occluder"
    return [(target, True), *others], "target"
