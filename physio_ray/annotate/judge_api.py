"""API judge backends: one call per solution, a label and a confidence per step.

* :class:`GeminiJudge` (``gemini``): google-genai with a JSON response schema.
* :class:`OpenAIJudge` (``openai``): an OpenAI-compatible ``/chat/completions`` endpoint
  (vLLM, OpenAI) over httpx with a ``json_schema`` response format.

Both retry rate limits, server errors and transport errors with exponential backoff
(``cfg.max_retries``, ``cfg.backoff_s``); when retries run out, or the reply is unreadable,
every step abstains (confidence 0) and the reason is kept in ``JudgeResult.note``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from physio_ray.annotate.config import JudgeConfig
from physio_ray.annotate.judge_protocol import ABSTAIN, JudgeRequest, JudgeResult, parse_judgement, request_context

logger = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_BACKOFF_S = 60.0

SYSTEM = (
    "You are an expert physiotherapist and clinician who grades step-by-step solutions to "
    "multiple-choice questions. Judge each step on its own: is it factually and clinically "
    "correct and logically sound given the question, the evidence and the earlier steps?"
)


def build_judge_prompt(request: JudgeRequest, as_object: bool = False) -> str:
    """The user message sent to API judges.

    Args:
        request: the solution and its evidence.
        as_object: ask for ``{"steps": [...]}`` (OpenAI strict schemas need an object root).

    Returns:
        Evidence, question, options, reference answer, numbered steps and the reply format.
    """
    parts = request_context(request)
    steps = "\n".join(f"[{k + 1}] {s}" for k, s in enumerate(request.steps))
    parts.append(f"Solution steps:\n{steps}")
    n = len(request.steps)
    shape = 'a JSON object {"steps": [...]} whose array has' if as_object else "a JSON array of"
    parts.append(
        f"Return {shape} exactly {n} objects, one per step in order, each "
        '{"label": "correct" or "incorrect", "confidence": a number from 0 to 1}.'
    )
    return "\n\n".join(parts)


def call_with_retries(
    fn: Callable[[], T],
    retry_after: Callable[[Exception], float | None],
    max_retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Calls ``fn`` until it succeeds, retrying the errors ``retry_after`` accepts.

    Args:
        fn: the call.
        retry_after: for an exception, ``None`` when it must not be retried, else the
            server's suggested delay in seconds (0 when it gave none).
        max_retries: retries after the first attempt.
        backoff_s: first delay; doubles on every retry (capped at 60 s), never below the
            server's suggestion.
        sleep: the sleeping function (injectable for tests).

    Returns:
        ``fn()``'s value.

    Raises:
        Exception: the last error, when it is not retryable or retries are exhausted.
    """
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except Exception as exc:
            hint = retry_after(exc)
            if hint is None or attempt == max_retries:
                raise
            delay = min(_MAX_BACKOFF_S, max(backoff_s * 2**attempt, hint))
            logger.info("judge call failed (%s); retry %d/%d in %.1f s", exc, attempt + 1, max_retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _abstain(request: JudgeRequest, start: float, note: str) -> JudgeResult:
    return JudgeResult([ABSTAIN] * len(request.steps), seconds=time.perf_counter() - start, note=note)


# ---------------------------------------------------------------- API backends
STEP_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["correct", "incorrect"]},
        "confidence": {"type": "number"},
    },
    "required": ["label", "confidence"],
}


class _Retryable(Exception):
    def __init__(self, message: str, delay_hint: float = 0.0) -> None:
        super().__init__(message)
        self.delay_hint = delay_hint


