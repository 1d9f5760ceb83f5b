"""The measurement check over one solution: per-step verdicts and evidence for the annotated stage.

:func:`check_solution` runs :func:`~physio_ray.annotate.measurement.check_step` on every step
of a solution against its recording's features, with the question's context:

* On a question answered by a dataset label (``answer_source == "ground_truth"``), the
  recording's correct / incorrect verdict is read from the keyed option (the "performed
  correctly" option or a deviation), so "performed correctly" claims are checked, and band
  claims are skipped unless ``bands_on_ground_truth`` (see
  :class:`~physio_ray.annotate.config.MeasurementConfig`).
* The evidence of each step is one JSON object (verdict, reason, and every claim with the
  feature read, the measured value and the tolerance; unreadable claims included).

>>> from physio_ray.annotate.config import MeasurementConfig
>>> feats = {"angle_min": {"left_knee": 61.0, "right_knee": 59.8}}
>>> verdicts, evidence = check_solution(["Step 1: smallest knee angle 90 degrees ки", "Answer: A ки"],
...                                     feats, MeasurementConfig())
>>> verdicts
['contradicted', 'not_checkable']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from physio_ray.annotate.config import MeasurementConfig
from physio_ray.annotate.measurement import StepCheck, check_step
from physio_ray.annotate.question_templates import CORRECT_OPTION
from physio_ray.schemas import LETTERS

__all__ = ["check_solution", "evidence_json", "keyed_execution"]


def keyed_execution(answer_source: str | None, options: Sequence[str], answer: str | None) -> str | None:
    """The recording's ``"correct"`` / ``"incorrect"`` verdict as a ground-truth question keys it.

    Args:
        answer_source: the question's ``answer_source``.
        options: its option texts.
        answer: its answer letter.

    Returns:
        ``"correct"`` when the keyed option is :data:`CORRECT_OPTION`, ``"incorrect"`` for a
        keyed deviation, ``None`` for measured questions or an answer that is not an option.

    >>> keyed_execution("ground_truth", ["Heels lift", CORRECT_OPTION], "B")
    'correct'
    >>> keyed_execution("measured", ["1 rep", "2 reps"], "A") is None
    True
    """
    if answer_source != "ground_truth" or not answer:
        return None
    letter = str(answer).strip().upper()
    idx = LETTERS.index(letter) if letter in LETTERS else -1
    if not 0 <= idx < len(options):
        return None
    return "correct" if str(options[idx]).strip() == CORRECT_OPTION else "incorrect"


def evidence_json(check: StepCheck) -> str:
    """One step's verdict and claim checks as a compact JSON object (the evidence column)."""

    def claim(c: Any) -> dict[str, Any]:
        return {
            "text": c.claim.text,
            "kind": c.claim.kind,
            "quantity": c.claim.quantity,
            "verdict": c.verdict,
            "feature": c.feature_key,
            "measured": c.measured,
            "tolerance": c.tolerance,
            "reason": c.reason,
        }

    return json.dumps(
        {"verdict": check.verdict, "reason": check.reason, "claims": [claim(c) for c in check.checks]},
        default=str,
    )


def check_solution(
    steps: Sequence[str],
    features: Mapping[str, Any] | str | None,
    cfg: MeasurementConfig,
    *,
    answer_source: str | None = None,
    options: Sequence[str] = (),
    answer: str | None = None,
) -> tuple[list[str], list[str]]:
    """Measurement verdicts and evidence of every step of one solution.

    Args:
        steps: the solution's steps.
        features: the recording's features (dict or JSON string; ``None`` when missing: every
            step is then ``not_checkable`` with the reason).
        cfg: tolerances and the ground-truth band rule.
        answer_source: the question's ``answer_source``.
        options: the question's option texts.
        answer: the question's answer letter.

    Returns:
        ``([S] verdicts, [S] evidence JSON strings)``; two empty lists when ``cfg.enabled`` is off.
    """
    if not cfg.enabled:
        return [], []
    truth = keyed_execution(answer_source, options, answer)
    bands = cfg.bands_on_ground_truth or answer_source != "ground_truth"
    checks = [check_step(str(s), features, cfg.tolerances, ground_truth=truth, bands=bands) for s in steps]
    return [c.verdict for c in checks], [evidence_json(c) for c in checks]
