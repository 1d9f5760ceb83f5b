"""The RAG judge: strict reply parsing, API backends (retries, abstention), the local SmolLM2
probe judge and the RagJudge stage on real inputs, and the Med-PRM agreement figures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physio_ray import schemas as S
from physio_ray.annotate.config import JudgeConfig
from physio_ray.annotate.judge import RagJudge
from physio_ray.annotate.judge_api import GeminiJudge, OpenAIJudge, build_judge_prompt, call_with_retries
from physio_ray.annotate.judge_backends import LocalProbeJudge, answer_check
from physio_ray.annotate.judge_eval import judge_vs_labels, load_medprm, medprm_agreement, medprm_batch
from physio_ray.annotate.judge_protocol import ABSTAIN, JudgeRequest, StepJudgement, parse_judgement, strip_marker
from physio_ray.llm.engine import EngineConfig
from tests.conftest import shared_path


# ---------------------------------------------------------------- parse_judgement
def pairs(text: str, n: int) -> list[tuple[int | None, float]]:
    return [(j.label, j.confidence) for j in parse_judgement(text, n)]


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        (
            '[{"label": "correct", "confidence": 0.9}, {"label": "incorrect", "confidence": 0.8}]',
            2,
            [(1, 0.9), (0, 0.8)],
        ),
        ('{"steps": [{"label": 1, "confidence": "0.75"}]}', 1, [(1, 0.75)]),
        ('Sure! ```json\n[{"label": "INCORRECT", "confidence": 1}]\n```', 1, [(0, 1.0)]),
        ('Here you go: [{"label": " Correct ", "confidence": 0}] hope it helps', 1, [(1, 0.0)]),
        ('[{"label": true, "confidence": 0.6}, {"label": false, "confidence": 0.6}]', 2, [(1, 0.6), (0, 0.6)]),
        # extra items ignored, missing items abstain
        ('[{"label": "correct", "confidence": 0.9}, {"label": "correct", "confidence": 0.9}]', 1, [(1, 0.9)]),
        ('[{"label": "correct", "confidence": 0.9}]', 3, [(1, 0.9), (None, 0.0), (None, 0.0)]),
        ("[]", 0, []),
    ],
)
def test_parse_accepts_the_documented_shapes(text: str, n: int, expected: list[tuple[int | None, float]]) -> None:
    assert pairs(text, n) == expected


GARBAGE = [
    "",
    "CORRECT",
    "INCORRECT",
    "The step is correct.",
    "Step 1: correct (0.9)",
    "null",
    "42",
    '"correct"',
    "[1, 0, 1]",
    '[["correct", 0.9]]',
    '[{"label": "correct"}]',  # no confidence
    '[{"confidence": 0.9}]',  # no label
    '[{"label": "correct", "confidence": null}]',
    '[{"label": "correct", "confidence": NaN}]',
    '[{"label": "correct", "confidence": Infinity}]',
    '[{"label": "correct", "confidence": 1.7}]',  # not a probability
    '[{"label": "correct", "confidence": 85}]',  # a percentage? unknown
    '[{"label": "correct", "confidence": -0.1}]',
    '[{"label": "correct", "confidence": true}]',
    '[{"label": "correct", "confidence": "high"}]',
    '[{"label": "mostly correct", "confidence": 0.9}]',
    '[{"label": "not correct", "confidence": 0.9}]',
    '[{"label": "correct?", "confidence": 0.9}]',
    '[{"label": "correctly", "confidence": 0.9}]',
    '[{"label": "in correct", "confidence": 0.9}]',
    '[{"label": 2, "confidence": 0.9}]',
    '[{"label": 1.0, "confidence": 0.9}]',
    '[{"label": ["correct"], "confidence": 0.9}]',
    '[{"label": "correct", "label": "incorrect", "confidence": 0.9}]',  # repeated key: ambiguous
    '[{"label": "correct", "confidence": 0.9}',  # truncated
    '{"steps": "correct"}',
    '{"verdicts": [{"label": "correct", "confidence": 0.9}]}',
    "[" * 5000 + "]" * 5000,  # deep nesting
]


@pytest.mark.parametrize("text", GARBAGE)
def test_parse_abstains_on_garbage(text: str) -> None:
    assert parse_judgement(text, 1) == [ABSTAIN]


def test_parse_edge_cases() -> None:
    with pytest.raises(ValueError, match="n_steps"):
        parse_judgement("[]", -1)
    assert parse_judgement(None, 2) == [ABSTAIN, ABSTAIN]  # type: ignore[arg-type]
    # one bad item abstains alone
    mixed = '[{"label": "incorrect", "confidence": 0.7}, {"label": "CORRECTISH", "confidence": 0.9}]'
    assert pairs(mixed, 2) == [(0, 0.7), (None, 0.0)]
    with pytest.raises(AssertionError):
        StepJudgement(None, 0.5)  # an abstention has confidence 0


NEGATIVE_WORDS = [
    "INCORRECT",
    "incorrect",
    "Incorrect",
    "not correct",
    "in-correct",
    "correct.",
    "correct!",
    "uncorrect",
]
WORDS = st.sampled_from([*NEGATIVE_WORDS, "correct", "CORRECT", "true", "false", "1", "0", "wrong", "", " correct "])
ITEM = st.fixed_dictionaries(
    {"label": st.one_of(WORDS, st.integers(-2, 3), st.booleans(), st.none()), "confidence": st.floats(-1, 2)}
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ITEM, max_size=6), st.integers(0, 8))
def test_parse_property_labels_come_only_from_exact_tokens(items: list[dict[str, Any]], n: int) -> None:
    out = parse_judgement(json.dumps(items), n)
    assert len(out) == n
    for k, j in enumerate(out):
        assert j.label in (0, 1, None) and 0.0 <= j.confidence <= 1.0
        if j.label is None:
            assert j.confidence == 0.0
            continue
        item = items[k]
        raw = item["label"]
        word = raw.strip().casefold() if isinstance(raw, str) else raw
        expected = {"correct": 1, "true": 1, "1": 1, "incorrect": 0, "false": 0, "0": 0, True: 1, False: 0}
        assert j.label == expected[word]
        assert 0.0 <= item["confidence"] <= 1.0 and j.confidence == item["confidence"]
        if isinstance(raw, str) and "incorrect" in raw.casefold():
            assert j.label == 0  # the seed's bug: "INCORRECT" must never read as correct


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.integers(0, 5))
def test_parse_property_never_raises_on_any_text(text: str, n: int) -> None:
    out = parse_judgement(text, n)
    assert len(out) == n and all(isinstance(j, StepJudgement) for j in out)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="[{"), max_size=200))
def test_parse_property_prose_without_json_always_abstains(text: str) -> None:
    assert parse_judgement(text + " CORRECT correct Correct", 2) == [ABSTAIN, ABSTAIN]


# ---------------------------------------------------------------- agreement figures
def test_judge_vs_labels_by_hand() -> None:
    res = judge_vs_labels([[1, 0, None, 1], [0]], [[1, 1, 0, 1], [0]])
    assert res["steps"] == 5 and res["judged"] == 4 and res["coverage"] == 0.8
    assert res["agreement"] == 0.75
    assert res["recall_correct"] == pytest.approx(2 / 3) and res["recall_incorrect"] == 1.0
    # kappa: p_o = 0.75, p_e = (3*2 + 1*2) / 16 = 0.5
    assert res["kappa"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="solutions"):
        judge_vs_labels([[1]], [])


# ---------------------------------------------------------------- retries and API backends
REQUEST = JudgeRequest(
    question="A patient squats with the knees collapsing inward. What is this called?",
    options="A. Knee valgus\nB. Knee varus\nC. Hip hiking\nD. Heel rise",
    answer="A",
    steps=(
        "The knees move toward the midline during the squat.",
        "Inward collapse of the knee is valgus. The answer is A.",
    ),
)


def test_call_with_retries_backs_off_then_gives_up() -> None:
    slept: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TimeoutError("busy")
        return "ok"

    assert call_with_retries(flaky, lambda e: 0.0, max_retries=4, backoff_s=0.5, sleep=slept.append) == "ok"
    assert slept == [0.5, 1.0] and calls["n"] == 3
    slept.clear()
    with pytest.raises(TimeoutError):
        call_with_retries(lambda: (_ for _ in ()).throw(TimeoutError("x")), lambda e: 7.0, 2, 1.0, slept.append)
    assert slept == [7.0, 7.0]  # the server's hint wins when larger
    with pytest.raises(KeyError):  # not retryable: raised at once
        call_with_retries(lambda: {}["x"], lambda e: None, 5, 1.0, slept.append)
    assert slept == [7.0, 7.0]


def _openai_reply(content: str) -> dict[str, Any]:
    return {"choices": [{"message": {"content": content}}], "usage": {"prompt_tokens": 120, "completion_tokens": 30}}


def test_openai_judge_retries_rate_limits_then_reads_json() -> None:
    seen: list[dict[str, Any]] = []
    replies = [
        httpx.Response(429, headers={"retry-after": "2"}),
        httpx.Response(503),
        httpx.Response(200, json=_openai_reply(json.dumps({"steps": [{"label": "correct", "confidence": 0.9}] * 2}))),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return replies[len(seen) - 1]

    slept: list[float] = []
    cfg = JudgeConfig(backend="openai", model="m", engine=EngineConfig(kind="openai", base_url="http://x/v1"))
    judge = OpenAIJudge(cfg, client=httpx.Client(transport=httpx.MockTransport(handler)), sleep=slept.append)
    res = judge.judge(REQUEST)
    assert [(j.label, j.confidence) for j in res.judgements] == [(1, 0.9), (1, 0.9)]
    assert (res.tokens_in, res.tokens_out, res.calls, res.note) == (120, 30, 1, None)
    assert slept == [2.0, 2.0] and len(seen) == 3
    body = seen[0]
    assert body["response_format"]["type"] == "json_schema" and body["temperature"] == 0.0
    assert "Reference answer: A" in body["messages"][1]["content"]


@pytest.mark.parametrize(
    "replies",
    [
        [httpx.Response(500)] * 3,  # retries exhausted
        [httpx.Response(400, json={"error": "bad"})],  # not retryable
        [httpx.Response(200, json=_openai_reply("The steps look CORRECT to me."))],  # prose
        [httpx.Response(200, json={"choices": []})],  # malformed reply
    ],
)
def test_openai_judge_abstains_when_it_cannot_get_a_verdict(replies: list[httpx.Response]) -> None:
    it = iter(replies)
    cfg = JudgeConfig(backend="openai", max_retries=2, engine=EngineConfig(kind="openai", base_url="http://x/v1"))
    judge = OpenAIJudge(
        cfg, client=httpx.Client(transport=httpx.MockTransport(lambda r: next(it))), sleep=lambda s: None
    )
    res = judge.judge(REQUEST)
    assert res.judgements == [ABSTAIN, ABSTAIN] and res.note


class _FakeGemini(BaseHTTPRequestHandler):
    """Answers generateContent like the Gemini REST API; the first reply is a 429."""

    bodies: list[dict[str, Any]] = []
    paths: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        type(self).paths.append(self.path)
        if len(type(self).bodies) == 1:
            self._send(429, {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}})
            return
        text = json.dumps([{"label": "correct", "confidence": 0.8}, {"label": "incorrect", "confidence": 0.65}])
        self._send(
            200,
            {
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 210, "candidatesTokenCount": 25},
            },
        )

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_gemini() -> Iterator[str]:
    _FakeGemini.bodies, _FakeGemini.paths = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGemini)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_gemini_judge_uses_a_response_schema_and_retries(fake_gemini: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GEMINI_KEY", "k")
    cfg = JudgeConfig(
        backend="gemini",
        model="gemini-2.5-flash",
        api_key_env="TEST_GEMINI_KEY",
        engine=EngineConfig(base_url=fake_gemini),
    )
    slept: list[float] = []
    res = GeminiJudge(cfg, sleep=slept.append).judge(REQUEST)
    assert [(j.label, j.confidence) for j in res.judgements] == [(1, 0.8), (0, 0.65)]
    assert (res.tokens_in, res.tokens_out, res.note) == (210, 25, None)
    assert slept == [cfg.backoff_s] and len(_FakeGemini.bodies) == 2
    assert _FakeGemini.paths[-1].endswith("/models/gemini-2.5-flash:generateContent")
    gen = _FakeGemini.bodies[-1]["generationConfig"]
    assert gen["responseMimeType"] == "application/json" and gen["responseSchema"]["type"].upper() == "ARRAY"


def test_gemini_judge_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_GEMINI_KEY", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_GEMINI_KEY"):
        GeminiJudge(JudgeConfig(backend="gemini", api_key_env="NO_SUCH_GEMINI_KEY"))


def test_judge_prompt_carries_everything() -> None:
    prompt = build_judge_prompt(REQUEST)
    assert "Reference answer: A" in prompt and "[2] Inward collapse" in prompt and "exactly 2 objects" in prompt


def test_answer_check_reads_committed_answers_strictly() -> None:
    checks = answer_check(REQUEST, 0.95)
    assert checks == [None, StepJudgement(1, 0.95)]
    wrong = JudgeRequest("q", "", "B", ("The answer is A.", "Answer: A or B", "The answer is not C"))
    assert answer_check(wrong, 0.9) == [StepJudgement(0, 0.9), None, None]
    assert answer_check(wrong, None) == [None, None, None]


# ---------------------------------------------------------------- local SmolLM2 judge (real model)
@pytest.fixture(scope="module")
def local_judge() -> LocalProbeJudge:
    from physio_ray.llm.smollm2 import load_causal_lm

    model, tokenizer = load_causal_lm("smollm2-135m", "float32")
    return LocalProbeJudge(JudgeConfig(top_k=0), model=model, tokenizer=tokenizer)


class _CountingModel:
    """Wraps the real model to count forward passes."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, 0
        self.config = model.config

    def parameters(self) -> Any:
        return self.model.parameters()

    def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self.model(**kwargs)


