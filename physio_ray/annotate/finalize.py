"""After the stages: exports, cost ledger, clinician review sample, quality figures, plot.

Everything here reads the stages' Parquet, so it can be rerun on its own and produces the
same files from the same stage outputs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physio_ray import schemas as S
from physio_ray.annotate.config import AnnotateConfig
from physio_ray.annotate.stage_io import StageStore
from physio_ray.annotate.stages import STAGE_TABLE
from physio_ray.batches import as_list
from physio_ray.figures import save_figure

logger = logging.getLogger(__name__)


def _read_stages(cfg: AnnotateConfig) -> dict[str, pd.DataFrame]:
    frames = {}
    for st in STAGE_TABLE:
        store = StageStore(cfg.output_dir, st.name)
        if store.part_files():
            frames[st.name] = store.read(unique_by=st.output_key)
    return frames


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    if S.ERROR not in frame.columns:
        return frame
    return frame[frame[S.ERROR].isna()]


def step_counts(annotated: pd.DataFrame) -> dict[str, Any]:
    """Counts steps by how their final label was decided.

    Args:
        annotated: annotated-stage rows.

    Returns:
        ``steps``, ``by_method`` (``measurement``, ``rag``, ``mc``, ``mc_reuse``, ``solution``),
        ``judge_vs_mc`` agreement on steps that have both a judge label and an MC score, and
        ``measurement`` (:func:`measurement_counts`). Every judge figure is a
        :func:`~physio_ray.annotate.judge_eval.judge_vs_labels` dict: agreement with Cohen's
        kappa and incorrect-step recall (``recall_incorrect``) beside it.
    """
    from physio_ray.annotate.judge_eval import judge_vs_labels

    methods: dict[str, int] = {}
    pred: list[list[int | None]] = []
    ref: list[list[int]] = []
    steps = 0
    for _, row in _ok(annotated).iterrows():
        row_methods = list(row.get(S.ANNOTATION_METHOD) or [])
        steps += len(row_methods)
        for m in row_methods:
            key = "mc" if str(m).startswith("mc_") and m != "mc_reuse" else str(m)
            methods[key] = methods.get(key, 0) + 1
        judge = list(row.get(S.JUDGE_LABELS) or [])
        scores = list(row.get(S.MC_SCORES) or [])
        p, r = [], []
        for j, s in zip(judge, scores, strict=False):
            if s is not None and not (isinstance(s, float) and np.isnan(s)):
                p.append(None if j is None else int(j))
                r.append(1 if float(s) > 0 else 0)
        if r:
            pred.append(p)
            ref.append(r)
    agreement = judge_vs_labels(pred, ref) if ref else None
    return {
        "steps": steps,
        "by_method": methods,
        "judge_vs_mc": agreement,
        "measurement": measurement_counts(annotated),
    }


def measurement_counts(annotated: pd.DataFrame) -> dict[str, Any] | None:
    """How many steps the measurement check could decide, and how the judge compares with it.

    Args:
        annotated: annotated-stage rows.

    Returns:
        ``None`` when no row carries measurement verdicts (check off, or an older run); else
        ``steps_checked``, ``checkable`` (supported + contradicted), ``supported``,
        ``contradicted``, ``not_checkable``, ``checkable_share``, ``solutions_with_checkable``
        and ``judge_vs_measurement`` (the judge's own labels against the measurement, 1 =
        supported, on checkable steps; ``None`` when none is checkable).
    """
    from physio_ray.annotate.judge_eval import judge_vs_labels
    from physio_ray.annotate.measurement import CONTRADICTED, NOT_CHECKABLE, SUPPORTED

    if S.MEASUREMENT_VERDICTS not in annotated.columns:
        return None
    counts = {SUPPORTED: 0, CONTRADICTED: 0, NOT_CHECKABLE: 0}
    pred: list[list[int | None]] = []
    ref: list[list[int]] = []
    rows_checked = 0
    for _, row in _ok(annotated).iterrows():
        verdicts = [str(v) for v in as_list(row.get(S.MEASUREMENT_VERDICTS))]
        if not verdicts:
            continue
        rows_checked += 1
        judge = as_list(row.get(S.JUDGE_LABELS))
        p, r = [], []
        for k, v in enumerate(verdicts):
            counts[v] = counts.get(v, 0) + 1
            if v in (SUPPORTED, CONTRADICTED):
                j = judge[k] if k < len(judge) else None
                p.append(None if j is None or (isinstance(j, float) and np.isnan(j)) else int(j))
                r.append(1 if v == SUPPORTED else 0)
        if r:
            pred.append(p)
            ref.append(r)
    if not rows_checked:
        return None
    checked = sum(counts.values())
    checkable = counts[SUPPORTED] + counts[CONTRADICTED]
    return {
        "steps_checked": checked,
        "checkable": checkable,
        "supported": counts[SUPPORTED],
        "contradicted": counts[CONTRADICTED],
        "not_checkable": counts[NOT_CHECKABLE],
        "checkable_share": checkable / checked if checked else None,
        "solutions_with_checkable": len(ref),
        "judge_vs_measurement": judge_vs_labels(pred, ref) if ref else None,
    }


def plot_annotation(annotated: pd.DataFrame, threshold: float, path: Path) -> Path | None:
    """Writes a PNG: judge confidence histogram with the MC threshold, and label methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _ok(annotated)
    if rows.empty:
        return None
    conf = [float(c) for cs in rows[S.JUDGE_CONFIDENCES] for c in (cs if cs is not None else [])]
    counts = step_counts(rows)["by_method"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.hist(conf, bins=20, range=(0, 1), color="#3b82f6")
    ax1.axvline(threshold, color="#444", linestyle="--", label=f"MC threshold {threshold:g}")
    ax1.set_xlabel("judge confidence per step")
    ax1.set_ylabel("steps")
    ax1.legend()
    names = sorted(counts)
    ax2.bar(names, [counts[n] for n in names], color="#94a3b8")
    ax2.set_ylabel("steps")
    ax2.set_title("how each step's label was decided")
    return save_figure(fig, path, dpi=110)


def _keyframe_images(keyframes: pd.DataFrame, sources: pd.DataFrame) -> dict[str, list[Any]]:
    """Keyframe images of camera-video recordings (landmark-only sources have none)."""
    from physio_ray.video.decode import read_frames

    videos = sources[sources[S.SOURCE_KIND] == "video"].set_index(S.VIDEO_ID)[S.SOURCE_PATH].to_dict()
    out = {}
    for _, row in _ok(keyframes).iterrows():
        path = videos.get(row[S.VIDEO_ID])
        if path:
            try:
                out[row[S.VIDEO_ID]] = read_frames(path, [int(i) for i in row[S.KEYFRAME_INDICES]])
            except (OSError, ValueError) as exc:
                logger.warning("could not read keyframes of %s: %s", path, exc)
    return out


def finalize(cfg: AnnotateConfig, reports: list[Any]) -> dict[str, Any]:
    """Writes the exports of whatever stages exist and returns the run summary.

    Args:
        cfg: the run configuration.
        reports: :class:`~physio_ray.annotate.pipeline.StageSummary` of the stages run now.

    Returns:
        The summary (also written to ``<output_dir>/summary.json``).
    """
    from physio_ray.annotate.export import export_appendix, export_medprm, write_json_atomic
    from physio_ray.annotate.ledger import CostLedger
    from physio_ray.annotate.review import export_review

    remote = "://" in cfg.output_dir
    # Exports are written locally first; on a cluster (s3://, gs://) they are uploaded after.
    out = Path(tempfile.mkdtemp(prefix="physio-ray-export-")) if remote else Path(cfg.output_dir)
    frames = _read_stages(cfg)
    summary: dict[str, Any] = {
        "output_dir": cfg.output_dir if remote else str(out.resolve()),
        "stages_run": [vars(r) for r in reports],
        "rows": {name: len(f) for name, f in frames.items()},
        "errors": {name: int(f[S.ERROR].notna().sum()) for name, f in frames.items() if S.ERROR in f.columns},
        "outputs": {name: str(out / name) for name in frames},
    }
    annotated = frames.get("annotated")
    if annotated is not None and not annotated.empty:
        questions = frames.get("questions", pd.DataFrame())
        keyframes = frames.get("keyframes", pd.DataFrame())
        sources = frames.get("sources", pd.DataFrame())
        summary["outputs"]["appendix_json"] = str(
            export_appendix(annotated, questions, out / "appendix.json", videos=keyframes)
        )
        summary["outputs"]["medprm_json"] = str(export_medprm(annotated, questions, out / "medprm_train.json"))
        images = _keyframe_images(keyframes, sources) if not keyframes.empty and not sources.empty else {}
        review = export_review(
            annotated,
            questions,
            out / "review",
            fraction=cfg.export.review_fraction,
            seed=cfg.export.review_seed,
            videos=keyframes,
            frames=images,
        )
        summary["outputs"]["review_csv"] = str(review.csv_path)
        summary["outputs"]["review_html"] = str(review.html_path)
        summary["review_questions"] = len(review.question_ids)
        if cfg.export.review_verdicts:
            from physio_ray.annotate.review import import_verdicts

            summary["review_agreement"] = import_verdicts(cfg.export.review_verdicts, annotated)
        summary["labels"] = step_counts(annotated)
        plot = plot_annotation(annotated, cfg.judge.confidence_threshold, out / "annotation.png")
        if plot:
            summary["outputs"]["plot"] = str(plot)
        ledger = CostLedger.from_stage_frames(
            {k: v for k, v in frames.items() if k in ("questions", "solutions", "judged", "annotated")}, cfg.export
        )
        summary["outputs"]["cost_ledger"] = str(ledger.to_json(out / "cost_ledger.json"))
        summary["cost"] = ledger.to_dict()
        summary["cost_table"] = ledger.render()
        solutions = _ok(frames.get("solutions", pd.DataFrame()))
        if not solutions.empty and S.IS_CORRECT in solutions.columns:
            summary["solution_accuracy"] = float(solutions[S.IS_CORRECT].astype(bool).mean())
            engine = cfg.sampler.engine
            summary["policy"] = {"engine": engine.kind, "model": engine.model, "adapter": engine.adapter}
            if S.QUESTION_ID in solutions.columns:
                per_q = solutions[S.IS_CORRECT].astype(bool).groupby(solutions[S.QUESTION_ID])
                summary["questions_mixed"] = {
                    "questions": int(per_q.ngroups),
                    "mixed": int(((per_q.sum() > 0) & (per_q.sum() < per_q.size())).sum()),
                }
    if cfg.export.medprm_reference:
        summary["judge_vs_medprm"] = _judge_vs_medprm(cfg)
    write_json_atomic(summary, out / "summary.json")
    if remote:
        import pyarrow.fs as pafs

        pafs.copy_files(str(out), cfg.output_dir.rstrip("/"))
        shutil.rmtree(out, ignore_errors=True)
        summary["outputs"] = {k: v.replace(str(out), cfg.output_dir.rstrip("/")) for k, v in summary["outputs"].items()}
    return summary


def _judge_vs_medprm(cfg: AnnotateConfig) -> dict[str, Any]:
    """Our judge (the run's judge settings, retrieval off: the physio corpus does not cover
    Med-PRM's general-medicine questions) against Med-PRM's Gemini and 16-rollout MC labels."""
    import dataclasses

    from physio_ray.annotate.judge_eval import medprm_agreement

    judge_cfg = dataclasses.replace(cfg.judge, top_k=0)
    reference = cfg.export.medprm_reference
    assert reference is not None  # finalize calls this only when the reference is configured
    try:
        return medprm_agreement(reference, judge_cfg, limit=cfg.export.medprm_reference_limit)
    except (FileNotFoundError, ValueError) as exc:
        logger.warning("judge vs Med-PRM skipped: %s", exc)
        return {"skipped": str(exc)}
