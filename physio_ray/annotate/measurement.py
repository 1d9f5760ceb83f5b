"""Measurement-grounded step checks: a step's stated measurements against the recording's features.

Our physiotherapy questions are answered from measured pose features, so a step that says
``"the smallest knee angle is 60 degrees"`` or ``"two complete repetitions"`` can be checked
against the features of that recording instead of trusting an LLM judge. :func:`check_step`
parses the claims (:func:`physio_ray.annotate.measurement_claims.parse_claims`), reads each
claim's quantity from the features (:data:`FEATURE_SOURCES`, explicit per quantity) and compares
with stated :class:`Tolerances`:

* ``eq`` (also "about"): supported when ``|measured - claimed| <= tolerance``, else contradicted.
* bands (``lt`` / ``gt`` / ``between``): supported inside the band, contradicted when outside by
  more than the tolerance, and not checkable in between (too close to the edge to tell).
* lists (per-rep extremes, turning-point times): supported when one element matches.

A step is ``contradicted`` when any claim is, else ``supported`` when any claim is, else
``not_checkable`` (no claim, or none that the features can decide): never a guess. A recording
without features gets no verdicts and the reason ``"no features for this recording"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from physio_ray.annotate.measurement_claims import QUANTITIES, Claim, parse_claims
from physio_ray.video.features import feature_value

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_CHECKABLE = "not_checkable"
VERDICTS = (SUPPORTED, CONTRADICTED, NOT_CHECKABLE)
NO_FEATURES = "no features for this recording"
BANDS_OFF = "band claims are not checked here (the keyed answer is a dataset convention, not a measurement)"

_J = ("knee", "hip", "elbow", "shoulder")
# quantity -> feature keys, in order of preference. "{side}" keys are per side (left / right);
# for a claim without a side both are combined (mean; max for shoulder_max, the raised arm).
# "a.b" reads key b of the nested dict a (the keyframe stage's angle_min / angle_max).
FEATURE_SOURCES: dict[str, tuple[str, ...]] = {
    **{
        f"{j}_{s}": (f"{j}_{s}_deg", f"angle_{s}.{{side}}_{j}", f"{{side}}_{j}_{s}_deg")
        for j in _J
        for s in ("min", "max")
    },
    "trunk_lean_bottom": ("trunk_lean_bottom_deg", "trunk_lean_at_working_deg", "trunk_lean_at_bottom_deg"),
    "trunk_lean_max": ("trunk_lean_max_deg", "angle_max.trunk_lean"),
    "depth": ("depth_deg",),
    "best_extreme": ("best_extreme_deg",),
    "range_of_motion": ("range_of_motion_deg",),
    "rest": ("rest_deg",),
    "rep_extreme": ("rep_extreme_deg",),
    "knee_asymmetry": ("knee_asymmetry_at_working_deg",),
    "rep_duration": ("rep_duration_s", "tempo_s_per_rep", "mean_rep_duration_s"),
    "descent": ("descent_s",),
    "ascent": ("ascent_s",),
    "recording_duration": ("duration_s",),
    "working_time": ("rep_times_s",),
    "rep_count": ("rep_count", "reps", "n_reps"),
    "partial_reps": ("partial_reps",),
    "knee_ankle_ratio_start": ("knee_ankle_ratio_start",),
    "knee_ankle_ratio_working": ("knee_ankle_ratio_working",),
    "knee_valgus_drop": ("knee_valgus_drop",),
    "visible_fraction": ("visible_fraction",),
}
# Derived quantities: a joint's range = its max - min (same side); hip_knee_ratio = hip range / knee range.
DERIVED = {**{f"{j}_rom": (f"{j}_max", f"{j}_min") for j in _J}, "hip_knee_ratio": ("hip_rom", "knee_rom")}
_MAX_OVER_SIDES = ("shoulder_max",)
# Feature keys that may carry the recording's correct / incorrect verdict.
EXECUTION_KEYS = ("ground_truth", "execution", "measured_verdict")


@dataclass(frozen=True)
class Tolerances:
    """How far a measured value may be from a claimed one and still support it.

    Attributes:
        angle_deg: joint angles (pose angles carry a few degrees of error; steps round).
        duration_s: durations, absolute part.
        duration_rel: durations, relative part (the tolerance is the larger of the two).
        time_s: the time of a turning point.
        count: repetition counts (0 = exact).
        ratio: unitless ratios (hip/knee flexion, knee/ankle separation).
        fraction: shares such as the visible fraction (0.05 = 5 percentage points).
    """

    angle_deg: float = 10.0
    duration_s: float = 0.5
    duration_rel: float = 0.2
    time_s: float = 0.5
    count: int = 0
    ratio: float = 0.1
    fraction: float = 0.05

    def __post_init__(self) -> None:
        for name in ("angle_deg", "duration_s", "duration_rel", "time_s", "ratio", "fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"tolerances.{name}={value!r} must be a finite number >= 0")
        if self.duration_rel >= 1:
            raise ValueError(f"tolerances.duration_rel={self.duration_rel} must be < 1 (a share of the measured value)")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"tolerances.count={self.count!r} must be a whole number >= 0 (0 = exact)")

    def for_kind(self, kind: str, measured: float) -> float:
        """The tolerance of a claim of ``kind`` about a ``measured`` value.

        >>> Tolerances().for_kind("duration", 4.0), Tolerances().for_kind("duration", 1.0)
        (0.8, 0.5)
        """
        if kind == "duration":
            return max(self.duration_s, self.duration_rel * abs(measured))
        return float(
            {"angle": self.angle_deg, "time": self.time_s, "count": self.count, "ratio": self.ratio}.get(
                kind, self.fraction
            )
        )


DEFAULT_TOLERANCES = Tolerances()


@dataclass(frozen=True)
class ClaimCheck:
    """The evidence for one claim.

    Attributes:
        claim: the parsed claim.
        verdict: one of :data:`VERDICTS`.
        feature_key: the feature key(s) read, e.g. ``"angle_min.left_knee+angle_min.right_knee (mean)"``.
        measured: the measured value (a list for per-rep values; a side or verdict string).
        tolerance: the tolerance applied.
        reason: why the verdict (always set for ``not_checkable``).
    """

    claim: Claim
    verdict: str
    feature_key: str | None = None
    measured: float | str | list[float] | None = None
    tolerance: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class StepCheck:
    """The measurement verdict of one step.

    Attributes:
        verdict: one of :data:`VERDICTS`.
        checks: one :class:`ClaimCheck` per parsed claim, in order.
        reason: a short summary (why not checkable, or which claim decided).
    """

    verdict: str
    checks: tuple[ClaimCheck, ...]
    reason: str = ""

    @property
    def checkable(self) -> bool:
        """Whether the features decided the step."""
        return self.verdict != NOT_CHECKABLE

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (for an evidence column)."""
        return asdict(self)


