"""Measurement-grounded step checks: claim parsing, feature lookup, tolerances, verdicts."""

from __future__ import annotations

import json

import pytest

from physio_ray.annotate import question_templates as qt
from physio_ray.annotate.measurement import (
    CONTRADICTED,
    NO_FEATURES,
    NOT_CHECKABLE,
    SUPPORTED,
    Tolerances,
    check_step,
    execution_truth,
    measured_value,
)
from physio_ray.annotate.measurement_claims import parse_claims

# Features of two demo recordings (keyframe stage output, trimmed to the keys used here).
SQUAT = {
    "angle_max": {"left_hip": 175.4, "right_hip": 179.8, "left_knee": 180.0, "right_knee": 175.0},
    "angle_min": {"left_hip": 77.5, "right_hip": 98.4, "left_knee": 85.8, "right_knee": 103.5},
    "ascent_s": 1.8,
    "descent_s": 1.6,
    "depth_deg": 95.0,
    "driving_angle": "mean(left_knee,right_knee)",
    "duration_s": 13.0,
    "partial_reps": 1,
    "rep_count": 2,
    "rep_times_s": [2.0, 6.8, 12.0],
    "tempo_s_per_rep": 5.0,
    "trunk_lean_at_working_deg": 25.4,
    "trunk_lean_max_deg": 26.6,
    "visible_fraction": 1.0,
    "working_kind": "bottom",
}
ABDUCTION = {
    "angle_max": {"left_shoulder": 40.0, "right_shoulder": 116.8},
    "best_extreme_deg": 116.8,
    "driving_angle": "right_shoulder",
    "range_of_motion_deg": 95.7,
    "rep_count": 1,
    "working_kind": "top",
}

# Steps written by SmolLM2-135M in the baseline demo (our own data), checked as they are.
DEMO_STEPS = {
    "quarter": "Answer: X Which is X? A quarter squat or less, but in terms of knees, it is a full squat. ки",
    "abduction": (
        "The data points can be interpreted as follows: - The arm is extended to perform the shoulder abduction, "
        "with a maximum elongation of 116.8 degrees. - The shoulder is rotated towards the head, with a maximum "
        "bending of 95.7 degrees. - The leg is bent down to extend the arm. - The leg is folded back to reach the "
        "shoulder. - The shoulder is rotated away ки"
    ),
    "side": (
        "The data shows that there is a leaning to the right shoulder abduction with a high degree of variation, "
        "which is done to the right side. ки"
    ),
    "listing": "Answer: X A) 3 complete repetitions C) 2 complete repetitions D) 2 complete repetitions ки",
    "template": "Step 1: What the data shows ки",
    "letter": "Answer: 1 ки",
    "noise": "Answer: This answer is C. It means that the answer is the answer to the question. There are only 2 "
    "examples of that answer. C) Did not answer ки",
}


