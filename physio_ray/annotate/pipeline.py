"""The annotation graph (seed 000 phases 1-3) wired on Ray Data.

Each arrow of the pipeline is one Ray Data stage: it reads the previous stage's Parquet
(only the rows it has not processed yet), maps a batch class over actors sized from the
config, and streams the result back into ``<output_dir>/<stage>/`` part files. This module
is where Ray is applied; the classes it maps (pose extraction, question writing, solution
sampling, judging, Monte-Carlo) are plain classes that know nothing about Ray.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from physio_ray import schemas as S
from physio_ray.annotate.config import AnnotateConfig, Resources
from physio_ray.annotate.stage_io import StageStore
from physio_ray.config import to_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageSpec:
    """How one stage is wired.

    Attributes:
        name: stage (folder) name.
        upstream: stage whose rows feed this one (``None`` for the sources stage).
        input_key: id column of the input rows (resume skips keys already in the output).
        output_key: id column of the output rows (duplicates dropped on read).
        build: returns ``(callable_class, constructor_kwargs, resources)``.
    """

    name: str
    upstream: str | None
    input_key: str
    output_key: str
    build: Callable[[AnnotateConfig], tuple[type, dict[str, Any], Resources]] | None = None


def _pose(cfg: AnnotateConfig) -> tuple[type, dict[str, Any], Resources]:
    from physio_ray.video.pose import PoseExtractor

    return PoseExtractor, {"pose_cfg": cfg.pose}, cfg.pose.resources


def _keyframes(cfg: AnnotateConfig) -> tuple[type, dict[str, Any], Resources]:
    from physio_ray.video.keyframes import KeyframeSelector

    return KeyframeSelector, {"cfg": cfg.keyframes}, cfg.keyframes.resources


def _questions(cfg: AnnotateConfig) -> tuple[type, dict[str, Any], Resources]:
    from physio_ray.annotate.questions import QuestionGenerator

    return QuestionGenerator, {"cfg": cfg.questions}, cfg.questions.resources


def _solutions(cfg: AnnotateConfig) -> tuple[type, dict[str, Any], Resources]:
    from physio_ray.llm.sampler import SolutionSampler

    return SolutionSampler, {"cfg": cfg.sampler}, cfg.sampler.resources


def _judge(cfg: AnnotateConfig) -> tuple[type, dict[str, Any], Resources]:
    from physio_ray.annotate.judge import RagJudge

    return RagJudge, {"cfg": cfg.judge}, cfg.judge.resources


def _montecarlo(cfg: AnnotateConfig) -> tuple[type, dict[str, Any], Resources]:
    from physio_ray.annotate.montecarlo import MonteCarloAnnotator

    kwargs = {"mc_cfg": cfg.montecarlo, "confidence_threshold": cfg.judge.confidence_threshold}
    return MonteCarloAnnotator, kwargs, cfg.montecarlo.resources


STAGE_SPECS: dict[str, StageSpec] = {
    "sources": StageSpec("sources", None, S.VIDEO_ID, S.VIDEO_ID),
    "poses": StageSpec("poses", "sources", S.VIDEO_ID, S.VIDEO_ID, _pose),
    "keyframes": StageSpec("keyframes", "poses", S.VIDEO_ID, S.VIDEO_ID, _keyframes),
    "questions": StageSpec("questions", "keyframes", S.VIDEO_ID, S.QUESTION_ID, _questions),
    "solutions": StageSpec("solutions", "questions", S.QUESTION_ID, S.SOLUTION_ID, _solutions),
    "judged": StageSpec("judged", "solutions", S.SOLUTION_ID, S.SOLUTION_ID, _judge),
    "annotated": StageSpec("annotated", "judged", S.SOLUTION_ID, S.SOLUTION_ID, _montecarlo),
}


@dataclass
class StageReport:
    """What one stage did in this run."""

    name: str
    input_rows: int = 0
    skipped_done: int = 0
    processed: int = 0
    output_rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_errors: list[str] = field(default_factory=list)


def run_stage(cfg: AnnotateConfig, spec: StageSpec) -> StageReport:
    """Runs one stage over the rows its upstream produced and that it has not processed yet.

    Args:
        cfg: the run configuration (resources come from here).
        spec: the stage to run.

    Returns:
        Counts for the summary. Rows that fail carry ``error`` in the stage output.
    """
    import ray
    from ray.data import ActorPoolStrategy

    store = StageStore(cfg.output_dir, spec.name)
    report = StageReport(spec.name)
    started = time.perf_counter()
    if spec.upstream is None:
        from physio_ray.annotate.sources import list_sources

        rows = list_sources(cfg.sources)
        report.input_rows = len(rows)
        done = store.done_keys(spec.output_key)
        pending = [r for r in rows if r[S.VIDEO_ID] not in done]
        report.skipped_done = len(rows) - len(pending)
        if pending:
            store.write_part(pd.DataFrame(pending))
        report.processed = len(pending)
    else:
        upstream = StageStore(cfg.output_dir, spec.upstream).read(unique_by=STAGE_SPECS[spec.upstream].output_key)
        if not upstream.empty and S.ERROR in upstream.columns:
            upstream = upstream[upstream[S.ERROR].isna()]
        report.input_rows = int(upstream[spec.input_key].nunique()) if not upstream.empty else 0
        done = store.done_keys(spec.input_key)
        pending = upstream[~upstream[spec.input_key].astype(str).isin(done)] if not upstream.empty else upstream
        report.skipped_done = report.input_rows - (int(pending[spec.input_key].nunique()) if not pending.empty else 0)
        if not pending.empty:
            assert spec.build is not None
            vllm = spec.name == "solutions" and cfg.sampler.engine.kind == "vllm"
            if vllm and cfg.sampler.engine.multimodal:  # the VLM sees the keyframes: join where they are
                pending = _with_keyframes(cfg, pending)
            ds = ray.data.from_pandas(pending.reset_index(drop=True))
            if vllm:
                from physio_ray.llm.vllm_stage import build_vllm_processor

                # vLLM replicas are GPU actors managed by ray.data.llm itself.
                ds = build_vllm_processor(cfg.sampler)(ds)
                report.processed += _drain(ds, store, spec.input_key)
                return _finish(store, spec, report, started)
            cls, kwargs, res = spec.build(cfg)
            pool = (
                ActorPoolStrategy(size=res.actors)
                if res.min_actors is None
                else ActorPoolStrategy(min_size=res.min_actors, max_size=res.actors)
            )
            ds = ds.map_batches(
                cls,
                fn_constructor_kwargs=kwargs,
                compute=pool,
                num_cpus=res.cpus_per_actor,
                num_gpus=res.gpus_per_actor,
                batch_size=res.batch_size,
                batch_format="numpy",
            )
            report.processed += _drain(ds, store, spec.input_key)
    return _finish(store, spec, report, started)


def _with_keyframes(cfg: AnnotateConfig, questions: pd.DataFrame) -> pd.DataFrame:
    """Adds each question's recording and keyframes (for multimodal prompts)."""
    cols = [S.VIDEO_ID, S.SOURCE_KIND, S.SOURCE_PATH, S.KEYFRAME_INDICES, S.KEYFRAME_TIMES]
    keyframes = StageStore(cfg.output_dir, "keyframes").read(unique_by=S.VIDEO_ID)
    keep = [c for c in cols if c in keyframes.columns and (c == S.VIDEO_ID or c not in questions.columns)]
    return questions.merge(keyframes[keep], on=S.VIDEO_ID, how="left")


