"""A text engine over an OpenAI-compatible HTTP server (vLLM, Ray Serve LLM, OpenAI, ...).

``EngineConfig.chat_template`` picks the endpoint: ``True`` posts chat messages to
``/chat/completions`` (the server applies the model's chat template), ``False`` posts raw text
to ``/completions``. Every prompt is one request asking for ``n`` completions; prompts of one
``generate`` call are sent concurrently from a small thread pool. Rate limits (429), server
errors (5xx), timeouts and dropped connections are retried with exponential backoff (a
``Retry-After`` header is honoured, capped); after ``cfg.max_retries`` retries, or on any other
client error, that prompt's :class:`~physio_ray.llm.engine.Generation` carries ``error`` and
the others are unaffected: ``generate`` never raises for one bad prompt.

The API key is read from the environment variable ``cfg.api_key_env`` when the engine is
built (never at import); without it no ``Authorization`` header is sent, which is what a local
vLLM server expects.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from physio_ray.llm.engine import EngineConfig, Generation, SamplingParams
from physio_ray.llm.hf_engine import trim_at_stop

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying (rate limits and transient server trouble)."""

MAX_RETRY_AFTER_S = 60.0
"""A server's ``Retry-After`` is honoured up to this many seconds."""


class RetryableError(Exception):
    """A failure that a later attempt may not repeat (429, 5xx, timeout, dropped connection).

    Args:
        message: what went wrong.
        retry_after: the server's ``Retry-After`` header, if it sent one.
    """

    def __init__(self, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(Exception):
    """A failure that retrying cannot fix (4xx other than 429, unreadable response)."""


def backoff_delay(attempt: int, base_s: float, retry_after: str | None = None, cap_s: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    Args:
        attempt: how many retries came before this one.
        base_s: first delay; it doubles with each retry up to ``cap_s``.
        retry_after: the server's ``Retry-After`` header (seconds), which wins when readable.
        cap_s: longest exponential delay.

    Returns:
        The delay in seconds.

    >>> [backoff_delay(k, 0.5) for k in range(4)]
    [0.5, 1.0, 2.0, 4.0]
    >>> backoff_delay(0, 0.5, retry_after="3")
    3.0
    """
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    return min(base_s * (2**attempt), cap_s)


def request_body(
    model: str, prompt: str, params: SamplingParams, chat: bool, n: int, seed: int | None
) -> dict[str, Any]:
    """The JSON body of one completions request.

    Args:
        model: model name the server serves.
        prompt: user prompt.
        params: sampling settings (``max_new_tokens`` becomes ``max_tokens``; a ``prefix`` is
            appended to a completions prompt, or sent as a final assistant message with vLLM's
            ``continue_final_message`` for chat; servers without that extension reject it).
        chat: build a ``/chat/completions`` body (messages) instead of ``/completions``.
        n: completions asked for in this request.
        seed: per-request seed (``None``: none sent).

    Returns:
        The body as a dict.
    """
    body: dict[str, Any] = {
        "model": model,
        "n": n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
    }
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
        if params.prefix:  # an assistant prefill the model continues (vLLM / SGLang chat extension)
            body["messages"].append({"role": "assistant", "content": params.prefix})
            body["add_generation_prompt"] = False
            body["continue_final_message"] = True
    else:
        body["prompt"] = prompt + params.prefix
    if seed is not None:
        body["seed"] = seed
    if params.stop:
        body["stop"] = list(params.stop)
    return body


def read_choices(payload: Any, chat: bool) -> tuple[list[str], int, int]:
    """Reads completion texts and token usage from a response body.

    Args:
        payload: the decoded JSON body.
        chat: the body answers ``/chat/completions`` (``message.content``) rather than
            ``/completions`` (``text``).

    Returns:
        ``(texts in choice-index order, prompt_tokens, completion_tokens)``; usage missing from
        the body counts as 0.

    Raises:
        FatalError: when the body has no readable ``choices``.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        raise FatalError(f"response has no 'choices' list: {str(payload)[:200]!r}")
    texts: list[tuple[int, str]] = []
    for pos, choice in enumerate(payload["choices"]):
        if not isinstance(choice, dict):
            raise FatalError(f"choice {pos} is not an object: {choice!r}"[:200])
        holder, key = (choice.get("message"), "content") if chat else (choice, "text")
        if not isinstance(holder, dict) or key not in holder:
            raise FatalError(f"choice {pos} has no {key!r}: {choice!r}"[:200])
        text = holder[key]
        if text is None:
            text = ""  # an explicit null content is an empty completion
        if not isinstance(text, str):
            raise FatalError(f"choice {pos} has a non-text {key!r}: {text!r}"[:200])
        index = choice.get("index", pos)
        texts.append((index if isinstance(index, int) else pos, text))
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    tokens_in = usage.get("prompt_tokens") or 0
    tokens_out = usage.get("completion_tokens") or 0
    return [t for _, t in sorted(texts, key=lambda x: x[0])], int(tokens_in), int(tokens_out)


class OpenAIEngine:
    """Implements :class:`~physio_ray.llm.engine.TextEngine` over HTTP.

    Args:
        cfg: engine settings (``base_url``, ``model``, ``chat_template``, ``api_key_env``,
            ``timeout_s``, ``max_retries``).
        client: an ``httpx.Client`` to use (tests, connection sharing); default builds one.
        backoff_s: first retry delay (doubles per retry).
        max_concurrency: requests in flight at once within one ``generate`` call.
        sleep: the function that waits between retries (tests pass a recorder).

    Raises:
        ValueError: when ``cfg.base_url`` is missing.
    """

    def __init__(
        self,
        cfg: EngineConfig,
        *,
        client: httpx.Client | None = None,
        backoff_s: float = 1.0,
        max_concurrency: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not cfg.base_url:
            raise ValueError("OpenAIEngine needs engine.base_url (e.g. http://localhost:8000/v1)")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency} must be >= 1")
        self.cfg = cfg
        self.chat = cfg.chat_template
        self.url = cfg.base_url.rstrip("/") + ("/chat/completions" if self.chat else "/completions")
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(cfg.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        else:
            logger.info("no API key in $%s; sending requests without Authorization", cfg.api_key_env)
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=cfg.timeout_s)
        self.headers = headers
        self.backoff_s = backoff_s
        self.max_concurrency = max_concurrency
        self.sleep = sleep

    def close(self) -> None:
        """Closes the HTTP client if this engine created it."""
        if self._own_client:
            self.client.close()

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """Requests ``params.n`` completions for every prompt.

        Args:
            prompts: ``[num_prompts]`` user prompts.
            params: sampling settings; with a ``seed``, prompt ``i`` is sent ``seed + i``.

        Returns:
            ``[num_prompts]`` generations in order; a prompt that failed after its retries
            has ``error`` set and no texts.
        """
        if not prompts:
            return []
        jobs = list(enumerate(prompts))
        if len(jobs) == 1 or self.max_concurrency == 1:
            return [self._one(i, p, params) for i, p in jobs]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(jobs))) as pool:
            return list(pool.map(lambda job: self._one(job[0], job[1], params), jobs))

    def _one(self, index: int, prompt: str, params: SamplingParams) -> Generation:
        """All completions of one prompt; tops up when a server returns fewer than ``n``."""
        started = time.perf_counter()
        texts: list[str] = []
        tokens_in = tokens_out = 0
        seed = None if params.seed is None else params.seed + index
        try:
            for round_ in range(params.n):  # at most n requests even if every reply has 1 choice
                want = params.n - len(texts)
                round_seed = None if seed is None else seed + round_ * 7919
                got, t_in, t_out = self._post(request_body(self.cfg.model, prompt, params, self.chat, want, round_seed))
                texts.extend(trim_at_stop(t, params.stop) for t in got[:want])
                tokens_in = tokens_in or t_in  # the prompt is counted once
                tokens_out += t_out
                if len(texts) >= params.n or not got:
                    break
            if len(texts) < params.n:
                raise FatalError(f"server returned {len(texts)} of {params.n} completions")
        except (RetryableError, FatalError) as exc:
            logger.warning("prompt %d failed: %s", index, exc)
            return Generation(
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                seconds=time.perf_counter() - started,
                error=f"openai: {exc}",
            )
        return Generation(
            texts=texts, tokens_in=tokens_in, tokens_out=tokens_out, seconds=time.perf_counter() - started
        )

    def _post(self, body: dict[str, Any]) -> tuple[list[str], int, int]:
        """One request with retries; returns ``read_choices`` of the reply."""
        last: RetryableError | None = None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                delay = backoff_delay(attempt - 1, self.backoff_s, last.retry_after if last else None)
                logger.info("retrying %s in %.2fs (%s)", self.url, delay, last)
                self.sleep(delay)
            try:
                response = self.client.post(self.url, json=body, headers=self.headers, timeout=self.cfg.timeout_s)
            except httpx.TimeoutException as exc:
                last = RetryableError(f"timeout after {self.cfg.timeout_s}s ({type(exc).__name__})")
                continue
            except httpx.TransportError as exc:
                last = RetryableError(f"connection failed: {type(exc).__name__}: {exc}")
                continue
            if response.status_code in RETRY_STATUS:
                last = RetryableError(
                    f"HTTP {response.status_code}: {response.text[:200]}", response.headers.get("retry-after")
                )
                continue
            if response.status_code >= 400:
                raise FatalError(f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                payload = response.json()
            except ValueError as exc:
                raise FatalError(f"response is not JSON: {response.text[:200]!r}") from exc
            return read_choices(payload, self.chat)
        assert last is not None
        raise RetryableError(f"{last} (gave up after {self.cfg.max_retries + 1} attempts)")
