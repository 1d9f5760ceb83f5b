"""Per-frame features of the guidance engine: keypoints -> 16 joint angles, streaming, and the
time-bounded angle window (:class:`AngleWindow`) the models read.

The browser sends MoveNet's 17 COCO keypoints; MediaPipe gives 33 BlazePose landmarks. Both go
through the same steps, shared with the offline pipeline:

1. validation (shape, finite values) and channel meaning (see :func:`as_xyzv`);
2. COCO-17 layout (:func:`physio_ray.video.layout.to_coco17`);
3. joints whose visibility/score is below ``min_visibility`` become NaN, so every angle that
   uses them is NaN and the frame does not count towards stability;
4. aspect correction: normalised x is multiplied by width/height so angles are those of the
   picture, not of a unit square;
5. One-Euro smoothing of x, y driven by the frame timestamps;
6. the 16 joint angles (:func:`physio_ray.video.angles.joint_angles`, ``image2d`` geometry).
"""

from __future__ import annotations

import math

import numpy as np

from physio_ray.guidance.config import GuidanceConfig
from physio_ray.video.angles import N_ANGLES, joint_angles, resample_angles
from physio_ray.video.layout import to_coco17
from physio_ray.video.smoothing import OneEuroFilter

THIRD_CHANNEL = ("auto", "score", "z")
"""What a third channel means: ``auto`` (score for 17 points, z for 33), or forced."""


def as_xyzv(keypoints: np.ndarray, allow_missing: bool = False, third: str = "auto") -> np.ndarray:
    """Validates keypoints and gives every channel layout the same ``(x, y, z, visibility)`` form.

    Channel meaning by layout: 2 channels ``(x, y)``; 3 channels ``(x, y, score)`` for 17 COCO
    keypoints (MoveNet) and ``(x, y, z)`` for 33 BlazePose landmarks (MediaPipe); 4 channels
    ``(x, y, z, visibility)``. Missing z is NaN, missing visibility is 1.

    Args:
        keypoints: ``[K, C]`` or ``[T, K, C]`` with ``K`` in (17, 33) and ``C`` in 2..4.
        allow_missing: offline recordings mark undetected points with NaN (the shared readers
            and ``pose_from_video`` do); with True such points get visibility 0 instead of an
            error. A live stream keeps the default (False): NaN there is a client bug.
        third: meaning of a third channel: ``auto`` (MoveNet's score for 17 points, MediaPipe's
            z for 33), ``score`` (a visibility/confidence in 0..1, e.g. the HTTP API's
            ``[x, y, score]`` for 33 points too) or ``z`` (ignored for angles).

    Returns:
        ``[T, K, 4]`` float64 (``T = 1`` for a single frame).

    Raises:
        ValueError: wrong rank, point count or channel count, or non-finite values (with the
            offending shape or position in the message).
    """
    arr = np.asarray(keypoints, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"keypoints must be [points, channels] or [frames, points, channels], got shape {arr.shape}")
    _, k, c = arr.shape
    if k not in (17, 33):
        raise ValueError(f"keypoints have {k} points; expected 17 (COCO/MoveNet) or 33 (BlazePose/MediaPipe)")
    if c not in (2, 3, 4):
        raise ValueError(f"keypoints have {c} channels; expected (x, y), (x, y, score|z) or (x, y, z, visibility)")
    if third not in THIRD_CHANNEL:
        raise ValueError(f"third={third!r} must be one of {THIRD_CHANNEL}")
    score3 = c == 3 and (third == "score" or (third == "auto" and k == 17))
    bad = ~np.isfinite(arr)
    lost = None
    if allow_missing and bad.any():
        score_ch = 2 if score3 else 3 if c == 4 else None
        lost = bad[..., :2].any(axis=-1)  # [T, K] points without a position
        if score_ch is not None:
            lost |= bad[..., score_ch]
        arr = np.where(bad, 0.0, arr)  # a missing z is only depth (not used for angles)
        bad = np.zeros_like(bad)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"keypoints contain NaN or inf (first at index {where}); send finite values, low score instead"
        )
    out = np.empty(arr.shape[:2] + (4,))
    out[..., :2] = arr[..., :2]
    out[..., 2] = np.nan
    out[..., 3] = 1.0
    if score3:
        out[..., 3] = arr[..., 2]
    elif c == 3:
        out[..., 2] = arr[..., 2]
    elif c == 4:
        out[..., 2:] = arr[..., 2:]
    if lost is not None:
        out[lost] = (0.0, 0.0, np.nan, 0.0)
    return out


