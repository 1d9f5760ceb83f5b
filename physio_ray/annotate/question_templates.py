"""Seed 000 §4.2 question templates: physiotherapy MCQs from keyframe features.

Each template turns one recording's measured features (and, where the dataset has one, its
correct/incorrect label) into a :class:`Draft`: a stem, four options and the index of the
right option. Answers come from one of two places and never from a model:

* ``ground_truth``: UI-PRMD labels every repetition correct or deliberately incorrect. The
  options are "performed correctly" plus three deviations of that movement; the first
  deviation listed in :data:`DEVIATIONS` is the movement's most typical one (our clinical
  choice: UI-PRMD only says *incorrect*, not *how*), and it is the answer for incorrect rows.
* ``measured``: computed from the features (repetitions counted, knee angle band at the
  bottom, hip/knee flexion ratio, trunk lean band, peak shoulder elevation band). A value
  within a margin of a band edge makes the question ambiguous; it is refused with a reason
  instead of guessing.

Angles follow :mod:`physio_ray.video.angles`: knee = hip-knee-ankle and hip =
shoulder-hip-knee included angles (180 = straight), shoulder = hip-shoulder-elbow (0 = arm
along the trunk), trunk lean = trunk vs vertical (0 = upright).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from physio_ray.annotate.question_exercises import DEVIATIONS, Exercise
from physio_ray.video.features import feature_value

CORRECT_OPTION = "Performed correctly, with no clear deviation"


class Refused(Exception):
    """A template applies to the recording but cannot make a sound question (the reason says why)."""


@dataclass(frozen=True)
class Draft:
    """A question before shuffling and validation.

    Attributes:
        template: template id.
        stem: question stem.
        options: option texts, the right one at ``correct``.
        correct: index of the right option in ``options``.
        answer_source: ``"ground_truth"`` or ``"measured"``.
        hide: feature names left out of the evidence block (they would give the answer away).
    """

    template: str
    stem: str
    options: tuple[str, ...]
    correct: int
    answer_source: str
    hide: tuple[str, ...] = ()


@dataclass(frozen=True)
class Measures:
    """The features the templates read, normalised from the keyframe stage's JSON dict.

    Every field is ``None`` when the recording did not provide it (or it was not finite).
    """

    rep_count: int | None = None
    knee_min: float | None = None
    knee_max: float | None = None
    hip_min: float | None = None
    hip_max: float | None = None
    trunk_lean_bottom: float | None = None
    shoulder_peak: float | None = None
    rep_duration_s: float | None = None


# Feature-dict keys accepted for each measure, in order of preference. ``{side}`` keys are
# combined over left and right when both are present (mean, or max for the shoulder peak:
# the exercising arm is the one raised higher). ``a.b`` reads key ``b`` of the nested dict
# ``a`` (the keyframe stage writes ``angle_min`` / ``angle_max`` dicts keyed by angle name,
# see :mod:`physio_ray.video.features`).
_ALIASES: dict[str, tuple[str, ...]] = {
    "rep_count": ("rep_count", "reps", "n_reps"),
    "knee_min": ("knee_min_deg", "angle_min.{side}_knee", "{side}_knee_min_deg", "{side}_knee_min"),
    "knee_max": ("knee_max_deg", "angle_max.{side}_knee", "{side}_knee_max_deg", "{side}_knee_max"),
    "hip_min": ("hip_min_deg", "angle_min.{side}_hip", "{side}_hip_min_deg", "{side}_hip_min"),
    "hip_max": ("hip_max_deg", "angle_max.{side}_hip", "{side}_hip_max_deg", "{side}_hip_max"),
    "trunk_lean_bottom": ("trunk_lean_bottom_deg", "trunk_lean_at_working_deg", "trunk_lean_at_bottom_deg"),
    "shoulder_peak": ("shoulder_max_deg", "angle_max.{side}_shoulder", "{side}_shoulder_max_deg"),
    "rep_duration_s": ("rep_duration_s", "tempo_s_per_rep", "mean_rep_duration_s"),
}
_MAX_OVER_SIDES = ("shoulder_peak",)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def read_measures(features: Mapping[str, Any]) -> Measures:
    """Normalises a keyframe ``features`` dict into :class:`Measures`.

    Args:
        features: the decoded JSON dict of the keyframe stage.

    Returns:
        The measures found; missing or non-finite values are ``None``.

    >>> read_measures({"rep_count": 3, "left_knee_min_deg": 60, "right_knee_min_deg": 70}).knee_min
    65.0
    >>> read_measures({"angle_max": {"left_shoulder": 40.0, "right_shoulder": 150.0}}).shoulder_peak
    150.0
    """
    values: dict[str, Any] = {}
    for name, keys in _ALIASES.items():
        found: float | None = None
        for key in keys:
            if "{side}" in key:
                sides = [_finite(feature_value(features, key.format(side=s))) for s in ("left", "right")]
                present = [v for v in sides if v is not None]
                if present:
                    found = max(present) if name in _MAX_OVER_SIDES else sum(present) / len(present)
            else:
                found = _finite(feature_value(features, key))
            if found is not None:
                break
        values[name] = found
    reps = values["rep_count"]
    values["rep_count"] = int(reps) if reps is not None and reps >= 0 and float(reps).is_integer() else None
    return Measures(**values)


Template = Callable[[str, Exercise, "str | None", Measures], Draft]


def _band(value: float, edges: Sequence[float], margin: float, what: str) -> int:
    """Index of the band ``value`` falls in; refuses values within ``margin`` of an edge."""
    for edge in edges:
        if abs(value - edge) < margin:
            raise Refused(f"ambiguous: {what} {value:.1f} is within {margin} of the band edge {edge}")
    return sum(value >= edge for edge in edges)


def _banded(template: str, stem: str, bands: tuple[str, ...], band: int) -> Draft:
    """A measured question whose options are ``bands`` and whose answer is band ``band``."""
    return Draft(template=template, stem=stem, options=bands, correct=band, answer_source="measured")


def ground_truth_execution(key: str, ex: Exercise, ground_truth: str | None, m: Measures) -> Draft:
    """Correct vs the movement's typical deviation, answered by the dataset label."""
    if ground_truth not in ("correct", "incorrect") or key not in DEVIATIONS:
        raise LookupError("needs a correct/incorrect label and a known movement")
    deviations = DEVIATIONS[key]
    options = (CORRECT_OPTION, deviations[0], deviations[1], deviations[2])
    return Draft(
        template="gt_execution",
        stem=f"Is this {ex.name} repetition performed correctly, or which deviation is present?",
        options=options,
        correct=0 if ground_truth == "correct" else 1,
        answer_source="ground_truth",
    )