def _drain(ds: Any, store: StageStore, input_key: str) -> int:
    """Streams a stage's output into part files as it arrives; returns input keys covered."""
    keys: set[str] = set()
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        store.write_part(table)
        if input_key in table.column_names:
            keys.update(str(k) for k in table.column(input_key).to_pylist())
    return len(keys)


def _finish(store: StageStore, spec: StageSpec, report: StageReport, started: float) -> StageReport:
    out = store.read(unique_by=spec.output_key)
    report.output_rows = len(out)
    if S.ERROR in out.columns:
        errs = out[out[S.ERROR].notna()]
        report.errors = len(errs)
        report.first_errors = [f"{r[spec.output_key]}: {r[S.ERROR]}" for _, r in errs.head(3).iterrows()]
    store.mark_complete()
    report.seconds = time.perf_counter() - started
    logger.info(
        "stage %s: %d rows in, %d already done, %d out, %d errors, %.1fs",
        spec.name,
        report.input_rows,
        report.skipped_done,
        report.output_rows,
        report.errors,
        report.seconds,
    )
    return report


def run_annotation(cfg: AnnotateConfig) -> dict[str, Any]:
    """Runs the configured stages in order, then writes the exports.

    Args:
        cfg: the whole run configuration; Ray must already be initialised.

    Returns:
        The summary dict also written to ``<output_dir>/summary.json``.
    """
    from physio_ray.annotate.finalize import finalize

    reports = []
    for name in S.STAGES:
        if name in cfg.stages:
            reports.append(run_stage(cfg, STAGE_SPECS[name]))
    summary = finalize(cfg, reports)
    summary["config"] = to_dict(cfg)
    return json.loads(json.dumps(summary, default=str))
