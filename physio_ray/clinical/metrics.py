"""Clinical-validation metrics per fold and pooled, and a markdown table of several predictors.

Positive class = ERROR (the seed's "true positive" is a caught error):

* ``accuracy``: predictions whose parsed verdict equals the truth / all (unparseable = wrong);
* ``tp_rate``: caught errors / error cases; ``tn_rate``: validated correct cases / correct cases;
* ``mean_reward``: mean :func:`~physio_ray.clinical.reward.clinical_reward`;
* ``missed_critical``: critical error cases not caught (unparseable included); seed 002's hard
  safety constraint is that this is 0;
* ``balanced_accuracy``: ``(tp_rate + tn_rate) / 2``; ``critical_recall``: caught critical errors /
  critical error cases; ``false_alarm_rate``: correct cases called ERROR / correct cases;
* ``predicted_label_counts``: how often each verdict (and ``unparseable``) was answered: one
  non-zero count means the model gave one answer for every scenario.

Example:
    >>> sc = [{"id": "a", "error_type": "overtreatment", "severity": "critical"},
    ...       {"id": "b", "error_type": "none", "severity": "none"}]
    >>> m = compute_metrics(["CORRECT", "CORRECT"], sc)
    >>> (m.accuracy, m.tp_rate, m.tn_rate, m.mean_reward, m.missed_critical)
    (0.5, 0.0, 1.0, -0.75, 1)
    >>> (m.balanced_accuracy, m.critical_recall, m.predicted_label_counts)
    (0.5, 0.0, {'ERROR': 0, 'CORRECT': 2, 'unparseable': 0})
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from physio_ray.clinical.parsing import VERDICT_CORRECT, VERDICT_ERROR
from physio_ray.clinical.reward import RewardTable, reward_outcome
from physio_ray.clinical.splits import Fold

__all__ = [
    "METRIC_COLUMNS",
    "CVResult",
    "ClinicalMetrics",
    "compute_metrics",
    "evaluate_folds",
    "metrics_dict",
    "render_markdown",
]


@dataclass(frozen=True)
class ClinicalMetrics:
    """Metrics of one set of predictions.

    Attributes:
        n: predictions scored.
        n_error_cases: scenarios whose truth is ERROR.
        n_correct_cases: scenarios whose truth is CORRECT.
        accuracy: share of right verdicts (NaN when ``n == 0``).
        tp_rate: caught / error cases (NaN without error cases).
        tn_rate: validated / correct cases (NaN without correct cases).
        mean_reward: mean seed-002 reward (NaN when ``n == 0``).
        missed_critical: critical error cases not caught.
        missed_errors: error cases not caught, any severity.
        false_alarms: correct cases called ERROR.
        unparseable: outputs without a single readable verdict.
        n_critical: critical error cases.
        balanced_accuracy: ``(tp_rate + tn_rate) / 2`` (NaN when a class is absent).
        critical_recall: caught critical errors / critical error cases (NaN without any).
        false_alarm_rate: false alarms / correct cases (NaN without correct cases).
        predicted_label_counts: ``{"ERROR": k, "CORRECT": m, "unparseable": u}``.
    """

    n: int
    n_error_cases: int
    n_correct_cases: int
    accuracy: float
    tp_rate: float
    tn_rate: float
    mean_reward: float
    missed_critical: int
    missed_errors: int
    false_alarms: int
    unparseable: int
    n_critical: int = 0
    balanced_accuracy: float = float("nan")
    critical_recall: float = float("nan")
    false_alarm_rate: float = float("nan")
    predicted_label_counts: dict[str, int] = field(default_factory=dict)


UNPARSEABLE = "unparseable"


def _raw(scenario: Any) -> Mapping[str, Any]:
    return scenario.raw if hasattr(scenario, "raw") else scenario


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def compute_metrics(
    predictions: Sequence[str], scenarios: Sequence[Any], table: RewardTable | None = None
) -> ClinicalMetrics:
    """Scores predictions against scenarios, position by position.

    Args:
        predictions: raw model outputs, one per scenario.
        scenarios: raw scenario dicts or :class:`~physio_ray.clinical.records.Scenario` objects.
        table: reward values (default: the seed's).

    Returns:
        The :class:`ClinicalMetrics`.

    Raises:
        ValueError: lengths differ, or a scenario is malformed.
    """
    if len(predictions) != len(scenarios):
        raise ValueError(f"{len(predictions)} predictions for {len(scenarios)} scenarios")
    outcomes = [reward_outcome(p, _raw(s), table) for p, s in zip(predictions, scenarios, strict=True)]
    n_err = sum(o.truth == "ERROR" for o in outcomes)
    caught = sum(o.outcome == "caught" for o in outcomes)
    validated = sum(o.outcome == "correct_validation" for o in outcomes)
    n = len(outcomes)
    critical = [o for o in outcomes if o.truth == "ERROR" and o.severity == "critical"]
    missed_critical = sum(o.outcome != "caught" for o in critical)
    false_alarms = sum(o.outcome == "false_alarm" for o in outcomes)
    tp_rate, tn_rate = _ratio(caught, n_err), _ratio(validated, n - n_err)
    return ClinicalMetrics(
        n=n,
        n_error_cases=n_err,
        n_correct_cases=n - n_err,
        accuracy=_ratio(caught + validated, n),
        tp_rate=tp_rate,
        tn_rate=tn_rate,
        mean_reward=sum(o.reward for o in outcomes) / n if n else float("nan"),
        missed_critical=missed_critical,
        missed_errors=sum(o.truth == "ERROR" and o.outcome != "caught" for o in outcomes),
        false_alarms=false_alarms,
        unparseable=sum(o.outcome == "unparseable" for o in outcomes),
        n_critical=len(critical),
        balanced_accuracy=(tp_rate + tn_rate) / 2,
        critical_recall=_ratio(len(critical) - missed_critical, len(critical)),
        false_alarm_rate=_ratio(false_alarms, n - n_err),
        predicted_label_counts={
            label: sum((o.predicted or UNPARSEABLE) == label for o in outcomes)
            for label in (VERDICT_ERROR, VERDICT_CORRECT, UNPARSEABLE)
        },
    )


@dataclass(frozen=True)
class CVResult:
    """One predictor's metrics over folds.

    Attributes:
        predictor: name shown in tables.
        folds: ``(fold name, metrics)`` per fold, in fold order.
        pooled: metrics over all test predictions of all folds together.
    """

    predictor: str
    folds: tuple[tuple[str, ClinicalMetrics], ...]
    pooled: ClinicalMetrics

    def fold_mean(self, metric: str) -> tuple[float, float]:
        """Mean and sample standard deviation of ``metric`` over folds (NaN folds skipped)."""
        vals = [float(getattr(m, metric)) for _, m in self.folds]
        vals = [v for v in vals if not math.isnan(v)]
        if not vals:
            return float("nan"), float("nan")
        return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def evaluate_folds(
    predictions: Mapping[str, str],
    scenarios: Sequence[Any],
    folds: Sequence[Fold],
    predictor: str = "model",
    table: RewardTable | None = None,
) -> CVResult:
    """Metrics of ``predictions`` on each fold's test set and pooled over folds.

    Args:
        predictions: ``{scenario_id: raw output}``; every test id of every fold needs an entry
            (an output that failed upstream should be passed as ``""``: it scores as unparseable).
        scenarios: scenarios (raw dicts with ``id`` or typed) covering the folds' ids.
        folds: from :mod:`physio_ray.clinical.splits`.
        predictor: name for tables.
        table: reward values.

    Returns:
        The :class:`CVResult`.

    Raises:
        ValueError: a test id has no prediction or no scenario.
    """
    by_id = {str(_raw(s).get("id")): s for s in scenarios}
    needed = [x for f in folds for x in f.test_ids]
    missing_pred = sorted({x for x in needed if x not in predictions})
    missing_sc = sorted({x for x in needed if x not in by_id})
    if missing_pred or missing_sc:
        raise ValueError(f"{predictor}: no prediction for {missing_pred}; no scenario for {missing_sc}")
    per_fold = tuple(
        (f.name, compute_metrics([predictions[x] for x in f.test_ids], [by_id[x] for x in f.test_ids], table))
        for f in folds
    )
    pooled = compute_metrics([predictions[x] for x in needed], [by_id[x] for x in needed], table)
    return CVResult(predictor, per_fold, pooled)


# (attribute, header, format)
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "accuracy", "{:.3f}"),
    ("tp_rate", "TP rate", "{:.3f}"),
    ("tn_rate", "TN rate", "{:.3f}"),
    ("mean_reward", "mean reward", "{:+.3f}"),
    ("missed_critical", "missed critical", "{:d}"),
    ("unparseable", "unparseable", "{:d}"),
)


def _fmt(value: float | int, fmt: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return fmt.format(value)


def render_markdown(results: Sequence[CVResult], title: str | None = None) -> str:
    """One markdown table: a row per fold, a fold-mean row and a pooled row; each cell holds
    every predictor's value, ``a / b / ...`` in the order of ``results`` (e.g. model / shortcut).

    Args:
        results: predictors evaluated on the same folds.
        title: optional heading line.

    Returns:
        Markdown text.

    Raises:
        ValueError: results are empty or were computed on different folds.
    """
    if not results:
        raise ValueError("render_markdown needs at least one result")
    names = [name for name, _ in results[0].folds]
    if any([name for name, _ in r.folds] != names for r in results):
        raise ValueError("all results must be evaluated on the same folds")
    who = " / ".join(r.predictor for r in results)
    header = ["fold", "n", *(h for _, h, _ in METRIC_COLUMNS)]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += [f"Cells: {who}.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, name in enumerate(names):
        ms = [r.folds[i][1] for r in results]
        cells = [" / ".join(_fmt(getattr(m, a), f) for m in ms) for a, _, f in METRIC_COLUMNS]
        lines.append(f"| {name} | {ms[0].n} | " + " | ".join(cells) + " |")
    if len(names) > 1:
        cells = []
        for a, _, f in METRIC_COLUMNS:
            parts = []
            for r in results:
                mean, sd = r.fold_mean(a)
                ff = f.replace(":d", ":.1f")
                parts.append("n/a" if math.isnan(mean) else f"{ff.format(mean)}±{ff.replace('+', '').format(sd)}")
            cells.append(" / ".join(parts))
        lines.append("| fold mean±sd | | " + " | ".join(cells) + " |")
    pooled = [r.pooled for r in results]
    cells = [" / ".join(_fmt(getattr(m, a), f) for m in pooled) for a, _, f in METRIC_COLUMNS]
    lines.append(f"| **pooled** | {pooled[0].n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def metrics_dict(m: ClinicalMetrics) -> dict[str, float | int]:
    """The metrics as a plain dict (for logging to Ray Train / Tune reports)."""
    return {f.name: getattr(m, f.name) for f in fields(m)}
