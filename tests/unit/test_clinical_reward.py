"""Seed 002's clinical reward: table values, real scenarios, GRPO adapter, properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physio_ray.clinical.parsing import parse_verdict
from physio_ray.clinical.reward import (
    RewardTable,
    clinical_reward,
    make_grpo_reward,
    reward_outcome,
    scenario_truth,
)
from tests.conftest import shared_path


def _sc(error_type: str, severity: str) -> dict:
    return {"id": "t", "error_type": error_type, "severity": severity}


@pytest.fixture(scope="module")
def scenarios() -> list[dict]:
    return json.loads(shared_path("medbilldozer-clinical", "clinical_scenarios_48.json").read_text())


@pytest.mark.parametrize(
    ("prediction", "error_type", "severity", "expected"),
    [
        ("ERROR - Treatment does not match imaging", "overtreatment", "critical", 3.0),
        ("ERROR", "overtreatment", "high", 2.5),
        ("ERROR", "unnecessary_procedure", "moderate", 2.0),
        ("CORRECT - Treatment matches imaging findings", "overtreatment", "critical", -3.0),
        ("CORRECT", "incorrect_icd", "high", -2.0),
        ("CORRECT", "overtreatment", "moderate", -1.5),
        ("CORRECT - Treatment matches imaging findings", "none", "none", 1.5),
        ("ERROR", "none", "none", -2.0),
        # unparseable -> the table minimum, whatever the case
        ("INCORRECT", "none", "none", -3.0),
        ("INCORRECT", "overtreatment", "moderate", -3.0),
        ("ERROR or CORRECT", "overtreatment", "critical", -3.0),
        ("I am not sure.", "none", "none", -3.0),
    ],
)
def test_seed_table(prediction: str, error_type: str, severity: str, expected: float) -> None:
    assert clinical_reward(prediction, _sc(error_type, severity)) == expected


def test_seed_formula_is_reproduced() -> None:
    # Seed: caught = base_reward (1.0) + severity_bonus; correct validation = base_reward + 0.5.
    t = RewardTable()
    bonus = {"critical": 2.0, "high": 1.5, "moderate": 1.0}
    for sev, b in bonus.items():
        assert getattr(t, f"caught_{sev}") == 1.0 + b
    assert t.correct_validation == 1.0 + 0.5
    assert (t.minimum, t.maximum) == (-3.0, 3.0)


def test_gold_and_inverted_answers_on_real_scenarios(scenarios: list[dict]) -> None:
    tm = [s for s in scenarios if s["validation_type"] == "treatment_matching"]
    gold = [clinical_reward(s["expected_determination"], s) for s in tm]
    # 6 critical * 3.0 + 3 high * 2.5 + 3 moderate * 2.0 + 12 correct * 1.5
    assert sum(gold) == pytest.approx(49.5)
    flipped = [clinical_reward("CORRECT" if s["error_type"] != "none" else "ERROR", s) for s in tm]
    # 6 * -3.0 + 3 * -2.0 + 3 * -1.5 + 12 * -2.0
    assert sum(flipped) == pytest.approx(-52.5)
    icd = [s for s in scenarios if s["validation_type"] == "icd_coding"]
    # 5 critical, 3 high, 4 moderate errors; 12 correct codes
    assert sum(clinical_reward(s["expected_determination"], s) for s in icd) == pytest.approx(
        5 * 3 + 3 * 2.5 + 4 * 2 + 12 * 1.5
    )


def test_outcome_names(scenarios: list[dict]) -> None:
    s = next(x for x in scenarios if x["severity"] == "critical")
    o = reward_outcome("CORRECT", s)
    assert (o.outcome, o.predicted, o.truth, o.severity) == ("missed", "CORRECT", "ERROR", "critical")
    assert reward_outcome("", s).outcome == "unparseable"


def test_malformed_scenarios_raise() -> None:
    with pytest.raises(ValueError, match="error_type"):
        clinical_reward("ERROR", {"id": "x"})
    with pytest.raises(ValueError, match="severity"):
        clinical_reward("ERROR", _sc("overtreatment", "none"))
    bad = {**_sc("none", "none"), "expected_determination": "ERROR - Treatment does not match imaging"}
    with pytest.raises(ValueError, match="disagree|says"):
        scenario_truth(bad)


def test_table_refuses_a_hackable_unparseable_value() -> None:
    with pytest.raises(ValueError, match="reward hacking"):
        RewardTable(unparseable=0.0)
    assert clinical_reward("??", _sc("none", "none"), RewardTable(unparseable=-5.0)) == -5.0


def test_grpo_adapter_reads_scenario_json_and_chat_completions(scenarios: list[dict]) -> None:
    fn = make_grpo_reward()
    assert fn.__name__ == "clinical_reward"
    s = scenarios[0]  # clinical_001: high-severity overtreatment
    out = fn(
        completions=["ERROR", [{"role": "assistant", "content": "CORRECT"}], "INCORRECT"],
        scenario=[json.dumps(s), s, json.dumps(s)],
        prompts=["p"] * 3,
    )
    assert out == [2.5, -2.0, -3.0]
    with pytest.raises(ValueError, match="completions"):
        fn(completions=["ERROR"], scenario=[])


SCENARIOS = st.builds(
    _sc,
    st.sampled_from(["none", "overtreatment", "unnecessary_procedure", "incorrect_icd"]),
    st.sampled_from(["critical", "high", "moderate"]),
).map(lambda s: {**s, "severity": "none"} if s["error_type"] == "none" else s)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=40), SCENARIOS)
def test_reward_is_bounded_and_unparseable_is_minimum(text: str, scenario: dict) -> None:
    t = RewardTable()
    r = clinical_reward(text, scenario)
    assert t.minimum <= r <= t.maximum
    if parse_verdict(text) is None:
        assert r == t.minimum


@settings(max_examples=100, deadline=None, database=None)
@given(SCENARIOS, st.text(max_size=20))
def test_committing_to_the_truth_is_best(scenario: dict, other: str) -> None:
    truth, _ = scenario_truth(scenario)
    best = clinical_reward(truth, scenario)
    assert clinical_reward(other, scenario) <= best
    wrong = "CORRECT" if truth == "ERROR" else "ERROR"
    # A committed wrong answer is never worse than evading.
    assert clinical_reward(wrong, scenario) >= clinical_reward("maybe", scenario)
