"""SolutionSampler (stage "solutions") on the real SmolLM2 engine and on scripted engines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from physio_ray import schemas as S
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig, Generation, SamplingParams
from physio_ray.llm.hf_engine import HFEngine
from physio_ray.llm.sampler import SOLUTION_COLUMNS, SolutionSampler, batch_seed, read_solution, solution_id
from physio_ray.llm.steps import parse_answer

SQUAT_FEATURES = json.dumps(
    {"exercise": "squat", "reps": 2, "knee_flexion": {"min": 71.4, "max": 172.0}, "trunk_lean": {"max": 38.2}}
)
QUESTIONS = [
    {
        S.QUESTION_ID: "squat-q0",
        S.VIDEO_ID: "squat",
        S.QUESTION: "At the bottom of each squat, how deep does the knee bend?",
        S.OPTIONS: [
            "About 170 degrees (almost straight)",
            "About 70 degrees (deep squat)",
            "About 120 degrees",
            "0 degrees",
        ],
        S.ANSWER: "B",
        S.FEATURES: SQUAT_FEATURES,
        S.ERROR: None,
    },
    {
        S.QUESTION_ID: "squat-q1",
        S.VIDEO_ID: "squat",
        S.QUESTION: "Which compensation is most visible in this squat?",
        S.OPTIONS: ["Forward trunk lean", "Shoulder shrug", "Elbow flexion", "Neck rotation"],
        S.ANSWER: "A",
        S.FEATURES: SQUAT_FEATURES,
        S.ERROR: None,
    },
    {  # failed upstream: no solutions
        S.QUESTION_ID: "broken-q0",
        S.VIDEO_ID: "broken",
        S.QUESTION: "?",
        S.OPTIONS: ["a", "b", "c", "d"],
        S.ANSWER: "A",
        S.FEATURES: None,
        S.ERROR: "pose: no person in the video",
    },
    {  # garbage question (3 options): no solutions
        S.QUESTION_ID: "bad-q0",
        S.VIDEO_ID: "bad",
        S.QUESTION: "Which one?",
        S.OPTIONS: ["a", "b", "c"],
        S.ANSWER: "A",
        S.FEATURES: "{}",
        S.ERROR: None,
    },
]


def _batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows in Ray Data's numpy batch format (list cells become object arrays)."""
    out: dict[str, np.ndarray] = {}
    for key in rows[0]:
        col = np.empty(len(rows), dtype=object)
        for i, r in enumerate(rows):
            col[i] = np.asarray(r[key], dtype=object) if isinstance(r[key], list) else r[key]
        out[key] = col
    return out


@dataclass
class Recording:
    """Wraps an engine and keeps what it returned."""

    inner: object
    calls: list[tuple[list[str], SamplingParams, list[Generation]]] = field(default_factory=list)

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        gens = self.inner.generate(prompts, params)  # type: ignore[attr-defined]
        self.calls.append((prompts, params, gens))
        return gens

    def __getattr__(self, name: str) -> object:  # model / tokenizer / render of a local engine
        if name in ("inner", "calls"):
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass
class Scripted:
    """Returns fixed texts (or raises) without a model."""

    texts: list[str]
    raise_exc: Exception | None = None
    per_prompt_error: dict[int, str] = field(default_factory=dict)
    silent: set[int] = field(default_factory=set)  # prompts answered with no text and no error

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """Prompt ``i`` gets ``texts[i * n : (i + 1) * n]`` (cycling): sample k of a question is text k."""
        if self.raise_exc is not None:
            raise self.raise_exc
        out = []
        for i in range(len(prompts)):
            if i in self.per_prompt_error:
                out.append(Generation(error=self.per_prompt_error[i]))
                continue
            texts = (
                [] if i in self.silent else [self.texts[(i * params.n + k) % len(self.texts)] for k in range(params.n)]
            )
            out.append(Generation(texts=texts, tokens_in=10 + i, tokens_out=7, seconds=0.4))
        return out


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smollm() -> HFEngine:
    return HFEngine(EngineConfig(max_batch_size=16))


