"""The image_type shortcut: the baseline every clinical model result must be shown beside.

In the treatment-matching scenarios every ``negative`` image comes with a wrong treatment and
every ``positive`` image with a right one, so "negative -> ERROR, positive -> CORRECT" scores
24/24 without reading the finding or the treatment (21/24 on the ICD scenarios). A model that
sees ``image_type`` (or an image embedding that separates normal from abnormal pictures, or a
mask's drawn area) can learn this shortcut instead of clinical reasoning. Its numbers are the
bar: a model below them has learned less than the data's leak.

Example:
    >>> shortcut_verdict({"image_type": "negative"})
    'ERROR'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from physio_ray.clinical.metrics import CVResult, evaluate_folds, render_markdown
from physio_ray.clinical.parsing import VERDICT_CORRECT, VERDICT_ERROR, Verdict
from physio_ray.clinical.reward import RewardTable, scenario_truth
from physio_ray.clinical.splits import Fold

__all__ = [
    "MAJORITY_NAME",
    "SHORTCUT_NAME",
    "compare_with_shortcut",
    "majority_predictions",
    "report_with_shortcut",
    "shortcut_predictions",
    "shortcut_verdict",
]

SHORTCUT_NAME = "shortcut"
MAJORITY_NAME = "majority_class"


def _field(scenario: Any, name: str) -> Any:
    return getattr(scenario, name) if hasattr(scenario, name) else scenario[name]


def shortcut_verdict(scenario: Any) -> Verdict:
    """``ERROR`` for a ``negative`` image, ``CORRECT`` otherwise, ignoring all text.

    Args:
        scenario: a raw scenario dict or a :class:`~physio_ray.clinical.records.Scenario`.

    Returns:
        The shortcut's verdict.

    Raises:
        ValueError: ``image_type`` is neither ``negative`` nor ``positive``.
    """
    image_type = _field(scenario, "image_type")
    if image_type not in ("negative", "positive"):
        raise ValueError(f"image_type={image_type!r}; expected 'negative' or 'positive'")
    return VERDICT_ERROR if image_type == "negative" else VERDICT_CORRECT


def shortcut_predictions(scenarios: Sequence[Any]) -> dict[str, str]:
    """``{scenario_id: "ERROR" | "CORRECT"}`` from the shortcut, for every scenario."""
    return {str(_field(s, "id")): shortcut_verdict(s) for s in scenarios}


def majority_predictions(scenarios: Sequence[Any], folds: Sequence[Fold]) -> dict[str, str]:
    """Per fold, the most common verdict of its *training* scenarios, answered for its test ids.

    A tie answers ``ERROR`` (missing an error costs more than a false alarm in seed 002's reward).

    Args:
        scenarios: raw scenario dicts or typed scenarios covering the folds' ids.
        folds: the folds.

    Returns:
        ``{scenario_id: "ERROR" | "CORRECT"}`` for every test id of every fold.

    >>> sc = [{"id": i, "error_type": e, "severity": s} for i, e, s in
    ...       [("a", "none", "none"), ("b", "none", "none"), ("c", "wrong_drug", "critical")]]
    >>> majority_predictions(sc, [Fold(0, "f0", ("a", "b"), ("c",))])
    {'c': 'CORRECT'}
    """
    truth = {str(_field(s, "id")): scenario_truth(getattr(s, "raw", s))[0] for s in scenarios}
    out: dict[str, str] = {}
    for fold in folds:
        n_error = sum(truth[i] == VERDICT_ERROR for i in fold.train_ids)
        verdict = VERDICT_ERROR if 2 * n_error >= len(fold.train_ids) else VERDICT_CORRECT
        out.update({i: verdict for i in fold.test_ids})
    return out


def compare_with_shortcut(
    predictions: Mapping[str, str],
    scenarios: Sequence[Any],
    folds: Sequence[Fold],
    predictor: str = "model",
    table: RewardTable | None = None,
) -> tuple[CVResult, CVResult]:
    """Evaluates a model and the shortcut on the same folds.

    Args:
        predictions: ``{scenario_id: raw model output}`` covering every fold's test ids.
        scenarios: the scenarios.
        folds: the folds.
        predictor: the model's name in tables.
        table: reward values.

    Returns:
        ``(model_result, shortcut_result)``.

    Raises:
        ValueError: predictions missing for some test ids.
    """
    model = evaluate_folds(predictions, scenarios, folds, predictor, table)
    base = evaluate_folds(shortcut_predictions(scenarios), scenarios, folds, SHORTCUT_NAME, table)
    return model, base


def report_with_shortcut(
    predictions: Mapping[str, str],
    scenarios: Sequence[Any],
    folds: Sequence[Fold],
    predictor: str = "model",
    title: str | None = None,
    table: RewardTable | None = None,
) -> str:
    """Markdown table of a model's metrics with the shortcut's beside each (``model / shortcut``).

    Args:
        predictions: ``{scenario_id: raw model output}``.
        scenarios: the scenarios.
        folds: the folds.
        predictor: the model's name.
        title: optional heading.
        table: reward values.

    Returns:
        Markdown text (see :func:`~physio_ray.clinical.metrics.render_markdown`).
    """
    model, base = compare_with_shortcut(predictions, scenarios, folds, predictor, table)
    return render_markdown([model, base], title)
