"""Synthetic keypoint streams with known joint angles, for tests, demos and load generators.

A side-view stick figure (COCO-17, normalised image coordinates, ``(x, y, score)``) whose knee,
hip and shoulder angles are exactly the requested ones when measured by
:func:`physio_ray.video.angles.joint_angles` in ``image2d`` on a square picture. Real movement
lives in the shared recordings; these streams pin the engine's *logic* (thresholds, durations,
hysteresis) where a real recording cannot be bent to the case under test.

Example:
    >>> from physio_ray.video.angles import ANGLE_NAMES, joint_angles
    >>> kp = squat_frame(knee_deg=100.0, hip_deg=120.0)
    >>> a = joint_angles(kp, "image2d")
    >>> round(float(a[ANGLE_NAMES.index("left_knee")]), 3), round(float(a[ANGLE_NAMES.index("left_hip")]), 3)
    (100.0, 120.0)
"""

from __future__ import annotations

import math

import numpy as np

from physio_ray.video.layout import COCO

_SHANK, _THIGH, _TRUNK, _ARM = 0.2, 0.2, 0.28, 0.12


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    r = math.radians(deg)
    c, s = math.cos(r), math.sin(r)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def squat_frame(
    knee_deg: float, hip_deg: float | None = None, shoulder_deg: float = 20.0, score: float = 0.9
) -> np.ndarray:
    """One COCO-17 frame ``[17, 3]`` (x, y, score) with the given joint angles (both sides equal).

    Args:
        knee_deg: hip-knee-ankle angle (180: straight leg).
        hip_deg: shoulder-hip-knee angle (default: equal to the knee angle, as in a squat).
        shoulder_deg: hip-shoulder-elbow angle (0: arm along the trunk; 90: raised to the side).
        score: the score of every point.

    Returns:
        ``[17, 3]`` float64 normalised image coordinates (y down) and scores.
    """
    hip_deg = knee_deg if hip_deg is None else hip_deg
    ankle = np.array([0.5, 0.92])
    knee = ankle + np.array([0.0, -_SHANK])
    up = np.array([0.0, -1.0])
    thigh_dir = _rot(up, -(180.0 - knee_deg))  # hip-knee direction, knee angle between it and "down"
    hip = knee + _THIGH * thigh_dir
    # shoulder-hip direction: the knee direction turned by the hip angle, the side that keeps
    # the shoulders higher.
    trunk_dir = min((_rot(-thigh_dir, s * hip_deg) for s in (1.0, -1.0)), key=lambda d: d[1])
    shoulder = hip + _TRUNK * trunk_dir
    arm_dir = _rot(-trunk_dir, shoulder_deg)
    elbow = shoulder + _ARM * arm_dir
    wrist = elbow + _ARM * arm_dir
    nose = shoulder + 0.08 * trunk_dir
    pts = {
        "nose": nose,
        "eye": nose + np.array([0.0, -0.01]),
        "ear": nose + np.array([0.01, -0.01]),
        "shoulder": shoulder,
        "elbow": elbow,
        "wrist": wrist,
        "hip": hip,
        "knee": knee,
        "ankle": ankle,
    }
    out = np.zeros((17, 3))
    out[:, 2] = score
    for name, idx in COCO.items():
        base = name.split("_", 1)[-1]
        out[idx, :2] = pts[base]
    return out


def knee_profile(
    t_s: np.ndarray,
    rep_s: float = 3.0,
    n_reps: int = 3,
    depth_deg: float = 90.0,
    rest_deg: float = 175.0,
    lead_s: float = 2.0,
) -> np.ndarray:
    """Knee angle over time: ``lead_s`` standing, then ``n_reps`` smooth squats, then standing.

    Args:
        t_s: ``[T]`` times in seconds.
        rep_s: duration of one repetition.
        n_reps: repetitions.
        depth_deg: knee angle at the bottom.
        rest_deg: knee angle standing.
        lead_s: standing time before the first repetition.

    Returns:
        ``[T]`` knee angles in degrees.
    """
    t = np.asarray(t_s, dtype=np.float64) - lead_s
    phase = np.clip(t / rep_s, 0.0, n_reps)
    dip = 0.5 * (1.0 - np.cos(2.0 * np.pi * phase))  # 0 standing, 1 at the bottom
    return rest_deg - (rest_deg - depth_deg) * dip


def squat_stream(
    fps: float,
    duration_s: float,
    knee_fn=None,  # noqa: ANN001 - callable [T] seconds -> [T] degrees
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A whole stream of squat frames.

    Args:
        fps: frame rate.
        duration_s: length of the stream.
        knee_fn: knee angle as a function of time (default: :func:`knee_profile`).
        noise: standard deviation of Gaussian jitter added to x, y (normalised units).
        seed: random seed of the jitter.

    Returns:
        ``(timestamps_ms [T], keypoints [T, 17, 3])``.
    """
    t = np.arange(0.0, duration_s, 1.0 / fps)
    knee = (knee_fn or knee_profile)(t)
    kp = np.stack([squat_frame(float(k)) for k in knee])
    if noise > 0:
        rng = np.random.default_rng(seed)
        kp[..., :2] += rng.normal(0.0, noise, kp[..., :2].shape)
    return t * 1000.0, kp
