"""Rows of the annotation chain: the step judge, the measurement check and the local policy.

Read from an annotation run (``jobs/annotate.py``): ``summary.json`` (our judge against
Med-PRM's Gemini labels and its 16-rollout MC), ``annotated/`` (per solution: steps, judge
labels, MC scores, final labels, correctness) and ``keyframes/`` (the recording's ground truth).

Judge figures are agreement, Cohen's kappa and incorrect-step recall, because agreement alone
rewards a judge that calls every step correct: the baselines are that constant judge and, for
recall, a random judge that flags the same share of steps.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from physio_ray.annotate.judge_eval import judge_vs_labels
from physio_ray.quality.config import ReportQualityConfig
from physio_ray.quality.inputs import dig, read_json, read_parquet
from physio_ray.quality.rows import make_row, missing_row
from physio_ray.stats import bootstrap, percentile_interval, wilson_interval

__all__ = ["agreement_rows", "judge_rows", "measurement_rows", "pairs_from_counts", "policy_rows"]

_METRICS = ("agreement", "kappa", "incorrect_recall")


def pairs_from_counts(figures: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-step ``(reference, prediction)`` labels rebuilt from a :func:`judge_vs_labels` summary.

    The 2x2 table is determined by ``n_ref_correct``, ``n_ref_incorrect``, ``recall_correct`` and
    ``recall_incorrect``; the order of the steps is lost, which an item bootstrap does not need.

    >>> ref, pred = pairs_from_counts({"n_ref_correct": 3, "n_ref_incorrect": 2,
    ...                                "recall_correct": 2 / 3, "recall_incorrect": 0.5})
    >>> ref.tolist(), pred.tolist()
    ([1, 1, 1, 0, 0], [1, 1, 0, 0, 1])
    """
    n1, n0 = figures.get("n_ref_correct"), figures.get("n_ref_incorrect")
    if not isinstance(n1, int) or not isinstance(n0, int) or n1 + n0 == 0:
        return None
    r1, r0 = figures.get("recall_correct"), figures.get("recall_incorrect")
    if (n1 and r1 is None) or (n0 and r0 is None):
        return None
    c11 = round((r1 or 0.0) * n1)
    c00 = round((r0 or 0.0) * n0)
    ref = [1] * n1 + [0] * n0
    pred = [1] * c11 + [0] * (n1 - c11) + [0] * c00 + [1] * (n0 - c00)
    return np.array(ref, dtype=np.int64), np.array(pred, dtype=np.int64)


def _nan(v: Any) -> float:
    return float(v) if v is not None else math.nan


def _judge_stats(ref: np.ndarray, pred: np.ndarray) -> list[float]:
    """[agreement, kappa, incorrect recall] of the judge, then of its baselines on the same steps."""
    f = judge_vs_labels([pred.tolist()], [ref.tolist()])
    pos = float(ref.mean())
    const_kappa = 0.0 if 0.0 < pos < 1.0 else math.nan
    has_neg = bool((ref == 0).any())
    return [
        _nan(f["agreement"]),
        _nan(f["kappa"]),
        _nan(f["recall_incorrect"]),
        pos,  # always "correct": agreement
        const_kappa,  # always "correct": kappa
        0.0 if has_neg else math.nan,  # always "correct": recall of incorrect steps
        float((pred == 0).mean()) if has_neg else math.nan,  # random judge flagging the same share
    ]


def agreement_rows(
    component: str,
    reference: str,
    split: str,
    ref: np.ndarray,
    pred: np.ndarray,
    cfg: ReportQualityConfig,
    references: Mapping[str, Mapping[str, float | None]] | None = None,
    note: str = "",
) -> list[dict[str, Any]]:
    """Agreement, kappa and incorrect-step recall of ``pred`` against ``ref`` (0/1 per step), paired.

    Args:
        component: row component.
        reference: what ``ref`` is (used in the metric names, e.g. ``"gemini"``).
        split: row split.
        ref: ``[steps]`` reference labels.
        pred: ``[steps]`` judge labels.
        cfg: the report config (bootstrap settings).
        references: per metric, non-trivial comparison points shown beside the row.
        note: caveat for every row.

    Returns:
        Three rows.
    """
    point = _judge_stats(ref, pred)
    draws = bootstrap(lambda i: _judge_stats(ref[i], pred[i]), len(ref), cfg.bootstrap.samples, cfg.bootstrap.seed)
    baselines = [
        {"always_correct": point[3]},
        {"always_correct": point[4]},
        {"always_correct": point[5], "random_same_flag_rate": point[6]},
    ]
    best_col = [[3], [4], [5, 6]]
    rows = []
    for k, metric in enumerate(_METRICS):
        cols = best_col[k]
        best = max(cols, key=lambda c: point[c] if math.isfinite(point[c]) else -math.inf)
        gain = percentile_interval(draws[:, k] - draws[:, best]) if math.isfinite(point[best]) else None
        rows.append(
            make_row(
                component,
                f"{metric}_vs_{reference}",
                split,
                len(ref),
                point[k],
                percentile_interval(draws[:, k]),
                baselines[k],
                gain_ci95=gain,
                references=(references or {}).get(metric),
                note=note,
            )
        )
    return rows