def test_local_judge_one_forward_pass_and_causal_probes(local_judge: LocalProbeJudge) -> None:
    counting = _CountingModel(local_judge.model)
    judge = LocalProbeJudge(
        JudgeConfig(top_k=0), model=counting, tokenizer=local_judge.tokenizer, answer_confidence=None
    )
    short = JudgeRequest(REQUEST.question, REQUEST.options, "A", REQUEST.steps[:1])
    a, b = judge.judge(short), judge.judge(REQUEST)
    assert counting.calls == 2  # one forward pass per solution
    assert len(b.judgements) == 2 and all(j.label in (0, 1) and 0.5 <= j.confidence <= 1 for j in b.judgements)
    # causal attention: a later step cannot change the verdict on an earlier one
    assert a.judgements[0].label == b.judgements[0].label
    assert a.judgements[0].confidence == pytest.approx(b.judgements[0].confidence, abs=1e-4)
    assert b.tokens_in > a.tokens_in > 0 and b.calls == 1
    # steps that do not fit the context abstain
    judge.max_len = a.tokens_in + 3
    cut = judge.judge(REQUEST)
    assert cut.judgements[1] == ABSTAIN and cut.judgements[0].label is not None


def _solutions_batch() -> dict[str, np.ndarray]:
    def col(values: list[Any]) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = [None] * len(values)
        for i, v in enumerate(values):
            out[i] = v
        return out

    steps_ok = [s + S.STEP_MARKER for s in REQUEST.steps]
    wrong = ["Inward knee collapse is called varus. ки", "The answer is B. ки"]
    return {
        S.SOLUTION_ID: col(["q0-s0", "q0-s1", "q0-s2", "q0-s3", "q0-s4"]),
        S.QUESTION: col([REQUEST.question] * 5),
        S.OPTIONS: col([["Knee valgus", "Knee varus", "Hip hiking", "Heel rise"]] * 5),
        S.ANSWER: col(["A"] * 5),
        S.STEPS: col([steps_ok, wrong, [], "one string, not a list", steps_ok]),
        S.ERROR: col([None, None, None, None, "sampler: unparseable answer"]),
    }


