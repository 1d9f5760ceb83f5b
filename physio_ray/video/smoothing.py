"""One-Euro filtering of landmark sequences (Casiez, Roussel & Vogel, CHI 2012).

The filter is an adaptive low-pass: the cutoff frequency grows with the (filtered) speed of
the signal, ``cutoff = min_cutoff + beta * |speed|``, so slow jitter is removed while fast
movements keep little lag. Time enters through the sample interval, so the same settings
behave the same at 5 fps and at 60 fps.

:func:`smooth_sequence` filters in body units (coordinates divided by the median torso
length of the sequence), so ``beta`` means the same in normalised image coordinates,
pixels and metres: speed is measured in torso lengths per second.

Example:
    >>> import numpy as np
    >>> f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    >>> f(np.zeros((17, 4)), t=0.0).shape
    (17, 4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from physio_ray.video.layout import COCO


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass with ``cutoff`` Hz at interval ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Vectorised One-Euro filter over an array of any shape (e.g. ``[17, 4]`` points).

    Only the coordinate channels ``channels`` of the last axis are filtered (x, y, z by
    default); the others (visibility) pass through. A non-finite value resets that entry:
    the output is NaN and the next finite value starts it afresh.

    Args:
        min_cutoff: cutoff frequency at rest (Hz); lower removes more jitter.
        beta: speed coefficient; higher reduces lag during fast motion.
        d_cutoff: cutoff used to smooth the speed estimate (Hz).
        channels: indices on the last axis to filter; ``None`` filters everything.
    """

    def __init__(
        self,
        min_cutoff: float = 1.0,
        beta: float = 0.05,
        d_cutoff: float = 1.0,
        channels: tuple[int, ...] | None = (0, 1, 2),
    ) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.channels = channels
        self.reset()

    def reset(self) -> None:
        """Forgets the filter state."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filters one sample.

        Args:
            x: the sample, e.g. ``[17, 4]`` keypoints of one frame.
            t: its timestamp in seconds (strictly increasing).

        Returns:
            The filtered sample, same shape, float64.

        Raises:
            ValueError: when ``t`` does not increase or the shape changes.
        """
        x = np.asarray(x, dtype=np.float64)
        out = x.copy()
        sel = (...,) if self.channels is None else (..., list(self.channels))
        value = x[sel]
        if self._x is None or self._t is None:
            self._x = value.copy()
            self._dx = np.zeros_like(value)
            self._t = float(t)
            return out
        if value.shape != self._x.shape:
            raise ValueError(f"sample shape {value.shape} differs from the filter's {self._x.shape}")
        dt = float(t) - self._t
        if not dt > 0:
            raise ValueError(f"timestamps must increase: got t={t} after t={self._t}")
        self._t = float(t)

        prev_dx = self._dx if self._dx is not None else np.zeros_like(value)
        fresh = ~np.isfinite(self._x)  # entries (re)starting after a gap
        dx = np.where(fresh, 0.0, (value - self._x) / dt)
        dx_hat = _alpha(self.d_cutoff, dt) * dx + (1.0 - _alpha(self.d_cutoff, dt)) * np.nan_to_num(prev_dx)
        a = _alpha(self.min_cutoff + self.beta * np.abs(dx_hat), dt)
        x_hat = np.where(fresh, value, a * value + (1.0 - a) * self._x)
        missing = ~np.isfinite(value)
        x_hat = np.where(missing, np.nan, x_hat)
        dx_hat = np.where(missing, 0.0, dx_hat)
        self._x, self._dx = x_hat, dx_hat
        out[sel] = x_hat
        return out


