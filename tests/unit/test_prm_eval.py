"""Best-of-N candidates, report building, request validation and the Serve YAML (no model, no Ray)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from physio_ray import schemas as S
from physio_ray.config import ConfigError, from_dict, load_config
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import Generation, SamplingParams
from physio_ray.llm.steps import parse_answer
from physio_ray.prm.api import RequestLimits, request_problems
from physio_ray.prm.candidates import SAMPLE_ERROR, MedQACandidateSampler, medqa_prompt
from physio_ray.prm.eval_config import CandidateConfig, EvalBestOfNConfig
from physio_ray.prm.evaluate import SOURCE, STEP_LABELS, build_report
from physio_ray.prm.scoring import STEP_SCORES

REPO = Path(__file__).resolve().parents[2]


class ScriptedEngine:
    """Returns fixed completions, n per prompt."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.calls: list[tuple[int, SamplingParams]] = []

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        self.calls.append((len(prompts), params))
        return [Generation(texts=self.texts[: params.n], tokens_in=10, tokens_out=20) for _ in prompts]


def test_parse_answer_reads_the_options_of_the_question() -> None:
    assert parse_answer("Step 1: x ки\nthe answer is (E)", 5) == "E"
    assert parse_answer("the answer is (E)", 4) is None  # not an option of a 4-option question
    assert parse_answer("I think INCORRECT", 5) is None
    assert parse_answer("answer: B. later the answer is (C)", 5) == "C"  # the last cue wins
    with pytest.raises(ValueError, match="2..10 options"):
        medqa_prompt("q", ["only one"])


def test_sampler_expands_questions_and_marks_failures() -> None:
    texts = [
        "Step 1: Tremor improves with alcohol ки\nStep 2: Essential tremor ки\nthe answer is (B)",
        "Step 1: Not sure ки\nno idea",
        "",
    ]
    engine = ScriptedEngine(texts)
    sampler = MedQACandidateSampler(SamplerConfig(n=3, response_prefix="", complete_answers=False), engine=engine)
    batch = {
        S.QUESTION_ID: np.array(["q1", "q2"], dtype=object),
        S.QUESTION: np.array(["Which tremor?", "Bad"], dtype=object),
        S.OPTIONS: np.array([np.array(["a", "b", "c", "d", "e"]), np.array(["one"])], dtype=object),
        S.ANSWER: np.array(["B", "A"], dtype=object),
    }
    out = sampler(batch)
    assert engine.calls[0][0] == 1  # the 1-option question is skipped, the batch goes in one call
    assert out[S.SOLUTION_ID].tolist() == ["q1-s0", "q1-s1", "q1-s2"]
    assert out[S.IS_CORRECT].tolist() == [True, False, False]
    assert out[S.PREDICTED_ANSWER].tolist() == ["B", None, None]
    assert out[S.STEPS][0][:2] == ["Step 1: Tremor improves with alcohol ки", "Step 2: Essential tremor ки"]
    assert out[SAMPLE_ERROR].tolist()[1] == "no parseable final answer"
    assert out[S.ERROR][0] is None and out[S.ERROR][2].startswith("candidate: no steps")


def test_shipped_sampler_section_samples_as_the_old_keys_did() -> None:
    new = load_config(EvalBestOfNConfig, [str(REPO / "configs" / "eval_bestofn" / "local.yaml")])
    with pytest.warns(FutureWarning, match="candidates.n -> sampler.n"):
        old = EvalBestOfNConfig(
            candidates=CandidateConfig(
                n=4, temperature=0.8, max_new_tokens=128, engine_model="smollm2-135m", batch_size=8
            )
        )
    assert new.candidate_sampler == old.candidate_sampler


def test_deprecated_candidate_keys_and_refusals() -> None:
    with pytest.warns(FutureWarning, match="candidates.engine_model -> sampler.engine.model"):
        cfg = from_dict(EvalBestOfNConfig, {"candidates": {"n": 6, "engine_model": "m"}, "scorer_actors": 2})
    s = cfg.candidate_sampler
    assert (s.n, s.engine.model, s.resources.actors, s.resources.batch_size) == (6, "m", 2, 4)
    assert (s.response_prefix, s.complete_answers, s.max_new_tokens) == ("", False, 160)
    with pytest.raises(ConfigError, match="give the sampling settings once"):
        from_dict(EvalBestOfNConfig, {"candidates": {"n": 6}, "sampler": {"n": 6}})
    with pytest.raises(ConfigError, match="in-process engine"):
        from_dict(EvalBestOfNConfig, {"sampler": {"engine": {"kind": "vllm"}}})