def _number(value: Any) -> float | list[float] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        nums = [float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        return nums or None
    return None


def measured_value(
    quantity: str, features: Mapping[str, Any], side: str | None = None
) -> tuple[float | list[float], str] | None:
    """Reads one quantity from a features dict.

    Args:
        quantity: a key of :data:`FEATURE_SOURCES` or :data:`DERIVED`.
        features: the keyframe stage's features dict.
        side: ``"left"`` / ``"right"`` for one side only (then only per-side keys are read).

    Returns:
        ``(value, feature key)`` or ``None`` when the features do not hold it.

    >>> measured_value("knee_min", {"angle_min": {"left_knee": 61.0, "right_knee": 59.0}})
    (60.0, 'angle_min.left_knee+angle_min.right_knee (mean)')
    >>> measured_value("knee_min", {"angle_min": {"left_knee": 61.0}}, side="left")
    (61.0, 'angle_min.left_knee')
    >>> measured_value("rep_count", {}) is None
    True
    """
    side = side if side in ("left", "right") else None
    if quantity in DERIVED:
        a, b = (measured_value(q, features, side) for q in DERIVED[quantity])
        if a is None or b is None or isinstance(a[0], list) or isinstance(b[0], list):
            return None
        if quantity == "hip_knee_ratio":
            return (round(a[0] / b[0], 3), f"({a[1]}) / ({b[1]})") if b[0] > 0 else None
        return round(a[0] - b[0], 2), f"{a[1]} - {b[1]}"
    for key in FEATURE_SOURCES.get(quantity, ()):
        if "{side}" in key:
            sides = (side,) if side else ("left", "right")
            found = {s: _number(feature_value(features, key.format(side=s))) for s in sides}
            present = {s: v for s, v in found.items() if isinstance(v, float)}
            if not present:
                continue
            keys = "+".join(key.format(side=s) for s in present)
            if len(present) == 1:
                return next(iter(present.values())), keys
            combine = max if quantity in _MAX_OVER_SIDES else (lambda vs: sum(vs) / len(vs))
            return round(combine(list(present.values())), 2), f"{keys} ({'max' if combine is max else 'mean'})"
        elif side is None:
            value = _number(feature_value(features, key))
            if value is not None:
                return value, key
    return None


def measured_side(features: Mapping[str, Any]) -> tuple[str, str] | None:
    """The side that did the exercise: ``"left"``, ``"right"`` or ``"both"``, and the key read.

    >>> measured_side({"driving_angle": "right_shoulder"})
    ('right', 'driving_angle')
    >>> measured_side({"driving_angle": "mean(left_knee,right_knee)"})
    ('both', 'driving_angle')
    """
    for key in ("sides", "side", "driving_angle"):
        value = features.get(key)
        text = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value or "").lower()
        has = [s for s in ("left", "right") if s in text.lower()]
        if "both" in text.lower() or len(has) == 2:
            return "both", key
        if has:
            return has[0], key
    return None


