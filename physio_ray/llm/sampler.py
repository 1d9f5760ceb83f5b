"""Stage "solutions": ``n`` sampled solutions per question, every step ending in " ки".

A plain class mapped by the pipeline with Ray Data (``map_batches`` over an actor pool whose
size and CPUs/GPUs come from ``sampler.resources``). All questions of a batch go to the engine
in ONE ``generate`` call with ``n`` completions per prompt, so the HF engine pads them into
batched forward passes instead of looping prompt by prompt.

Input columns: the "questions" stage (``question_id``, ``question``, ``options``, ``answer``,
``features`` ... passed through). Output: one row per solution with ``solution_id``,
``solution_text``, ``steps``, ``predicted_answer``, ``is_correct``, the cost columns and
``error``. A solution whose answer cannot be parsed strictly, or that has no steps, is kept
with ``error`` set (downstream stages pass it through untouched).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.batches import as_list, cell, object_array
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import Generation, SamplingParams, TextEngine
from physio_ray.llm.evidence import EVIDENCE_HEADER
from physio_ray.llm.steps import (
    DEFAULT_MAX_STEPS,
    build_solution_prompt,
    features_to_text,
    parse_answer,
    split_steps,
)
from physio_ray.schemas import LETTERS

logger = logging.getLogger(__name__)

ANSWER_CUE = "\nAnswer:"

SOLUTION_COLUMNS = (
    S.SOLUTION_ID,
    S.SOLUTION_TEXT,
    S.STEPS,
    S.PREDICTED_ANSWER,
    S.IS_CORRECT,
    *S.COST_COLUMNS,
    S.ERROR,
)


def solution_id(question_id: str, k: int) -> str:
    """The id of the ``k``-th solution of a question (stable across runs, used for resume)."""
    return f"{question_id}-s{k}"


def batch_seed(base: int, question_ids: list[str]) -> int:
    """A seed that depends only on ``base`` and which questions are in the batch."""
    return (base * 1_000_003 + zlib.crc32("|".join(sorted(question_ids)).encode())) % (2**31 - 1)


def solution_prompt(question: str, options: list[str], features: Any, sample: int = 0) -> str:
    """The solution prompt for one question, shared by every engine (HF, OpenAI, vLLM).

    Args:
        question: the question stem.
        options: exactly 4 option texts.
        features: the ``features`` column (a JSON object string, a dict, or ``None``).
        sample: which sample of the question it is for: the worked example's answer letter
            moves with it (see :func:`~physio_ray.llm.steps.build_solution_prompt`).

    Returns:
        The user prompt from :func:`~physio_ray.llm.steps.build_solution_prompt`.

    Raises:
        ValueError: for an empty stem or not exactly 4 options.
    """
    if not str(question or "").strip() or len(options) < 2:
        raise ValueError(f"question has {len(options)} options and {len(str(question or ''))} characters")
    if EVIDENCE_HEADER in str(question):
        # The stem already carries the measurements: repeating them doubles the prompt, and
        # prefill is most of the cost of a small model on a CPU.
        return build_solution_prompt(str(question), [str(o) for o in options], "(given in the question)", sample)
    if isinstance(features, bytes):
        features = features.decode("utf-8", errors="replace")
    if isinstance(features, str) and features:
        try:
            features = json.loads(features)
        except ValueError:
            pass  # free text is rendered as is
    return build_solution_prompt(str(question), [str(o) for o in options], features_to_text(features or None), sample)


def _split_cost(total: int, n: int) -> list[int]:
    """Splits an integer cost over ``n`` solutions; the remainder goes to the first ones."""
    base, rest = divmod(int(total), n)
    return [base + (1 if k < rest else 0) for k in range(n)]


def read_solution(
    text: str, answer: str, max_steps: int, n_options: int = 4
) -> tuple[list[str], str | None, bool, str | None]:
    """Turns one completion into ``(steps, predicted_answer, is_correct, error)``.

    Args:
        text: raw completion.
        answer: the question's correct letter.
        max_steps: most steps kept (extra text merges into the last step).
        n_options: options of the question (the letters the answer may take).

    Returns:
        Steps ending in " ки"; the strictly parsed letter (``None`` when unreadable); whether
        it matches ``answer``; an error string when the solution cannot be used.
    """
    steps = split_steps(text, max_steps)
    predicted = parse_answer(text, n_options)
    error = None
    if not steps:
        error = "solution: empty completion"
    elif predicted is None:
        error = "solution: no unambiguous final answer (expected a line like 'Answer: B')"
    return steps, predicted, predicted is not None and predicted == answer, error


class SolutionSampler:
    """Ray-Data-ready stage: samples ``cfg.n`` solutions for each question of a batch.

    Args:
        cfg: sampler settings (engine, n, temperature, top_p, max_new_tokens, seed).
        engine: an already-built engine (tests, sharing); default builds ``cfg.engine`` here,
            once per actor.
        max_steps: most steps kept per solution.
        prompt_fn: ``(question, options, features, sample) -> prompt``; default
            :func:`solution_prompt` (the physiotherapy prompt, 4 options, the worked example's
            answer letter moving with ``sample``). Best-of-N passes Med-PRM's prompt
            (:func:`physio_ray.prm.candidates.medqa_prompt`); answers are parsed against each
            question's own option count either way.
    """

    def __init__(
        self,
        cfg: SamplerConfig,
        engine: TextEngine | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        prompt_fn: Callable[[str, list[str], Any, int], str] = solution_prompt,
    ) -> None:
        if engine is None:
            from physio_ray.llm.factory import build_engine

            engine = build_engine(cfg.engine)
        self.cfg = cfg
        self.engine = engine
        self.max_steps = max_steps
        self.prompt_fn = prompt_fn

    def prompt(self, question: str, options: list[str], features: Any, sample: int = 0) -> str:
        """The prompt of sample ``sample`` of a question (``prompt_fn``, :func:`solution_prompt` by default)."""
        return self.prompt_fn(question, options, features, sample)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Expands ``[num_questions]`` question rows into ``[num_questions * n]`` solution rows."""
        n_rows = len(batch[S.QUESTION_ID]) if S.QUESTION_ID in batch else 0
        passthrough = [c for c in batch if c not in SOLUTION_COLUMNS]
        rows: dict[str, list[Any]] = {c: [] for c in (*passthrough, *SOLUTION_COLUMNS)}
        todo: list[int] = []
        prompts: list[list[str]] = []  # [question][sample]
        n_options: list[int] = []
        n = self.cfg.n
        for i in range(n_rows):
            if cell(batch, S.ERROR, i):
                continue  # a question that failed upstream produces no solutions
            try:
                options = [str(o) for o in as_list(cell(batch, S.OPTIONS, i))]
                question = str(cell(batch, S.QUESTION, i) or "")
                features = cell(batch, S.FEATURES, i)
                prompts.append([self.prompt(question, options, features, k) for k in range(n)])
                n_options.append(len(options))
                todo.append(i)
            except (ValueError, TypeError) as exc:
                logger.warning("no solutions for %s: %s", batch[S.QUESTION_ID][i], exc)
        gens = self._generate(prompts, batch_seed(self.cfg.seed, [str(batch[S.QUESTION_ID][i]) for i in todo]))
        if self.cfg.complete_answers and gens:
            self._complete_answers(prompts, gens, n_options)
        for i, gen, n_opt in zip(todo, gens, n_options, strict=True):
            self._emit(batch, i, gen, passthrough, rows, n_opt)
        return {c: _object_or_numeric(c, v) for c, v in rows.items()}

    def _generate(self, prompts: list[list[str]], seed: int) -> list[Generation]:
        """One :class:`Generation` of ``n`` texts per question.

        A question whose ``n`` prompts are all the same (Med-PRM's prompt) is asked once for
        ``n`` completions; one whose prompts differ by sample (the worked example's letter) is
        asked ``n`` times for one completion each. Each kind goes to the engine in one call.
        """
        n = self.cfg.n
        same = [g for g, p in enumerate(prompts) if len(set(p)) == 1]
        varied = [g for g, p in enumerate(prompts) if len(set(p)) > 1]
        out: list[Generation] = [Generation() for _ in prompts]
        for group, n_call, flat in (
            (same, n, [prompts[g][0] for g in same]),
            (varied, 1, [p for g in varied for p in prompts[g]]),
        ):
            if not group:
                continue
            params = SamplingParams(
                n=n_call,
                temperature=self.cfg.temperature,
                top_p=self.cfg.top_p,
                max_new_tokens=self.cfg.max_new_tokens,
                seed=seed,
                prefix=self.cfg.response_prefix,
            )
            try:
                got = self.engine.generate(flat, params)
            except Exception as exc:  # an engine failure marks these rows, never kills the batch
                logger.exception("sampling failed for %d prompts", len(flat))
                got = [Generation(error=f"{type(exc).__name__}: {exc}") for _ in flat]
            per = n // n_call  # prompts per question in this call
            for j, g in enumerate(group):
                parts = got[j * per : (j + 1) * per]
                errors = [p.error for p in parts if p.error]
                out[g] = Generation(
                    texts=[t for p in parts for t in p.texts],
                    tokens_in=sum(p.tokens_in for p in parts),
                    tokens_out=sum(p.tokens_out for p in parts),
                    seconds=sum(p.seconds for p in parts),
                    error=errors[0] if errors else None,
                )
        return out

    def _complete_answers(self, prompts: list[list[str]], gens: list[Generation], options: list[int]) -> None:
        """Appends a final ``Answer: X`` line to completions that have none.

        A local model picks the letter by forced choice (:mod:`physio_ray.llm.choice`, one
        forward pass per batch) after the prompt that sample was written from; other engines
        continue the text greedily after ``"Answer:"`` and the result is still parsed strictly
        (so it may stay unreadable). Token costs are added to the question's generation.
        """
        todo = [
            (g, k)
            for g, gen in enumerate(gens)
            if gen.error is None
            for k, text in enumerate(gen.texts)
            if parse_answer(self.cfg.response_prefix + text, options[g]) is None
        ]
        if not todo:
            return
        stems = [self.cfg.response_prefix + gens[g].texts[k].rstrip() + ANSWER_CUE for g, k in todo]
        answers: list[str | None]
        try:
            if all(hasattr(self.engine, a) for a in ("model", "tokenizer", "render")):
                from physio_ray.llm.choice import choose_letters

                answers = [None] * len(todo)
                for n_opt in sorted({options[g] for g, _ in todo}):
                    idx = [j for j, (g, _) in enumerate(todo) if options[g] == n_opt]
                    picked = choose_letters(
                        self.engine,
                        [prompts[todo[j][0]][todo[j][1]] for j in idx],
                        [stems[j] for j in idx],
                        LETTERS[:n_opt],
                    )
                    for j, letter in zip(idx, picked, strict=True):
                        answers[j] = letter
            else:
                answers = []
                for (g, k), stem in zip(todo, stems, strict=True):
                    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=4, prefix=stem, stop=("\n",))
                    (gen,) = self.engine.generate([prompts[g][k]], params)
                    answers.append(None if gen.error or not gen.texts else gen.texts[0].strip())
        except Exception as exc:  # the solutions simply stay without an answer
            logger.warning("answer completion failed for %d solutions: %s", len(todo), exc)
            return
        for (g, k), stem, found in zip(todo, stems, answers, strict=True):
            if found:
                gens[g].texts[k] = stem[len(self.cfg.response_prefix) :] + " " + found
                gens[g].tokens_out += 1

    def _emit(
        self,
        batch: dict[str, np.ndarray],
        i: int,
        gen: Generation,
        passthrough: list[str],
        rows: dict[str, list[Any]],
        n_options: int,
    ) -> None:
        n = self.cfg.n
        qid = str(batch[S.QUESTION_ID][i])
        answer = str(cell(batch, S.ANSWER, i) or "").strip().upper()
        texts = list(gen.texts) if gen.error is None else []
        if gen.error is None and len(texts) != n:
            gen.error = f"engine returned {len(texts)} of {n} completions"
            texts = []
        tok_in, tok_out = _split_cost(gen.tokens_in, n), _split_cost(gen.tokens_out, n)
        for k in range(n):
            for c in passthrough:
                rows[c].append(batch[c][i])
            text = self.cfg.response_prefix + texts[k] if texts else ""
            values = solution_columns(
                solution_id(qid, k),
                text,
                answer,
                gen.error,
                k,
                tok_in[k],
                tok_out[k],
                gen.seconds / n,
                self.max_steps,
                n_options,
            )
            for c, v in values.items():
                rows[c].append(v)