def _missing_triplet(component: str, reference: str, split: str, where: str) -> list[dict[str, Any]]:
    return [missing_row(component, f"{m}_vs_{reference}", split, where) for m in _METRICS]


def judge_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Our judge vs Med-PRM's Gemini labels and MC labels (summary.json), and vs our own MC (annotated/)."""
    folder = cfg.sources.annotate_dir
    summary, why = read_json(folder, "summary.json")
    medprm = dig(summary, "judge_vs_medprm")
    rows: list[dict[str, Any]] = []
    n_sol = dig(medprm, "solutions")
    split = f"Med-PRM sample ({n_sol} solutions, not trained on)"
    note = "steps rebuilt from the 2x2 table in summary.json; resampled by step, not by solution"
    gemini_vs_mc = dig(medprm, "gemini_vs_mc_hard") or {}
    ref_points = {
        "agreement": {"gemini_vs_mc_hard": gemini_vs_mc.get("agreement")},
        "kappa": {"gemini_vs_mc_hard": gemini_vs_mc.get("kappa")},
        "incorrect_recall": {"gemini_vs_mc_hard": gemini_vs_mc.get("recall_incorrect")},
    }
    for key, reference, refs in (("vs_gemini", "gemini", None), ("vs_mc_hard", "medprm_mc", ref_points)):
        figures = dig(medprm, key)
        pairs = pairs_from_counts(figures) if isinstance(figures, Mapping) else None
        if pairs is None:
            reason = why or f"{folder}/summary.json: no judge_vs_medprm.{key} with n_ref_correct/recall_* (older run?)"
            rows += _missing_triplet("judge", reference, split, reason)
            continue
        rows += agreement_rows("judge", reference, split, *pairs, cfg, references=refs, note=note)
    rows += _judge_vs_own_mc(cfg)
    return rows


