"""OpenAIEngine against a real local HTTP server (FastAPI on uvicorn in a thread).

The server returns canned completions and misbehaves on request (rate limits, 5xx, slow replies,
garbage bodies, one choice per reply), driven by words in the prompt, so every retry path runs
over real HTTP. The model path itself is tested with SmolLM2 in test_llm_hf_engine.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from physio_ray.llm.engine import EngineConfig, SamplingParams
from physio_ray.llm.factory import build_engine
from physio_ray.llm.openai_engine import OpenAIEngine, backoff_delay, read_choices, request_body

KEY_ENV = "PHYSIO_RAY_TEST_OPENAI_KEY"


class CannedServer:
    """State shared between the test and the app: requests seen, attempts per prompt."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.attempts.clear()


def _prompt_of(body: dict[str, Any]) -> str:
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body.get("prompt", ""))


def build_app(state: CannedServer) -> FastAPI:
    app = FastAPI()

    async def handle(request: Request, chat: bool) -> Any:
        body = await request.json()
        prompt = _prompt_of(body)
        with state.lock:
            state.requests.append((request.url.path, body, dict(request.headers)))
            state.attempts[prompt] += 1
            attempt = state.attempts[prompt]
        if "RATE_LIMITED_TWICE" in prompt and attempt <= 2:
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "0.25"})
        if "FLAKY_503" in prompt and attempt <= 2:
            return JSONResponse({"error": "overloaded"}, status_code=503)
        if "ALWAYS_500" in prompt:
            return JSONResponse({"error": "boom"}, status_code=500)
        if "BAD_REQUEST" in prompt:
            return JSONResponse({"error": "context too long"}, status_code=400)
        if "GARBAGE" in prompt:
            return PlainTextResponse("<html>not json</html>")
        if "NO_CHOICES" in prompt:
            return JSONResponse({"id": "x", "object": "error"})
        if "SLOW" in prompt:
            await asyncio.sleep(1.0)
        n = 1 if "ONE_CHOICE" in prompt else int(body.get("n", 1))
        texts = [f"Step 1: the knee bends (attempt {attempt}, k={k}) ки\nAnswer: B\nEXTRA" for k in range(n)]
        if chat:
            choices = [{"index": k, "message": {"role": "assistant", "content": t}} for k, t in enumerate(texts)]
        else:
            choices = [{"index": k, "text": t} for k, t in enumerate(texts)]
        choices.reverse()  # servers may return choices out of order; the engine sorts by index
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 7 * n, "total_tokens": 0}
        return {"id": "cmpl-1", "choices": choices, "usage": usage}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await handle(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await handle(request, chat=True)

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Any:
    state = CannedServer()
    port = _free_port()
    config = uvicorn.Config(build_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the canned OpenAI server did not start")
        time.sleep(0.02)
    state.base_url = f"http://127.0.0.1:{port}/v1"  # type: ignore[attr-defined]
    yield state
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def canned(server: CannedServer) -> CannedServer:
    server.reset()
    return server


def _engine(
    base_url: str, *, chat: bool = False, retries: int = 3, timeout: float = 10.0, **kw: Any
) -> tuple[OpenAIEngine, list[float]]:
    sleeps: list[float] = []
    cfg = EngineConfig(
        kind="openai",
        model="canned-model",
        base_url=base_url,
        chat_template=chat,
        api_key_env=KEY_ENV,
        max_retries=retries,
        timeout_s=timeout,
    )
    return OpenAIEngine(cfg, backoff_s=0.1, sleep=sleeps.append, **kw), sleeps


# ------------------------------------------------------------------ pure helpers


def test_backoff_doubles_and_honours_retry_after() -> None:
    assert [backoff_delay(k, 0.5) for k in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(10, 0.5, cap_s=30.0) == 30.0
    assert backoff_delay(3, 0.5, retry_after="0.25") == 0.25
    assert backoff_delay(0, 0.5, retry_after="Wed, 21 Oct 2015 07:28:00 GMT") == 0.5  # unreadable: exponential
    assert backoff_delay(0, 0.5, retry_after="9999") == 60.0


def test_request_body_fields() -> None:
    params = SamplingParams(n=3, temperature=0.7, top_p=0.9, max_new_tokens=40, stop=("\n\n",))
    body = request_body("m", "hi", params, chat=True, n=2, seed=11)
    assert body == {
        "model": "m",
        "n": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": "hi"}],
        "seed": 11,
        "stop": ["\n\n"],
    }
    plain = request_body("m", "hi", SamplingParams(), chat=False, n=1, seed=None)
    assert plain["prompt"] == "hi" and "seed" not in plain and "stop" not in plain and "messages" not in plain
    # a response prefix: appended to a raw prompt; an assistant prefill continued by the server in chat
    assert (
        request_body("m", "hi\n", SamplingParams(prefix="Step 1:"), chat=False, n=1, seed=None)["prompt"]
        == "hi\nStep 1:"
    )
    prefilled = request_body("m", "hi", SamplingParams(prefix="Step 1:"), chat=True, n=1, seed=None)
    assert prefilled["messages"][-1] == {"role": "assistant", "content": "Step 1:"}
    assert prefilled["continue_final_message"] is True and prefilled["add_generation_prompt"] is False
    assert "continue_final_message" not in body


def test_read_choices_sorts_and_rejects_garbage() -> None:
    texts, t_in, t_out = read_choices(
        {"choices": [{"index": 1, "message": {"content": "b"}}, {"index": 0, "message": {"content": None}}]}, chat=True
    )
    assert (texts, t_in, t_out) == (["", "b"], 0, 0)
    from physio_ray.llm.openai_engine import FatalError

    for bad in ({"object": "error"}, [], {"choices": [{"index": 0}]}, {"choices": ["x"]}):
        with pytest.raises(FatalError):
            read_choices(bad, chat=False)


# ------------------------------------------------------------------ over real HTTP


def test_completions_endpoint_n_usage_seed_and_stop(canned: CannedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    engine, sleeps = _engine(canned.base_url)
    params = SamplingParams(n=3, temperature=0.8, max_new_tokens=32, seed=100, stop=("\nEXTRA",))
    gens = engine.generate(["first prompt here", "second prompt"], params)
    assert [g.error for g in gens] == [None, None] and sleeps == []
    assert [len(g.texts) for g in gens] == [3, 3]
    assert gens[0].texts[0] == "Step 1: the knee bends (attempt 1, k=0) ки\nAnswer: B"  # trimmed at the stop string
    assert [t.split("k=")[1][0] for t in gens[1].texts] == ["0", "1", "2"]  # in choice-index order
    assert (gens[0].tokens_in, gens[0].tokens_out, gens[1].tokens_in, gens[1].tokens_out) == (3, 21, 2, 21)
    assert all(g.seconds > 0 for g in gens)
    bodies = sorted((b for _, b, _ in canned.requests), key=lambda b: b["seed"])
    assert [b["seed"] for b in bodies] == [100, 101]  # prompt i gets seed + i
    assert all(p == "/v1/completions" for p, _, _ in canned.requests)
    assert bodies[0]["model"] == "canned-model" and bodies[0]["max_tokens"] == 32 and bodies[0]["n"] == 3
    assert all("authorization" not in h for _, _, h in canned.requests)
    engine.close()


def test_chat_endpoint_sends_key_from_env(canned: CannedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    engine, _ = _engine(canned.base_url, chat=True)
    (gen,) = engine.generate(["chat prompt"], SamplingParams(n=2))
    assert gen.error is None and len(gen.texts) == 2 and gen.texts[0].startswith("Step 1:")
    ((path, body, headers),) = canned.requests
    assert path == "/v1/chat/completions" and body["messages"] == [{"role": "user", "content": "chat prompt"}]
    assert headers["authorization"] == "Bearer sk-test-123"


def test_rate_limit_and_5xx_are_retried_with_backoff(canned: CannedServer) -> None:
    engine, sleeps = _engine(canned.base_url, max_concurrency=1)
    gens = engine.generate(["RATE_LIMITED_TWICE a", "FLAKY_503 b"], SamplingParams(n=2))
    assert [g.error for g in gens] == [None, None]
    assert "attempt 3" in gens[0].texts[0] and "attempt 3" in gens[1].texts[0]
    # 429 twice with Retry-After: 0.25 honoured; 503 twice: exponential 0.1, 0.2
    assert sleeps == [0.25, 0.25, 0.1, 0.2]


def test_one_bad_prompt_never_spoils_the_others(canned: CannedServer) -> None:
    engine, sleeps = _engine(canned.base_url, retries=2)
    prompts = ["fine one", "ALWAYS_500", "BAD_REQUEST", "GARBAGE", "NO_CHOICES", "fine two"]
    gens = engine.generate(prompts, SamplingParams(n=2))
    errors = [g.error for g in gens]
    assert errors[0] is None and errors[5] is None and len(gens[5].texts) == 2
    assert "HTTP 500" in errors[1] and "gave up after 3 attempts" in errors[1]
    assert "HTTP 400" in errors[2] and "context too long" in errors[2]
    assert "not JSON" in errors[3]
    assert "no 'choices'" in errors[4]
    assert all(gens[k].texts == [] for k in (1, 2, 3, 4))
    # only the 500 was retried: 2 retries; 400, garbage and an error body are not retryable
    assert canned.attempts["ALWAYS_500"] == 3 and canned.attempts["BAD_REQUEST"] == 1
    assert canned.attempts["GARBAGE"] == 1 and sorted(sleeps) == [0.1, 0.2]


def test_timeouts_are_retried_then_reported(canned: CannedServer) -> None:
    engine, sleeps = _engine(canned.base_url, retries=1, timeout=0.2)
    (gen,) = engine.generate(["SLOW reply"], SamplingParams(n=1))
    assert gen.error is not None and "timeout after 0.2s" in gen.error and "2 attempts" in gen.error
    assert sleeps == [0.1]


def test_connection_refused_is_an_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, sleeps = _engine(f"http://127.0.0.1:{_free_port()}/v1", retries=2)
    gens = engine.generate(["a", "b"], SamplingParams(n=1))
    assert all(g.error and "connection failed" in g.error for g in gens)
    assert sorted(sleeps) == [0.1, 0.1, 0.2, 0.2]


def test_server_that_ignores_n_is_topped_up(canned: CannedServer) -> None:
    engine, _ = _engine(canned.base_url)
    (gen,) = engine.generate(["ONE_CHOICE please"], SamplingParams(n=3, seed=5))
    assert gen.error is None and len(gen.texts) == 3
    assert [r[1]["n"] for r in canned.requests] == [3, 2, 1]
    assert len({r[1]["seed"] for r in canned.requests}) == 3  # each top-up request gets its own seed
    assert gen.tokens_in == 2 and gen.tokens_out == 21  # prompt counted once, output summed


def test_factory_builds_openai_engine_and_rejects_vllm(canned: CannedServer) -> None:
    engine = build_engine(EngineConfig(kind="openai", model="m", base_url=canned.base_url + "/"))
    assert isinstance(engine, OpenAIEngine) and engine.url == canned.base_url + "/chat/completions"
    assert engine.generate([], SamplingParams()) == []
    with pytest.raises(ValueError, match="Ray Data processor"):
        build_engine(EngineConfig(kind="vllm", model="m"))
    with pytest.raises(ValueError, match="base_url"):
        EngineConfig(kind="openai")
