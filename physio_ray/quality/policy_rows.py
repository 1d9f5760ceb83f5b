"""Rows of the trained policy on held-out people (``jobs/train_policy.py``'s ``policy_eval.json``).

The annotation run's own policy rows (:func:`physio_ray.quality.annotate_rows.policy_rows`) score
whatever policy the run sampled with, on the demo's questions. These rows score the policy
adapter on the held-out subjects it was evaluated on: solution accuracy beside the untrained
model and the constant answers (majority letter, per-template majority option), and the share
of questions with a correct and an incorrect solution beside the untrained model. Intervals and
gains are paired bootstraps over questions (the ``per_question`` table of the file).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physio_ray.quality.config import ReportQualityConfig
from physio_ray.quality.inputs import read_json
from physio_ray.quality.rows import make_row, missing_row
from physio_ray.stats import bootstrap, percentile_interval

__all__ = ["policy_heldout_rows"]

_ACC_BASELINES = ("untrained", "majority_letter", "template_prior")


def policy_heldout_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Held-out accuracy and mixed-question share of the policy adapter, beside their baselines."""
    folder = cfg.sources.policy_dir
    report, why = read_json(folder, "policy_eval.json")
    table = report.get("per_question") if isinstance(report, dict) else None
    split = "held-out subjects"
    if isinstance(report, dict) and report.get("held_out_subjects"):
        split = f"held-out subjects {', '.join(report['held_out_subjects'])} (never trained on)"
    if not isinstance(table, dict) or not table:
        why = why or f"{folder}/policy_eval.json: no per_question table (rerun jobs/train_policy.py)"
        return [
            missing_row("policy", "heldout_solution_accuracy", split, why),
            missing_row("policy", "heldout_questions_with_correct_and_incorrect", split, why),
        ]
    qids = sorted(table)
    trained = [np.asarray(table[q]["trained"], dtype=float) for q in qids]
    untrained = [np.asarray(table[q]["untrained"], dtype=float) for q in qids]
    acc = np.array([t.mean() if t.size else 0.0 for t in trained])
    base = {
        "untrained": np.array([u.mean() if u.size else 0.0 for u in untrained]),
        "majority_letter": np.array([float(table[q]["majority_letter"]) for q in qids]),
        "template_prior": np.array([float(table[q]["template_prior"]) for q in qids]),
    }
    mixed = np.array([float(0 < t.sum() < t.size) for t in trained])
    mixed_base = np.array([float(0 < u.sum() < u.size) for u in untrained])
    boot = cfg.bootstrap
    cols = [acc, *(base[b] for b in _ACC_BASELINES)]
    point = [float(c.mean()) for c in cols]
    draws = bootstrap(lambda i: [float(c[i].mean()) for c in cols], len(qids), boot.samples, boot.seed)
    best = 1 + int(np.argmax(point[1:]))
    n_solutions = int(sum(t.size for t in trained))
    answers = (report.get("baselines") or {}).get("template_prior", {}).get("answers", {})
    rows = [
        make_row(
            "policy",
            "heldout_solution_accuracy",
            split,
            n_solutions,
            point[0],
            percentile_interval(draws[:, 0]),
            dict(zip(_ACC_BASELINES, point[1:], strict=True)),
            gain_ci95=percentile_interval(draws[:, 0] - draws[:, best]),
            note=f"{len(qids)} questions sampled {n_solutions // max(1, len(qids))} times, resampled by question; "
            f"template_prior answers per template the option most often right in training "
            f"({len(answers)} templates)",
        )
    ]
    m_draws = bootstrap(
        lambda i: [float(mixed[i].mean()), float(mixed_base[i].mean())], len(qids), boot.samples, boot.seed
    )
    rows.append(
        make_row(
            "policy",
            "heldout_questions_with_correct_and_incorrect",
            split,
            len(qids),
            float(mixed.mean()),
            percentile_interval(m_draws[:, 0]),
            {"untrained": float(mixed_base.mean())},
            gain_ci95=percentile_interval(m_draws[:, 0] - m_draws[:, 1]),
            note="what the PRM and Best-of-N need: both a right and a wrong candidate per question",
        )
    )
    return rows
