"""The whole threshold sweep of ``jobs/sweep_annotation.py``: steps in, tuned YAML + report out.

Steps that carry both a judge verdict and a full-MC hard label come from Med-PRM's sample (our
judge run on it, or Med-PRM's own Gemini labels) or from an annotate run's ``annotated/`` stage;
the grid runs as a Ray Tune experiment (:func:`~physio_ray.tune.annotation_threshold.run_threshold_sweep`),
the winner is written into a copy of the annotate YAML, and the table goes to JSON, CSV and a PNG.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physio_ray import schemas as S
from physio_ray.figures import save_figure
from physio_ray.tune.annotation_threshold import (
    StepRecord,
    SweepAnnotationConfig,
    best_threshold,
    run_threshold_sweep,
    steps_from_medprm,
    write_threshold_yaml,
)

logger = logging.getLogger(__name__)

__all__ = ["collect_steps", "render_table", "run_annotation_sweep", "steps_from_annotated", "steps_from_judged"]


def steps_from_judged(
    labels: Sequence[Sequence[int | None]], confidences: Sequence[Sequence[float]], mc_hard: Sequence[Sequence[int]]
) -> list[StepRecord]:
    """Pairs judge verdicts with MC hard labels step by step (a solution's shorter list wins).

    >>> steps_from_judged([[1, None]], [[0.9, 0.0]], [[1, 0]])
    [StepRecord(judge_label=1, judge_confidence=0.9, mc_label=1), StepRecord(judge_label=None, judge_confidence=0.0, mc_label=0)]
    """
    out = []
    for lab, conf, ref in zip(labels, confidences, mc_hard, strict=True):
        for j, c, r in zip(lab, conf, ref, strict=False):
            out.append(StepRecord(None if j is None else int(j), float(c) if j is not None else 0.0, int(r)))
    return out


def _finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def steps_from_annotated(output_dir: str) -> list[StepRecord]:
    """Steps of an annotate run that got both a judge verdict and an MC score.

    Args:
        output_dir: the annotate run's ``output_dir`` (its ``annotated/`` stage is read).

    Returns:
        One record per such step; MC hard label = soft score > 0.

    Raises:
        FileNotFoundError: when the run has no annotated rows.
    """
    from physio_ray.annotate.stage_io import StageStore

    frame = StageStore(output_dir, "annotated").read(unique_by=S.SOLUTION_ID)
    if frame.empty:
        raise FileNotFoundError(f"no annotated rows under {output_dir}/annotated (run jobs/annotate.py first)")
    if S.ERROR in frame.columns:
        frame = frame[frame[S.ERROR].isna()]
    out = []
    for _, row in frame.iterrows():
        labels = list(row[S.JUDGE_LABELS]) if row[S.JUDGE_LABELS] is not None else []
        confs = list(row[S.JUDGE_CONFIDENCES]) if row[S.JUDGE_CONFIDENCES] is not None else []
        scores = list(row[S.MC_SCORES]) if row[S.MC_SCORES] is not None else []
        for j, c, s in zip(labels, confs, scores, strict=False):
            if _finite(s):
                label = None if not _finite(j) else int(j)
                out.append(StepRecord(label, float(c) if label is not None else 0.0, int(float(s) > 0)))
    return out


def collect_steps(cfg: SweepAnnotationConfig) -> tuple[list[StepRecord], dict[str, Any]]:
    """The labelled steps the sweep scores, and where they came from.

    Returns:
        ``(steps, info)``; ``info`` names the source and, for our judge on Med-PRM, its agreement.
    """
    if cfg.source == "annotated":
        assert cfg.annotated_dir is not None
        steps = steps_from_annotated(cfg.annotated_dir)
        return steps, {"source": f"annotated run {cfg.annotated_dir}"}
    from physio_ray.annotate.judge_eval import judge_medprm, judge_vs_labels, load_medprm

    records = load_medprm(cfg.medprm_path, cfg.limit)
    if cfg.medprm_judge == "gemini_proxy":
        steps, skipped = steps_from_medprm(records)
        return steps, {"source": f"Med-PRM Gemini labels (proxy confidence), {len(records) - skipped} solutions"}
    judged = judge_medprm(records, cfg.judge)
    info = {
        "source": f"our {cfg.judge.backend} judge on Med-PRM, {len(records)} solutions",
        "judge_seconds": round(judged.seconds, 1),
        "calls_per_solution": judged.calls / max(1, len(records)),
        "vs_gemini": judge_vs_labels(judged.labels, judged.gemini),
        "vs_mc_hard": judge_vs_labels(judged.labels, judged.mc_hard),
    }
    return steps_from_judged(judged.labels, judged.confidences, judged.mc_hard), info


def render_table(table: pd.DataFrame, best: float) -> str:
    """The sweep as text: one line per threshold, the winner marked."""
    lines = [f"{'threshold':>9}  {'MC share':>8}  {'agreement':>9}  {'objective':>9}"]
    for r in table.to_dict(orient="records"):
        mark = "  <- chosen" if r["threshold"] == best else ""
        lines.append(
            f"{r['threshold']:9.2f}  {r['mc_cost_fraction']:8.1%}  {r['agreement']:9.1%}  {r['objective']:9.4f}{mark}"
        )
    return "\n".join(lines)


def _plot(table: pd.DataFrame, best: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(table["threshold"], table["agreement"], marker="o", label="agreement with full MC")
    ax.plot(table["threshold"], table["mc_cost_fraction"], marker="s", label="share of steps sent to MC")
    ax.axvline(best, color="#444", linestyle="--", label=f"chosen {best:g}")
    ax.set_xlabel("judge confidence threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="center left")
    return save_figure(fig, path, dpi=110)


def run_annotation_sweep(cfg: SweepAnnotationConfig) -> dict[str, Any]:
    """Collects steps, sweeps the threshold on Ray Tune, writes the tuned YAML and the report.

    Ray must already be initialised (the job does it).

    Args:
        cfg: the sweep settings.

    Returns:
        A summary: ``chosen`` (the winning row), ``table`` (rows), ``text`` (rendered table),
        ``n_steps``, ``info`` and ``outputs`` (paths of ``sweep.json``, ``sweep.csv``,
        ``sweep.png`` and the tuned YAML).

    Raises:
        ValueError: when no step has both labels.
    """
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps, info = collect_steps(cfg)
    if not steps:
        raise ValueError(f"no steps with both a judge verdict and an MC label in {info['source']}")
    table = run_threshold_sweep(steps, cfg.thresholds, cfg.cost_weight, storage_path=str(out / "tune"))
    best = best_threshold(table)
    tuned = Path(cfg.tuned_yaml) if cfg.tuned_yaml else out / "annotate-tuned.yaml"
    outputs = {"csv": str(out / "sweep.csv"), "json": str(out / "sweep.json")}
    if Path(cfg.base_yaml).is_file():
        outputs["tuned_yaml"] = str(write_threshold_yaml(tuned, cfg.base_yaml, best["threshold"]))
    else:
        logger.warning("base_yaml %s not found; no tuned YAML written", cfg.base_yaml)
    table.to_csv(outputs["csv"], index=False)
    outputs["plot"] = str(_plot(table, best["threshold"], out / "sweep.png"))
    summary = {
        "chosen": best,
        "n_steps": len(steps),
        "cost_weight": cfg.cost_weight,
        "info": info,
        "table": table.to_dict(orient="records"),
        "text": render_table(table, best["threshold"]),
        "outputs": outputs,
    }
    Path(outputs["json"]).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary
