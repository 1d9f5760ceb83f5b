"""Held-out evaluation of a policy: the sampler's own solutions, scored as the annotation job scores them.

Every figure is per question (a question's ``n`` samples are not independent): the share of
its solutions that are correct, and whether it has both a correct and an incorrect one (what
the PRM and Best-of-N need). Beside the policy, on the same questions:

* ``untrained``: the base model, same prompts and sampling;
* ``majority_letter``: always the letter most often right in the training questions;
* ``template_prior``: per template, the option text most often right in the training questions
  (the shortcut the data allows: UI-PRMD's ``gt_execution`` is "performed correctly" half the time).

Intervals are percentile bootstraps over questions (:mod:`physio_ray.stats`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.llm.sampler import SolutionSampler
from physio_ray.stats import bootstrap, percentile_interval

COLUMNS = (S.QUESTION_ID, S.QUESTION, S.OPTIONS, S.ANSWER, S.FEATURES, S.TEMPLATE, S.EXERCISE, S.VIDEO_ID)


def sample_correctness(
    sampler: SolutionSampler,
    rows: Sequence[Mapping[str, Any]],
    batch: int = 32,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, list[bool]]:
    """Samples ``sampler.cfg.n`` solutions per question and reads each one's answer strictly.

    Args:
        sampler: the annotation job's sampler stage over the engine to evaluate.
        rows: question rows with the question stage's columns.
        batch: questions per sampler call.
        on_batch: called ``(questions done, questions in all)`` after each sampler call.

    Returns:
        ``{question_id: [is_correct per sample]}`` (an unreadable answer counts as wrong).
    """
    out: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        cols = {c: np.array([r.get(c) for r in chunk], dtype=object) for c in COLUMNS}
        cols[S.ERROR] = np.array([None] * len(chunk), dtype=object)
        result = sampler(cols)
        for qid, ok in zip(result[S.QUESTION_ID], result[S.IS_CORRECT], strict=True):
            out[str(qid)].append(bool(ok))
        if on_batch is not None:
            on_batch(min(start + batch, len(rows)), len(rows))
    return dict(out)


def _interval(values: Sequence[float], seed: int = 0) -> list[float]:
    arr = np.asarray(values, dtype=float)
    if len(arr) < 2:
        return [float("nan"), float("nan")]
    found = percentile_interval(bootstrap(lambda idx: [float(arr[idx].mean())], len(arr), seed=seed)[:, 0])
    if found is None:
        return [float("nan"), float("nan")]
    return [round(float(found[0]), 4), round(float(found[1]), 4)]


def summarise(correct: Mapping[str, Sequence[bool]], templates: Mapping[str, str]) -> dict[str, Any]:
    """Accuracy and mixed-question share, overall and per template, with 95% intervals.

    Args:
        correct: ``{question_id: [is_correct per sample]}``.
        templates: ``{question_id: template}``.

    Returns:
        ``{"n_questions", "n_solutions", "accuracy", "accuracy_ci95", "mixed", "mixed_ci95",
        "per_template": {template: {"n", "accuracy", "mixed"}}}``.
    """
    qids = sorted(correct)
    acc = [float(np.mean(correct[q])) for q in qids]
    mixed = [float(0 < sum(correct[q]) < len(correct[q])) for q in qids]
    per: dict[str, dict[str, float]] = {}
    for t in sorted({templates[q] for q in qids}):
        sel = [i for i, q in enumerate(qids) if templates[q] == t]
        per[t] = {
            "n": len(sel),
            "accuracy": round(float(np.mean([acc[i] for i in sel])), 4),
            "mixed": round(float(np.mean([mixed[i] for i in sel])), 4),
        }
    return {
        "n_questions": len(qids),
        "n_solutions": int(sum(len(correct[q]) for q in qids)),
        "accuracy": round(float(np.mean(acc)), 4) if acc else float("nan"),
        "accuracy_ci95": _interval(acc),
        "mixed": round(float(np.mean(mixed)), 4) if mixed else float("nan"),
        "mixed_ci95": _interval(mixed, seed=1),
        "per_template": per,
    }


def constant_baselines(
    train: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Accuracy of the answers that need no model, learned on ``train`` and scored on ``test``.

    Returns:
        ``{"majority_letter": {...}, "template_prior": {...}, "hits": {question_id: {name: bool}}}``,
        each baseline with ``accuracy``, ``accuracy_ci95`` and what it answers; ``hits`` holds
        each test question's outcome (for paired intervals).
    """
    letters = Counter(str(r[S.ANSWER]) for r in train)
    letter = letters.most_common(1)[0][0] if letters else "A"
    texts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in train:
        opts = [str(o) for o in r[S.OPTIONS]]
        texts[str(r[S.TEMPLATE])][opts[S.LETTERS.index(str(r[S.ANSWER]))]] += 1
    prior = {t: c.most_common(1)[0][0] for t, c in texts.items()}
    by_letter = [float(str(r[S.ANSWER]) == letter) for r in test]
    by_prior = []
    for r in test:
        opts = [str(o) for o in r[S.OPTIONS]]
        guess = prior.get(str(r[S.TEMPLATE]))
        by_prior.append(float(guess is not None and opts[S.LETTERS.index(str(r[S.ANSWER]))] == guess))
    return {
        "majority_letter": {
            "answers": letter,
            "accuracy": round(float(np.mean(by_letter)), 4),
            "accuracy_ci95": _interval(by_letter),
        },
        "template_prior": {
            "answers": prior,
            "accuracy": round(float(np.mean(by_prior)), 4),
            "accuracy_ci95": _interval(by_prior),
        },
        "hits": {
            str(r[S.QUESTION_ID]): {"majority_letter": bool(a), "template_prior": bool(b)}
            for r, a, b in zip(test, by_letter, by_prior, strict=True)
        },
    }