def _row(source, qid, scores, correct=None, answer=None, labels=(), error=None):
    return {
        SOURCE: source,
        S.QUESTION_ID: qid,
        STEP_SCORES: np.asarray(scores, dtype=float),
        S.IS_CORRECT: correct,
        S.PREDICTED_ANSWER: answer,
        STEP_LABELS: list(labels),
        S.ERROR: error,
    }


def test_build_report_tables_and_auc() -> None:
    rows = [
        _row("medprm-sampled", "q1", [0.9, 0.8], True, "A"),
        _row("medprm-sampled", "q1", [0.9, 0.1], False, "B"),
        _row("medprm-sampled", "q2", [0.2], False, "C"),
        _row("medprm-sampled", "q2", [0.7, 0.6], True, "D"),
        _row("heldout-labelled", "q9", [0.9, 0.2, 0.8], labels=[1.0, 0.0, math.nan]),
        _row("heldout-labelled", "q8", [0.6], labels=[1.0]),
        _row("medprm-sampled", "q3", [], False, None, error="prm scorer: failed"),
    ]
    cfg = EvalBestOfNConfig(checkpoint=None, ns=[1, 2, 4])
    report = build_report(cfg, rows, 1.0)
    assert report["step_auc"] == {"prm": 1.0, "constant": 0.5, "steps": 3, "positives": 2}
    table = report["bestofn"]["medprm-sampled"]
    assert table["n"] == [1, 2] and table["skipped_n"] == [4] and table["questions"] == 2
    assert table["methods"]["prm_min"] == [0.5, 1.0]
    assert table["methods"]["majority"] == [0.5, 0.5] and table["methods"]["random"] == [0.5, 0.5]
    assert report["unscorable_rows"] == 1


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        ([], "steps is empty"),
        (["Step 1: a"], "does not end with the step marker"),
        (["Step 1: a ки b ки"], "more than once"),
        ([f"Step {i}: x ки" for i in range(17)], "17 steps exceed the limit of 16"),
        (["x" * 20_000 + " ки"], "above the limit of 16000"),
    ],
)
def test_request_problems(steps, needle) -> None:
    problems = request_problems("Is this a full squat?", ["yes", "no"], steps, None, RequestLimits())
    assert any(needle in p for p in problems), problems


def test_request_features_checked() -> None:
    limits = RequestLimits(max_keyframes=2)
    ok = ["Step 1: fine ки"]
    assert request_problems("q", [], ok, [[0.0] * 16], limits) == []
    assert "need 16 values" in request_problems("q", [], ok, [[0.0] * 3], limits)[0]
    assert "above the limit of 2" in request_problems("q", [], ok, [[0.0] * 16] * 3, limits)[0]


def test_serve_yaml_validates_and_builds() -> None:
    from ray.serve.schema import ServeDeploySchema

    from serve_apps.prm_scoring import PRMAppArgs, build_app

    text = (REPO / "configs" / "serve" / "prm.yaml").read_text()
    assert "serve run configs/serve/prm.yaml" in text
    schema = ServeDeploySchema.model_validate(yaml.safe_load(text))
    (app_cfg,) = schema.applications
    assert app_cfg.import_path == "serve_apps.prm_scoring:build_app"
    assert app_cfg.deployments[0].autoscaling_config["max_replicas"] >= 1
    args = dict(app_cfg.args, checkpoint=None)
    assert args["share_prefix"] is True  # said in the YAML, not only the default
    assert PRMAppArgs.model_validate(args).max_batch_size == 16
    assert type(build_app(args)).__name__ == "Application"
    with pytest.raises(FileNotFoundError, match="train one"):
        build_app(dict(args, checkpoint="outputs/does-not-exist/prm"))