def frame_angles_batch(
    keypoints: np.ndarray,
    timestamps_ms: np.ndarray,
    cfg: GuidanceConfig,
    image_size: tuple[float, float] | None = None,
    third: str = "auto",
) -> np.ndarray:
    """The streaming feature path applied to a whole sequence (same numbers as frame by frame).

    Args:
        keypoints: ``[T, 17|33, 2..4]`` normalised image coordinates; points with NaN
            coordinates count as not visible (see :func:`as_xyzv` ``allow_missing``).
        timestamps_ms: ``[T]`` increasing frame times.
        cfg: visibility threshold and smoothing settings.
        image_size: ``(width, height)`` of the picture (``None``: square).
        third: meaning of a third channel (see :func:`as_xyzv`).

    Returns:
        ``[T, 16]`` joint angles in degrees.
    """
    ex = FeatureExtractor(cfg, image_size)
    xyzv = as_xyzv(keypoints, allow_missing=True, third=third)
    return ex.push_many(np.asarray(timestamps_ms, dtype=np.float64), xyzv)


class FeatureExtractor:
    """Streaming keypoints -> angles, with per-joint One-Euro smoothing.

    Args:
        cfg: ``min_visibility``, ``smoothing``, One-Euro settings.
        image_size: ``(width, height)`` of the picture, for the aspect correction.
    """

    def __init__(self, cfg: GuidanceConfig, image_size: tuple[float, float] | None = None) -> None:
        self.cfg = cfg
        if image_size is not None:
            w, h = image_size
            if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
                raise ValueError(f"image_size={image_size} must be two positive numbers (width, height)")
            self.aspect = float(w) / float(h)
        else:
            self.aspect = 1.0
        self._filter: OneEuroFilter | None = None

    def reset(self) -> None:
        """Forgets the smoothing state (next frame passes through unsmoothed)."""
        self._filter = None

    def smoother(self) -> OneEuroFilter | None:
        """The session's One-Euro filter (made on first use), or None with smoothing off."""
        if not self.cfg.smoothing:
            return None
        if self._filter is None:
            self._filter = OneEuroFilter(
                min_cutoff=self.cfg.one_euro_min_cutoff, beta=self.cfg.one_euro_beta, channels=(0, 1)
            )
        return self._filter

    def push_many(self, timestamps_ms: np.ndarray, xyzv: np.ndarray, coco: np.ndarray | None = None) -> np.ndarray:
        """Several validated frames at once: smoothed one by one, angles in one vectorised call.

        The shared angle function costs about the same for 1 or 10 frames (numpy call
        overhead dominates), so a client that sends its frames in batches pays it once per batch.

        Args:
            timestamps_ms: ``[N]`` increasing frame times.
            xyzv: ``[N, K, 4]`` from :func:`as_xyzv`.
            coco: its COCO-17 layout when the caller has it already (not modified).

        Returns:
            ``[N, 16]`` angles in degrees (NaN where joints are not visible).
        """
        # [N, 17, 4] x, y, z, visibility; a copy (z and the smoothing are applied to it)
        coco = np.array(to_coco17(xyzv) if coco is None else coco, dtype=np.float64)
        coco[..., 2] = np.nan  # image depth is not trusted (see physio_ray.video.angles)
        smoother = self.smoother()
        if smoother is not None:
            for i, t in enumerate(timestamps_ms):
                coco[i] = smoother(coco[i], float(t) / 1000.0)
        return np.asarray(
            joint_angles(coco, "image2d", aspect=self.aspect, min_visibility=self.cfg.min_visibility),
            dtype=np.float64,
        )