@pytest.fixture(scope="module")
def sampled(smollm: HFEngine) -> tuple[dict[str, np.ndarray], Recording, SamplerConfig]:
    cfg = SamplerConfig(n=4, temperature=0.8, top_p=0.95, max_new_tokens=32, seed=0)
    rec = Recording(smollm)
    out = SolutionSampler(cfg, engine=rec)(_batch(QUESTIONS))  # type: ignore[arg-type]
    return out, rec, cfg


def test_n_solutions_per_valid_question_with_stable_ids(sampled) -> None:  # noqa: ANN001
    out, rec, _ = sampled
    assert list(out[S.SOLUTION_ID]) == [solution_id(q, k) for q in ("squat-q0", "squat-q1") for k in range(4)]
    assert list(out[S.SOLUTION_ID])[:2] == ["squat-q0-s0", "squat-q0-s1"]
    assert list(out[S.QUESTION_ID]) == ["squat-q0"] * 4 + ["squat-q1"] * 4
    assert set(SOLUTION_COLUMNS) <= set(out) and S.VIDEO_ID in out and S.OPTIONS in out  # passthrough kept
    # ONE batched engine call for the whole batch: one prompt per sample (question-major), since
    # each sample's worked example answers with a different letter
    ((prompts, params, gens),) = rec.calls
    assert len(prompts) == 8 and params.n == 1 and params.max_new_tokens == 32
    assert params.seed == batch_seed(0, ["squat-q0", "squat-q1"])
    assert "A) About 170 degrees" in prompts[0] and "knee_flexion.min: 71.4" in prompts[0]
    example_letters = [p.split("Now the real case")[0].strip().splitlines()[-1] for p in prompts]
    assert sorted(example_letters[:4]) == sorted(example_letters[4:]) == [f"Answer: {x}" for x in "ABCD"]
    assert {p.split("Now the real case")[1] for p in prompts[:4]} == {prompts[0].split("Now the real case")[1]}


def test_steps_markers_and_strict_answers(sampled) -> None:  # noqa: ANN001
    out, _, _ = sampled
    answers = {"squat-q0": "B", "squat-q1": "A"}
    for i in range(len(out[S.SOLUTION_ID])):
        text, steps, pred = out[S.SOLUTION_TEXT][i], list(out[S.STEPS][i]), out[S.PREDICTED_ANSWER][i]
        assert pred == parse_answer(text)  # never guessed
        assert bool(out[S.IS_CORRECT][i]) == (pred is not None and pred == answers[out[S.QUESTION_ID][i]])
        for step in steps:
            assert step.endswith(" ки") and step.count(" ки") == 1 and step[: -len(" ки")].strip()
        if out[S.ERROR][i] is None:
            assert steps and pred in ("A", "B", "C", "D")
        else:
            assert out[S.ERROR][i].startswith("solution: ") and (pred is None or not steps)
    assert sum(1 for t in out[S.SOLUTION_TEXT] if t) == 8  # every completion is kept, good or bad


def test_costs_add_up(sampled) -> None:  # noqa: ANN001
    out, rec, _ = sampled
    ((_, _, gens),) = rec.calls
    assert out[S.COST_CALLS].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    for q in range(2):
        rows, parts = slice(4 * q, 4 * q + 4), gens[4 * q : 4 * q + 4]  # a question's 4 prompts
        assert out[S.COST_TOKENS_IN][rows].sum() == sum(g.tokens_in for g in parts) > 0
        assert out[S.COST_TOKENS_OUT][rows].sum() >= sum(g.tokens_out for g in parts) > 0  # + forced answers
        assert out[S.COST_SECONDS][rows].sum() == pytest.approx(sum(g.seconds for g in parts))
    assert out[S.COST_ROLLOUTS].sum() == 0
    assert out[S.COST_TOKENS_OUT].dtype == np.int64 and out[S.IS_CORRECT].dtype == np.bool_


