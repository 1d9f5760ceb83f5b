"""Headline figures of a spatial model with 95% intervals, and the baselines they are read beside.

Predictions and targets are plain dicts ``{"instrument", "position_class", "point"}`` (``point``
an ``(x, y)`` on the 0-100 scale or ``None``; a "no instrument" target has instrument
``"no_visible_instrument"`` and no class/point). :func:`answer_fields` turns a VLM's text answer
into that shape, so the CNN probe and the VLM are scored by the same code.

* ``quadrant_accuracy``: over targets with an instrument, the predicted point's position class
  equals the target's (no point counts as wrong). Wilson 95% interval.
* ``coord_mae``: over targets with a true point (rendered frames), ``(|dx| + |dy|) / 2`` between
  predicted and true tip; an answer without a point is scored as if it pointed at the frame
  centre ``(50, 50)`` (so a model cannot lower its error by not answering). Bootstrap 95% interval.
* ``instrument_f1``: macro-F1 over the target labels, "no_visible_instrument" included
  (:func:`physio_ray.spatial.metrics.instrument_f1`). Bootstrap 95% interval.

Baselines (:func:`baseline_scores`), fitted on the training targets only: ``majority_class``
(the most common instrument, pointing at the centroid of the most common region, which is also
the "centre of the most common region" coordinate baseline).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from physio_ray.spatial.metrics import instrument_f1
from physio_ray.spatial.pitvqa import NO_VISIBLE
from physio_ray.spatial.regions import REGION_CENTRES, position_class_of
from physio_ray.spatial.rewards import parse_points, says_no_instrument
from physio_ray.stats import bootstrap, percentile_interval, wilson_interval

__all__ = ["HEADLINE", "answer_fields", "baseline_scores", "headline_scores", "majority_prediction"]

HEADLINE = ("quadrant_accuracy", "coord_mae", "instrument_f1")
UNPARSED = "<unparsed>"
FALLBACK_POINT = (50.0, 50.0)


def answer_fields(text: str) -> dict[str, Any]:
    """A text answer as ``{"instrument", "position_class", "point"}`` (first well-formed point).

    >>> answer_fields("<point x='80' y='10'>suction</point> in the top-right region.")
    {'instrument': 'suction', 'position_class': 2, 'point': (80.0, 10.0)}
    """
    from physio_ray.spatial.rewards import canonical_instrument

    points = parse_points(text)
    if points:
        p = points[0]
        return {
            "instrument": canonical_instrument(p.label) or UNPARSED,
            "position_class": position_class_of(p.x, p.y),
            "point": (p.x, p.y),
        }
    if says_no_instrument(text):
        return {"instrument": NO_VISIBLE, "position_class": None, "point": None}
    return {"instrument": UNPARSED, "position_class": None, "point": None}


def _bootstrap(values: Sequence[Any], stat: Any, n_boot: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """Percentile 95% interval of ``stat`` over resampled ``values`` (:func:`physio_ray.stats.bootstrap`)."""
    if not values:
        return None
    draws = bootstrap(lambda idx: [stat([values[i] for i in idx])], len(values), n_boot, seed)
    return percentile_interval(draws[:, 0])


def _f1_of(pairs: Sequence[tuple[str, str]]) -> float:
    return instrument_f1([t for t, _ in pairs], [p for _, p in pairs])[0]


def headline_scores(predictions: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The three headline figures with ``n`` and 95% intervals (see the module docstring).

    Args:
        predictions: ``[n]`` dicts ``{"instrument", "position_class", "point"}``.
        targets: ``[n]`` dicts of the same shape (``point`` may be ``None`` for PitVQA rows).

    Returns:
        ``{"quadrant_accuracy", "quadrant_accuracy_ci", "n_quadrant", "coord_mae", "coord_mae_ci",
        "n_coord", "instrument_f1", "instrument_f1_ci", "n"}`` (figures ``None`` without data).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    hits, errors, labels = [], [], []
    for pred, tgt in zip(predictions, targets, strict=True):
        labels.append((str(tgt["instrument"]), str(pred.get("instrument") or UNPARSED)))
        if tgt["instrument"] == NO_VISIBLE or tgt.get("position_class") is None:
            continue
        point = pred.get("point")
        hits.append(1 if point is not None and position_class_of(*point) == int(tgt["position_class"]) else 0)
        if tgt.get("point") is not None:
            px, py = point if point is not None else FALLBACK_POINT
            tx, ty = tgt["point"]
            errors.append((abs(px - tx) + abs(py - ty)) / 2)
    mean = (lambda v: float(np.mean(v))) if errors else None
    return {
        "n": len(targets),
        "quadrant_accuracy": sum(hits) / len(hits) if hits else None,
        "quadrant_accuracy_ci": wilson_interval(sum(hits), len(hits)),
        "n_quadrant": len(hits),
        "coord_mae": float(np.mean(errors)) if errors else None,
        "coord_mae_ci": _bootstrap(errors, mean) if mean else None,
        "n_coord": len(errors),
        "instrument_f1": _f1_of(labels) if labels else None,
        "instrument_f1_ci": _bootstrap(labels, _f1_of) if labels else None,
    }


def majority_prediction(train_targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The most common train instrument (instrument frames) at the centroid of the most common region."""
    with_instrument = [t for t in train_targets if t["instrument"] != NO_VISIBLE and t.get("position_class")]
    if not with_instrument:
        raise ValueError("baseline: the training targets have no instrument frame")
    instrument = Counter(t["instrument"] for t in with_instrument).most_common(1)[0][0]
    cls = Counter(int(t["position_class"]) for t in with_instrument).most_common(1)[0][0]
    return {"instrument": instrument, "position_class": cls, "point": REGION_CENTRES[cls]}


def baseline_scores(
    train_targets: Sequence[Mapping[str, Any]], eval_targets: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Baselines fitted on ``train_targets``, scored on ``eval_targets``.

    Returns:
        ``{"quadrant_accuracy": majority class, "coord_mae": centre of the most common region,
        "instrument_f1": majority class, "majority_class": full :func:`headline_scores`,
        "majority_prediction": the constant answer}``.
    """
    constant = majority_prediction(train_targets)
    scores = headline_scores([constant] * len(eval_targets), eval_targets)
    return {
        **{k: scores[k] for k in HEADLINE},
        "majority_class": scores,
        "majority_prediction": {**constant, "point": list(constant["point"])},
    }
