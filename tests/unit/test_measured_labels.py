"""The measurement check in the hybrid label: rules, per-solution verdicts, the MC stage and the summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.config import AnnotateConfig, MeasurementConfig, MonteCarloConfig
from physio_ray.annotate.finalize import measurement_counts, step_counts
from physio_ray.annotate.labels import combine_labels, needs_mc
from physio_ray.annotate.measured_steps import check_solution, keyed_execution
from physio_ray.annotate.montecarlo import MonteCarloAnnotator
from physio_ray.annotate.question_templates import CORRECT_OPTION
from physio_ray.annotate.stages import stage
from physio_ray.config import from_dict
from physio_ray.llm.engine import Generation, SamplingParams

FEATS = {"angle_min": {"left_knee": 61.0, "right_knee": 59.8}, "rep_count": 2}


def test_rules_contradiction_wins_support_confirms_conflict_goes_to_mc() -> None:
    judge = [1, 1, 0, None, 1, 0]
    conf = [0.99, 0.2, 0.99, 0.0, 0.3, 0.9]
    verdicts = ["contradicted", "supported", "supported", "supported", "not_checkable", None]
    assert needs_mc(judge, conf, 0.7, verdicts) == [False, False, True, False, True, False]
    labels, soft, methods = combine_labels(
        judge,
        conf,
        [None, None, 0.0, None, 0.5, None],
        0.7,
        mc_sources=[None, None, "mc", None, "mc", None],
        measurement=verdicts,
    )
    assert labels == [0, 1, 0, 1, 1, 0]
    assert soft == [0.0, 1.0, 0.0, 1.0, 0.5, 0.0]
    assert methods == ["measurement", "measurement", "mc_0.00", "measurement", "mc_0.50", "rag"]
    with pytest.raises(ValueError, match="measurement has 1"):
        needs_mc([1, 0], [0.9, 0.9], 0.7, ["supported"])


def test_check_solution_reads_claims_and_keeps_evidence() -> None:
    steps = ["Step 1: the smallest knee angle is 60 degrees ки", "Step 2: 3 repetitions ки", "Answer: B ки"]
    verdicts, evidence = check_solution(steps, json.dumps(FEATS), MeasurementConfig())
    assert verdicts == ["supported", "contradicted", "not_checkable"]
    first = json.loads(evidence[0])
    assert first["verdict"] == "supported" and first["claims"][0]["quantity"] == "knee_min"
    assert first["claims"][0]["measured"] == pytest.approx(60.4)
    assert json.loads(evidence[2])["reason"] == "no measurement claim"
    assert check_solution(steps, None, MeasurementConfig())[0] == ["not_checkable"] * 3
    assert json.loads(check_solution(steps, None, MeasurementConfig())[1][0])["reason"].startswith("no features")
    assert check_solution(steps, FEATS, MeasurementConfig(enabled=False)) == ([], [])


def test_ground_truth_questions_check_execution_and_skip_bands() -> None:
    options = ["Insufficient depth: the thighs stay well above parallel", CORRECT_OPTION, "Heels lift", "Valgus"]
    assert keyed_execution("ground_truth", options, "A") == "incorrect"
    assert keyed_execution("ground_truth", options, "B") == "correct"
    assert keyed_execution("ground_truth", options, "Z") is None
    steps = [
        "Step 1: the movement was performed correctly ки",
        "Step 2: the smallest knee angle is below 70 degrees ки",
    ]
    kw = {"answer_source": "ground_truth", "options": options, "answer": "A"}
    verdicts, evidence = check_solution(steps, FEATS, MeasurementConfig(), **kw)
    assert verdicts == ["contradicted", "not_checkable"]
    assert "band claims are not checked" in json.loads(evidence[1])["claims"][0]["reason"]
    assert check_solution(steps, FEATS, MeasurementConfig(bands_on_ground_truth=True), **kw)[0][1] == "supported"


class _Engine:
    """Every rollout answers B (the key): the conflict step rolls out as correct."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        self.prompts += prompts
        return [Generation(texts=["Step 9: so ки\nAnswer: B"] * params.n, tokens_in=5, tokens_out=5) for _ in prompts]


