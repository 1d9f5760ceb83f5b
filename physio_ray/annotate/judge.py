"""RAG judge (seed 000 §3.2.1): one call per solution, a label and a confidence per step.

Three pieces, each usable on its own:

* :func:`parse_judgement` reads a judge reply strictly. Anything it cannot read safely becomes
  an abstention (label ``None``, confidence 0) and never a guess; labels are exact tokens,
  so "INCORRECT" can never read as correct.
* :class:`RagJudge` is the Ray Data stage: for each solution row it retrieves ``top_k`` corpus
  passages for the question and makes ONE backend call that labels every step (backends in
  :mod:`physio_ray.annotate.judge_backends`: ``local`` SmolLM2 token probabilities,
  ``gemini``, ``openai``).
* :func:`judge_vs_labels` compares judge labels with reference labels (Med-PRM's Gemini
  labels, or Monte-Carlo hard labels): agreement where the judge did not abstain, coverage,
  per-class recall and Cohen's kappa.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from physio_ray import schemas as S
from physio_ray.annotate.config import JudgeConfig
from physio_ray.annotate.retrieval import Passage, Retriever
from physio_ray.batches import as_columns, cell, object_array

logger = logging.getLogger(__name__)

_LABEL_TOKENS = {"correct": 1, "true": 1, "1": 1, "incorrect": 0, "false": 0, "0": 0}
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class StepJudgement:
    """The judge's verdict on one step.

    Attributes:
        label: 1 correct, 0 incorrect, ``None`` abstain.
        confidence: 0..1; always 0 for an abstention.
    """

    label: int | None
    confidence: float

    def __post_init__(self) -> None:
        assert self.label in (0, 1, None), self.label
        assert 0.0 <= self.confidence <= 1.0, self.confidence
        assert self.label is not None or self.confidence == 0.0, "an abstention has confidence 0"


ABSTAIN = StepJudgement(None, 0.0)


def _read_label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if value in (0, 1) else None
    if isinstance(value, str):
        return _LABEL_TOKENS.get(value.strip().casefold())
    return None


def _read_confidence(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    value = float(value)
    return value if 0.0 <= value <= 1.0 else None  # 1.7 or 85 (a percentage?) is not a probability


class _Ambiguous(dict):  # type: ignore[type-arg]
    """A JSON object that repeated a key: which value the judge meant is unknown."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    return _Ambiguous(pairs) if len(set(keys)) != len(keys) else dict(pairs)


def _read_step(item: Any) -> StepJudgement:
    if not isinstance(item, Mapping) or isinstance(item, _Ambiguous):
        return ABSTAIN
    label = _read_label(item.get("label"))
    confidence = _read_confidence(item.get("confidence"))
    if label is None or confidence is None:
        return ABSTAIN
    return StepJudgement(label, confidence)


def _decode(text: str) -> Any:
    """The JSON value in ``text``: inside the first code fence if any, else the whole text,
    else the first JSON value that starts at the first ``[`` or ``{``. ``None`` if none."""
    fenced = _FENCE.search(text)
    body = (fenced.group(1) if fenced else text).strip()
    decoder = json.JSONDecoder(object_pairs_hook=_pairs)
    try:
        return decoder.decode(body)
    except (ValueError, RecursionError):
        pass
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        return None
    try:
        value, _ = decoder.raw_decode(body, min(starts))
        return value
    except (ValueError, RecursionError):
        return None


def parse_judgement(text: str, n_steps: int) -> list[StepJudgement]:
    """Reads a judge reply into exactly ``n_steps`` step judgements.

    Accepted shapes: a JSON list of ``{"label", "confidence"}`` objects, or an object whose
    ``"steps"`` value is such a list, optionally inside a ```json code fence or after a short
    preamble. ``label`` may be ``1``/``0``, ``true``/``false`` or the exact tokens
    ``"correct"``/``"incorrect"`` (any case, surrounding spaces ignored; ``"1"``/``"0"`` and
    ``"true"``/``"false"`` strings too); substrings never count, so ``"INCORRECT"``,
    ``"not correct"`` or ``"correct?"`` never read as correct. ``confidence`` must be a
    finite number (or a numeric string) in 0..1; anything else (``1.7``, ``85``, ``NaN``)
    is not a probability and the step abstains.

    Length rule: items are matched to steps by position. Missing items abstain; extra items
    are ignored. An item with an unreadable label or confidence, or that repeats a key
    (``{"label": "correct", "label": "incorrect"}``), abstains alone.

    Args:
        text: the raw reply.
        n_steps: number of steps of the judged solution (>= 0).

    Returns:
        ``n_steps`` :class:`StepJudgement` (abstentions have label ``None``, confidence 0).

    Raises:
        ValueError: when ``n_steps`` is negative.

    >>> [(j.label, j.confidence) for j in parse_judgement('[{"label": "INCORRECT", "confidence": 0.8}]', 2)]
    [(0, 0.8), (None, 0.0)]
    """
    if n_steps < 0:
        raise ValueError(f"n_steps={n_steps} must be >= 0")
    if not isinstance(text, str):
        return [ABSTAIN] * n_steps
    value = _decode(text)
    if isinstance(value, Mapping):
        value = value.get("steps")
    if not isinstance(value, list):
        return [ABSTAIN] * n_steps
    if len(value) != n_steps:
        logger.debug("judge returned %d items for %d steps", len(value), n_steps)
    out = [_read_step(item) for item in value[:n_steps]]
    return out + [ABSTAIN] * (n_steps - len(out))