def rep_count(key: str, ex: Exercise, ground_truth: str | None, m: Measures) -> Draft:
    """How many complete repetitions; distractors are nearby counts."""
    if m.rep_count is None:
        raise LookupError("needs rep_count")
    n = m.rep_count
    others = [c for c in (n + 1, n - 1, n + 2, n - 2, n + 3) if c >= 0 and c != n][:3]

    def say(c: int) -> str:
        return f"{c} complete repetition" + ("" if c == 1 else "s")

    return Draft(
        template="rep_count",
        stem=f"How many complete repetitions of the {ex.name} were performed in this recording?",
        options=(say(n), *(say(c) for c in others)),
        correct=0,
        answer_source="measured",
        hide=("rep_count", "reps", "n_reps"),
    )


# Bands of the smallest knee angle: < 80, 80-100, 100-130, >= 130 degrees (corpus passage
# "squat-depth-bands"); the options name the band, the solver has to know the thresholds.
SQUAT_DEPTH_BANDS = (
    "Below parallel (a deep squat)",
    "About parallel (thighs roughly horizontal)",
    "Above parallel (a half squat)",
    "A quarter squat or less (minimal knee bend)",
)


def squat_depth(key: str, ex: Exercise, ground_truth: str | None, m: Measures) -> Draft:
    """Depth band from the smallest knee angle (squats only)."""
    if ex.family != "squat" or m.knee_min is None:
        raise LookupError("needs a squat and knee_min")
    return _banded(
        "squat_depth",
        f"Judging by the knee angle at the bottom of the movement, how deep did the person go in this {ex.name}?",
        SQUAT_DEPTH_BANDS,
        _band(m.knee_min, (80.0, 100.0, 130.0), 4.0, "minimum knee angle"),
    )


DEPTH_LIMITER_OPTIONS = (
    "Hip flexion was limited; depth came mostly from the knees (knee-dominant pattern)",
    "Hips and knees flexed in similar proportion; neither joint clearly limited depth",
    "Knee flexion was limited; depth came mostly from the hips (hip-dominant pattern)",
    "Neither the hips nor the knees flexed by more than 15 degrees",
)