def one_euro_many(filters: Sequence[OneEuroFilter], x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``filters[i](x[i], t[i])`` for every ``i`` in one vectorised step, with the same numbers.

    The batched guidance engine smooths one frame of every session of a tick this way: the
    filters' states are stacked, stepped elementwise with each row's own interval, and
    written back.

    Args:
        filters: distinct filters with the same settings (cutoffs, beta, channels).
        x: ``[M, ...]`` one sample per filter.
        t: ``[M]`` their timestamps in seconds (each after its filter's last).

    Returns:
        ``[M, ...]`` filtered samples, float64.

    Raises:
        ValueError: filters with different settings, the same filter twice, a time that does
            not increase, or a sample shape a filter has not seen.

    >>> a, b = OneEuroFilter(beta=0.0), OneEuroFilter(beta=0.0)
    >>> _ = one_euro_many([a, b], np.zeros((2, 3, 4)), np.array([0.0, 0.0]))
    >>> one_euro_many([a, b], np.ones((2, 3, 4)), np.array([0.1, 0.2]))[:, 0, 0].round(4).tolist()
    [0.3859, 0.5569]
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    out = x.copy()
    if not filters:
        return out
    f0 = filters[0]
    settings = (f0.min_cutoff, f0.beta, f0.d_cutoff, f0.channels)
    if any((f.min_cutoff, f.beta, f.d_cutoff, f.channels) != settings for f in filters):
        raise ValueError("one_euro_many needs filters with the same settings; group them first")
    if len({id(f) for f in filters}) != len(filters) or x.shape[0] != len(filters) or t.shape[0] != len(filters):
        raise ValueError(f"need one sample and one time per distinct filter; got {len(filters)} filters, x {x.shape}")
    sel = (...,) if f0.channels is None else (..., list(f0.channels))
    value = x[sel]
    started = [i for i, f in enumerate(filters) if f._x is not None and f._t is not None]
    for i, f in enumerate(filters):
        if f._x is None or f._t is None:  # first sample: passes through and starts the state
            f._x, f._dx, f._t = value[i].copy(), np.zeros_like(value[i]), float(t[i])
    if not started:
        return out
    idx = np.asarray(started)
    states: list[tuple[np.ndarray, np.ndarray]] = []
    for i in started:
        fx, fdx = filters[i]._x, filters[i]._dx
        assert fx is not None  # started
        states.append((fx, np.zeros_like(fx) if fdx is None else fdx))
    prev_x = np.stack([x_ for x_, _ in states])
    if prev_x.shape[1:] != value.shape[1:]:
        raise ValueError(f"sample shape {value.shape[1:]} differs from the filters' {prev_x.shape[1:]}")
    prev_dx = np.stack([dx_ for _, dx_ in states])
    prev_t = np.array([filters[i]._t for i in started], dtype=np.float64)
    dt = t[idx] - prev_t
    if not np.all(dt > 0):
        raise ValueError(
            f"timestamps must increase: got {t[idx][~(dt > 0)].tolist()} after {prev_t[~(dt > 0)].tolist()}"
        )
    dt_b = dt.reshape((-1,) + (1,) * (value.ndim - 1))
    v = value[idx]
    fresh = ~np.isfinite(prev_x)
    dx = np.where(fresh, 0.0, (v - prev_x) / dt_b)
    dx_hat = _alpha(f0.d_cutoff, dt_b) * dx + (1.0 - _alpha(f0.d_cutoff, dt_b)) * np.nan_to_num(prev_dx)
    a = _alpha(f0.min_cutoff + f0.beta * np.abs(dx_hat), dt_b)
    x_hat = np.where(fresh, v, a * v + (1.0 - a) * prev_x)
    missing = ~np.isfinite(v)
    x_hat = np.where(missing, np.nan, x_hat)
    dx_hat = np.where(missing, 0.0, dx_hat)
    for k, i in enumerate(started):
        f = filters[i]
        f._x, f._dx, f._t = x_hat[k], dx_hat[k], float(t[i])
    rows = out[idx]
    rows[sel] = x_hat
    out[idx] = rows
    return out


def torso_scale(kp: np.ndarray) -> float:
    """Median shoulder-mid to hip-mid distance over the sequence (1.0 when unknown).

    Args:
        kp: ``[T, 17, C]`` keypoints (x, y[, z]) in any units.

    Returns:
        A positive length in the units of ``kp``.
    """
    pts = kp[..., :2].astype(np.float64)
    sh = (pts[:, COCO["left_shoulder"]] + pts[:, COCO["right_shoulder"]]) / 2
    hp = (pts[:, COCO["left_hip"]] + pts[:, COCO["right_hip"]]) / 2
    length = np.linalg.norm(sh - hp, axis=-1)
    length = length[np.isfinite(length) & (length > 0)]
    return float(np.median(length)) if length.size else 1.0


def smooth_sequence(
    kp: np.ndarray,
    fps: float,
    min_cutoff: float = 1.0,
    beta: float = 0.05,
    d_cutoff: float = 1.0,
    zero_phase: bool = True,
) -> np.ndarray:
    """One-Euro filters a whole ``[T, 17, 4]`` sequence in body units.

    Coordinates are divided by :func:`torso_scale` before filtering and multiplied back
    afterwards, so ``beta`` is per (torso length / s). Points with visibility 0 are treated
    as missing while filtering and are returned unchanged.

    Offline, the filter's lag can be cancelled: with ``zero_phase`` the sequence is filtered
    forward and backward in time and the two passes are averaged, so extremes (squat
    bottoms) stay where they are. At 5 fps the causal filter alone delays the squat bottoms
    of the real video by one frame (0.2 s). Live use (seed 003) needs the causal
    :class:`OneEuroFilter` frame by frame instead.

    Args:
        kp: ``[T, 17, 4]`` keypoints (x, y, z, visibility).
        fps: frame rate; frame ``i`` is at ``i / fps`` seconds.
        min_cutoff: cutoff at rest (Hz).
        beta: speed coefficient (per torso length per second).
        d_cutoff: speed-smoothing cutoff (Hz).
        zero_phase: average a forward and a backward pass (offline, no lag).

    Returns:
        float32 ``[T, 17, 4]``, visibility untouched.

    Raises:
        ValueError: on a bad shape or fps.
    """
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[-1] != 4:
        raise ValueError(f"kp must be [T, points, 4], got {kp.shape}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps={fps} must be positive")
    scale = torso_scale(kp)
    work = kp.copy()
    work[..., :3] /= scale
    hidden = work[..., 3] <= 0
    work[..., :2][hidden] = np.nan

    def one_pass(seq: np.ndarray) -> np.ndarray:
        filt = OneEuroFilter(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, channels=(0, 1, 2))
        res = np.empty_like(seq)
        for i in range(seq.shape[0]):
            res[i] = filt(seq[i], t=i / fps)
        return res

    out = one_pass(work)
    if zero_phase:
        out[..., :3] = (out[..., :3] + one_pass(work[::-1])[::-1][..., :3]) / 2.0
    out[..., :3] *= scale
    out[hidden] = kp[hidden]  # hidden points keep their raw values
    return out.astype(np.float32)