class AngleWindow:
    """The most recent angle rows with their timestamps (a time-bounded buffer).

    Rows live in one preallocated ``[capacity, 16]`` array (and times in one ``[capacity]``
    array), filled from the front; when the end is reached the live rows move back to the start
    (or the arrays double), so every read is one contiguous slice: no per-row Python objects, a
    window handed to a model is one copy, and a snapshot is two array slices.

    Args:
        keep_ms: rows older than this (relative to the newest) are dropped.
        capacity: initial number of rows the arrays hold (they grow as needed).

    Example:
        >>> w = AngleWindow(keep_ms=100.0)
        >>> for t in (0.0, 40.0, 80.0, 120.0):
        ...     w.append(t, np.full(N_ANGLES, t))
        >>> len(w), w.last(50.0)[:, 0].tolist(), w.times().tolist()
        (3, [80.0, 120.0], [40.0, 80.0, 120.0])
    """

    def __init__(self, keep_ms: float, capacity: int = 64) -> None:
        self.keep_ms = float(keep_ms)
        self._tb = np.empty(max(1, int(capacity)))
        self._rb = np.empty((max(1, int(capacity)), N_ANGLES))
        self._lo = 0  # first live row
        self._hi = 0  # one past the newest row

    def __len__(self) -> int:
        return self._hi - self._lo

    def clear(self) -> None:
        """Drops every row."""
        self._lo = self._hi = 0

    def times(self) -> np.ndarray:
        """``[T]`` timestamps of the rows, oldest first (a copy)."""
        return self._tb[self._lo : self._hi].copy()

    def rows(self) -> np.ndarray:
        """``[T, 16]`` rows, oldest first (a copy)."""
        return self._rb[self._lo : self._hi].copy()

    def extend(self, times: np.ndarray, rows: np.ndarray) -> None:
        """Appends rows in order, as :meth:`append` one by one would (a snapshot's restore)."""
        for t, row in zip(np.asarray(times, dtype=np.float64), np.asarray(rows, dtype=np.float64), strict=True):
            self.append(float(t), row)

    def append(self, timestamp_ms: float, row: np.ndarray) -> None:
        """Adds one ``[16]`` row and drops rows older than ``keep_ms``."""
        if self._hi == self._tb.shape[0]:
            self._make_room()
        self._tb[self._hi] = timestamp_ms
        self._rb[self._hi] = row
        self._hi += 1
        tb, keep = self._tb, self.keep_ms
        while self._lo < self._hi and timestamp_ms - tb[self._lo] > keep:
            self._lo += 1

    def _make_room(self) -> None:
        n = self._hi - self._lo
        if 2 * n > self._tb.shape[0]:  # more than half full: double
            tb, rb = np.empty(2 * self._tb.shape[0]), np.empty((2 * self._rb.shape[0], N_ANGLES))
        else:  # move the live rows back to the start
            tb, rb = self._tb, self._rb
        tb[:n] = self._tb[self._lo : self._hi]
        rb[:n] = self._rb[self._lo : self._hi]
        self._tb, self._rb, self._lo, self._hi = tb, rb, 0, n

    def last(self, span_ms: float) -> np.ndarray:
        """Rows of the last ``span_ms`` as ``[T, 16]`` (``[0, 16]`` when empty): the newest rows
        back to the first one more than ``span_ms`` older than the newest."""
        if self._hi == self._lo:
            return np.empty((0, N_ANGLES))
        times = self._tb[self._lo : self._hi]
        old = np.flatnonzero(times[-1] - times > span_ms)
        first = self._lo + (int(old[-1]) + 1 if old.size else 0)
        return self._rb[first : self._hi].copy()

    def resampled(self, span_s: float, hz: float) -> np.ndarray:
        """The last ``span_s`` seconds on a fixed ``hz`` grid ending at the newest row.

        Returns:
            ``[round(span_s * hz), 16]`` (NaN before the first row), see
            :func:`physio_ray.video.angles.resample_angles`.
        """
        if self._hi == self._lo:
            return np.full((max(1, int(round(span_s * hz))), N_ANGLES), np.nan)
        times = self._tb[self._lo : self._hi]
        return resample_angles(times, self._rb[self._lo : self._hi], float(times[-1]), span_s, hz)