def depth_limiter(key: str, ex: Exercise, ground_truth: str | None, m: Measures) -> Draft:
    """Which joint limited depth, from the ratio of hip to knee flexion range (squats only)."""
    if ex.family != "squat" or None in (m.knee_min, m.knee_max, m.hip_min, m.hip_max):
        raise LookupError("needs a squat and knee/hip min and max")
    knee_rom = m.knee_max - m.knee_min  # type: ignore[operator]
    hip_rom = m.hip_max - m.hip_min  # type: ignore[operator]
    if max(knee_rom, hip_rom) < 30.0 or min(knee_rom, hip_rom) <= 0:
        raise Refused(f"too little motion to compare (knee range {knee_rom:.0f}, hip range {hip_rom:.0f} degrees)")
    ratio = hip_rom / knee_rom
    if ratio <= 0.77:
        correct = 0
    elif 0.87 <= ratio <= 1.15:
        correct = 1
    elif ratio >= 1.3:
        correct = 2
    else:
        raise Refused(f"ambiguous: hip/knee flexion ratio {ratio:.2f} lies between bands")
    return Draft(
        template="depth_limiter",
        stem=f"Comparing hip and knee flexion during this {ex.name}, which joint limited the depth?",
        options=DEPTH_LIMITER_OPTIONS,
        correct=correct,
        answer_source="measured",
    )


TRUNK_LEAN_BANDS = (
    "Upright trunk: less than 20 degrees of forward lean",
    "Moderate forward lean: 20 to 45 degrees",
    "Marked forward lean: more than 45 degrees",
    "The trunk leaned backwards behind vertical",
)


def trunk_lean(key: str, ex: Exercise, ground_truth: str | None, m: Measures) -> Draft:
    """Trunk lean band at the bottom of the movement (squats, lunges, sit-to-stand)."""
    if ex.family not in ("squat", "lunge", "sit_to_stand") or m.trunk_lean_bottom is None:
        raise LookupError("needs a lower-limb exercise and trunk_lean_bottom")
    if m.trunk_lean_bottom < 0:  # signed lean: negative means backwards
        raise Refused("backward trunk lean cannot be told from an unsigned angle reliably")
    return _banded(
        "trunk_lean",
        f"How far did the trunk lean forward at the bottom of this {ex.name}?",
        TRUNK_LEAN_BANDS,
        _band(m.trunk_lean_bottom, (20.0, 45.0), 3.0, "trunk lean"),
    )


SHOULDER_BANDS = (
    "The arm stayed below shoulder height (under 90 degrees)",
    "Just above shoulder height (90 to 120 degrees)",
    "Most of the range (120 to 150 degrees)",
    "Near full elevation (more than 150 degrees)",
)


def shoulder_range(key: str, ex: Exercise, ground_truth: str | None, m: Measures) -> Draft:
    """Peak arm elevation band (shoulder abduction / scaption)."""
    if ex.family != "shoulder_elevation" or m.shoulder_peak is None:
        raise LookupError("needs a shoulder elevation exercise and shoulder_peak")
    return _banded(
        "shoulder_range",
        f"How high was the arm raised during this {ex.name}?",
        SHOULDER_BANDS,
        _band(m.shoulder_peak, (90.0, 120.0, 150.0), 4.0, "peak shoulder elevation"),
    )


TEMPO_BANDS = (
    "Very fast: under 1.5 seconds per repetition",
    "Brisk: 1.5 to 3 seconds per repetition",
    "Controlled: 3 to 6 seconds per repetition",
    "Very slow: more than 6 seconds per repetition",
)


def tempo(key: str, ex: Exercise, ground_truth: str | None, m: Measures) -> Draft:
    """Mean repetition duration band (any exercise with two or more repetitions)."""
    if m.rep_duration_s is None or (m.rep_count is not None and m.rep_count < 2):
        raise LookupError("needs rep_duration_s and at least two repetitions")
    return _banded(
        "tempo",
        f"What was the average tempo of the {ex.name} repetitions in this recording?",
        TEMPO_BANDS,
        _band(m.rep_duration_s, (1.5, 3.0, 6.0), 0.2, "repetition duration"),
    )


# Tried in this order; the first ``max_per_recording`` sound questions are kept.
TEMPLATES: tuple[Template, ...] = (
    ground_truth_execution,
    squat_depth,
    rep_count,
    depth_limiter,
    shoulder_range,
    trunk_lean,
    tempo,
)