def solution_columns(
    sid: str,
    text: str,
    answer: str,
    failure: str | None,
    k: int,
    tokens_in: int,
    tokens_out: int,
    seconds: float,
    max_steps: int,
    n_options: int = 4,
) -> dict[str, Any]:
    """The solution and cost columns of sample ``k`` of a question (every engine path).

    Args:
        sid: the solution id.
        text: the full solution text (prefix included); ignored when ``failure`` is set.
        answer: the question's correct letter.
        failure: the engine's error for this question, or ``None``.
        k: sample index: the question's one engine call counts on ``k == 0``.
        tokens_in, tokens_out, seconds: this sample's share of the cost (each sample has its
            own prompt, the worked example's letter differing).
        max_steps: most steps kept per solution.
        n_options: options of the question (the letters the answer may take).
    """
    steps: list[str]
    predicted: str | None
    error: str | None
    if failure is not None:
        steps, predicted, correct, error = [], None, False, f"solution: generation failed: {failure}"
    else:
        steps, predicted, correct, error = read_solution(text, answer, max_steps, n_options)
    return {
        S.SOLUTION_ID: sid,
        S.SOLUTION_TEXT: text,
        S.STEPS: steps,
        S.PREDICTED_ANSWER: predicted,
        S.IS_CORRECT: bool(correct),
        S.COST_CALLS: 1 if k == 0 else 0,
        S.COST_TOKENS_IN: int(tokens_in),
        S.COST_TOKENS_OUT: int(tokens_out),
        S.COST_SECONDS: float(seconds),
        S.COST_ROLLOUTS: 0,
        S.ERROR: error,
    }


_NUMERIC = {
    S.IS_CORRECT: np.bool_,
    S.COST_CALLS: np.int64,
    S.COST_TOKENS_IN: np.int64,
    S.COST_TOKENS_OUT: np.int64,
    S.COST_SECONDS: np.float64,
    S.COST_ROLLOUTS: np.int64,
}


def _object_or_numeric(column: str, values: list[Any]) -> np.ndarray:
    if column in _NUMERIC:
        return np.asarray(values, dtype=_NUMERIC[column])
    return object_array(values)
