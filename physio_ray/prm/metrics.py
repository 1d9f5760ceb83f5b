"""Pure PRM metrics: solution scores aggregated from step scores, and step-label ROC AUC.

A solution's score aggregates its step scores ``P(+)``: ``min`` (Med-PRM's choice: a chain
is as good as its weakest step), ``mean``, ``last`` (the final step only) or ``product``
(all steps right). Training, scoring, Best-of-N and the configs all read these from here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

AGGREGATIONS = ("min", "mean", "last", "product")


def aggregate(step_scores: Sequence[float] | np.ndarray, how: str = "min") -> float:
    """Solution score from step scores.

    Args:
        step_scores: P(+) per step.
        how: one of ``AGGREGATIONS``.

    Returns:
        The score in [0, 1]; NaN for an empty list.

    Raises:
        ValueError: on an unknown aggregation.

    >>> [round(aggregate([0.9, 0.5, 0.8], h), 3) for h in AGGREGATIONS]
    [0.5, 0.733, 0.8, 0.36]
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation {how!r} is not one of {AGGREGATIONS}")
    s = np.asarray(step_scores, dtype=np.float64)
    if s.size == 0:
        return math.nan
    if how == "min":
        return float(s.min())
    if how == "mean":
        return float(s.mean())
    if how == "last":
        return float(s[-1])
    return float(np.exp(np.log(np.clip(s, 1e-12, 1.0)).sum()))


def step_auc(
    scores: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray, threshold: float = 0.5
) -> float:
    """ROC AUC of step scores against step labels (label >= ``threshold`` is positive).

    Returns:
        The AUC, or NaN (logged) when only one class is present.

    >>> step_auc([0.9, 0.8, 0.3, 0.6], [1, 1, 0, 0])
    1.0
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=np.float64) >= threshold
    s = np.asarray(scores, dtype=np.float64)
    if y.all() or not y.any():
        logger.warning("step AUC undefined: all %d labels are %s", y.size, "positive" if y.all() else "negative")
        return math.nan
    return float(roc_auc_score(y, s))
