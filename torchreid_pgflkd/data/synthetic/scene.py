"""Rendering one planned image: background, target figure, occluder, camera, keypoints."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from torchreid_pgflkd.data.synthetic.appearance import Appearance, sample_appearance
from torchreid_pgflkd.data.synthetic.backgrounds import (
    add_clutter,
    apply_camera,
    base_background,
    camera_looks,
)
from torchreid_pgflkd.data.synthetic.canvas import Canvas, downsample_mask
from torchreid_pgflkd.data.synthetic.estimator import ESTIMATOR_STREAM, estimate
from torchreid_pgflkd.data.synthetic.figures import (
    TARGET,
    draw_figure,
    finalize_keypoints,
    sample_placement,
)
from torchreid_pgflkd.data.synthetic.occluders import OCCLUDER_GROUPS, OCCLUDER_LABEL, add_occluder
from torchreid_pgflkd.data.synthetic.plan import ImageSpec, SyntheticSettings
from torchreid_pgflkd.data.synthetic.skeleton import sample_pose


@lru_cache(maxsize=4096)
def identity_appearance(seed: int, pid: int) -> Appearance:
    """The appearance of identity ``pid`` in the dataset generated from ``seed``."""
    return sample_appearance(np.random.default_rng([seed, 1, pid]))


@dataclass(frozen=True)
class Sample:
    """A rendered image with its ground truth.

    ``image`` ``(H, W, 3)`` uint8; ``body`` ``(H, W)`` bool, the target's whole silhouette;
    ``visible`` ``(H, W)`` bool, the part of it no occluder covers; ``skeletons`` a list of
    ``(keypoints (17, 3) float32, is_target)``, target first, as the estimator model reports
    them (empty when it misses the person); ``occluded_fraction`` is ``1 - visible / body``
    in pixels; ``reported`` says whom the target skeleton is on: ``"target"``,
    ``"occluder"`` (the occluding person's) or ``"none"``.
    """

    image: np.ndarray
    body: np.ndarray
    visible: np.ndarray
    skeletons: list[tuple[np.ndarray, bool]]
    occluded_fraction: float
    spec: ImageSpec
    reported: str = "target"


def _estimator_noise(
    keypoints: np.ndarray, rng: np.random.Generator, *, noise: float, dropout: float
) -> np.ndarray:
    """Imitate a pose estimator: jitter visible joints, lower and randomise confidences,
    drop some. Joints already invisible stay at confidence 0."""
    out = keypoints.copy()
    visible = out[:, 2] > 0
    jitter = rng.normal(0.0, 1.0, size=(17, 2)).astype(np.float32)
    confidence = rng.uniform(0.3, 1.0, size=17).astype(np.float32)
    dropped = rng.random(17) < dropout
    if noise > 0:
        out[visible, :2] += noise * jitter[visible]
        out[visible, 2] = confidence[visible]
    out[visible & dropped, 2] = 0.0
    return out


def render_sample(settings: SyntheticSettings, spec: ImageSpec) -> Sample:
    """Render ``spec``; a pure function of its arguments."""
    st = settings
    h, w = st.height, st.width
    rng = np.random.default_rng(spec.entropy(st.seed))
    look = camera_looks(st.seed)[spec.camid - 1]
    background = base_background(rng, height=h, width=w, kind=look.base_kind)
    canvas = Canvas(height=h, width=w, background=background)
    add_clutter(canvas, rng, amount=look.clutter)
    placement = sample_placement(rng, height=h, width=w)
    target_kp, body_ss = draw_figure(
        canvas, identity_appearance(st.seed, spec.pid), sample_pose(rng), placement, label=TARGET
    )
    other_kp = None
    if spec.occluder is not None:
        if spec.confuser is not None:
            confuser = identity_appearance(st.seed, spec.confuser)
        else:  # a one-identity pool: a stranger
            confuser = sample_appearance(rng)
        other_kp = add_occluder(
            canvas,
            rng,
            kind=spec.occluder,
            target_mask=body_ss,
            fraction=spec.fraction,
            placement=placement,
            confuser=confuser,
            textures=st.occluder_textures,
            texture_rng=np.random.default_rng(spec.entropy(st.seed, stream=6)),
        )
    image = apply_camera(canvas.finish(), rng, look)
    body = downsample_mask(body_ss)
    visible = canvas.owned(TARGET) & body
    fraction = 1.0 - float(visible.sum()) / max(int(body.sum()), 1)
    noise_rng = np.random.default_rng(spec.entropy(st.seed, stream=4))
    skeletons = [(finalize_keypoints(target_kp, visible), True)]
    if other_kp is not None:
        skeletons.append((finalize_keypoints(other_kp, canvas.owned(OCCLUDER_LABEL)), False))
    skeletons = [
        (_estimator_noise(kp, noise_rng, noise=st.keypoint_noise, dropout=st.keypoint_dropout), t)
        for kp, t in skeletons
    ]
    if not st.estimator_on:  # the oracle (with the older noise and dropout)
        return Sample(image, body, visible, skeletons, fraction, spec)
    skeletons, reported = estimate(
        skeletons,
        covered=_covered(target_kp, canvas.owned(OCCLUDER_LABEL) & ~visible),
        occluder_keypoints=other_kp,
        occluded=spec.occluder is not None,
        size=(h, w),
        rng=np.random.default_rng(spec.entropy(st.seed, stream=ESTIMATOR_STREAM)),
        keypoint_noise=st.keypoint_noise,
        keypoint_dropout=st.keypoint_dropout,
        visible_confidence=st.visible_confidence,
        covered_visible=st.covered_visible,
        covered_noise=st.covered_noise,
        miss_person=st.miss_person,
        miss_occluded=st.miss_occluded,
        wrong_person=st.wrong_person,
    )
    return Sample(image, body, visible, skeletons, fraction, spec, reported)


def _covered(keypoints: np.ndarray, occluder: np.ndarray) -> np.ndarray:
    """``(17,)`` bool: joints (not hidden by the pose itself) in the image, on pixels of
    ``occluder`` ``(H, W)``: those the occluder owns and the target does not (a pixel
    half-covered by each belongs to both)."""
    return finalize_keypoints(keypoints, occluder)[:, 2] > 0


def occluder_group(kind: str | None) -> str | None:
    """``"below"``, ``"side"`` or ``"person"`` for an occluder kind, None for None."""
    if kind is None:
        return None
    return next(group for group, kinds in OCCLUDER_GROUPS.items() if kind in kinds)