def execution_truth(features: Mapping[str, Any] | None, ground_truth: str | None = None) -> tuple[str, str] | None:
    """The recording's correct / incorrect verdict: ``ground_truth`` if given, else from the features.

    >>> execution_truth({}, "incorrect")
    ('incorrect', 'ground_truth')
    >>> execution_truth({"measured_verdict": "Correct"})
    ('correct', 'measured_verdict')
    >>> execution_truth({"ground_truth": None}) is None
    True
    """
    candidates = [("ground_truth", ground_truth)] + [(k, (features or {}).get(k)) for k in EXECUTION_KEYS]
    for key, value in candidates:
        if isinstance(value, str) and value.strip().lower() in ("correct", "incorrect"):
            return value.strip().lower(), key
    return None


def check_execution(claim: Claim, truth: tuple[str, str] | None) -> ClaimCheck:
    """Checks a "performed correctly / incorrectly" claim against the recording's verdict.

    Args:
        claim: an ``execution`` claim.
        truth: :func:`execution_truth`'s result.

    Returns:
        Supported when the claim agrees with the verdict, contradicted when not, not
        checkable when the recording has no verdict.
    """
    if truth is None:
        return ClaimCheck(claim, NOT_CHECKABLE, reason="the recording has no correct/incorrect verdict")
    verdict, key = truth
    says = "correct" if claim.correct else "incorrect"
    return ClaimCheck(claim, SUPPORTED if says == verdict else CONTRADICTED, key, verdict, None, f"claims {says}")


def _compare(claim: Claim, m: float, tol: float) -> tuple[str, str]:
    lo = -math.inf if claim.low is None else claim.low
    hi = math.inf if claim.high is None else claim.high
    if claim.relation == "eq":
        ok = abs(m - lo) <= tol + 1e-9
        return (SUPPORTED, "within tolerance") if ok else (CONTRADICTED, f"off by {abs(m - lo):.3g}")
    if lo <= m <= hi:
        return SUPPORTED, "inside the band"
    if m < lo - tol - 1e-9 or m > hi + tol + 1e-9:
        return CONTRADICTED, "outside the band by more than the tolerance"
    return NOT_CHECKABLE, "outside the band but within tolerance of its edge"


