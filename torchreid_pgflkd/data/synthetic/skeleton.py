"""Articulated COCO-17 skeletons: a 3-D walking figure turned to a facing and projected.

Body frame, in body heights (a standing figure is 1 unit from head top to sole): ``x`` to
the person's own left, ``y`` down from the head top, ``z`` forward. The figure turns by
``facing`` about the vertical axis (0: facing the camera, pi: back view, +-pi/2: side)
and is projected orthographically, so a side view shows the walking swing and a back view
mirrors left and right, as a camera would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEAD_CENTRE_Y = 0.075
HEAD_RADIUS = 0.062
SHOULDER_Y = 0.19
HIP_Y = 0.52
UPPER_ARM, FOREARM = 0.17, 0.15
THIGH, SHIN = 0.235, 0.225
FOOT = 0.065


@dataclass(frozen=True)
class Pose:
    """Pose parameters (angles in radians)."""

    facing: float = 0.0
    phase: float = 0.0  # walking cycle
    stride: float = 0.3  # hip swing amplitude
    arm_swing: float = 0.3
    knee_bend: float = 0.3
    elbow_bend: float = 0.2
    abduction: float = 0.08  # arms away from the body
    lean: float = 0.0  # image-plane tilt


def sample_pose(rng: np.random.Generator) -> Pose:
    """A random pedestrian pose: mostly front or back views, a third side-ish."""
    view = rng.random()
    if view < 0.35:
        facing = rng.normal(0.0, 0.3)
    elif view < 0.7:
        facing = np.pi + rng.normal(0.0, 0.3)
    else:
        facing = rng.choice([-1.0, 1.0]) * np.pi / 2 + rng.normal(0.0, 0.35)
    return Pose(
        facing=float(facing),
        phase=float(rng.uniform(0.0, 2 * np.pi)),
        stride=float(rng.uniform(0.05, 0.45)),
        arm_swing=float(rng.uniform(0.05, 0.5)),
        knee_bend=float(rng.uniform(0.0, 0.6)),
        elbow_bend=float(rng.uniform(0.05, 0.7)),
        abduction=float(rng.uniform(0.03, 0.16)),
        lean=float(rng.normal(0.0, 0.04)),
    )


@dataclass(frozen=True)
class Skeleton:
    """A projected figure in body units: ``joints`` ``(17, 2)`` (x, y), ``depth`` ``(17,)``
    (toward the camera is larger), plus the extra points a painter needs."""

    joints: np.ndarray
    depth: np.ndarray
    head: np.ndarray  # (2,) head centre
    head_depth: float
    feet: np.ndarray  # (2, 2) toe points, (left, right)
    shoulder_halfwidth: float  # projected half-width of the chest
    hip_halfwidth: float
    cos_facing: float  # > 0: the front of the body faces the camera


def _limb(start: np.ndarray, length: float, swing: float, side: float) -> np.ndarray:
    """End of a limb of ``length`` from ``start``, swung forward by ``swing``, out by ``side``."""
    direction = np.array([side, np.cos(swing), np.sin(swing)])
    return start + length * direction / np.linalg.norm(direction)


def build_skeleton(pose: Pose, *, build: float = 1.0) -> Skeleton:
    """Joint positions of ``pose`` for a body of width factor ``build``."""
    shoulder, hip = 0.112 * build, 0.072 * build
    p = np.zeros((17, 3))
    r = HEAD_RADIUS
    p[0] = (0.0, HEAD_CENTRE_Y + 0.012, 0.95 * r)  # nose
    p[1], p[2] = (0.024, HEAD_CENTRE_Y - 0.004, 0.82 * r), (-0.024, HEAD_CENTRE_Y - 0.004, 0.82 * r)
    p[3], p[4] = (0.78 * r, HEAD_CENTRE_Y + 0.004, 0.0), (-0.78 * r, HEAD_CENTRE_Y + 0.004, 0.0)
    feet3 = np.zeros((2, 3))
    for k, sign in enumerate((1.0, -1.0)):  # left, right
        s = sign * np.sin(pose.phase)  # left leg forward when s > 0; the arm opposes it
        p[5 + k] = (sign * shoulder, SHOULDER_Y, 0.0)
        upper = -pose.arm_swing * s
        p[7 + k] = _limb(p[5 + k], UPPER_ARM, upper, sign * np.sin(pose.abduction))
        forearm = upper + pose.elbow_bend * (0.6 + 0.4 * max(0.0, -s))
        p[9 + k] = _limb(p[7 + k], FOREARM, forearm, 0.5 * sign * np.sin(pose.abduction))
        p[11 + k] = (sign * hip, HIP_Y, 0.0)
        thigh = pose.stride * s
        p[13 + k] = _limb(p[11 + k], THIGH, thigh, 0.0)
        shin = thigh - 0.05 - pose.knee_bend * max(0.0, -s)
        p[15 + k] = _limb(p[13 + k], SHIN, shin, 0.0)
        feet3[k] = p[15 + k] + (0.0, 0.02, FOOT)
    cos_f, sin_f = np.cos(pose.facing), np.sin(pose.facing)

    def turn(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = points[:, 0] * cos_f + points[:, 2] * sin_f
        depth = -points[:, 0] * sin_f + points[:, 2] * cos_f
        return np.stack([x, points[:, 1]], axis=1), depth

    joints, depth = turn(p)
    head, head_depth = turn(np.array([[0.0, HEAD_CENTRE_Y, 0.0]]))
    feet, _ = turn(feet3)
    # Lean: rotate the image-plane figure about the midpoint of the ankles.
    pivot = joints[15:17].mean(axis=0)
    c, s = np.cos(pose.lean), np.sin(pose.lean)
    rot = np.array([[c, -s], [s, c]])
    joints, head, feet = ((pts - pivot) @ rot.T + pivot for pts in (joints, head, feet))
    return Skeleton(
        joints=joints,
        depth=depth,
        head=head[0],
        head_depth=float(head_depth[0]),
        feet=feet,
        shoulder_halfwidth=float(np.hypot(shoulder * cos_f, 0.062 * sin_f)),
        hip_halfwidth=float(np.hypot((hip + 0.01) * cos_f, 0.058 * sin_f)),
        cos_facing=float(cos_f),
    )