def _one(text: str):
    claims = parse_claims(text)
    assert len(claims) == 1, claims
    return claims[0]


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "quantity", "relation", "low", "high"),
    [
        ("Step 1: the smallest knee angle was 60.4 degrees ки", "knee_min", "eq", 60.4, 60.4),
        ("maximum knee flexion reached 62°", "knee_min", "eq", 62.0, 62.0),
        ("the knees bent to 90 deg at the bottom", "knee_min", "eq", 90.0, 90.0),
        ("the largest hip angle is 175 degrees", "hip_max", "eq", 175.0, 175.0),
        ("knee angle at the deepest point about 100 degrees", "knee_min", "eq", 100.0, 100.0),
        ("the minimum knee angle was below 90 degrees", "knee_min", "lt", None, 90.0),
        ("the smallest knee angle is more than 80 degrees", "knee_min", "gt", 80.0, None),
        ("the smallest knee angle was between 60 and 90 degrees", "knee_min", "between", 60.0, 90.0),
        ("the smallest knee angle was 60-90 degrees", "knee_min", "between", 60.0, 90.0),
        ("the smallest knee angle was not below 90 degrees", "knee_min", "gt", 90.0, None),
        ("trunk lean at the bottom was 25 degrees", "trunk_lean_bottom", "eq", 25.0, 25.0),
        ("the torso leaned forward at most 30 degrees at its peak", "trunk_lean_max", "lt", None, 30.0),
        ("peak shoulder elevation (deg): 116.8", "shoulder_max", "eq", 116.8, 116.8),
        ("the arm was raised to 150 degrees", "shoulder_max", "eq", 150.0, 150.0),
        ("the knee range of motion was 110 degrees", "knee_rom", "eq", 110.0, 110.0),
        ("range of motion deg: 95.7", "range_of_motion", "eq", 95.7, 95.7),
        # the arc travelled, not the angle reached (was read as the smallest knee angle)
        ("the knees flexed through 107 deg", "knee_rom", "eq", 107.0, 107.0),
        ("the hip moved through 90 degrees", "hip_rom", "eq", 90.0, 90.0),
        ("the knees bent to 61 deg", "knee_min", "eq", 61.0, 61.0),
        ("the knee went through the bottom at 72 deg", "knee_min", "eq", 72.0, 72.0),
        ("depth_deg: 95.0", "depth", "eq", 95.0, 95.0),
        ("trunk_lean_at_working_deg: 25.4", "trunk_lean_bottom", "eq", 25.4, 25.4),
        ("the descent took 1.6 seconds", "descent", "eq", 1.6, 1.6),
        ("ascent s: 1.8", "ascent", "eq", 1.8, 1.8),
        ("each repetition took about 5 s", "rep_duration", "eq", 5.0, 5.0),
        ("tempo: 3 to 6 seconds per repetition", "rep_duration", "between", 3.0, 6.0),
        ("the descent lasted 800 ms", "descent", "eq", 0.8, 0.8),
        ("She did two complete repetitions.", "rep_count", "eq", 2.0, 2.0),
        ("a single rep was performed", "rep_count", "eq", 1.0, 1.0),
        ("repetitions counted: 2", "rep_count", "eq", 2.0, 2.0),
        ("there was 1 partial repetition", "partial_reps", "eq", 1.0, 1.0),
        ("hip/knee flexion ratio of 0.9", "hip_knee_ratio", "eq", 0.9, 0.9),
        ("the person was visible in 100% of frames", "visible_fraction", "eq", 1.0, 1.0),
        ("the squat went below parallel", "knee_min", "lt", None, 80.0),
        ("the squat did not go below parallel", "knee_min", "gt", 80.0, None),
        ("Moderate forward lean: 20 to 45 degrees", "trunk_lean_bottom", "between", 20.0, 45.0),
        ("the arm stayed below shoulder height", "shoulder_max", "lt", None, 90.0),
        ("a knee-dominant pattern", "hip_knee_ratio", "lt", None, 0.77),
    ],
)
def test_parse_quantities(text, quantity, relation, low, high):
    claim = [c for c in parse_claims(text) if c.kind != "unreadable"][0]
    assert (claim.quantity, claim.relation) == (quantity, relation)
    assert claim.low == pytest.approx(low) if low is not None else claim.low is None
    assert claim.high == pytest.approx(high) if high is not None else claim.high is None


