"""Shared statistics for reported figures: 95% intervals of proportions, AUCs and bootstrapped statistics.

Pure functions over numbers and numpy arrays, used wherever a figure is reported beside its
baselines (the quality report, the recipes' evaluations):

* :func:`wilson_interval`: a proportion ``k / n`` (well behaved at 0 and n, unlike the normal one);
* :func:`hanley_mcneil_interval`: a ROC AUC from its value and the class counts alone;
* :func:`bootstrap`: a statistic (or several, evaluated on the same resample so they stay
  paired) over resampled units (items, or clusters such as questions); :func:`percentile_interval`
  turns the draws into an interval.

>>> [round(v, 3) for v in wilson_interval(8, 10)]
[0.49, 0.943]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["bootstrap", "hanley_mcneil_interval", "percentile_interval", "wilson_interval"]

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion.

    Args:
        successes: ``k``, in ``0..n``.
        n: trials.
        z: the normal quantile (1.96 for 95%).

    Returns:
        ``(lo, hi)`` inside [0, 1]; ``None`` when ``n == 0``.

    Raises:
        ValueError: when ``successes`` is outside ``0..n``.

    >>> [round(v, 3) for v in wilson_interval(24, 24)]
    [0.862, 1.0]
    >>> wilson_interval(10, 10)[1], wilson_interval(0, 10)[0]
    (1.0, 0.0)
    >>> wilson_interval(0, 0) is None
    True
    """
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be in 0..n ({n})")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the bounds at k = 0 and k = n are exactly 0 and 1 (kept so, not 1 - 1e-16)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def hanley_mcneil_interval(auc: float, n_pos: int, n_neg: int, z: float = Z95) -> tuple[float, float] | None:
    """Normal interval of a ROC AUC with the Hanley & McNeil (1982) standard error.

    Args:
        auc: the AUC in [0, 1].
        n_pos: positive items.
        n_neg: negative items.
        z: the normal quantile.

    Returns:
        ``(lo, hi)`` clipped to [0, 1]; ``None`` when a class is empty or ``auc`` is not finite.

    >>> [round(v, 3) for v in hanley_mcneil_interval(0.8, 50, 50)]
    [0.713, 0.887]
    """
    if n_pos <= 0 or n_neg <= 0 or not math.isfinite(auc):
        return None
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    half = z * math.sqrt(max(var, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def bootstrap(
    statistic: Callable[[np.ndarray], Sequence[float]], n_units: int, n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    """Draws of one or more statistics over units resampled with replacement.

    Every statistic is evaluated on the same resample, so differences between columns (a value
    and its baseline on the same items) are paired.

    Args:
        statistic: maps an index array ``[n_units]`` (with repeats) to ``k`` floats; NaN is allowed
            (e.g. kappa on a resample with one class) and is ignored by :func:`percentile_interval`.
        n_units: items (or clusters) to resample.
        n_boot: resamples.
        seed: the generator's seed (same seed, same draws).

    Returns:
        ``[n_boot, k]`` draws.

    Raises:
        ValueError: when ``n_units`` or ``n_boot`` is below 1.

    >>> x = np.array([1.0, 0.0, 1.0, 1.0])
    >>> draws = bootstrap(lambda i: [x[i].mean(), 0.5], 4, n_boot=200)
    >>> draws.shape, bool((draws[:, 1] == 0.5).all())
    ((200, 2), True)
    """
    if n_units < 1 or n_boot < 1:
        raise ValueError(f"bootstrap needs n_units >= 1 and n_boot >= 1 (got {n_units}, {n_boot})")
    rng = np.random.default_rng(seed)
    return np.array(
        [np.asarray(statistic(rng.integers(0, n_units, n_units)), dtype=np.float64) for _ in range(n_boot)]
    ).reshape(n_boot, -1)


def percentile_interval(draws: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of bootstrap draws, NaN draws left out.

    Returns:
        ``(lo, hi)``; ``None`` when no draw is finite.

    >>> percentile_interval([float("nan")]) is None
    True
    >>> percentile_interval(np.linspace(0, 1, 101))
    (0.025, 0.975)
    """
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(d, [tail, 100 - tail])
    return (round(float(lo), 12), round(float(hi), 12))
