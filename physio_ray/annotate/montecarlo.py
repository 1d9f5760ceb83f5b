"""Selective Monte-Carlo annotation (seed 000 §3.2.2-3.2.3), rebuilt to sample in batches.

Steps the judge was unsure about (confidence < threshold, or abstained) are scored by
continuing the solution from that step's prefix and checking the continuations' answers
against the known one. Unlike the seed, the engine is built once per actor, all rollouts of a
prefix come from ``n``-sampled engine calls, prefixes of every solution in a batch share each
call, and sampling stops as soon as more rollouts could not change the hard label.

The scheduling policy is the pure :class:`~physio_ray.annotate.rollouts.RolloutPlan`;
:func:`~physio_ray.annotate.rollouts.simulate_adaptive` replays it on recorded rollout outcomes
(e.g. Med-PRM's 16-rollout soft labels) without any model; both are re-exported here.

Before any rollout, every step's stated measurements are checked against the recording's
features (:func:`~physio_ray.annotate.measured_steps.check_solution`): a step the measurement
decides needs no rollouts, and a judge/measurement conflict is rolled out whatever the
judge's confidence (rules in :mod:`physio_ray.annotate.labels`).

Reads: question, options, answer, answer_source, features, steps, is_correct, judge_labels,
judge_confidences, error.
Adds: mc_scores, mc_rollouts, labels, soft_labels, annotation_method, measurement_verdicts,
measurement_evidence; replaces the cost columns with this stage's own cost (the ledger reads
each stage's Parquet separately). The judge's own verdicts stay in judge_labels.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from physio_ray import schemas as S
from physio_ray.annotate.config import MeasurementConfig, MonteCarloConfig
from physio_ray.annotate.labels import combine_labels, needs_mc
from physio_ray.annotate.measured_steps import check_solution
from physio_ray.annotate.rollouts import RolloutPlan
from physio_ray.batches import as_list, cell, object_array
from physio_ray.labels import zero_after_first_error
from physio_ray.llm.engine import SamplingParams, TextEngine

logger = logging.getLogger(__name__)

__all__ = ["MonteCarloAnnotator", "rollout_prompt"]


def rollout_prompt(question: str, options: Sequence[str], steps_prefix: Sequence[str]) -> str:
    """The continuation prompt for one step prefix.

    Args:
        question: question stem.
        options: option texts without letter prefixes.
        steps_prefix: the solution's steps up to and including the scored step.

    Returns:
        A prompt asking to continue the reasoning and end with ``Answer: X``.
    """
    letters = S.LETTERS[: len(options)]
    opts = "\n".join(f"{letters[i]}) {o}" for i, o in enumerate(options))
    so_far = "\n".join(str(s).strip() for s in steps_prefix)
    return (
        f"Question: {question}\nOptions:\n{opts}\n\n"
        f"Reasoning so far:\n{so_far}\n\n"
        'Continue this reasoning from the next step. End each step with " ки" and finish with a '
        f'last line of the form "Answer: X" where X is one of {", ".join(letters)}.'
    )


def _opt_label(v: Any) -> int | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return int(v)


@dataclass
class _Row:
    steps: list[str]
    prompt_head: tuple[str, list[str]]
    answer: str
    judge_labels: list[int | None]
    judge_conf: list[float]
    plan: RolloutPlan
    verdicts: list[str]
    evidence: list[str]
    error: str | None = None
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0


class MonteCarloAnnotator:
    """Ray-Data-ready selective Monte-Carlo over judged solution rows.

    Args:
        mc_cfg: rollout budget, batch, mode, reuse and engine settings.
        confidence_threshold: judge confidence below which a step is rolled out.
        engine: an already-built engine (tests, or sharing one); default builds
            ``mc_cfg.engine`` once, here.
        steps_in_flight: with reuse, targets of one solution sampled per round (1 maximises
            reuse; more trades rollouts for fewer sequential rounds).
        zero_after_error: apply Med-PRM's :func:`zero_after_first_error` to the final labels.
        measurement_cfg: the measurement check (``None``: off, as ``enabled=False``).
    """

    def __init__(
        self,
        mc_cfg: MonteCarloConfig,
        confidence_threshold: float,
        *,
        engine: TextEngine | None = None,
        steps_in_flight: int = 1,
        zero_after_error: bool = False,
        measurement_cfg: MeasurementConfig | None = None,
    ) -> None:
        if engine is None:
            from physio_ray.llm.factory import build_engine

            engine = build_engine(mc_cfg.engine)
        self.cfg = mc_cfg
        self.threshold = float(confidence_threshold)
        self.engine = engine
        self.steps_in_flight = steps_in_flight
        self.zero_after_error = zero_after_error
        self.measurement = measurement_cfg or MeasurementConfig(enabled=False)

    def _prepare(self, batch: dict[str, np.ndarray], i: int) -> _Row:
        steps = [str(s) for s in as_list(batch[S.STEPS][i])]
        labels = [_opt_label(v) for v in as_list(batch[S.JUDGE_LABELS][i])]
        conf = [float(c) for c in as_list(batch[S.JUDGE_CONFIDENCES][i])]
        if not steps:
            raise ValueError("solution has no steps")
        if len(labels) != len(steps) or len(conf) != len(steps):
            raise ValueError(f"{len(steps)} steps but {len(labels)} judge labels and {len(conf)} confidences")
        answer = str(batch[S.ANSWER][i]).strip().upper()
        options = [str(o) for o in as_list(batch[S.OPTIONS][i])]
        if answer not in S.LETTERS[: len(options)]:
            raise ValueError(f"answer {answer!r} is not one of the {len(options)} option letters")
        verdicts, evidence = check_solution(
            steps,
            cell(batch, S.FEATURES, i),
            self.measurement,
            answer_source=cell(batch, S.ANSWER_SOURCE, i),
            options=options,
            answer=answer,
        )
        targets = [k for k, m in enumerate(needs_mc(labels, conf, self.threshold, verdicts or None)) if m]
        plan = RolloutPlan(
            targets,
            max_rollouts=self.cfg.max_rollouts,
            batch=self.cfg.batch,
            mode=self.cfg.mode,
            reuse=self.cfg.reuse,
            solution_correct=bool(batch[S.IS_CORRECT][i]),
            steps_in_flight=self.steps_in_flight,
        )
        return _Row(steps, (str(batch[S.QUESTION][i]), options), answer, labels, conf, plan, verdicts, evidence)

    def _run(self, rows: list[_Row]) -> None:
        """Rounds of batched generate calls until every plan is settled or failed."""
        from physio_ray.llm.steps import parse_answer

        wave = 0
        while True:
            by_n: dict[int, list[tuple[_Row, int]]] = defaultdict(list)
            for row in rows:
                if row.error is None:
                    for step, n in row.plan.requests():
                        by_n[n].append((row, step))
            if not by_n:
                return
            for n, reqs in sorted(by_n.items()):
                params = SamplingParams(
                    n=n,
                    temperature=self.cfg.temperature,
                    top_p=1.0,
                    max_new_tokens=self.cfg.max_new_tokens,
                    seed=self.cfg.seed + wave,
                )
                prompts = [rollout_prompt(*row.prompt_head, row.steps[: step + 1]) for row, step in reqs]
                try:
                    gens = self.engine.generate(prompts, params)
                except Exception as exc:  # an engine failure fails these rows, not the batch
                    logger.warning("MC generate call of %d prompts failed: %s", len(prompts), exc)
                    for row, _ in reqs:
                        row.error = f"montecarlo: engine failed: {exc}"
                        row.plan.abort()
                    continue
                for (row, step), gen in zip(reqs, gens, strict=True):
                    row.calls += 1
                    row.tokens_in += gen.tokens_in
                    row.tokens_out += gen.tokens_out
                    row.seconds += gen.seconds
                    if row.error is not None:
                        continue
                    if gen.error is not None or len(gen.texts) != n:
                        row.error = f"montecarlo: step {step}: {gen.error or f'{len(gen.texts)} of {n} rollouts'}"
                        row.plan.abort()
                        continue
                    row.plan.record(step, [parse_answer(t) == row.answer for t in gen.texts])
                wave += 1

    def __call__(self, batch: dict[str, np.ndarray] | pd.DataFrame) -> dict[str, np.ndarray] | pd.DataFrame:
        """Annotates a batch of judged solutions.

        Args:
            batch: Ray Data batch, ``numpy`` format (dict of column -> array) or ``pandas``,
                with the columns listed in the module docstring.

        Returns:
            The batch, in the format it came in, with ``mc_scores``, ``mc_rollouts``,
            ``labels``, ``soft_labels``, ``annotation_method``, ``measurement_verdicts``,
            ``measurement_evidence``, ``error`` and this stage's cost columns.
        """
        if isinstance(batch, pd.DataFrame):
            return pd.DataFrame(self._annotate({c: batch[c].to_numpy() for c in batch.columns}))
        return self._annotate(batch)

    def _annotate(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        size = len(batch[S.SOLUTION_ID])
        prev_err = batch.get(S.ERROR, np.full(size, None, dtype=object))
        rows: list[_Row | None] = [None] * size
        errors: list[str | None] = [None] * size
        for i in range(size):
            if prev_err[i]:
                errors[i] = str(prev_err[i])
                continue
            try:
                rows[i] = self._prepare(batch, i)
            except (ValueError, TypeError, KeyError) as exc:
                errors[i] = f"montecarlo: {exc}"
        self._run([r for r in rows if r is not None])

        columns = (
            S.MC_SCORES,
            S.MC_ROLLOUTS,
            S.LABELS,
            S.SOFT_LABELS,
            S.ANNOTATION_METHOD,
            S.MEASUREMENT_VERDICTS,
            S.MEASUREMENT_EVIDENCE,
            *S.COST_COLUMNS,
        )
        out_cols: dict[str, list[Any]] = {c: [] for c in columns}
        for i, row in enumerate(rows):
            scores: list[float | None] = []
            used: list[int] = []
            labels: list[int] = []
            soft: list[float] = []
            methods: list[str] = []
            verdicts: list[str] = [] if row is None else row.verdicts
            evidence: list[str] = [] if row is None else row.evidence
            if row is not None and row.error is not None:
                errors[i] = row.error
            elif row is not None:
                n = len(row.steps)
                scores = [row.plan.score(k) for k in range(n)]
                used = [row.plan.used.get(k, 0) for k in range(n)]
                sources = [row.plan.source.get(k) for k in range(n)]
                try:
                    labels, soft, methods = combine_labels(
                        row.judge_labels,
                        row.judge_conf,
                        scores,
                        self.threshold,
                        mc_sources=sources,
                        measurement=row.verdicts or None,
                    )
                except ValueError as exc:  # internal: a plan left a target unsettled
                    errors[i], scores, used = f"montecarlo: {exc}", [], []
                if self.zero_after_error:
                    labels = zero_after_first_error(labels)
            cost = (
                (0, 0, 0, 0.0, 0)
                if row is None
                else (row.calls, row.tokens_in, row.tokens_out, row.seconds, sum(row.plan.used.values()))
            )
            for col, val in zip(columns, (scores, used, labels, soft, methods, verdicts, evidence, *cost), strict=True):
                out_cols[col].append(val)

        out = dict(batch)
        for col, vals in out_cols.items():
            if col in S.COST_COLUMNS:
                out[col] = np.asarray(vals, dtype=np.float64 if col == S.COST_SECONDS else np.int64)
            else:
                out[col] = object_array(vals)
        out[S.ERROR] = object_array(errors)
        return out