def test_deterministic_with_seed(smollm: HFEngine, sampled) -> None:  # noqa: ANN001
    out, _, cfg = sampled
    again = SolutionSampler(cfg, engine=smollm)(_batch(QUESTIONS))
    assert list(again[S.SOLUTION_TEXT]) == list(out[S.SOLUTION_TEXT])
    assert len(set(out[S.SOLUTION_TEXT][:4])) > 1  # sampled, not greedy: the 4 solutions differ


# ------------------------------------------------------------------ scripted engines: garbage and failures


def test_garbage_completions_become_error_rows() -> None:
    texts = ["", "!!! ??? ...", "Step 1: knee bends ки\nAnswer: A or B", "Step 1: the knee bends ки\nAnswer: B"]
    cfg = SamplerConfig(n=4, response_prefix="", complete_answers=False)
    out = SolutionSampler(cfg, engine=Scripted(texts))(_batch(QUESTIONS[:1]))
    assert list(out[S.ERROR]) == [
        "solution: empty completion",
        "solution: empty completion",  # punctuation only: no step with a word in it
        "solution: no unambiguous final answer (expected a line like 'Answer: B')",
        None,
    ]
    assert list(out[S.PREDICTED_ANSWER]) == [None, None, None, "B"]
    assert out[S.IS_CORRECT].tolist() == [False, False, False, True]
    assert list(out[S.STEPS])[3] == ["Step 1: the knee bends ки", "Answer: B ки"]
    assert out[S.COST_TOKENS_OUT].tolist() == [7, 7, 7, 7]  # one prompt (7 tokens) per sample


def test_response_prefix_is_sent_and_kept_in_the_text() -> None:
    engine = Recording(Scripted([" knee bends ки\nAnswer: B", ""]))
    out = SolutionSampler(SamplerConfig(n=2, complete_answers=False), engine=engine)(_batch(QUESTIONS[:1]))
    assert engine.calls[0][1].prefix == "Step 1:"
    assert list(out[S.SOLUTION_TEXT]) == ["Step 1: knee bends ки\nAnswer: B", "Step 1:"]
    assert list(out[S.STEPS])[0] == ["Step 1: knee bends ки", "Answer: B ки"]
    assert list(out[S.PREDICTED_ANSWER]) == ["B", None] and out[S.ERROR][1].startswith("solution: no unambiguous")


def test_engine_failures_mark_rows_and_keep_the_batch() -> None:
    cfg = SamplerConfig(n=2, complete_answers=False)
    engine = Scripted(["Answer: A"], per_prompt_error={0: "HTTP 500"}, silent={3})  # q0 sample 0, q1 sample 1
    out = SolutionSampler(cfg, engine=engine)(_batch(QUESTIONS[:2]))
    assert list(out[S.ERROR]) == [
        "solution: generation failed: HTTP 500",
        "solution: generation failed: HTTP 500",
        "solution: generation failed: engine returned 1 of 2 completions",
        "solution: generation failed: engine returned 1 of 2 completions",
    ]
    boom = SolutionSampler(cfg, engine=Scripted([], raise_exc=RuntimeError("CUDA OOM")))(_batch(QUESTIONS[:2]))
    assert all(e == "solution: generation failed: RuntimeError: CUDA OOM" for e in boom[S.ERROR])
    assert len(boom[S.SOLUTION_ID]) == 4 and boom[S.STEPS][0] == []


def test_empty_and_all_failed_batches() -> None:
    sampler = SolutionSampler(SamplerConfig(n=2), engine=Scripted(["Answer: A"] * 2))
    out = sampler(_batch(QUESTIONS[2:]))
    assert all(len(v) == 0 for v in out.values()) and set(SOLUTION_COLUMNS) <= set(out)
    assert sampler({})[S.SOLUTION_ID].shape == (0,)


def test_read_solution_contract() -> None:
    steps, pred, ok, err = read_solution("Step 1: a ки\nStep 2: b ки\nAnswer: (C)", "C", max_steps=8)
    assert (steps, pred, ok, err) == (["Step 1: a ки", "Step 2: b ки", "Answer: (C) ки"], "C", True, None)
    assert read_solution("The movement is INCORRECT", "A", 8)[1:] == (
        None,
        False,
        "solution: no unambiguous final answer (expected a line like 'Answer: B')",
    )
