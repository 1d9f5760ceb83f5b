"""1-D signal helpers for keyframe selection: the driving signal, smoothing, extrema.

Pure numpy (no scipy): a centred moving average and a prominence-based extremum finder
with a minimum separation, in the spirit of ``scipy.signal.find_peaks``.

Example:
    >>> import numpy as np
    >>> s = np.array([0, 5, 0, 30, 0, 4, 0], dtype=float)
    >>> find_peaks(s, prominence=10, distance=1)
    [(3, 30.0)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physio_ray.video.angles import ANGLE_INDEX
from physio_ray.video.exercises import GENERIC_CANDIDATES, Exercise

LOWER_BODY_MIN_RANGE = 40.0


@dataclass(frozen=True)
class DrivingSignal:
    """The per-frame signal that keyframes follow.

    Attributes:
        values: ``[T]`` degrees, gaps filled by linear interpolation, then smoothed.
        raw: ``[T]`` degrees, gaps filled but not smoothed.
        name: what it is, e.g. ``"mean(left_knee,right_knee)"``.
        working: ``"min"`` or ``"max"``: which extreme is the working position of a rep.
        finite_fraction: share of frames where the signal was measured (before filling).
    """

    values: np.ndarray
    raw: np.ndarray
    name: str
    working: str
    finite_fraction: float


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """Linearly interpolates NaNs (edges take the nearest finite value).

    Raises:
        ValueError: when fewer than two values are finite.
    """
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 2:
        raise ValueError(f"the driving signal is measurable in only {int(ok.sum())} of {x.size} frames")
    idx = np.arange(x.size)
    return np.interp(idx, idx[ok], x[ok])


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge padding; ``window`` is made odd (>= 1)."""
    window = max(1, int(window))
    if window % 2 == 0:
        window += 1
    if window == 1 or x.size < 2:
        return np.asarray(x, dtype=np.float64).copy()
    half = window // 2
    padded = np.pad(np.asarray(x, dtype=np.float64), half, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def _robust_range(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if x.size < 2:
        return 0.0
    lo, hi = np.percentile(x, [5, 95])
    return float(hi - lo)


def _nanmean_columns(angles: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    cols = angles[:, [ANGLE_INDEX[n] for n in names]].astype(np.float64)
    count = np.isfinite(cols).sum(axis=1)
    total = np.nansum(cols, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _pick_max_range(angles: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """The angle that moves most; the L/R mean instead when both sides move alike."""
    ranges = {n: _robust_range(angles[:, ANGLE_INDEX[n]]) for n in names}
    best = max(ranges, key=lambda n: ranges[n])
    for prefix, other in (("left_", "right_"), ("right_", "left_")):
        if best.startswith(prefix) and best.replace(prefix, other, 1) in names:
            pair = tuple(sorted((best, best.replace(prefix, other, 1))))
            mean = _nanmean_columns(angles, pair)
            if _robust_range(mean) >= 0.8 * ranges[best]:
                return mean, f"mean({pair[0]},{pair[1]})"
    return angles[:, ANGLE_INDEX[best]].astype(np.float64), best


def _generic_candidates(angles: np.ndarray) -> tuple[str, ...]:
    """Hips and knees when they move at least LOWER_BODY_MIN_RANGE deg, else every flexion angle.

    Arms swing to counterbalance lower-body movements (in the real squat video the elbows
    move more than the knees, and their extremes lag the squat bottoms by ~0.6 s), so a
    clear lower-body movement takes precedence.
    """
    lower = [n for n in GENERIC_CANDIDATES if n.endswith(("_hip", "_knee"))]
    if max(_robust_range(angles[:, ANGLE_INDEX[n]]) for n in lower) >= LOWER_BODY_MIN_RANGE:
        return tuple(lower)
    return GENERIC_CANDIDATES


def driving_signal(angles: np.ndarray, exercise: Exercise | None, smooth_window: int) -> DrivingSignal:
    """Builds and smooths the driving signal of a recording.

    Args:
        angles: ``[T, 16]`` joint angles.
        exercise: the catalogue entry; None picks the flexion angle (or L/R pair) that moves
            most (hips and knees first, see :func:`_generic_candidates`), with the working
            extreme "auto".
        smooth_window: moving-average window in frames.

    Returns:
        The :class:`DrivingSignal`.

    Raises:
        ValueError: when the signal is measurable in fewer than two frames.
    """
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 2 or angles.shape[1] != len(ANGLE_INDEX):
        raise ValueError(f"angles must be [T, {len(ANGLE_INDEX)}], got {angles.shape}")
    names = exercise.driving_angles if exercise else _generic_candidates(angles)
    combine = exercise.combine if exercise else "max_range"
    if combine == "mean":
        raw, name = _nanmean_columns(angles, names), f"mean({','.join(names)})"
    else:
        raw, name = _pick_max_range(angles, names)
    finite = float(np.isfinite(raw).mean()) if raw.size else 0.0
    filled = fill_gaps(raw)
    values = moving_average(filled, smooth_window)
    working = exercise.working_extreme if exercise else "auto"
    if working == "auto":
        head = values[: max(1, values.size // 10)]
        start = float(np.median(head))
        working = "min" if start - values.min() >= values.max() - start else "max"
    return DrivingSignal(values=values, raw=filled, name=name, working=working, finite_fraction=finite)


def find_peaks(
    x: np.ndarray, prominence: float, distance: int, edge_drop: float | None = None
) -> list[tuple[int, float]]:
    """Interior local maxima standing out by ``prominence``, at least ``distance`` apart.

    Plateaus count once (their middle). The prominence of a peak is its height above the
    higher of the two lowest points reached before meeting a higher value on either side.
    When two peaks are closer than ``distance`` frames, the more prominent one is kept.

    A recording often ends (or starts) on the way out of an extreme, e.g. rising from the
    last squat bottom; the side cut by the recording edge then caps the prominence. With
    ``edge_drop`` set, a side that reaches the edge without meeting a higher value and
    drops by at least ``edge_drop`` is ignored, so the other side decides.

    Args:
        x: ``[T]`` finite values.
        prominence: minimum prominence (same units as ``x``).
        distance: minimum separation in frames (>= 1).
        edge_drop: see above (None: standard prominence).

    Returns:
        ``[(index, prominence), ...]`` sorted by index.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    candidates: list[int] = []
    i = 1
    while i < n - 1:
        if x[i] > x[i - 1]:
            j = i
            while j + 1 < n - 1 and x[j + 1] == x[i]:
                j += 1
            if x[j + 1] < x[i]:
                candidates.append((i + j) // 2)
            i = j + 1
        else:
            i += 1
    found: list[tuple[int, float]] = []
    for c in candidates:
        left = c
        while left > 0 and x[left - 1] <= x[c]:
            left -= 1
        right = c
        while right < n - 1 and x[right + 1] <= x[c]:
            right += 1
        drops = [x[c] - x[left : c + 1].min(), x[c] - x[c : right + 1].min()]
        if edge_drop is not None:
            cut = [left == 0 and x[0] <= x[c], right == n - 1 and x[-1] <= x[c]]
            kept_sides = [d for d, is_cut in zip(drops, cut, strict=True) if not (is_cut and d >= edge_drop)]
            if kept_sides and len(kept_sides) < 2:
                drops = kept_sides
        prom = float(min(drops))
        if prom >= prominence:
            found.append((c, prom))
    kept: list[tuple[int, float]] = []
    for c, prom in sorted(found, key=lambda cp: -cp[1]):
        if all(abs(c - k) >= max(1, distance) for k, _ in kept):
            kept.append((c, prom))
    return sorted(kept)
