"""Keyframes chosen from the movement itself: rep bottoms and tops, mid-phase transitions,
start and end (not fixed fractions of the video, which was the seed's bug).

Steps: the exercise's driving angle (:mod:`physio_ray.video.signal`) is smoothed with a
``smooth_window_s`` moving average; extrema standing out by ``min_prominence_deg`` and at
least ``min_separation_s`` apart become ``"bottom"`` (a driving-angle minimum) or ``"top"``
(a maximum); between each extreme and its neighbouring extreme / start / end, the frame
where the signal crosses halfway becomes a ``"transition"`` (mid-descent, mid-ascent).
When there are more than ``max_keyframes``, transitions go first, then the extremes
opposite the working position, then the least prominent working extremes; start and end stay.

:class:`KeyframeSelector` is the Ray-Data-ready stage "keyframes" (same conventions as
:class:`physio_ray.video.pose.PoseExtractor`). It reads the "poses" columns (+ ``exercise``;
missing or ``"unknown"``: inferred from the file name, else the angle that moves most) and
adds ``keyframe_indices``, ``keyframe_times``, ``keyframe_kinds``, ``features`` (JSON) and
``error``.

Example:
    >>> import numpy as np
    >>> from physio_ray.video.angles import ANGLE_INDEX
    >>> t = np.arange(0, 10, 0.1)
    >>> angles = np.full((t.size, 16), 170.0)
    >>> angles[:, ANGLE_INDEX["left_knee"]] = angles[:, ANGLE_INDEX["right_knee"]] = 130 + 40 * np.cos(2 * np.pi * t / 4)
    >>> res = select_keyframes(angles, fps=10.0, exercise="squat")
    >>> [round(tm, 1) for tm, k in zip(res.times, res.kinds) if k == "bottom"]
    [2.0, 6.0]
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.schemas import (
    ANGLES,
    ASPECT,
    COORD_SPACE,
    ERROR,
    EXERCISE,
    FEATURES,
    FPS,
    KEYFRAME_INDICES,
    KEYFRAME_KINDS,
    KEYFRAME_TIMES,
    KEYPOINTS,
    N_FRAMES,
    SOURCE_KIND,
    SOURCE_PATH,
    VIDEO_ID,
)
from physio_ray.video.angles import ANGLE_NAMES, joint_angles
from physio_ray.video.config import KeyframeConfig, PoseConfig
from physio_ray.video.exercises import EXERCISES, Exercise, exercise_for_source, get_exercise
from physio_ray.video.features import movement_features
from physio_ray.video.pose import batch_cell, object_column
from physio_ray.video.signal import DrivingSignal, driving_signal, find_peaks

logger = logging.getLogger(__name__)

KINDS = ("start", "bottom", "top", "transition", "end")
# An extreme whose way out is cut by the recording edge counts when it has turned by at
# least this fraction of min_prominence_deg (e.g. the last, partial rep of a video).
EDGE_DROP_FRACTION = 0.25


@dataclass
class KeyframeResult:
    """Keyframes of one recording, sorted by frame.

    Attributes:
        indices: frame indices.
        times: seconds (``index / fps``).
        kinds: ``"start" | "bottom" | "top" | "transition" | "end"`` per keyframe.
        features: movement features for question templates (see
            :func:`physio_ray.video.features.movement_features`).
    """

    indices: list[int]
    times: list[float]
    kinds: list[str]
    features: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Key:
    index: int
    kind: str
    priority: float  # higher survives the max_keyframes cap


def _midpoint_crossing(sig: np.ndarray, a: int, b: int) -> int | None:
    """First frame in (a, b) where ``sig`` has gone halfway from ``sig[a]`` to ``sig[b]``."""
    lo, hi = (a, b) if a < b else (b, a)
    if hi - lo < 2:
        return None
    level = (sig[a] + sig[b]) / 2.0
    seg = sig[lo + 1 : hi]
    rising = sig[hi] > sig[lo]
    hits = np.flatnonzero(seg >= level if rising else seg <= level)
    return int(lo + 1 + hits[0]) if hits.size else None


def _rep_completion(sig: np.ndarray, working: list[int], rest: float) -> list[bool]:
    """A rep is complete when the signal comes back within 30% of its excursion from rest."""
    done = []
    for k, w in enumerate(working):
        stop = working[k + 1] if k + 1 < len(working) else sig.size
        excursion = abs(sig[w] - rest)
        back = np.abs(sig[w:stop] - rest) <= 0.3 * excursion
        done.append(bool(back.any()))
    return done


def select_keyframes(
    angles: np.ndarray,
    fps: float,
    cfg: KeyframeConfig | None = None,
    exercise: str | Exercise | None = None,
    keypoints: np.ndarray | None = None,
    coord_space: str | None = None,
    aspect: float = 1.0,
) -> KeyframeResult:
    """Selects movement-driven keyframes and measures movement features.

    Args:
        angles: ``[T, 16]`` joint angles (degrees, NaN where unseen).
        fps: frames per second.
        cfg: selection settings (defaults: :class:`KeyframeConfig`).
        exercise: canonical name or catalogue entry; None picks the angle that moves most.
        keypoints: ``[T, 17, 4]`` keypoints, used for the knee-valgus proxy (optional).
        coord_space: coordinate space of ``keypoints``.
        aspect: frame width / height for image spaces.

    Returns:
        A :class:`KeyframeResult`.

    Raises:
        ValueError: bad shapes/fps, or a driving angle measurable in fewer than two frames.
        KeyError: unknown exercise name.
    """
    cfg = cfg or KeyframeConfig()
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps={fps} must be positive")
    ex = get_exercise(exercise) if isinstance(exercise, str) else exercise
    angles = np.asarray(angles, dtype=np.float64)
    n = angles.shape[0] if angles.ndim == 2 else 0
    if n == 0:
        raise ValueError(f"angles must be a non-empty [T, 16] array, got shape {np.shape(angles)}")
    if n == 1:
        return KeyframeResult([0], [0.0], ["start"], {"n_frames": 1, "fps": float(fps)})

    drv: DrivingSignal = driving_signal(angles, ex, round(cfg.smooth_window_s * fps))
    sig = drv.values
    distance = max(1, round(cfg.min_separation_s * fps))
    edge = cfg.min_prominence_deg * EDGE_DROP_FRACTION
    maxima = find_peaks(sig, cfg.min_prominence_deg, distance, edge)
    minima = find_peaks(-sig, cfg.min_prominence_deg, distance, edge)
    work_kind = "bottom" if drv.working == "min" else "top"
    working, opposite = (minima, maxima) if drv.working == "min" else (maxima, minima)

    keys: list[_Key] = [_Key(0, "start", 1e9), _Key(n - 1, "end", 1e9)]
    keys += [_Key(i, work_kind, 1e6 + p) for i, p in working]
    keys += [_Key(i, "top" if work_kind == "bottom" else "bottom", 1e3 + p) for i, p in opposite]
    anchors = sorted(
        [(0, "start"), (n - 1, "end")] + [(i, work_kind) for i, _ in working] + [(i, "x") for i, _ in opposite]
    )
    for (a, ka), (b, kb) in zip(anchors, anchors[1:], strict=False):
        if work_kind not in (ka, kb):  # only descents into / ascents out of a working extreme
            continue
        if abs(sig[a] - sig[b]) < cfg.min_prominence_deg / 2:
            continue
        mid = _midpoint_crossing(sig, a, b)
        if mid is not None:
            keys.append(_Key(mid, "transition", abs(sig[a] - sig[b])))

    if not working and not opposite and abs(sig[-1] - sig[0]) >= cfg.min_prominence_deg:
        mid = _midpoint_crossing(sig, 0, n - 1)  # one-way movement: keep its midpoint
        if mid is not None:
            keys.append(_Key(mid, "transition", abs(sig[-1] - sig[0])))

    by_index: dict[int, _Key] = {}
    for key in keys:
        if key.index not in by_index or key.priority > by_index[key.index].priority:
            by_index[key.index] = key
    chosen = sorted(by_index.values(), key=lambda k: -k.priority)[: cfg.max_keyframes]
    chosen.sort(key=lambda k: k.index)

    rest = float(np.median(sig[: max(1, n // 10)]))
    work_idx = [i for i, _ in working]
    complete = _rep_completion(sig, work_idx, rest)
    features = movement_features(
        angles=angles,
        fps=fps,
        signal=drv,
        working_indices=work_idx,
        complete=complete,
        rest_level=rest,
        keypoints=keypoints,
        coord_space=coord_space,
        aspect=aspect,
        exercise=ex.name if ex else None,
    )
    return KeyframeResult(
        indices=[k.index for k in chosen],
        times=[round(k.index / fps, 4) for k in chosen],
        kinds=[k.kind for k in chosen],
        features=features,
    )


def keyframes_for_sequence(
    keypoints: np.ndarray,
    fps: float,
    coord_space: str,
    aspect: float = 1.0,
    cfg: KeyframeConfig | None = None,
    exercise: str | Exercise | None = None,
) -> KeyframeResult:
    """Convenience: joint angles from keypoints, then :func:`select_keyframes`.

    Args:
        keypoints: ``[T, 17, 4]``.
        fps: frames per second.
        coord_space: ``image2d`` | ``image3d`` | ``world3d``.
        aspect: frame width / height for image spaces.
        cfg: selection settings.
        exercise: canonical name, catalogue entry or None.

    Returns:
        A :class:`KeyframeResult`.
    """
    angles = joint_angles(keypoints, coord_space, aspect=aspect)
    return select_keyframes(angles, fps, cfg, exercise, keypoints, coord_space, aspect)


def keyframe_times(
    video_path: str,
    exercise: str | None = None,
    pose_cfg: PoseConfig | None = None,
    cfg: KeyframeConfig | None = None,
) -> list[float]:
    """Keyframe times (s) of a video: MediaPipe pose + One-Euro smoothing + selection.

    Args:
        video_path: video file.
        exercise: canonical exercise name (None: the angle that moves most drives).
        pose_cfg: pose settings (default :class:`PoseConfig`).
        cfg: keyframe settings (default :class:`KeyframeConfig`).

    Returns:
        Sorted keyframe times in seconds.

    Raises:
        FileNotFoundError: missing video.
        ValueError: unreadable video, or no person in enough frames.
    """
    from physio_ray.video.mediapipe_pose import MediaPipePose, pose_from_video
    from physio_ray.video.smoothing import smooth_sequence

    pose_cfg = pose_cfg or PoseConfig()
    estimator = MediaPipePose(pose_cfg.model_complexity, pose_cfg.min_detection_confidence)
    try:
        ex = get_exercise(exercise) if exercise else None
        seq, detected = pose_from_video(
            Path(video_path), estimator, pose_cfg.max_frames, stride=pose_cfg.stride, exercise=ex
        )
    finally:
        estimator.close()
    if detected < pose_cfg.min_visible_fraction:
        raise ValueError(
            f"no person: detected in {detected:.0%} of frames of {video_path} (need {pose_cfg.min_visible_fraction:.0%})"
        )
    kp = seq.keypoints
    if pose_cfg.smoothing:
        kp = smooth_sequence(kp, seq.fps, pose_cfg.one_euro_min_cutoff, pose_cfg.one_euro_beta)
    return keyframes_for_sequence(kp, seq.fps, seq.coord_space, seq.aspect, cfg, exercise).times


def _row_exercise(row: dict[str, Any]) -> str | None:
    name = row.get(EXERCISE)
    if isinstance(name, str) and name and name != "unknown":
        if name in EXERCISES:
            return name
        logger.warning("keyframes: unknown exercise %r, the driving angle is chosen automatically", name)
        return None
    kind, path = row.get(SOURCE_KIND), row.get(SOURCE_PATH)
    return exercise_for_source(str(kind), str(path)) if kind and path else None


def keyframes_for_row(row: dict[str, Any], cfg: KeyframeConfig | None = None) -> dict[str, Any]:
    """Keyframes and features of one "poses" row (the per-row core of :class:`KeyframeSelector`).

    Args:
        row: a row with ``fps``, ``n_frames``, ``keypoints``, ``coord_space``, ``angles``
            (+ ``aspect``, ``exercise``, ``source_kind``, ``source_path``, ``error``).
        cfg: keyframe settings.

    Returns:
        ``{keyframe_indices, keyframe_times, keyframe_kinds, features, error}``; on failure
        empty lists, ``features`` ``"{}"`` and the error message.
    """
    empty: dict[str, Any] = {KEYFRAME_INDICES: [], KEYFRAME_TIMES: [], KEYFRAME_KINDS: [], FEATURES: "{}"}
    err = row.get(ERROR)
    if err not in (None, "") and not (isinstance(err, float) and np.isnan(err)):
        return {**empty, ERROR: str(err)}
    try:
        n = int(row[N_FRAMES])
        fps = float(row[FPS])
        space = str(row[COORD_SPACE])
        aspect = row.get(ASPECT)
        aspect = float(aspect) if aspect is not None and np.isfinite(aspect) else 1.0
        kp = np.asarray(row[KEYPOINTS], dtype=np.float32)
        if kp.size != n * 17 * 4:
            raise ValueError(f"keypoints has {kp.size} values, expected n_frames*17*4 = {n * 68}")
        kp = kp.reshape(n, 17, 4)
        ang = np.asarray(row.get(ANGLES, []), dtype=np.float32)
        if ang.size == n * len(ANGLE_NAMES):
            ang = ang.reshape(n, len(ANGLE_NAMES))
        else:  # no stored angles: measure them now
            ang = joint_angles(kp, space, aspect=aspect)
        res = select_keyframes(ang, fps, cfg, _row_exercise(row), kp, space, aspect)
    except Exception as exc:  # a bad row must not kill the batch
        msg = f"{type(exc).__name__}: {exc}"
        logger.warning("keyframes: %s failed: %s", row.get(VIDEO_ID), msg)
        return {**empty, ERROR: msg}
    return {
        KEYFRAME_INDICES: [int(i) for i in res.indices],
        KEYFRAME_TIMES: [float(t) for t in res.times],
        KEYFRAME_KINDS: list(res.kinds),
        FEATURES: json.dumps(res.features, sort_keys=True),
        ERROR: None,
    }


class KeyframeSelector:
    """Stage "keyframes": movement-driven keyframes + features per row.

    Args:
        cfg: keyframe settings (``KeyframeConfig``).
    """

    def __init__(self, cfg: KeyframeConfig | None = None) -> None:
        self.cfg = cfg or KeyframeConfig()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Adds keyframe_indices, keyframe_times, keyframe_kinds, features and error.

        Args:
            batch: the "poses" columns.

        Returns:
            The batch with the added columns.
        """
        n = len(batch[VIDEO_ID])
        rows = [keyframes_for_row({c: batch_cell(batch, c, i) for c in batch}, self.cfg) for i in range(n)]
        out = dict(batch)
        for col in (KEYFRAME_INDICES, KEYFRAME_TIMES, KEYFRAME_KINDS, FEATURES, ERROR):
            out[col] = object_column([r[col] for r in rows])
        return out