def test_parse_sides_phases_and_several_claims_in_one_step():
    claims = parse_claims("angle_min.left_knee: 61.0, angle_min.right_knee: 59.8 ки")
    assert [(c.quantity, c.side, c.low) for c in claims] == [("knee_min", "left", 61.0), ("knee_min", "right", 59.8)]
    claims = parse_claims("The knee angle was smallest at 60 degrees and the hips reached a minimum of 45 degrees")
    assert [(c.quantity, c.low) for c in claims] == [("knee_min", 60.0), ("hip_min", 45.0)]
    claims = parse_claims("The smallest knee angle was 60.4 degrees, which is below 80 degrees, so below parallel.")
    assert [(c.quantity, c.relation) for c in claims] == [("knee_min", "eq"), ("knee_min", "lt"), ("knee_min", "lt")]
    time = _one("the bottom was reached at 6.8 s")
    assert (time.kind, time.phase, time.low) == ("time", "bottom", 6.8)
    side = _one("the exercise is done with the right arm")
    assert (side.kind, side.side) == ("side", "right")
    assert _one("driving angle: mean(left_knee,right_knee)").side == "both"


@pytest.mark.parametrize(
    ("text", "correct"),
    [
        ("Performed correctly, with no clear deviation", True),
        ("the squat was performed correctly", True),
        ("The squat was not performed correctly.", False),
        ("this repetition shows poor form", False),
        ("a deviation is present", False),
    ],
)
def test_parse_execution(text, correct):
    claim = _one(text)
    assert (claim.kind, claim.correct) == ("execution", correct)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("It reached 75 degrees.", "no joint or feature"),
        ("The knee angle was 60 degrees", "without a statistic"),
        ("the trunk lean was 30 degrees", "without a statistic"),
        ("The knee angle did not reach 90 degrees", "negated"),
        ("knee ankle ratio: 1.2", "ambiguous"),
        ("the smallest knee angle was 2 seconds", "cannot be"),
        ("the movement took 4 seconds", "no joint or feature"),
    ],
)
def test_unreadable_claims_are_kept_with_their_reason(text, why):
    claim = _one(text)
    assert claim.kind == "unreadable" and why in claim.reason and claim.text
    check = check_step(text, SQUAT).checks[0]
    assert check.verdict == NOT_CHECKABLE and why in check.reason


@pytest.mark.parametrize(
    "text",
    [
        DEMO_STEPS["template"],
        DEMO_STEPS["letter"],
        DEMO_STEPS["noise"],
        "Step 2: what it means for the question ки",
        "The patient is a 45-year-old man with knee pain for 3 weeks and a temperature of 38.5°C. ки",
        "Step 3: The correct answer is B because of a third-degree block. ки",
    ],
)
def test_no_claim_in_steps_without_measurements(text):
    assert parse_claims(text) == []
    assert check_step(text, SQUAT).verdict == NOT_CHECKABLE


def test_option_listings_are_quoted_not_asserted():
    claims = parse_claims(DEMO_STEPS["listing"])
    assert len(claims) == 3 and all(c.quoted and c.quantity == "rep_count" for c in claims)
    check = check_step(DEMO_STEPS["listing"], SQUAT)
    assert check.verdict == NOT_CHECKABLE and "quotes an answer option" in check.reason
    assert check_step("Answer: C) 2 complete repetitions ки", SQUAT).verdict == SUPPORTED


def test_template_bands_parse_to_their_own_band():
    """Each banded option of the question templates reads as the band the template answers with."""
    cases = [
        (qt.SQUAT_DEPTH_BANDS, [50.0, 90.0, 115.0, 150.0], "knee_min"),
        (qt.TRUNK_LEAN_BANDS[:3], [10.0, 30.0, 60.0], "trunk_lean_bottom"),
        (qt.SHOULDER_BANDS[:2] + qt.SHOULDER_BANDS[3:], [60.0, 105.0, 170.0], "shoulder_max"),
        (qt.TEMPO_BANDS, [1.0, 2.0, 4.5, 8.0], "rep_duration"),
        (qt.DEPTH_LIMITER_OPTIONS[:3], [0.6, 1.0, 1.5], "hip_knee_ratio"),
    ]
    for options, inside, quantity in cases:
        for i, option in enumerate(options):
            claims = [c for c in parse_claims(option) if c.quantity == quantity]
            assert claims, option
            for j, value in enumerate(inside):
                feats = {
                    "knee_min": {"knee_min_deg": value},
                    "trunk_lean_bottom": {"trunk_lean_bottom_deg": value},
                    "shoulder_max": {"shoulder_max_deg": value},
                    "rep_duration": {"rep_duration_s": value},
                    "hip_knee_ratio": {"hip_min_deg": 100 - 50 * value, "hip_max_deg": 100, "knee_min_deg": 50},
                }[quantity]
                if quantity == "hip_knee_ratio":
                    feats["knee_max_deg"] = 100
                tight = Tolerances(angle_deg=2, duration_s=0.1, duration_rel=0.0, ratio=0.02)
                verdict = check_step(option, feats, tight).verdict
                assert verdict == (SUPPORTED if i == j else CONTRADICTED), (option, value, verdict)


