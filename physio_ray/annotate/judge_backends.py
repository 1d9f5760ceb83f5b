"""Judge backends: one call per solution, a label and a confidence per step.

* :class:`LocalProbeJudge` (``local``): SmolLM2 through
  :func:`physio_ray.llm.smollm2.load_causal_lm`. A 135M model writes unreliable JSON, so it
  is not asked to write anything: the prompt ends every step with a probe (``"\\nVerdict:"``)
  and ONE forward pass gives, at each probe position, the probabilities of the next token
  being " correct" or " incorrect". Causal attention means text after a probe cannot change
  what the probe sees. label = argmax, confidence = max / (P(correct) + P(incorrect)),
  so confidences lie in [0.5, 1].
* :class:`GeminiJudge` (``gemini``): google-genai with a JSON response schema.
* :class:`OpenAIJudge` (``openai``): an OpenAI-compatible ``/chat/completions`` endpoint
  (vLLM, OpenAI) over httpx with a ``json_schema`` response format.

API backends retry rate limits, server errors and transport errors with exponential backoff
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
from physio_ray.annotate.judge import ABSTAIN, JudgeRequest, JudgeResult, StepJudgement, parse_judgement

logger = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_BACKOFF_S = 60.0
_PASSAGE_CHARS = 600

SYSTEM = (
    "You are an expert physiotherapist and clinician who grades step-by-step solutions to "
    "multiple-choice questions. Judge each step on its own: is it factually and clinically "
    "correct and logically sound given the question, the evidence and the earlier steps?"
)


def _evidence(request: JudgeRequest) -> str:
    return "\n".join(f"[{k + 1}] {p.title}: {p.text[:_PASSAGE_CHARS]}" for k, p in enumerate(request.evidence))


def build_judge_prompt(request: JudgeRequest, as_object: bool = False) -> str:
    """The user message sent to API judges.

    Args:
        request: the solution and its evidence.
        as_object: ask for ``{"steps": [...]}`` (OpenAI strict schemas need an object root).

    Returns:
        Evidence, question, options, reference answer, numbered steps and the reply format.
    """
    parts = []
    if request.evidence:
        parts.append(f"Reference documents:\n{_evidence(request)}")
    parts.append(f"Question:\n{request.question}")
    if request.options:
        parts.append(f"Options:\n{request.options}")
    if request.answer:
        parts.append(f"Reference answer: {request.answer}")
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


# ---------------------------------------------------------------- local: token probabilities
PROBE = "\nVerdict:"
POSITIVE = (" correct", " Correct")
NEGATIVE = (" incorrect", " wrong")


def build_probe_text(request: JudgeRequest) -> tuple[str, list[str]]:
    """The local judge's prompt: a header, then one piece per step ending in :data:`PROBE`.

    Returns:
        ``(header, pieces)``; the probe position of step ``k`` is the last token of ``pieces[k]``.
    """
    head = [
        "Below is a question, a solution split into steps, and after each step a verdict "
        "saying whether that step is correct or incorrect.",
    ]
    if request.evidence:
        head.append(f"Reference documents:\n{_evidence(request)}")
    head.append(f"Question:\n{request.question}")
    if request.options:
        head.append(f"Options:\n{request.options}")
    if request.answer:
        head.append(f"Reference answer: {request.answer}")
    header = "\n\n".join(head) + "\n\nSolution:\n"
    pieces = [("" if k == 0 else "\n") + f"{step}{PROBE}" for k, step in enumerate(request.steps)]
    return header, pieces


def _single_token_ids(tokenizer: Any, words: tuple[str, ...]) -> list[int]:
    ids = []
    for w in words:
        enc = tokenizer.encode(w, add_special_tokens=False)
        if len(enc) == 1:
            ids.append(enc[0])
    if not ids:
        raise ValueError(f"none of {words} is a single token for this tokenizer; pick other verdict words")
    return ids


def answer_check(request: JudgeRequest, confidence: float | None) -> list[StepJudgement | None]:
    """Verdicts for the steps that state a final answer, from the reference answer.

    A step whose text commits to an option (read strictly by
    :func:`physio_ray.llm.steps.parse_answer`: "The answer is D", "Answer: (B)") is correct
    iff that letter is the reference answer. A 135M model cannot be trusted to compare two
    letters, and the Monte-Carlo label of such a step is exactly this comparison.

    Args:
        request: the solution, with ``answer`` set (otherwise nothing is checked).
        confidence: confidence given to checked steps (``None`` disables the check).

    Returns:
        Per step a :class:`StepJudgement`, or ``None`` where the step states no answer.
    """
    if confidence is None or not request.answer:
        return [None] * len(request.steps)
    from physio_ray.llm.steps import parse_answer

    out: list[StepJudgement | None] = []
    for step in request.steps:
        letter = parse_answer(step)
        out.append(None if letter is None else StepJudgement(int(letter == request.answer.strip()), confidence))
    return out


class LocalProbeJudge:
    """Per-step verdicts from next-token probabilities at probe positions, in one forward pass.

    Steps that state a final answer are labelled by :func:`answer_check` instead (when the
    request carries the reference answer), still within the same single call.

    Args:
        cfg: judge settings (``cfg.engine.model`` / ``cfg.engine.dtype`` choose the model).
        model: a loaded causal LM (``None``: ``load_causal_lm(cfg.engine.model, cfg.engine.dtype)``).
        tokenizer: its tokenizer (required with ``model``).
        answer_confidence: confidence of answer-checked steps (``None``: probe every step).
    """

    def __init__(
        self, cfg: JudgeConfig, model: Any = None, tokenizer: Any = None, answer_confidence: float | None = 0.95
    ) -> None:
        self.answer_confidence = answer_confidence
        if model is None:
            from physio_ray.llm.smollm2 import load_causal_lm

            model, tokenizer = load_causal_lm(cfg.engine.model, cfg.engine.dtype)
        if tokenizer is None:
            raise ValueError("LocalProbeJudge needs the tokenizer of the model it is given")
        self.model = model
        self.tokenizer = tokenizer
        self.pos_ids = _single_token_ids(tokenizer, POSITIVE)
        self.neg_ids = _single_token_ids(tokenizer, NEGATIVE)
        self.max_len = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def judge(self, request: JudgeRequest) -> JudgeResult:
        import torch

        start = time.perf_counter()
        header, pieces = build_probe_text(request)
        head_ids = self._encode(header)
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if bos is not None:
            head_ids = [bos, *head_ids]
        step_ids = [self._encode(p) for p in pieces]
        ids = list(head_ids)
        probes = []
        for piece in step_ids:
            if len(ids) + len(piece) > self.max_len:
                break  # steps that do not fit abstain
            ids += piece
            probes.append(len(ids) - 1)
        if len(probes) < len(pieces):
            logger.warning("prompt too long: %d of %d steps judged", len(probes), len(pieces))
        judgements = [ABSTAIN] * len(pieces)
        checked = answer_check(request, self.answer_confidence)
        if probes:
            device = next(self.model.parameters()).device
            with torch.inference_mode():
                logits = self.model(input_ids=torch.tensor([ids], device=device)).logits[0, probes]  # [n_probes, vocab]
            probs = torch.softmax(logits.float(), dim=-1)
            p_pos = probs[:, self.pos_ids].sum(-1)  # [n_probes]
            p_neg = probs[:, self.neg_ids].sum(-1)
            for k, (pp, pn) in enumerate(zip(p_pos.tolist(), p_neg.tolist(), strict=True)):
                total = pp + pn
                if total > 0:
                    judgements[k] = StepJudgement(int(pp >= pn), max(pp, pn) / total)
        judgements = [c if c is not None else j for c, j in zip(checked, judgements, strict=True)]
        return JudgeResult(judgements, tokens_in=len(ids), seconds=time.perf_counter() - start)


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