@pytest.fixture(scope="module")
def minilm_retriever() -> Any:
    from physio_ray.annotate.retrieval import Retriever

    return Retriever()


def test_rag_judge_stage_on_a_real_batch(local_judge: LocalProbeJudge, minilm_retriever: Any) -> None:
    stage = RagJudge(JudgeConfig(top_k=2), backend=local_judge, retriever=minilm_retriever)
    out = stage(_solutions_batch())
    assert out[S.COST_CALLS].tolist() == [1, 1, 0, 0, 0]  # exactly one call per judged solution
    labels = out[S.JUDGE_LABELS]
    assert labels[0][1] == 1 and labels[1][1] == 0  # the answer steps: A right, B wrong
    assert out[S.JUDGE_CONFIDENCES][1][1] == 0.95
    assert all(v in (0, 1) for v in labels[0]) and list(labels[2]) == []
    assert "valgus-definition" in out[S.RETRIEVED_DOCS][0]
    assert out[S.ERROR][0] is None and out[S.ERROR][1] is None
    assert "list of strings" in out[S.ERROR][3] and out[S.ERROR][4] == "sampler: unparseable answer"
    assert list(labels[4]) == [None, None] and list(out[S.JUDGE_CONFIDENCES][4]) == [0.0, 0.0]
    # a pandas batch (Ray Data batch_format="pandas") gives the same verdicts
    frame = pd.DataFrame({k: list(v) for k, v in _solutions_batch().items()}).iloc[:2]
    again = stage(frame)
    assert [list(x) for x in again[S.JUDGE_LABELS]] == [list(x) for x in labels[:2]]


