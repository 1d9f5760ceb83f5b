"""Movement features measured from landmarks, for question templates and quality rules.

Every value is JSON-safe (floats rounded, unmeasurable values None). Keys:

* ``exercise``, ``driving_angle``, ``working_extreme`` (``"min"``/``"max"``),
  ``working_kind`` (``"bottom"``/``"top"``: the keyframe kind of a rep's turning point).
* ``n_frames``, ``fps``, ``duration_s``, ``visible_fraction`` (share of frames where the
  driving angle was measured).
* ``rep_count`` (complete reps: back within 30% of the excursion from the starting
  posture), ``partial_reps``, ``rep_times_s`` (time of each working extreme).
* ``rest_deg`` (driving angle at the start), ``rep_extreme_deg`` (per rep),
  ``best_extreme_deg`` (deepest / highest), ``depth_deg`` (alias of best_extreme_deg for
  min-working movements such as squats, else None), ``range_of_motion_deg``.
* ``tempo_s_per_rep``, ``descent_s``, ``ascent_s`` (mean per rep; None when not measurable).
* ``trunk_lean_at_working_deg``, ``trunk_lean_max_deg``, ``knee_asymmetry_at_working_deg``.
* ``knee_ankle_ratio_start`` / ``knee_ankle_ratio_working``: knee separation over ankle
  separation along the hip line; ``knee_valgus_drop`` = start - working (> 0 means the
  knees moved inward relative to the feet: a valgus proxy).
* ``angle_min`` / ``angle_max``: per-angle extremes over the recording.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from physio_ray.video.angles import ANGLE_INDEX, ANGLE_NAMES
from physio_ray.video.layout import COCO
from physio_ray.video.signal import DrivingSignal


def feature_value(features: Mapping[str, Any], key: str) -> Any:
    """``features[key]``, or ``features[a][b]`` for a dotted ``key`` ``"a.b"`` (``None`` if absent).

    >>> feature_value({"depth": {"knee_min": 92.5}}, "depth.knee_min")
    92.5
    >>> feature_value({"reps": 3}, "reps"), feature_value({"reps": 3}, "depth.knee_min")
    (3, None)
    """
    if "." not in key:
        return features.get(key)
    outer, inner = key.split(".", 1)
    nested = features.get(outer)
    return nested.get(inner) if isinstance(nested, Mapping) else None


def _num(x: Any, nd: int = 2) -> float | None:
    """Rounded float, or None for NaN / None / inf."""
    if x is None:
        return None
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def _nanmean(values: list[float] | np.ndarray) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def knee_ankle_ratio(keypoints: np.ndarray, coord_space: str, aspect: float = 1.0) -> np.ndarray:
    """Knee separation / ankle separation along the hip line, per frame (valgus proxy).

    Args:
        keypoints: ``[T, 17, 4]``.
        coord_space: image spaces use x, y (x scaled by ``aspect``); world3d uses x and z.
        aspect: frame width / height.

    Returns:
        ``[T]`` ratios (NaN where a point is unseen or the feet are together).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if coord_space == "world3d":
        pts = kp[..., [0, 2]]  # the horizontal plane
    else:
        pts = kp[..., :2].copy()
        pts[..., 0] *= aspect
    seen = kp[..., 3] >= 0.5
    pts = np.where(seen[..., None], pts, np.nan)
    axis = pts[:, COCO["left_hip"]] - pts[:, COCO["right_hip"]]
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = axis / norm
        knees = np.abs(np.sum((pts[:, COCO["left_knee"]] - pts[:, COCO["right_knee"]]) * unit, axis=-1))
        ankles = np.abs(np.sum((pts[:, COCO["left_ankle"]] - pts[:, COCO["right_ankle"]]) * unit, axis=-1))
        ratio = knees / ankles
    return np.where(ankles > 1e-6, ratio, np.nan)


def _phase_durations(sig: np.ndarray, working: list[int], fps: float, is_min: bool) -> tuple[list[float], list[float]]:
    """Descent (leaving the upper 10% band to the extreme) and ascent (back) per rep."""
    s = sig if is_min else -sig  # make the working extreme a minimum
    descents, ascents = [], []
    bounds = [0, *working, s.size - 1]
    for k, w in enumerate(working):
        before = s[bounds[k] : w + 1]
        ref = before.max()
        thr = ref - 0.1 * (ref - s[w])
        above = np.flatnonzero(before >= thr)
        if above.size and ref - s[w] > 0:
            descents.append((w - (bounds[k] + above[-1])) / fps)
        after = s[w : bounds[k + 2] + 1]
        ref2 = after.max()
        thr2 = ref2 - 0.1 * (ref2 - s[w])
        back = np.flatnonzero(after >= thr2)
        # only a rep that returns most of the way counts as a measured ascent
        if back.size and ref2 - s[w] >= 0.7 * (ref - s[w]) > 0:
            ascents.append(back[0] / fps)
    return descents, ascents