# ------------------------------------------------------------------ checking


def test_real_demo_steps():
    quarter = check_step(DEMO_STEPS["quarter"], SQUAT)
    assert quarter.verdict == CONTRADICTED  # knee_min 94.65 is not a quarter squat (>= 130)
    assert quarter.checks[0].feature_key == "angle_min.left_knee+angle_min.right_knee (mean)"
    assert quarter.checks[0].measured == pytest.approx(94.65)
    abduction = check_step(DEMO_STEPS["abduction"], ABDUCTION)
    assert [c.verdict for c in abduction.checks] == [SUPPORTED, CONTRADICTED]  # 95.7 is the range, not the peak
    assert abduction.verdict == CONTRADICTED
    assert abduction.checks[0].feature_key == "angle_max.left_shoulder+angle_max.right_shoulder (max)"
    assert check_step(DEMO_STEPS["side"], ABDUCTION).verdict == SUPPORTED


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("the smallest knee angle was 94.7 degrees", SUPPORTED),
        ("the smallest knee angle was 104.6 degrees", SUPPORTED),  # edge: 94.65 + 10 - 0.05
        ("the smallest knee angle was 104.7 degrees", CONTRADICTED),
        ("the smallest left knee angle was 86 degrees", SUPPORTED),
        ("the smallest right knee angle was 86 degrees", CONTRADICTED),
        ("the smallest knee angle was below 100 degrees", SUPPORTED),
        ("the smallest knee angle was below 90 degrees", NOT_CHECKABLE),  # 4.65 over the edge, within 10
        ("the smallest knee angle was below 80 degrees", CONTRADICTED),
        ("the smallest knee angle was between 100 and 130 degrees", NOT_CHECKABLE),
        ("the smallest knee angle was between 110 and 130 degrees", CONTRADICTED),
        ("2 complete repetitions", SUPPORTED),
        ("3 complete repetitions", CONTRADICTED),  # counts are exact
        ("1 partial repetition", SUPPORTED),
        ("the descent took 2.1 s", SUPPORTED),  # 1.6 +- 0.5
        ("the descent took 2.2 s", CONTRADICTED),
        ("each repetition took 6 seconds", SUPPORTED),  # 5.0 +- 20% = 1.0
        ("each repetition took 6.1 seconds", CONTRADICTED),
        ("the bottom was reached at 6.9 s", SUPPORTED),
        ("the bottom was reached at 9.0 s", CONTRADICTED),
        ("the top was reached at 4.6 s", NOT_CHECKABLE),  # the features time bottoms only
        ("trunk lean at the bottom 25 degrees", SUPPORTED),
        ("the squat went below parallel", CONTRADICTED),
        ("the squat reached about parallel", SUPPORTED),
        ("visible in 97% of frames", SUPPORTED),
        ("the exercise is done with the left leg", NOT_CHECKABLE),  # both legs drive a squat
        ("the squat is done with both legs", SUPPORTED),
        ("the largest elbow angle was 170 degrees", NOT_CHECKABLE),  # not measured
    ],
)
def test_verdicts_and_tolerance_edges(text, verdict):
    check = check_step(text, SQUAT)
    assert check.verdict == verdict, check
    if verdict == NOT_CHECKABLE:
        assert check.reason


