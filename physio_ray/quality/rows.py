"""One row of the quality report, and the rule that says whether a figure shows learning.

A row is a plain dict with the keys of :data:`ROW_KEYS` (``component``, ``metric``, ``split``,
``n``, ``value``, ``ci95``, ``baselines``, ``learned``) plus ``rule`` (how ``learned`` was
decided), ``better`` (``"higher"`` or ``"lower"``) and, where they apply, ``missing`` (why the
value is null, naming the file looked for), ``note`` and ``references`` (non-trivial comparison
points, such as an oracle or another judge, shown but never used by the rule).

The rule (:func:`decide`): a figure is *learned* only when it beats its best baseline (the
highest, or the lowest for a ``"lower"`` metric) and the interval of the gain excludes zero:

* ``paired_bootstrap``: the source has per-item data, so value and best baseline are computed on
  the same resamples and the gain's 95% percentile interval must exclude 0;
* ``ci_vs_best_baseline``: only aggregates exist, so the value's own 95% interval must lie
  entirely beyond the best baseline (the baseline taken as exact);
* ``no_baseline`` / ``no_interval`` / ``missing``: nothing to compare with, never learned;
* ``too_few_items``: fewer than :data:`MIN_ITEMS` items: a bootstrap over so few cannot bound
  anything (over one item every resample is the same, and its interval is a point), never learned.

>>> r = make_row("policy", "solution_accuracy", "demo", 40, 0.45, (0.30, 0.60), {"chance": 0.25})
>>> r["learned"], r["rule"]
(True, 'ci_vs_best_baseline')
>>> make_row("policy", "solution_accuracy", "demo", 40, 0.30, (0.18, 0.45), {"chance": 0.25})["learned"]
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MIN_ITEMS", "ROW_KEYS", "RULES", "best_baseline", "decide", "make_row", "missing_row"]

ROW_KEYS = ("component", "metric", "split", "n", "value", "ci95", "baselines", "learned")
RULES = ("paired_bootstrap", "ci_vs_best_baseline", "no_baseline", "no_interval", "missing", "too_few_items")
MIN_ITEMS = 10  # fewer items than this: no row is called learned


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def best_baseline(baselines: Mapping[str, float | None], better: str = "higher") -> tuple[str, float] | None:
    """The strongest baseline (highest, or lowest when ``better == "lower"``); ``None`` without one.

    >>> best_baseline({"chance": 0.25, "majority": 0.4, "broken": None})
    ('majority', 0.4)
    >>> best_baseline({"centre": 20.0, "zero": 30.0}, better="lower")
    ('centre', 20.0)
    """
    usable = [(k, float(v)) for k, v in baselines.items() if v is not None and _finite(v)]
    if not usable:
        return None
    pick = min if better == "lower" else max
    return pick(usable, key=lambda kv: kv[1])


def decide(
    value: float | None,
    ci95: tuple[float, float] | None,
    baselines: Mapping[str, float | None],
    better: str = "higher",
    gain_ci95: tuple[float, float] | None = None,
    n: int | None = None,
) -> tuple[bool, str]:
    """Whether ``value`` beats its best baseline beyond the interval, and the rule used.

    Args:
        value: the figure (``None``: missing).
        ci95: its 95% interval.
        baselines: name -> value on the same items.
        better: ``"higher"`` or ``"lower"``.
        gain_ci95: the paired-bootstrap interval of ``value - best baseline`` (sign as for
            ``better == "higher"``, i.e. positive means better), when per-item data exist.
        n: items behind ``value`` (``None``: unknown, not checked).

    Returns:
        ``(learned, rule)`` with ``rule`` one of :data:`RULES`.

    >>> decide(0.9, (0.8, 0.95), {"constant": 0.5}, gain_ci95=(-0.01, 0.3))
    (False, 'paired_bootstrap')
    >>> decide(10.0, (8.0, 12.0), {"centre": 20.0}, better="lower")
    (True, 'ci_vs_best_baseline')
    >>> decide(1.0, (1.0, 1.0), {"always_correct": 0.0}, gain_ci95=(1.0, 1.0), n=1)
    (False, 'too_few_items')
    """
    if better not in ("higher", "lower"):
        raise ValueError(f"better={better!r} must be 'higher' or 'lower'")
    if not _finite(value):
        return False, "missing"
    best = best_baseline(baselines, better)
    if best is None:
        return False, "no_baseline"
    if n is not None and n < MIN_ITEMS:
        return False, "too_few_items"
    sign = 1.0 if better == "higher" else -1.0
    beats = sign * (float(value) - best[1]) > 0  # type: ignore[arg-type]
    if gain_ci95 is not None:
        return bool(beats and gain_ci95[0] > 0), "paired_bootstrap"
    if ci95 is None:
        return False, "no_interval"
    lo, hi = ci95
    return bool(beats and (lo > best[1] if better == "higher" else hi < best[1])), "ci_vs_best_baseline"


def _num(v: Any) -> float | None:
    return float(v) if _finite(v) else None


def make_row(
    component: str,
    metric: str,
    split: str,
    n: int | None,
    value: float | None,
    ci95: tuple[float, float] | None,
    baselines: Mapping[str, float | None],
    *,
    better: str = "higher",
    gain_ci95: tuple[float, float] | None = None,
    note: str = "",
    references: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """A report row with ``learned`` and ``rule`` decided by :func:`decide` (non-finite values -> null).

    Args:
        component: the learned part (``"judge"``, ``"prm"``, ...).
        metric: what was measured.
        split: which items (and how they were held out).
        n: items behind ``value``.
        value: the figure.
        ci95: its 95% interval.
        baselines: trivial predictors on the same items (name -> value).
        better: ``"higher"`` or ``"lower"``.
        gain_ci95: paired interval of the gain over the best baseline, when per-item data exist.
        note: a caveat shown in the markdown.
        references: non-trivial comparison points, shown only.

    Returns:
        The row dict.
    """
    learned, rule = decide(value, ci95, baselines, better, gain_ci95, n)
    row: dict[str, Any] = {
        "component": component,
        "metric": metric,
        "split": split,
        "n": int(n) if n is not None else None,
        "value": _num(value),
        "ci95": [float(ci95[0]), float(ci95[1])] if ci95 is not None and _finite(value) else None,
        "baselines": {k: _num(v) for k, v in baselines.items()},
        "learned": learned,
        "rule": rule,
        "better": better,
    }
    if gain_ci95 is not None:
        best = best_baseline(baselines, better)
        row["gain_vs"] = best[0] if best else None
        row["gain_ci95"] = [float(gain_ci95[0]), float(gain_ci95[1])]
    if references:
        row["references"] = {k: _num(v) for k, v in references.items()}
    if note:
        row["note"] = note
    return row


def missing_row(component: str, metric: str, split: str, reason: str, better: str = "higher") -> dict[str, Any]:
    """A row whose data is missing: value null, learned false, and why (naming the file looked for).

    >>> missing_row("prm", "step_auc", "test", "outputs/x/metrics.json: not found")["missing"]
    'outputs/x/metrics.json: not found'
    """
    return {
        "component": component,
        "metric": metric,
        "split": split,
        "n": None,
        "value": None,
        "ci95": None,
        "baselines": {},
        "learned": False,
        "rule": "missing",
        "better": better,
        "missing": reason,
    }