def check_claim(
    claim: Claim,
    features: Mapping[str, Any],
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    ground_truth: str | None = None,
) -> ClaimCheck:
    """Checks one claim against one recording's features (see the module docstring for the rules).

    Args:
        claim: a parsed claim.
        features: the recording's features dict.
        tolerances: the tolerances.
        ground_truth: the recording's ``"correct"`` / ``"incorrect"`` label, if any.

    Returns:
        The claim's verdict with its evidence.
    """
    if claim.kind == "unreadable":
        return ClaimCheck(claim, NOT_CHECKABLE, reason=f"unreadable: {claim.reason}")
    if claim.quoted:
        return ClaimCheck(claim, NOT_CHECKABLE, reason="quotes an answer option, does not assert it")
    if claim.kind == "execution":
        return check_execution(claim, execution_truth(features, ground_truth))
    if claim.kind == "side":
        found = measured_side(features)
        if found is None:
            return ClaimCheck(claim, NOT_CHECKABLE, reason="the features do not say which side moved")
        side, key = found
        if claim.side == side:
            return ClaimCheck(claim, SUPPORTED, key, side, reason="same side")
        if side == "both" and claim.side in ("left", "right"):
            return ClaimCheck(claim, NOT_CHECKABLE, key, side, reason="both sides moved; one side named")
        return ClaimCheck(claim, CONTRADICTED, key, side, reason="other side")
    if claim.quantity is None or claim.quantity not in QUANTITIES:
        return ClaimCheck(claim, NOT_CHECKABLE, reason="no quantity")
    if claim.kind == "time" and features.get("working_kind") not in (None, claim.phase):
        return ClaimCheck(claim, NOT_CHECKABLE, reason=f"the features time the {features.get('working_kind')}s only")
    found_value = measured_value(claim.quantity, features, claim.side)
    if found_value is None:
        side = f" ({claim.side} side)" if claim.side in ("left", "right") else ""
        return ClaimCheck(claim, NOT_CHECKABLE, reason=f"{claim.quantity}{side} is not in the features")
    value, key = found_value
    values = value if isinstance(value, list) else [value]
    results = [
        (v, tolerances.for_kind(claim.kind, v), *_compare(claim, v, tolerances.for_kind(claim.kind, v))) for v in values
    ]
    for wanted in (SUPPORTED, NOT_CHECKABLE, CONTRADICTED):
        hit = next((r for r in results if r[2] == wanted), None)
        if hit is not None:
            why = hit[3] + (
                f" (one of {len(values)} values)" if isinstance(value, list) and wanted == SUPPORTED else ""
            )
            return ClaimCheck(claim, wanted, key, value, hit[1], why)
    raise AssertionError("unreachable: results is never empty")


def _features(features: Mapping[str, Any] | str | None) -> tuple[Mapping[str, Any] | None, str]:
    if isinstance(features, (str, bytes)):
        try:
            features = json.loads(features) if features.strip() else None
        except ValueError as exc:
            return None, f"{NO_FEATURES} (features unreadable: {exc})"
    if not isinstance(features, Mapping) or not features:
        return None, NO_FEATURES
    return features, ""


def check_step(
    step_text: str,
    features: Mapping[str, Any] | str | None,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    *,
    ground_truth: str | None = None,
    bands: bool = True,
) -> StepCheck:
    """Checks every measurement claim of one step against the recording's features.

    Args:
        step_text: one reasoning step (with or without ``" ки"``).
        features: the features dict (or its JSON string); ``None`` / empty when missing.
        tolerances: the tolerances.
        ground_truth: the recording's ``"correct"`` / ``"incorrect"`` label, if any.
        bands: check band claims (``lt`` / ``gt`` / ``between``). ``False`` for questions
            answered by a dataset label: there a step restating the keyed deviation ("the
            thighs stay above parallel") repeats a convention, and its band may disagree with
            the measurement while the key calls it right; such claims get :data:`BANDS_OFF`.

    Returns:
        The step's verdict and one check per claim (all claims kept, unreadable ones included).

    >>> feats = {"angle_min": {"left_knee": 61.0, "right_knee": 59.8}, "rep_count": 1}
    >>> check_step("Step 1: the smallest knee angle is about 60 degrees ки", feats).verdict
    'supported'
    >>> check_step("Step 1: 3 complete repetitions ки", feats).verdict
    'contradicted'
    >>> check_step("Step 2: what it means for the question ки", feats).reason
    'no measurement claim'
    >>> check_step("Step 1: 3 repetitions ки", None).reason
    'no features for this recording'
    >>> check_step("Step 1: the smallest knee angle is below 70 degrees ки", feats, bands=False).verdict
    'not_checkable'
    """
    claims = parse_claims(step_text)
    feats, missing = _features(features)
    if feats is None:
        checks = tuple(ClaimCheck(c, NOT_CHECKABLE, reason=missing) for c in claims)
        return StepCheck(NOT_CHECKABLE, checks, missing)
    checks = tuple(
        ClaimCheck(c, NOT_CHECKABLE, reason=BANDS_OFF)
        if not bands and c.relation != "eq" and c.kind not in ("side", "execution", "unreadable")
        else check_claim(c, feats, tolerances, ground_truth)
        for c in claims
    )
    if not checks:
        return StepCheck(NOT_CHECKABLE, checks, "no measurement claim")
    for verdict in (CONTRADICTED, SUPPORTED):
        deciding = [c for c in checks if c.verdict == verdict]
        if deciding:
            first = deciding[0]
            return StepCheck(
                verdict, checks, f"{first.claim.text!r}: {first.reason} ({first.feature_key}={first.measured})"
            )
    return StepCheck(NOT_CHECKABLE, checks, "; ".join(dict.fromkeys(c.reason for c in checks)))