def test_counts_with_a_tolerance_and_wider_angles():
    assert check_step("3 complete repetitions", SQUAT, Tolerances(count=1)).verdict == SUPPORTED
    assert check_step("the smallest knee angle was 110 degrees", SQUAT, Tolerances(angle_deg=20)).verdict == SUPPORTED


def test_one_contradicted_claim_decides_the_step():
    check = check_step("2 complete repetitions, and the smallest knee angle was 60 degrees ки", SQUAT)
    assert [c.verdict for c in check.checks] == [SUPPORTED, CONTRADICTED]
    assert check.verdict == CONTRADICTED and "60 degrees" in check.reason


def test_execution_claims_against_ground_truth():
    step = "Answer: A) Performed correctly, with no clear deviation ки"
    assert check_step(step, SQUAT, ground_truth="correct").verdict == SUPPORTED
    assert check_step(step, SQUAT, ground_truth="incorrect").verdict == CONTRADICTED
    assert check_step(step, {**SQUAT, "measured_verdict": "incorrect"}).verdict == CONTRADICTED
    unknown = check_step(step, SQUAT)
    assert unknown.verdict == NOT_CHECKABLE and "verdict" in unknown.reason
    assert check_step("it was not performed correctly", SQUAT, ground_truth="incorrect").verdict == SUPPORTED
    assert execution_truth({"ground_truth": "maybe"}) is None


@pytest.mark.parametrize("features", [None, {}, "", "{}", "not json"])
def test_missing_features_give_no_verdicts_and_a_reason(features):
    check = check_step("2 complete repetitions, smallest knee angle 90 degrees ки", features)
    assert check.verdict == NOT_CHECKABLE and check.reason.startswith(NO_FEATURES)
    assert len(check.checks) == 2 and all(c.verdict == NOT_CHECKABLE for c in check.checks)


def test_features_as_json_string_and_evidence_dict():
    check = check_step("2 complete repetitions ки", json.dumps(SQUAT))
    assert check.verdict == SUPPORTED and check.checkable
    evidence = check.as_dict()["checks"][0]
    assert (evidence["feature_key"], evidence["measured"], evidence["tolerance"]) == ("rep_count", 2.0, 0.0)
    assert evidence["claim"]["text"] == "2 complete repetitions"
    json.dumps(check.as_dict())


def test_measured_value_derived_and_missing():
    assert measured_value("knee_rom", SQUAT)[0] == pytest.approx(82.85)
    ratio, key = measured_value("hip_knee_ratio", SQUAT)
    assert ratio == pytest.approx((177.6 - 87.95) / 82.85, abs=1e-3) and "/" in key
    assert measured_value("knee_min", {"knee_min_deg": 60.0}, side="left") is None
    assert measured_value("knee_min", {"knee_min_deg": float("nan")}) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"angle_deg": -1}, {"duration_rel": 1.0}, {"count": 0.5}, {"ratio": float("nan")}, {"time_s": True}],
)
def test_tolerances_are_validated(kwargs):
    with pytest.raises(ValueError, match="tolerances"):
        Tolerances(**kwargs)


def test_medprm_steps_parse_without_error():
    path = "../shared/data/medprm-samples/medprm_samples_80.json"
    try:
        samples = json.load(open(path, encoding="utf-8"))
    except OSError:
        pytest.skip("Med-PRM samples not present")
    steps = [s for sample in samples for s in sample["steps"]]
    checks = [check_step(s, None) for s in steps]
    assert all(c.verdict == NOT_CHECKABLE for c in checks)
    # clinical text names few of our measurements; none of them becomes a checkable physio claim
    claims = [c.claim for check in checks for c in check.checks]
    assert sum(c.kind != "unreadable" for c in claims) <= len(steps) // 20
