"""RAG judge stage (seed 000 §3.2.1): one call per solution, a label and a confidence per step.

:class:`RagJudge` is the Ray Data stage: for each solution row it retrieves ``top_k`` corpus
passages for the question and makes ONE backend call that labels every step (backends in
:mod:`physio_ray.annotate.judge_backends`: ``local`` SmolLM2 token probabilities, and
:mod:`physio_ray.annotate.judge_api`: ``gemini``, ``openai``). The request and result types
and the reply parser are in :mod:`physio_ray.annotate.judge_protocol`; agreement with
reference labels (:func:`~physio_ray.annotate.judge_eval.judge_vs_labels`) in
:mod:`physio_ray.annotate.judge_eval`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.annotate.config import JudgeConfig
from physio_ray.annotate.judge_backends import make_backend
from physio_ray.annotate.judge_protocol import JudgeBackend, JudgeRequest, format_options, strip_marker
from physio_ray.annotate.retrieval import Retriever
from physio_ray.batches import as_columns, cell, object_array

logger = logging.getLogger(__name__)


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