def _judge_vs_own_mc(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    folder = cfg.sources.annotate_dir
    split = "annotation run, steps sent to Monte-Carlo"
    data, why = read_parquet(folder, "annotated", ["judge_labels", "mc_scores", "labels"])
    if data is None:
        return _missing_triplet("judge", "own_mc", split, why)
    if not data or any(c not in data[0] for c in ("judge_labels", "mc_scores", "labels")):
        return _missing_triplet("judge", "own_mc", split, f"{folder}/annotated: no judge_labels/mc_scores/labels")
    ref, pred = [], []
    for r in data:
        for k, score in enumerate(r["mc_scores"] or []):
            judged = (r["judge_labels"] or [])[k] if k < len(r["judge_labels"] or []) else None
            if score is not None and judged is not None and k < len(r["labels"] or []):
                ref.append(int(r["labels"][k]))
                pred.append(int(judged))
    if not ref:
        return _missing_triplet(
            "judge", "own_mc", split, f"{folder}/annotated: no step has both a judge and an MC label"
        )
    return agreement_rows(
        "judge", "own_mc", split, np.array(ref), np.array(pred), cfg, note="MC steps are the judge's least confident"
    )


def policy_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """The local policy: share of correct solutions, and of questions with a correct and an incorrect one."""
    folder = cfg.sources.annotate_dir
    data, why = read_parquet(folder, "annotated", ["question_id", "is_correct", "options", "answer"])
    summary, _ = read_json(folder, "summary.json")
    adapter = dig(summary, "policy", "adapter")
    split_all = "annotation run, all questions " + (
        f"(policy adapter {adapter}, trained on other subjects)" if adapter else "(the policy is not trained)"
    )
    if data is None:  # a run stopped before the judge still has its solutions
        data, _ = read_parquet(folder, "solutions", ["question_id", "is_correct", "options", "answer"])
        why = why if data is None else ""
    if data is None or not data or "is_correct" not in data[0]:
        why = why or f"{folder}/annotated: no is_correct column"
        return [
            missing_row("policy", "solution_accuracy", split_all, why),
            missing_row("policy", "questions_with_correct_and_incorrect", split_all, why),
        ]
    by_q: dict[str, list[dict[str, Any]]] = {}
    for r in data:
        by_q.setdefault(str(r["question_id"]), []).append(r)
    qids = sorted(by_q)
    majority = Counter(str(by_q[q][0].get("answer")) for q in qids).most_common(1)[0][0]
    correct = [np.array([bool(r["is_correct"]) for r in by_q[q]], dtype=np.float64) for q in qids]
    chance = [np.array([1.0 / max(1, len(r.get("options") or [None] * 4)) for r in by_q[q]]) for q in qids]
    major = [np.full(len(by_q[q]), float(str(by_q[q][0].get("answer")) == majority)) for q in qids]
    mixed = np.array([float(0 < c.sum() < c.size) for c in correct])
    random_mixed = np.array([1 - np.prod(p) - np.prod(1 - p) for p in chance])

    def sol_stats(idx: np.ndarray) -> list[float]:
        return [float(np.concatenate([a[i] for i in idx]).mean()) for a in (correct, chance, major)]

    boot = cfg.bootstrap
    point = sol_stats(np.arange(len(qids)))
    draws = bootstrap(sol_stats, len(qids), boot.samples, boot.seed)
    best = 1 + int(np.argmax(point[1:]))
    n_sol = sum(c.size for c in correct)
    rows = [
        make_row(
            "policy",
            "solution_accuracy",
            split_all,
            n_sol,
            point[0],
            percentile_interval(draws[:, 0]),
            {"chance": point[1], "majority_letter": point[2]},
            gain_ci95=percentile_interval(draws[:, 0] - draws[:, best]),
            note=f"{len(qids)} questions, resampled by question; majority_letter always answers {majority!r} "
            "(the most common right letter of these questions, fitted on them)",
        )
    ]
    q_draws = bootstrap(lambda i: [mixed[i].mean(), random_mixed[i].mean()], len(qids), boot.samples, boot.seed)
    rows.append(
        make_row(
            "policy",
            "questions_with_correct_and_incorrect",
            split_all,
            len(qids),
            float(mixed.mean()),
            percentile_interval(q_draws[:, 0]),
            {"random_guess": float(random_mixed.mean())},
            gain_ci95=percentile_interval(q_draws[:, 0] - q_draws[:, 1]),
            note="random_guess: candidates that pick an option uniformly at random",
        )
    )
    return rows


def _ground_truth(folder: str | None) -> dict[str, str]:
    data, _ = read_parquet(folder, "keyframes", ["video_id", "ground_truth"])
    return {str(r["video_id"]): r["ground_truth"] for r in data or [] if r.get("ground_truth")}


def measurement_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Steps the measurement check decides, and the judge against it on those steps.

    The steps are re-checked here with each recording's dataset label as well (UI-PRMD's
    correct / incorrect: a "performed correctly" claim becomes checkable), so on a run made with
    ``measurement.bands_on_ground_truth: false`` these rows decide more steps than the run's own
    check did (``summary.json`` ``labels.measurement``; the demo: 66 vs 57 of 151).
    """
    from physio_ray.annotate.measurement import CONTRADICTED, SUPPORTED, check_step

    folder = cfg.sources.annotate_dir
    split = "annotation run, physiotherapy steps"
    data, why = read_parquet(folder, "annotated", ["video_id", "features", "steps", "judge_labels"])
    need = ("features", "steps", "judge_labels")
    if data is not None and (not data or any(c not in data[0] for c in need)):
        why, data = f"{folder}/annotated: no features/steps/judge_labels columns", None
    if data is None:
        return [
            missing_row("measurement", "checkable_steps", split, why),
            *_missing_triplet("judge", "measurement", split, why),
        ]
    truth = _ground_truth(folder)
    verdicts: Counter[str] = Counter()
    ref, pred = [], []
    for r in data:
        judge = list(r["judge_labels"] or [])
        for k, step in enumerate(r["steps"] or []):
            check = check_step(step, r["features"], ground_truth=truth.get(str(r.get("video_id"))))
            verdicts[check.verdict] += 1
            if check.verdict in (SUPPORTED, CONTRADICTED) and k < len(judge) and judge[k] is not None:
                ref.append(1 if check.verdict == SUPPORTED else 0)
                pred.append(int(judge[k]))
    steps = sum(verdicts.values())
    decided = verdicts[SUPPORTED] + verdicts[CONTRADICTED]
    rows = [
        make_row(
            "measurement",
            "checkable_steps",
            split,
            steps,
            decided / steps if steps else None,
            wilson_interval(decided, steps),
            {},
            note=f"supported {verdicts[SUPPORTED]}, contradicted {verdicts[CONTRADICTED]} of {steps} steps, "
            "re-checked with the recordings' dataset labels too (the run's own check may decide fewer); "
            "a rule, not a learned part: shown for coverage",
        )
    ]
    if not ref:
        return [*rows, *_missing_triplet("judge", "measurement", split, f"{folder}/annotated: no step decided")]
    note = "reference: the measurement check's verdict (supported = correct step); resampled by step"
    decided_split = "annotation run, steps the measurement check decides"
    return [
        *rows,
        *agreement_rows("judge", "measurement", decided_split, np.array(ref), np.array(pred), cfg, note=note),
    ]