def _batch(steps: list[str], labels: list, conf: list[float], features: object) -> dict[str, np.ndarray]:
    def obj(v: object) -> np.ndarray:
        arr = np.empty(1, dtype=object)
        arr[0] = v
        return arr

    return {
        S.SOLUTION_ID: obj("q-s0"),
        S.QUESTION: obj("How many complete repetitions?"),
        S.OPTIONS: obj(["1 complete repetition", "2 complete repetitions", "3 complete repetitions", "0"]),
        S.ANSWER: obj("B"),
        S.ANSWER_SOURCE: obj("measured"),
        S.FEATURES: obj(None if features is None else json.dumps(features)),
        S.STEPS: obj(steps),
        S.IS_CORRECT: np.array([False]),
        S.JUDGE_LABELS: obj(labels),
        S.JUDGE_CONFIDENCES: obj(conf),
        S.ERROR: obj(None),
    }


def test_annotator_records_measurement_and_rolls_out_only_the_conflict() -> None:
    steps = ["Step 1: 3 repetitions ки", "Step 2: 2 complete repetitions ки", "Step 3: so it is B ки"]
    engine = _Engine()
    cfg = MonteCarloConfig(max_rollouts=4, batch=4, reuse=False)
    out = MonteCarloAnnotator(cfg, 0.7, engine=engine, measurement_cfg=MeasurementConfig())(
        _batch(steps, [1, 0, 1], [0.95, 0.95, 0.95], FEATS)
    )
    assert out[S.ERROR][0] is None
    assert list(out[S.MEASUREMENT_VERDICTS][0]) == ["contradicted", "supported", "not_checkable"]
    assert list(out[S.ANNOTATION_METHOD][0]) == ["measurement", "mc_1.00", "rag"]
    assert list(out[S.LABELS][0]) == [0, 1, 1]
    assert list(out[S.JUDGE_LABELS][0]) == [1, 0, 1]  # the judge's own verdict is kept
    assert len(engine.prompts) == 1 and "Step 2: 2 complete" in engine.prompts[0]
    off = MonteCarloAnnotator(cfg, 0.7, engine=_Engine())(_batch(steps, [1, 0, 1], [0.95, 0.95, 0.95], FEATS))
    assert list(off[S.ANNOTATION_METHOD][0]) == ["rag", "rag", "rag"] and list(off[S.MEASUREMENT_VERDICTS][0]) == []


def test_summary_counts_and_judge_vs_measurement() -> None:
    frame = pd.DataFrame(
        {
            S.SOLUTION_ID: ["a", "b"],
            S.ERROR: [None, None],
            S.JUDGE_LABELS: [[1, 1, 0], [1, None]],
            S.MC_SCORES: [[None, None, None], [None, None]],
            S.ANNOTATION_METHOD: [["measurement", "rag", "measurement"], ["measurement", "rag"]],
            S.MEASUREMENT_VERDICTS: [["contradicted", "not_checkable", "supported"], ["supported", "not_checkable"]],
        }
    )
    got = measurement_counts(frame)
    assert got is not None
    assert (got["checkable"], got["supported"], got["contradicted"], got["not_checkable"]) == (3, 2, 1, 2)
    jm = got["judge_vs_measurement"]
    assert jm["judged"] == 3 and jm["agreement"] == pytest.approx(1 / 3)
    assert jm["recall_incorrect"] == 0.0 and "kappa" in jm
    assert step_counts(frame)["by_method"] == {"measurement": 3, "rag": 2}
    assert measurement_counts(frame.drop(columns=[S.MEASUREMENT_VERDICTS])) is None


def test_config_and_stage_wiring() -> None:
    cfg = from_dict(AnnotateConfig, {"measurement": {"tolerances": {"angle_deg": 5}, "bands_on_ground_truth": True}})
    assert cfg.measurement.tolerances.angle_deg == 5 and cfg.measurement.enabled
    assert stage("annotated").transform_kwargs(cfg)["measurement_cfg"] is cfg.measurement
