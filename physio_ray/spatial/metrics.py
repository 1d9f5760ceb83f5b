"""Evaluation of pointing answers: position-class accuracy, distance to region, instrument F1.

:func:`spatial_metrics` scores predictions against the same targets the reward uses
(``{"instrument", "position_class"}``) and returns a plain dict; :func:`render_markdown`
turns it into tables. Distances are in 0-100 units (percent of the image side).

Coordinate error caveat: a PitVQA target is a region, so ``coord_mae_to_region_centre`` is
the mean absolute x/y error to the region's centroid, an arbitrary representative point.
It is reported for comparison with the seed's "coordinate MAE" only; ``mean_distance_to_region``
(0 inside the region) is the meaningful figure. With rendered data (true points) the MAE is real.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from physio_ray.spatial.pitvqa import NO_VISIBLE, region_name
from physio_ray.spatial.regions import REGION_CENTRES, position_class_of
from physio_ray.spatial.rewards import NONE_TARGETS, spatial_reward_breakdown

__all__ = ["MAE_CAVEAT", "instrument_f1", "render_markdown", "spatial_metrics"]

UNPARSED = "<unparsed>"
UNKNOWN = "<unknown>"
MAE_CAVEAT = (
    "coord_mae_to_region_centre is measured against region centroids, not true tip positions "
    "(PitVQA labels regions only); use mean_distance_to_region for localisation quality"
)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def instrument_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[float, dict[str, dict[str, float]]]:
    """Macro-F1 over the classes present in ``y_true`` (predicted-only labels count as errors).

    Args:
        y_true: ``[n]`` target labels.
        y_pred: ``[n]`` predicted labels (any strings, e.g. ``"<unparsed>"``).

    Returns:
        ``(macro_f1, {label: {"precision", "recall", "f1", "support"}})``.

    >>> round(instrument_f1(["a", "a", "b"], ["a", "b", "b"])[0], 4)
    0.6667
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    per: dict[str, dict[str, float]] = {}
    for label in sorted(set(y_true)):
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == label and p == label)
        n_pred = sum(1 for p in y_pred if p == label)
        support = sum(1 for t in y_true if t == label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    macro = _mean([v["f1"] for v in per.values()]) or 0.0
    return macro, per


def spatial_metrics(predictions: Sequence[str], targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Scores ``[n]`` answers against ``[n]`` targets.

    Args:
        predictions: model outputs.
        targets: ``{"instrument": CSV name or "no_visible_instrument", "position_class": 1-5 or None}``.

    Returns:
        A dict with ``n``, ``n_instrument_targets``, ``n_none_targets``, ``parse_rate`` (share of
        instrument targets answered with a well-formed point), ``quadrant_accuracy`` (position
        class right; unparsed counts as wrong), ``within_region_rate``, ``mean_distance_to_region``
        and ``coord_mae_to_region_centre`` (over parsed points; see :data:`MAE_CAVEAT`),
        ``none_accuracy``, ``instrument_macro_f1`` (classes in the targets, "no_visible_instrument"
        included), ``mean_reward``, ``per_class`` (position class -> the same figures) and
        ``per_instrument`` (label -> precision/recall/f1/support). Figures without data are ``None``.

    Raises:
        ValueError: when lengths differ or a target is invalid.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    rewards, y_true, y_pred = [], [], []
    none_hits: list[float] = []
    per_class: dict[int, dict[str, list[float]]] = {
        k: {"hit": [], "parsed": [], "inside": [], "dist": [], "mae": []} for k in REGION_CENTRES
    }
    for text, target in zip(predictions, targets, strict=True):
        b = spatial_reward_breakdown(text, target)
        rewards.append(b.total)
        pred_label = b.predicted_instrument or (UNKNOWN if b.point else UNPARSED)
        is_none = str(target["instrument"]).strip().lower() in NONE_TARGETS
        y_true.append(NO_VISIBLE if is_none else str(target["instrument"]))
        y_pred.append(pred_label)
        if is_none:
            none_hits.append(b.total)
            continue
        cls = int(target["position_class"])  # validated by spatial_reward_breakdown
        acc = per_class[cls]
        acc["parsed"].append(1.0 if b.point else 0.0)
        acc["hit"].append(1.0 if b.point and position_class_of(b.point.x, b.point.y) == cls else 0.0)
        acc["inside"].append(1.0 if b.distance_to_region == 0.0 else 0.0)
        if b.point is not None and b.distance_to_region is not None:
            cx, cy = REGION_CENTRES[cls]
            acc["dist"].append(b.distance_to_region)
            acc["mae"].append((abs(b.point.x - cx) + abs(b.point.y - cy)) / 2)

    def summary(acc: dict[str, list[float]]) -> dict[str, Any]:
        return {
            "n": len(acc["hit"]),
            "parse_rate": _mean(acc["parsed"]),
            "quadrant_accuracy": _mean(acc["hit"]),
            "within_region_rate": _mean(acc["inside"]),
            "mean_distance_to_region": _mean(acc["dist"]),
            "coord_mae_to_region_centre": _mean(acc["mae"]),
        }

    pooled = {
        key: [v for acc in per_class.values() for v in acc[key]] for key in ("hit", "parsed", "inside", "dist", "mae")
    }
    macro, per_instrument = instrument_f1(y_true, y_pred)
    return {
        "n": len(predictions),
        "n_instrument_targets": len(pooled["hit"]),
        "n_none_targets": len(none_hits),
        **{k: v for k, v in summary(pooled).items() if k != "n"},
        "coord_mae_caveat": MAE_CAVEAT,
        "none_accuracy": _mean(none_hits),
        "instrument_macro_f1": macro if y_true else None,
        "mean_reward": _mean(rewards),
        "per_class": {str(k): {"region": region_name(k), **summary(acc)} for k, acc in per_class.items()},
        "per_instrument": per_instrument,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_markdown(metrics: Mapping[str, Any]) -> str:
    """Markdown summary + per-class and per-instrument tables of :func:`spatial_metrics` output."""
    cols = (
        "n",
        "parse_rate",
        "quadrant_accuracy",
        "within_region_rate",
        "mean_distance_to_region",
        "coord_mae_to_region_centre",
    )  # per position class; the summary adds the pooled-only figures
    keys = (*cols, "none_accuracy", "instrument_macro_f1", "mean_reward")
    lines = ["| metric | value |", "|---|---|", *(f"| {k} | {_fmt(metrics.get(k))} |" for k in keys), ""]
    lines += [f"_{metrics.get('coord_mae_caveat', MAE_CAVEAT)}_", ""]
    lines += ["| class | region | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for cls, row in metrics.get("per_class", {}).items():
        lines.append(f"| {cls} | {row['region']} | " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
    lines += ["", "| instrument | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, row in metrics.get("per_instrument", {}).items():
        lines.append(
            f"| {name} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['f1'])} | {row['support']} |"
        )
    return "\n".join(lines) + "\n"