def test_rag_judge_keeps_rows_flowing_when_the_backend_crashes() -> None:
    class Boom:
        def judge(self, request: JudgeRequest) -> Any:
            raise RuntimeError("bug")

    out = RagJudge(JudgeConfig(top_k=0), backend=Boom())(_solutions_batch())
    assert out[S.ERROR][0].startswith("judge failed: RuntimeError") and len(out[S.ERROR]) == 5


def test_strip_marker() -> None:
    assert strip_marker("Step 1: knees bend. ки ") == "Step 1: knees bend."
    assert strip_marker("no marker") == "no marker"


# ---------------------------------------------------------------- Med-PRM agreement (real data)
def test_medprm_agreement_on_real_samples(local_judge: LocalProbeJudge) -> None:
    path = shared_path("medprm-samples", "medprm_samples_80.json")
    records = load_medprm(path, limit=2)
    assert medprm_batch(records)[S.STEPS][0][0].endswith(S.STEP_MARKER)
    res = medprm_agreement(path, limit=2, backend=local_judge)
    assert res["solutions"] == 2 and res["calls_per_solution"] == 1.0
    assert res["vs_gemini"]["steps"] == 13 and res["vs_gemini"]["coverage"] == 1.0
    assert res["gemini_vs_mc_hard"]["agreement"] == pytest.approx(12 / 13)
    # sample 1 answers D (reference B): its answer step is labelled incorrect, as both references say
    assert res["vs_mc_hard"]["recall_incorrect"] is not None and res["vs_mc_hard"]["recall_incorrect"] > 0


def test_load_medprm_rejects_other_schemas(tmp_path: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "q"}]))
    with pytest.raises(ValueError, match="lacks"):
        load_medprm(bad)
    with pytest.raises(FileNotFoundError):
        load_medprm(tmp_path / "missing.json")