def movement_features(
    angles: np.ndarray,
    fps: float,
    signal: DrivingSignal,
    working_indices: list[int],
    complete: list[bool],
    rest_level: float,
    keypoints: np.ndarray | None = None,
    coord_space: str | None = None,
    aspect: float = 1.0,
    exercise: str | None = None,
) -> dict[str, Any]:
    """Measures the features listed in the module docstring.

    Args:
        angles: ``[T, 16]`` joint angles.
        fps: frames per second.
        signal: the driving signal used for keyframes.
        working_indices: frames of the working extremes (one per rep).
        complete: per rep, whether it returned towards the start posture.
        rest_level: driving angle at the start (smoothed).
        keypoints: ``[T, 17, 4]`` for the valgus proxy (optional).
        coord_space: space of ``keypoints``.
        aspect: frame width / height.
        exercise: canonical exercise name, if known.

    Returns:
        A JSON-serialisable dict.
    """
    n = angles.shape[0]
    is_min = signal.working == "min"
    half = max(1, int(round(0.2 * fps)))
    rep_extremes = []
    for w in working_indices:
        window = signal.raw[max(0, w - half) : w + half + 1]
        rep_extremes.append(float(window.min() if is_min else window.max()))
    best = (min(rep_extremes) if is_min else max(rep_extremes)) if rep_extremes else float("nan")
    lo, hi = np.percentile(signal.raw, [2, 98])
    descents, ascents = _phase_durations(signal.values, working_indices, fps, is_min)
    duration = n / fps
    if len(working_indices) >= 2:
        tempo = float(np.mean(np.diff(working_indices))) / fps
    else:
        tempo = duration / len(working_indices) if working_indices else float("nan")

    trunk = angles[:, ANGLE_INDEX["trunk_lean"]]
    lk, rk = angles[:, ANGLE_INDEX["left_knee"]], angles[:, ANGLE_INDEX["right_knee"]]
    feats: dict[str, Any] = {
        "exercise": exercise,
        "driving_angle": signal.name,
        "working_extreme": signal.working,
        "working_kind": "bottom" if is_min else "top",
        "n_frames": int(n),
        "fps": _num(fps, 3),
        "duration_s": _num(duration),
        "visible_fraction": _num(signal.finite_fraction, 3),
        "rep_count": int(sum(complete)),
        "partial_reps": int(len(complete) - sum(complete)),
        "rep_times_s": [_num(w / fps) for w in working_indices],
        "rest_deg": _num(rest_level, 1),
        "rep_extreme_deg": [_num(v, 1) for v in rep_extremes],
        "best_extreme_deg": _num(best, 1),
        "depth_deg": _num(best, 1) if is_min else None,
        "range_of_motion_deg": _num(hi - lo, 1),
        "tempo_s_per_rep": _num(tempo),
        "descent_s": _num(_nanmean(descents)) if descents else None,
        "ascent_s": _num(_nanmean(ascents)) if ascents else None,
        "trunk_lean_at_working_deg": _num(_nanmean(trunk[working_indices]), 1) if working_indices else None,
        "trunk_lean_max_deg": _num(np.nanmax(trunk) if np.isfinite(trunk).any() else np.nan, 1),
        "knee_asymmetry_at_working_deg": (
            _num(_nanmean(np.abs(lk - rk)[working_indices]), 1) if working_indices else None
        ),
        "knee_ankle_ratio_start": None,
        "knee_ankle_ratio_working": None,
        "knee_valgus_drop": None,
    }
    if keypoints is not None and coord_space is not None and len(keypoints) == n:
        ratio = knee_ankle_ratio(keypoints, coord_space, aspect)
        start = _nanmean(ratio[: max(1, n // 10)])
        work = _nanmean(ratio[working_indices]) if working_indices else float("nan")
        feats["knee_ankle_ratio_start"] = _num(start, 3)
        feats["knee_ankle_ratio_working"] = _num(work, 3)
        feats["knee_valgus_drop"] = _num(start - work, 3)
    finite = np.isfinite(angles)
    feats["angle_min"] = {
        name: _num(np.nanmin(angles[:, i]) if finite[:, i].any() else np.nan, 1) for i, name in enumerate(ANGLE_NAMES)
    }
    feats["angle_max"] = {
        name: _num(np.nanmax(angles[:, i]) if finite[:, i].any() else np.nan, 1) for i, name in enumerate(ANGLE_NAMES)
    }
    return feats
