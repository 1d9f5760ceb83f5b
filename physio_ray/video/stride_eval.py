"""Judging the adaptive pose stride on landmark streams that stand in for the detector.

We ship no camera-rate video of exercises, so the policy of :mod:`physio_ray.video.stride` is
measured on motion capture rendered at 30 fps (:mod:`physio_ray.video.view_sweep`): the
"detector" returns the stream's row for the frame asked for, and the keyframes from the strided
poses are compared with those from every frame (same smoothing, angles and selection as the
"poses" + "keyframes" stages).
"""

from __future__ import annotations

import numpy as np

from physio_ray.video.config import PoseConfig
from physio_ray.video.exercises import get_exercise
from physio_ray.video.keyframes import KeyframeResult, keyframes_for_sequence
from physio_ray.video.layout import to_coco17
from physio_ray.video.smoothing import smooth_sequence
from physio_ray.video.stride import ArrayFrames, StrideConfig, StridedPoses, angle_watcher, strided_pose


def stream_keyframes(
    keypoints: np.ndarray,
    fps: float,
    space: str,
    aspect: float,
    exercise: str | None,
    pose_cfg: PoseConfig | None = None,
) -> KeyframeResult:
    """One-Euro smoothing (as the "poses" stage) then keyframe selection of a COCO-17 stream."""
    cfg = pose_cfg or PoseConfig()
    kp = smooth_sequence(keypoints, fps, cfg.one_euro_min_cutoff, cfg.one_euro_beta) if cfg.smoothing else keypoints
    return keyframes_for_sequence(kp, fps, space, aspect, exercise=exercise)


def keyframes_agree(ref: KeyframeResult, got: KeyframeResult, frames: int = 1) -> bool:
    """Same keyframe kinds in the same order, each within ``frames`` of the reference.

    >>> a = KeyframeResult([0, 30, 59], [0.0, 1.0, 1.97], ["start", "bottom", "end"], {})
    >>> keyframes_agree(a, KeyframeResult([0, 31, 59], [], ["start", "bottom", "end"], {}))
    True
    >>> keyframes_agree(a, KeyframeResult([0, 33, 59], [], ["start", "bottom", "end"], {}))
    False
    """
    return ref.kinds == got.kinds and all(abs(a - b) <= frames for a, b in zip(ref.indices, got.indices, strict=True))


def stride_stream(
    rows: np.ndarray, fps: float, space: str, aspect: float, exercise: str | None, cfg: StrideConfig
) -> StridedPoses:
    """Runs the policy on a ``[T, 33, C]`` landmark stream (C = 3: x, y, visibility; 4: x, y, z, visibility)."""
    watcher = angle_watcher(get_exercise(exercise) if exercise else None, space, aspect, _third(rows))
    return strided_pose(ArrayFrames(np.arange(len(rows))), fps, lambda i: rows[int(i)], watcher, cfg)


def _third(rows: np.ndarray) -> str:
    return "visibility" if rows.shape[-1] == 3 else "z"


def compare_on_stream(
    rows: np.ndarray, fps: float, space: str, aspect: float, exercise: str | None, cfg: StrideConfig
) -> tuple[bool, float, KeyframeResult, KeyframeResult]:
    """``(keyframes agree within one frame, posed fraction, every-frame keyframes, strided keyframes)``."""
    third = _third(rows)
    res = stride_stream(rows, fps, space, aspect, exercise, cfg)
    ref = stream_keyframes(to_coco17(rows, third=third), fps, space, aspect, exercise)
    filled = res.filled(np.full(rows.shape[1:], np.nan))
    got = stream_keyframes(to_coco17(filled, third=third), fps, space, aspect, exercise)
    return keyframes_agree(ref, got), res.posed_fraction, ref, got
