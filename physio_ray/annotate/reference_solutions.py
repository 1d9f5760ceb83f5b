"""Reference solutions: the steps a physiotherapist writes for a template question, from its data.

The local policy (SmolLM2-135M) answers at chance when asked cold (``benchmarks/probe_policy.py``:
p(right option) 0.250). :mod:`physio_ray.policy` teaches it with supervised examples, and those
examples need targets: a solution in the sampler's format (2 or 3 short steps ending in
``" ки"``, then ``"Answer: X"``) whose every claim is true of the recording. This module writes
them, deterministically, from the same :class:`~physio_ray.annotate.question_templates.Measures`
the templates answered from:

* measured templates (squat depth, trunk lean, shoulder range, tempo, depth limiter): step 1
  quotes the measurement by the name the evidence block uses, step 2 compares it with the band
  edges and names the band;
* ``gt_execution`` (answered by the dataset's correct/incorrect label): step 1 quotes the
  measurement the movement turns on, step 2 states the finding (the right option's text);
* every reference ends with the step that restates the right option's text and letter tag
  (:func:`~physio_ray.llm.steps.matching_step`), the step the solution prompt asks for last;
* ``rep_count`` gets none: the count is hidden from the evidence and the steps that would
  justify it (which turning points make a repetition) are not in the data, so a target would
  teach the model to assert what it cannot read.

Every step is phrased in the words :mod:`physio_ray.annotate.measurement_claims` reads back, so
the measurement check confirms a reference solution (``tests/unit/test_reference_solutions.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from physio_ray.annotate.question_exercises import EXERCISES, canonical_exercise
from physio_ray.annotate.question_templates import Measures, read_measures
from physio_ray.llm.steps import matching_step
from physio_ray.schemas import LETTERS, STEP_MARKER

# (quantity, the evidence block's name for it, unit) per measured template.
_QUOTED: dict[str, tuple[str, str, str]] = {
    "squat_depth": ("knee_min", "smallest knee angle", "deg"),
    "trunk_lean": ("trunk_lean_bottom", "trunk lean at the bottom", "deg"),
    "shoulder_range": ("shoulder_peak", "peak shoulder elevation", "deg"),
    "tempo": ("rep_duration_s", "mean repetition duration", "s"),
}
# Band edges per measured template (the templates' own), with the words for each band.
_BANDS: dict[str, tuple[tuple[float, ...], tuple[str, ...]]] = {
    "squat_depth": (
        (80.0, 100.0, 130.0),
        (
            "the squat went below parallel",
            "the squat reached about parallel",
            "the squat stayed above parallel",
            "it was a quarter squat or less",
        ),
    ),
    "trunk_lean": (
        (20.0, 45.0),
        ("the trunk stayed upright", "the trunk leaned forward moderately", "the trunk leaned forward markedly"),
    ),
    "shoulder_range": (
        (90.0, 120.0, 150.0),
        (
            "the arm stayed below shoulder height",
            "the arm went just above shoulder height",
            "the arm covered most of the range",
            "the arm reached near full elevation",
        ),
    ),
    "tempo": (
        (1.5, 3.0, 6.0),
        ("the pace was very fast", "the pace was brisk", "the pace was controlled", "the pace was very slow"),
    ),
}
# The measurement a movement family's execution turns on, for gt_execution's first step.
_FAMILY_QUANTITY: dict[str, tuple[str, str, str]] = {
    "squat": ("knee_min", "smallest knee angle", "deg"),
    "lunge": ("knee_min", "smallest knee angle", "deg"),
    "sit_to_stand": ("knee_max", "largest knee angle", "deg"),
    "leg_raise": ("hip_min", "smallest hip angle", "deg"),
    "shoulder_elevation": ("shoulder_peak", "peak shoulder elevation", "deg"),
    "shoulder_other": ("shoulder_peak", "peak shoulder elevation", "deg"),
    "trunk": ("trunk_lean_bottom", "trunk lean at the bottom", "deg"),
}


def _relation(value: float, edges: Sequence[float], unit: str) -> str:
    """``"below 80 deg"``, ``"between 80 and 100 deg"`` or ``"above 130 deg"`` for ``value``."""
    band = sum(value >= e for e in edges)
    if band == 0:
        return f"below {edges[0]:g} {unit}"
    if band == len(edges):
        return f"above {edges[-1]:g} {unit}"
    return f"between {edges[band - 1]:g} and {edges[band]:g} {unit}"


def _fmt(value: float, unit: str) -> str:
    return f"{value:.1f} {unit}"


def _measured_steps(template: str, m: Measures) -> list[str] | None:
    quantity, name, unit = _QUOTED[template]
    value = getattr(m, quantity)
    if value is None:
        return None
    edges, words = _BANDS[template]
    band = sum(value >= e for e in edges)
    return [
        f"Step 1: The {name} is {_fmt(value, unit)}.",
        f"Step 2: {_fmt(value, unit)} is {_relation(value, edges, unit)}, so {words[band]}.",
    ]


def _limiter_steps(m: Measures) -> list[str] | None:
    if None in (m.knee_min, m.knee_max, m.hip_min, m.hip_max):
        return None
    knee = m.knee_max - m.knee_min  # type: ignore[operator]
    hip = m.hip_max - m.hip_min  # type: ignore[operator]
    if knee <= 0:
        return None
    ratio = hip / knee
    verdict = (
        "hip flexion was limited and the knees gave the depth"
        if ratio < 0.87
        else "hips and knees flexed in similar proportion"
        if ratio <= 1.15
        else "knee flexion was limited and the hips gave the depth"
    )
    return [
        f"Step 1: The smallest knee angle is {_fmt(m.knee_min, 'deg')} and the largest {_fmt(m.knee_max, 'deg')}; "  # type: ignore[arg-type]
        f"the smallest hip angle is {_fmt(m.hip_min, 'deg')} and the largest {_fmt(m.hip_max, 'deg')}.",  # type: ignore[arg-type]
        f"Step 2: The hip range is {ratio:.2f} times the knee range, so {verdict}.",
    ]


def _execution_steps(exercise: str, m: Measures, right_option: str) -> list[str] | None:
    key = canonical_exercise(exercise)
    if key is None:
        return None
    family = EXERCISES[key].family
    quantity, name, unit = _FAMILY_QUANTITY[family]
    value = getattr(m, quantity)
    if value is None:
        return None
    finding = right_option.strip().rstrip(".")
    return [
        f"Step 1: The {name} is {_fmt(value, unit)}.",
        f"Step 2: Against this movement's standard, the finding is: {finding[0].lower()}{finding[1:]}.",
    ]


def reference_steps(
    template: str, exercise: str, options: Sequence[str], answer: str, features: str | Mapping[str, Any] | None
) -> list[str] | None:
    """The reference reasoning of one template question, or ``None`` when none can be written.

    Args:
        template: the question's template id (``squat_depth``, ``gt_execution``, ...).
        exercise: the exercise name or code of the recording (``deep_squat``, ``m01``...).
        options: the question's 4 option texts, in the order shown.
        answer: the right option's letter.
        features: the recording's features (JSON string or dict), as the question stage wrote them.

    Returns:
        Steps ending in ``" ки"`` (without the answer line), or ``None`` for a template with no
        reference (``rep_count``, writer-made questions), missing measurements or unreadable features.

    >>> feats = {"angle_min": {"left_knee": 60.0, "right_knee": 61.0}}
    >>> reference_steps("squat_depth", "deep_squat", ["a", "b", "c", "d"], "B", feats)[1]
    'Step 2: 60.5 deg is below 80 deg, so the squat went below parallel. ки'
    """
    if answer not in LETTERS[: len(options)]:
        return None
    if isinstance(features, str):
        try:
            features = json.loads(features)
        except ValueError:
            return None
    if not isinstance(features, Mapping):
        return None
    m = read_measures(features)
    if template in _QUOTED:
        steps = _measured_steps(template, m)
    elif template == "depth_limiter":
        steps = _limiter_steps(m)
    elif template == "gt_execution":
        steps = _execution_steps(exercise, m, str(options[LETTERS.index(answer)]))
    else:
        return None
    if steps is None:
        return None
    right = str(options[LETTERS.index(answer)])
    return [*(f"{s}{STEP_MARKER}" for s in steps), matching_step(len(steps) + 1, answer, right)]


def reference_solution(
    template: str, exercise: str, options: Sequence[str], answer: str, features: str | Mapping[str, Any] | None
) -> str | None:
    """:func:`reference_steps` as the text a sampled solution has: steps, then ``"Answer: X"``.

    >>> reference_solution("tempo", "m01", list("abcd"), "C", {"rep_duration_s": 4.0}).splitlines()[-1]
    'Answer: C'
    """
    steps = reference_steps(template, exercise, options, answer, features)
    return None if steps is None else "\n".join([*steps, f"Answer: {answer}"])
