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
    "BOW_NAME",
    "MAJORITY_NAME",
    "SHORTCUT_NAME",
    "bag_of_words_predictions",
    "compare_with_shortcut",
    "majority_predictions",
    "report_with_shortcut",
    "shortcut_predictions",
    "shortcut_verdict",
]

SHORTCUT_NAME = "shortcut"
MAJORITY_NAME = "majority_class"
BOW_NAME = "text_bag_of_words"


_REQUIRED = object()


def _field(scenario: Any, name: str, default: Any = _REQUIRED) -> Any:
    """A typed scenario's attribute or a raw scenario's key (``default`` when given and absent)."""
    if hasattr(scenario, name):
        return getattr(scenario, name)
    return scenario[name] if default is _REQUIRED else scenario.get(name, default)


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


def _scenario_text(scenario: Any) -> str:
    """The words a text-only reader gets: the finding and what is to be judged (no image type)."""
    names = ("clinical_finding", "prescribed_treatment", "icd_code", "icd_description")
    parts = [_field(scenario, n, None) for n in names]
    return " ".join(str(p) for p in parts if p)


def bag_of_words_predictions(scenarios: Sequence[Any], folds: Sequence[Fold], c: float = 1.0) -> dict[str, str]:
    """Per fold, a logistic regression on the words of the finding and treatment, fitted on its training scenarios.

    The baseline that reads the text alone (binary unigram and bigram counts, lower case,
    balanced class weights, L2 with inverse strength ``c``): what a model that learns from the
    words, and nothing else, reaches on the same folds. A fold whose training labels are all one
    verdict answers that verdict.

    Args:
        scenarios: raw scenario dicts or typed scenarios covering the folds' ids.
        folds: the folds.
        c: inverse regularisation strength.

    Returns:
        ``{scenario_id: "ERROR" | "CORRECT"}`` for every test id of every fold.

    >>> sc = [{"id": str(i), "clinical_finding": f, "prescribed_treatment": "surgery",
    ...        "error_type": e, "severity": s} for i, (f, e, s) in enumerate(
    ...        [("normal no mass", "overtreatment", "high"), ("large mass", "none", "none"),
    ...         ("normal tissue no lesion", "overtreatment", "high"), ("irregular mass", "none", "none"),
    ...         ("normal", "overtreatment", "high"), ("mass seen", "none", "none")])]
    >>> bag_of_words_predictions(sc, [Fold(0, "f0", ("0", "1", "2", "3"), ("4", "5"))])
    {'4': 'ERROR', '5': 'CORRECT'}
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    by_id = {str(_field(s, "id")): s for s in scenarios}
    truth = {i: scenario_truth(getattr(s, "raw", s))[0] for i, s in by_id.items()}
    out: dict[str, str] = {}
    for fold in folds:
        train_y = [truth[i] for i in fold.train_ids]
        if len(set(train_y)) < 2:
            out.update({i: train_y[0] if train_y else VERDICT_ERROR for i in fold.test_ids})
            continue
        vec = CountVectorizer(lowercase=True, binary=True, ngram_range=(1, 2))
        x = vec.fit_transform([_scenario_text(by_id[i]) for i in fold.train_ids])
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(x, train_y)
        pred = model.predict(vec.transform([_scenario_text(by_id[i]) for i in fold.test_ids]))
        out.update({i: str(p) for i, p in zip(fold.test_ids, pred, strict=True)})
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
