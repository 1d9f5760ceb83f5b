"""Reference solutions: true of the recording (the measurement check confirms them) and in the sampler's format."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd
import pytest

from physio_ray.annotate.measurement import check_step
from physio_ray.annotate.reference_solutions import reference_solution, reference_steps
from physio_ray.llm.sampler import read_solution
from physio_ray.schemas import STEP_MARKER
from tests.conftest import ASSETS

ROWS = pd.read_parquet(ASSETS / "policy" / "questions.parquet").to_dict("records")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["question_id"])
def test_reference_is_confirmed_by_the_measurement_and_answers_right(row: dict) -> None:
    options = list(row["options"])
    text = reference_solution(row["template"], row["exercise"], options, row["answer"], row["features"])
    if row["template"] == "rep_count":
        assert text is None  # the count is hidden from the evidence: no target that asserts it
        return
    assert text is not None
    steps, predicted, correct, error = read_solution(text, row["answer"], max_steps=8)
    assert (predicted, correct, error) == (row["answer"], True, None)
    assert all(s.endswith(STEP_MARKER) for s in steps)
    first = check_step(steps[0], row["features"])
    assert first.verdict == "supported", first.reason
    # every number step 1 quotes is shown to the solver in the question's evidence block
    quoted = re.findall(r"\d+\.\d", steps[0])
    assert quoted and all(number in row["question"] for number in quoted)
    if row["answer_source"] == "measured":
        assert check_step(steps[1], row["features"]).verdict != "contradicted"
    # the last step restates the right option by its text and letter tag, the tag the prompt shows
    right = str(options["ABCD".index(row["answer"])]).strip()
    assert steps[-1] == f"Answer: {row['answer']}{STEP_MARKER}"
    assert steps[-2] == f"Step {len(steps) - 1}: The matching option is {right} [{row['answer']}].{STEP_MARKER}"
    if row["answer_source"] == "measured":  # a dataset-keyed finding may disagree with the measurement
        assert check_step(steps[-2], row["features"]).verdict != "contradicted"


def test_pinned_squat_depth_reference() -> None:
    feats = {"angle_min": {"left_knee": 88.0, "right_knee": 92.0}}
    steps = reference_steps("squat_depth", "deep_squat", ["w", "x", "y", "z"], "C", feats)
    assert steps == [
        f"Step 1: The smallest knee angle is 90.0 deg.{STEP_MARKER}",
        f"Step 2: 90.0 deg is between 80 and 100 deg, so the squat reached about parallel.{STEP_MARKER}",
        f"Step 3: The matching option is y [C].{STEP_MARKER}",
    ]


def test_gt_execution_states_the_keyed_finding() -> None:
    feats = json.dumps({"angle_max": {"left_shoulder": 95.0, "right_shoulder": 160.0}})
    options = ["Performed correctly, with no clear deviation", "Reduced range: the arm stops below 150", "b", "c"]
    steps = reference_steps("gt_execution", "m07", options, "B", feats)
    assert steps is not None
    assert steps[0].startswith("Step 1: The peak shoulder elevation is 160.0 deg.")
    assert "reduced range: the arm stops below 150." in steps[1]


@pytest.mark.parametrize(
    ("template", "features", "answer"),
    [
        ("squat_depth", {}, "A"),  # no knee angle
        ("squat_depth", "not json", "A"),
        ("squat_depth", {"angle_min": {"left_knee": 60.0}}, "E"),  # not one of 4 letters
        ("llm_written", {"angle_min": {"left_knee": 60.0}}, "A"),
        ("gt_execution", {"angle_min": {"left_knee": 60.0}}, "A"),  # exercise "rowing" is unknown
    ],
)
def test_no_reference_where_none_can_be_written(template: str, features: Any, answer: str) -> None:
    exercise = "rowing" if template == "gt_execution" else "deep_squat"
    assert reference_solution(template, exercise, list("abcd"), answer, features) is None
