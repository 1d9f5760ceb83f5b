"""One-Euro filter: less jitter, bounded lag, time-based behaviour, NaN handling."""

from __future__ import annotations

import numpy as np
import pytest

from physio_ray.video.layout import COCO
from physio_ray.video.smoothing import OneEuroFilter, smooth_sequence


def _hold_move_hold(fps: float, noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2 s still, one 2 s repetition twice (0.5 Hz), 2 s still; a keypoint coordinate + noise."""
    t = np.arange(0, 8, 1 / fps)
    moving = (t >= 2) & (t < 6)
    clean = np.where(moving, 0.5 + 0.1 * (1 - np.cos(2 * np.pi * 0.5 * (t - 2))), 0.5)
    return t, clean, clean + np.random.default_rng(seed).normal(0, noise, t.size)


def _filter_1d(x: np.ndarray, fps: float, **kw: float) -> np.ndarray:
    f = OneEuroFilter(channels=None, **kw)
    return np.array([f(np.array([v]), t=i / fps)[0] for i, v in enumerate(x)])


def _lag_frames(ref: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    errs = [np.mean((y[lag:] - ref[: ref.size - lag]) ** 2) for lag in range(max_lag)]
    return int(np.argmin(errs))


@pytest.mark.parametrize("fps", [5.0, 30.0, 60.0])
def test_reduces_jitter_without_lag_explosion(fps: float) -> None:
    t, clean, noisy = _hold_move_hold(fps)
    out = _filter_1d(noisy, fps, min_cutoff=0.5, beta=2.0)
    still = ((t >= 0.5) & (t < 2)) | (t >= 6.5)
    moving = (t >= 2) & (t < 6)
    rms = lambda e: float(np.sqrt(np.mean(e**2)))  # noqa: E731
    assert rms((out - clean)[still]) < 0.6 * rms((noisy - clean)[still])
    jitter_raw = np.std(np.diff((noisy - clean)[still]))
    jitter_out = np.std(np.diff((out - clean)[still]))
    assert jitter_out < 0.55 * jitter_raw
    lag_s = _lag_frames(clean[moving], out[moving], max_lag=int(fps)) / fps
    assert lag_s <= 0.2  # never the seconds of a heavy fixed low-pass
    # the speed term is what keeps the lag small: without it the same filter lags more
    no_beta = _filter_1d(noisy, fps, min_cutoff=0.5, beta=0.0)
    assert np.abs(out - clean)[moving].max() < 0.75 * np.abs(no_beta - clean)[moving].max()


def test_time_based_same_cutoff_at_different_rates() -> None:
    """A step response reaches the same level after the same time at 5 and 60 fps."""
    levels = {}
    for fps in (5.0, 60.0):
        t = np.arange(0, 2, 1 / fps)
        step = (t >= 0.4).astype(float)
        out = _filter_1d(step, fps, min_cutoff=1.0, beta=0.0)
        levels[fps] = float(np.interp(1.0, t, out))  # 0.6 s after the step
    assert levels[5.0] == pytest.approx(levels[60.0], abs=0.12)
    assert 0.6 < levels[60.0] < 1.0


def test_higher_beta_follows_fast_motion_better() -> None:
    fps = 30.0
    t = np.arange(0, 2, 1 / fps)
    ramp = np.clip((t - 0.5) * 3.0, 0, 1)  # a fast 0.33 s movement
    slow = _filter_1d(ramp, fps, min_cutoff=0.5, beta=0.0)
    fast = _filter_1d(ramp, fps, min_cutoff=0.5, beta=5.0)
    assert np.abs(fast - ramp).max() < np.abs(slow - ramp).max()


def test_nan_resets_and_visibility_passes_through() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    a = np.zeros((17, 4))
    a[:, 3] = 0.7
    f(a, t=0.0)
    b = np.ones((17, 4))
    b[0, :3] = np.nan
    out = f(b, t=0.1)
    assert np.isnan(out[0, :3]).all()
    assert np.all(out[1:, :3] < 1.0) and np.all(out[:, 3] == 1.0)
    c = np.full((17, 4), 5.0)
    out = f(c, t=0.2)
    assert out[0, 0] == 5.0  # restarted from the new sample, no stale state
    with pytest.raises(ValueError, match="increase"):
        f(c, t=0.2)


def _sequence(fps: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """17 points moving up and down together (bottoms at 2 s and 6 s) plus noise."""
    t = np.arange(0, 8, 1 / fps)
    clean = np.zeros((t.size, 17, 4))
    clean[..., 3] = 1.0
    for j in range(17):
        clean[:, j, 0] = 0.5 + 0.01 * j
        clean[:, j, 1] = 0.3 + 0.03 * j + 0.1 * np.cos(2 * np.pi * t / 4)
    clean[:, [COCO["left_hip"], COCO["right_hip"]], 1] += 0.2
    noisy = clean.copy()
    noisy[..., :3] += np.random.default_rng(seed).normal(0, 0.02, noisy[..., :3].shape)
    return clean, noisy


def test_smooth_sequence_zero_phase_keeps_extremes_in_place() -> None:
    fps = 5.0
    clean, noisy = _sequence(fps)
    out = smooth_sequence(noisy, fps, min_cutoff=1.0, beta=0.05, zero_phase=True)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert np.abs(out[..., :2] - clean[..., :2]).mean() < 0.8 * np.abs(noisy[..., :2] - clean[..., :2]).mean()
    causal = smooth_sequence(noisy, fps, min_cutoff=1.0, beta=0.05, zero_phase=False)
    ref = clean[:, :, 1].mean(axis=1)
    assert _lag_frames(ref, out[:, :, 1].mean(axis=1), 3) == 0
    assert _lag_frames(ref, causal[:, :, 1].mean(axis=1), 3) >= 1  # the causal filter lags a frame at 5 fps


def test_smooth_sequence_leaves_hidden_points_alone() -> None:
    _, noisy = _sequence(30.0)
    noisy[10:20, 3, 3] = 0.0
    out = smooth_sequence(noisy, 30.0)
    np.testing.assert_array_equal(out[10:20, 3], noisy[10:20, 3].astype(np.float32))
    np.testing.assert_array_equal(out[..., 3], noisy[..., 3].astype(np.float32))