def _retry_after_header(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0


class OpenAIJudge:
    """OpenAI-compatible chat completions with a JSON-schema response format, over httpx.

    Args:
        cfg: ``cfg.engine.base_url`` is the server root (``http://host:8000/v1``), ``cfg.model``
            the model name; a key is sent when ``$cfg.engine.api_key_env`` is set.
        client: an httpx client (``None``: one with ``cfg.engine.timeout_s``).
        sleep: the backoff sleep (injectable for tests).
    """

    def __init__(
        self, cfg: JudgeConfig, client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if not cfg.engine.base_url:
            raise ValueError("judge.backend=openai needs judge.engine.base_url (e.g. http://localhost:8000/v1)")
        self.cfg = cfg
        self.url = cfg.engine.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(cfg.engine.api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = client or httpx.Client(timeout=cfg.engine.timeout_s)
        self.sleep = sleep

    def _body(self, request: JudgeRequest) -> dict[str, Any]:
        schema = {
            "type": "object",
            "properties": {"steps": {"type": "array", "items": {**STEP_ITEM_SCHEMA, "additionalProperties": False}}},
            "required": ["steps"],
            "additionalProperties": False,
        }
        prompt = build_judge_prompt(request, as_object=True)
        return {
            "model": self.cfg.model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            "temperature": 0.0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "step_judgements", "strict": True, "schema": schema},
            },
        }

    def _once(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.post(self.url, json=body, headers=self.headers)
        except httpx.TransportError as exc:
            raise _Retryable(f"transport error: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after_header(response))
        response.raise_for_status()
        return response.json()

    def judge(self, request: JudgeRequest) -> JudgeResult:
        start = time.perf_counter()
        n = len(request.steps)
        body = self._body(request)
        try:
            data = call_with_retries(
                lambda: self._once(body),
                lambda e: e.delay_hint if isinstance(e, _Retryable) else None,
                self.cfg.max_retries,
                self.cfg.backoff_s,
                self.sleep,
            )
        except (_Retryable, httpx.HTTPError, ValueError) as exc:
            return _abstain(request, start, f"openai judge gave up: {exc}")
        try:
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            return _abstain(request, start, "openai judge reply has no choices[0].message.content")
        judgements = parse_judgement(text if isinstance(text, str) else "", n)
        note = None if any(j.label is not None for j in judgements) or n == 0 else "unreadable judge reply"
        return JudgeResult(
            judgements,
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            seconds=time.perf_counter() - start,
            note=note,
        )


class GeminiJudge:
    """Gemini through google-genai, JSON output constrained by a response schema.

    The key is read from ``$cfg.api_key_env`` at construction. ``cfg.engine.base_url``, when
    set, replaces the Gemini endpoint (a proxy, or a local test server). google-genai's own
    retries are turned off; :func:`call_with_retries` handles 429 / 5xx / transport errors.

    Args:
        cfg: judge settings (``cfg.model``: e.g. ``gemini-2.5-flash``).
        sleep: the backoff sleep (injectable for tests).

    Raises:
        ValueError: when the API key variable is unset or empty.
    """

    def __init__(self, cfg: JudgeConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        key = os.environ.get(cfg.api_key_env, "")
        if not key:
            raise ValueError(f"judge.backend=gemini needs an API key in ${cfg.api_key_env} (set judge.api_key_env)")
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            timeout=int(cfg.engine.timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
            base_url=cfg.engine.base_url or None,
        )
        self.cfg = cfg
        self.client = genai.Client(api_key=key, http_options=options)
        self.config = types.GenerateContentConfig(
            system_instruction=SYSTEM,
            temperature=0.0,
            response_mime_type="application/json",
            response_schema={"type": "array", "items": STEP_ITEM_SCHEMA},
        )
        self.sleep = sleep

    @staticmethod
    def _retry_after(exc: Exception) -> float | None:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            return 0.0 if exc.code == 429 or (exc.code or 0) >= 500 else None
        return 0.0 if isinstance(exc, httpx.TransportError) else None

    def judge(self, request: JudgeRequest) -> JudgeResult:
        start = time.perf_counter()
        n = len(request.steps)
        prompt = build_judge_prompt(request)
        try:
            response = call_with_retries(
                lambda: self.client.models.generate_content(model=self.cfg.model, contents=prompt, config=self.config),
                self._retry_after,
                self.cfg.max_retries,
                self.cfg.backoff_s,
                self.sleep,
            )
            text = response.text or ""
        except Exception as exc:  # API errors, exhausted retries, blocked or empty candidates
            return _abstain(request, start, f"gemini judge gave up: {type(exc).__name__}: {exc}")
        usage = response.usage_metadata
        judgements = parse_judgement(text, n)
        note = None if any(j.label is not None for j in judgements) or n == 0 else "unreadable judge reply"
        return JudgeResult(
            judgements,
            tokens_in=int(getattr(usage, "prompt_token_count", 0) or 0),
            tokens_out=int(getattr(usage, "candidates_token_count", 0) or 0),
            seconds=time.perf_counter() - start,
            note=note,
        )