# ---------------------------------------------------------------- quality report
def judge_vs_labels(pred: Sequence[Sequence[int | None]], ref: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Compares judge labels with reference step labels.

    Solutions are paired by position and steps by index up to ``len(ref[i])``: a missing
    prediction counts as an abstention and extra predictions are ignored (trim a reference
    that is longer than the solution before calling, as Med-PRM's sample 89 needs).

    Args:
        pred: per solution, per step 1 / 0 / ``None`` (abstain).
        ref: per solution, per step 1 / 0.

    Returns:
        ``steps`` (reference steps), ``judged`` (non-abstained), ``coverage`` (judged/steps),
        ``agreement`` (matches/judged), ``recall_correct`` and ``recall_incorrect`` (share of
        judged reference-1 / reference-0 steps labelled the same), ``kappa`` (Cohen's, on
        judged steps), ``n_ref_correct``/``n_ref_incorrect``, ``solutions``. Ratios with an
        empty denominator are ``None``.

    Raises:
        ValueError: when the two lists hold different numbers of solutions.

    >>> judge_vs_labels([[1, 0, None]], [[1, 1, 0]])["agreement"]
    0.5
    """
    if len(pred) != len(ref):
        raise ValueError(f"pred has {len(pred)} solutions but ref has {len(ref)}")
    counts = np.zeros((2, 2), dtype=np.int64)  # [ref, pred] over judged steps
    steps = 0
    for p_row, r_row in zip(pred, ref, strict=True):
        for k, r in enumerate(r_row):
            steps += 1
            p = p_row[k] if k < len(p_row) else None
            if p is not None:
                counts[int(r), int(p)] += 1
    judged = int(counts.sum())

    def ratio(a: float, b: float) -> float | None:
        return float(a / b) if b else None

    agreement = ratio(counts[0, 0] + counts[1, 1], judged)
    kappa = None
    if judged:
        expected = float((counts.sum(1) @ counts.sum(0)) / judged**2)
        kappa = None if expected == 1.0 else float((agreement - expected) / (1.0 - expected))  # type: ignore[operator]
    return {
        "solutions": len(ref),
        "steps": steps,
        "judged": judged,
        "coverage": ratio(judged, steps),
        "agreement": agreement,
        "recall_correct": ratio(counts[1, 1], counts[1].sum()),
        "recall_incorrect": ratio(counts[0, 0], counts[0].sum()),
        "kappa": kappa,
        "n_ref_correct": int(counts[1].sum()),
        "n_ref_incorrect": int(counts[0].sum()),
    }


# ---------------------------------------------------------------- requests and backends
def strip_marker(step: str) -> str:
    """A step without its trailing `` ки`` marker and surrounding space."""
    text = step.strip()
    marker = S.STEP_MARKER.strip()
    return text[: -len(marker)].rstrip() if text.endswith(marker) else text


def format_options(options: Any) -> str:
    """Options as ``"A. ..."`` lines; a string (Med-PRM's format) is kept as is."""
    if isinstance(options, str):
        return options.strip()
    items = [str(o) for o in (options if options is not None else [])]
    return "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(items))


@dataclass(frozen=True)
class JudgeRequest:
    """Everything one judge call sees.

    Attributes:
        question: question text (with its evidence block, if any).
        options: option lines (see :func:`format_options`).
        answer: the reference answer letter, ``None`` to hide it from the judge.
        steps: step texts without markers.
        evidence: retrieved passages.
    """

    question: str
    options: str
    answer: str | None
    steps: tuple[str, ...]
    evidence: tuple[Passage, ...] = ()


@dataclass
class JudgeResult:
    """A backend's answer for one solution.

    Attributes:
        judgements: one per step.
        tokens_in: prompt tokens.
        tokens_out: generated tokens.
        seconds: wall time of the call (retries included).
        calls: judge calls made for this solution (1; 0 when nothing was asked).
        note: why every step abstained (API failure), else ``None``.
    """

    judgements: list[StepJudgement]
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    calls: int = 1
    note: str | None = None


@runtime_checkable
class JudgeBackend(Protocol):
    """One judge call per solution: ``judge(request) -> JudgeResult``."""

    def judge(self, request: JudgeRequest) -> JudgeResult:
        """Labels every step of ``request.steps`` in one call."""
        ...


def make_backend(cfg: JudgeConfig) -> JudgeBackend:
    """Builds the backend named by ``cfg.backend`` (loads the model / reads the API key now)."""
    from physio_ray.annotate import judge_backends as jb

    builders = {"local": jb.LocalProbeJudge, "gemini": jb.GeminiJudge, "openai": jb.OpenAIJudge}
    return builders[cfg.backend](cfg)


@dataclass
class _Row:
    labels: list[int | None] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    error: str | None = None


class RagJudge:
    """Ray Data stage: solution rows -> per-step judge labels and confidences.

    Reads ``question, options, answer, steps`` (and ``exercise``, ``error`` when present);
    adds ``judge_labels`` (1 / 0 / ``None`` per step), ``judge_confidences``,
    ``retrieved_docs`` (passage ids), the cost columns (``cost_calls`` = 1 per judged
    solution) and keeps ``error``. Rows with an upstream error, or no steps, are not judged
    (every step abstains, no cost). A backend that gives up (API retries exhausted, garbage
    reply) abstains on every step so Monte-Carlo labels them; only an unexpected failure
    sets ``error``.

    Args:
        cfg: judge settings.
        backend: judge backend (``None``: built from ``cfg.backend``).
        retriever: passage retriever (``None``: built over ``cfg.corpus`` when ``top_k > 0``).
        show_answer: give the reference answer to the judge (annotation-time knowledge).
    """

    def __init__(
        self,
        cfg: JudgeConfig,
        backend: JudgeBackend | None = None,
        retriever: Retriever | None = None,
        show_answer: bool = True,
    ) -> None:
        self.cfg = cfg
        self.backend = backend if backend is not None else make_backend(cfg)
        if retriever is None and cfg.top_k > 0:
            retriever = Retriever(cfg.corpus)
        self.retriever = retriever
        self.show_answer = show_answer

    def _steps(self, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            raise TypeError("steps must be a list of strings, got one string")
        return [strip_marker(str(s)) for s in value]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Judges every solution row of ``batch``.

        Args:
            batch: "solutions" columns, ``[n]`` each (a pandas batch is accepted too).

        Returns:
            The input columns plus the judge and cost columns, ``[n]`` each.
        """
        batch = as_columns(batch)
        n = len(batch[S.STEPS]) if S.STEPS in batch else 0
        rows = [_Row() for _ in range(n)]
        todo: list[int] = []
        steps_of: dict[int, list[str]] = {}
        for i in range(n):
            row = rows[i]
            row.error = cell(batch, S.ERROR, i)
            try:
                steps_of[i] = self._steps(cell(batch, S.STEPS, i))
            except TypeError as exc:
                row.error = row.error or f"judge: {exc}"
                steps_of[i] = []
            row.labels = [None] * len(steps_of[i])
            row.confidences = [0.0] * len(steps_of[i])
            if not row.error and steps_of[i]:
                todo.append(i)
        queries = [str(cell(batch, S.QUESTION, i) or "") for i in todo]
        found = self.retriever.search_batch(queries, self.cfg.top_k) if self.retriever and todo else [[] for _ in todo]
        for i, question, passages in zip(todo, queries, found, strict=True):
            row = rows[i]
            row.docs = [p.id for p in passages]
            answer = cell(batch, S.ANSWER, i) if self.show_answer else None
            request = JudgeRequest(
                question=question,
                options=format_options(cell(batch, S.OPTIONS, i)),
                answer=None if answer is None else str(answer),
                steps=tuple(steps_of[i]),
                evidence=tuple(passages),
            )
            start = time.perf_counter()
            try:
                result = self.backend.judge(request)
            except Exception as exc:  # a bug or bad row: keep the row flowing, marked
                logger.exception("judge failed on row %d", i)
                row.error = f"judge failed: {type(exc).__name__}: {exc}"
                row.seconds = time.perf_counter() - start
                continue
            if result.note:
                logger.warning("judge abstained on all %d steps: %s", len(steps_of[i]), result.note)
            row.labels = [j.label for j in result.judgements]
            row.confidences = [float(j.confidence) for j in result.judgements]
            row.calls, row.tokens_in, row.tokens_out = result.calls, result.tokens_in, result.tokens_out
            row.seconds = result.seconds
        out = dict(batch)
        out[S.JUDGE_LABELS] = object_array([r.labels for r in rows])
        out[S.JUDGE_CONFIDENCES] = object_array([r.confidences for r in rows])
        out[S.RETRIEVED_DOCS] = object_array([r.docs for r in rows])
        out[S.COST_CALLS] = np.array([r.calls for r in rows], dtype=np.int64)
        out[S.COST_TOKENS_IN] = np.array([r.tokens_in for r in rows], dtype=np.int64)
        out[S.COST_TOKENS_OUT] = np.array([r.tokens_out for r in rows], dtype=np.int64)
        out[S.COST_SECONDS] = np.array([r.seconds for r in rows], dtype=np.float64)
        out[S.COST_ROLLOUTS] = np.zeros(n, dtype=np.int64)
        out[S.ERROR] = object_array([r.error for r in rows])
        return out
