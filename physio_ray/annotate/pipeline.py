"""The annotation graph (seed 000 phases 1-3) wired on Ray Data.

Each arrow of the pipeline is one Ray Data stage of one shape: it reads the previous stage's
Parquet (only the rows it has not processed yet), applies the stage's batch transform as the
stage table (:mod:`physio_ray.annotate.stages`) and the config say (an actor pool sized from
the stage's resources, or the vLLM processor), and streams the result back into
``<output_dir>/<stage>/`` part files. This module is where Ray is applied; the classes it maps
(pose extraction, question writing, solution sampling, judging, Monte-Carlo) are plain
classes that know nothing about Ray.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from physio_ray import schemas as S
from physio_ray.annotate.config import AnnotateConfig
from physio_ray.annotate.stage_io import StageStore
from physio_ray.annotate.stages import STAGE_TABLE, Stage, stage
from physio_ray.config import to_dict
from physio_ray.runtime import Resources

logger = logging.getLogger(__name__)


@dataclass
class StageSummary:
    """What one stage did in this run (``summary.json`` ``stages_run``).

    Attributes:
        name: the stage.
        input_rows: input keys (listed rows for a stage without upstream).
        skipped_done: input keys already in the stage's output (resumed).
        processed: input keys handled now.
        output_rows: rows in the stage's output after this run.
        errors: output rows that carry ``error``.
        seconds: wall time of the stage.
        first_errors: up to three ``"<key>: <error>"`` examples.
    """

    name: str
    input_rows: int = 0
    skipped_done: int = 0
    processed: int = 0
    output_rows: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_errors: list[str] = field(default_factory=list)


class UpstreamNotFinished(RuntimeError):
    """A stage was asked to run alone before the stage feeding it finished."""


class StageSettingsChanged(ValueError):
    """A stage's folder holds rows made with other settings than the run's (resume would mix them)."""


# Settings that size or route the work, not its rows: a rerun may change them and resume.
_NOT_ROWS = frozenset(
    {"resources", "max_batch_size", "timeout_s", "max_retries", "backoff_s", "api_key_env", "base_url"}
    | {"tensor_parallel_size"}
)
# Per stage, settings its rows do not read (the threshold routes judged steps to Monte-Carlo in
# ``annotated``; the judge itself never reads it).
_NOT_ROWS_OF = {"judged": (("judge", "confidence_threshold"),)}


def _result_settings(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _result_settings(v) for k, v in value.items() if k not in _NOT_ROWS}
    if isinstance(value, list | tuple):
        return [_result_settings(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def stage_settings(cfg: AnnotateConfig, st: Stage) -> dict[str, Any]:
    """What a stage's rows depend on: its settings and every upstream stage's.

    Left out: what only sizes or routes the work (actors, batch sizes, timeouts) and the source
    listing (it selects recordings; a rerun may add some, and resume processes just those).

    >>> from physio_ray.annotate.config import AnnotateConfig
    >>> sorted(stage_settings(AnnotateConfig(), stage("judged")))
    ['judged', 'keyframes', 'poses', 'questions', 'solutions']
    """
    chain: dict[str, Any] = {}
    for current in upstream_chain(st):
        own = {current.config_key: _result_settings(getattr(cfg, current.config_key))}
        for arg, path in current.extra_args:
            own[path] = _result_settings(current.transform_kwargs(cfg)[arg])
        for key, name in _NOT_ROWS_OF.get(current.name, ()):
            own.get(key, {}).pop(name, None)
        chain[current.name] = own
    return chain


def upstream_chain(st: Stage) -> list[Stage]:
    """``st`` and every stage it reads from, nearest first (the source listing left out)."""
    chain: list[Stage] = []
    current: Stage | None = st
    while current is not None and current.upstream is not None:
        chain.append(current)
        current = stage(current.upstream)
    return chain


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def check_stage_settings(cfg: AnnotateConfig, st: Stage, store: StageStore, record: bool = True) -> None:
    """Refuses to resume a stage folder whose rows were made with other settings; records them.

    Resume skips rows whose key is already written, and keys (question, solution ids) do not
    change with the settings: without this check a rerun with, say, another sampler adapter
    into the same ``output_dir`` would keep the old solutions and label them as new.

    Args:
        cfg: the run's config.
        st: the stage.
        store: its folder.
        record: write the settings when the folder has no rows yet (or gained settings keys
            that did not exist when it was written); ``False`` only checks.

    Raises:
        StageSettingsChanged: naming the settings that differ and the two ways out, or when the
            folder holds rows but no record of their settings (written before they were recorded).
    """
    current = stage_settings(cfg, st)
    saved = store.read_settings()
    if not store.part_files():  # a fresh folder, or one killed before its first rows
        if record and saved != current:
            store.write_settings(current)
        return
    later = [s.name for s in STAGE_TABLE if st in upstream_chain(s)]
    fix = f"Use another output_dir=..., or delete {', '.join(later)} under {cfg.output_dir} to redo them."
    if saved is None:
        raise StageSettingsChanged(
            f"{cfg.output_dir}/{st.name} holds rows but no record of the settings they were made with "
            f"(written before stage settings were recorded, or {store.path}/_settings.json was removed). {fix}"
        )
    # keys as the config names them ("sampler.engine.adapter"), whichever stage holds them; a key
    # only one side has is a setting added or removed since (its rows predate it): not a change
    old = {k: v for part in saved.values() for k, v in _flat(part).items()}
    new = {k: v for part in current.values() for k, v in _flat(part).items()}
    changed = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in sorted(set(old) & set(new)) if old[k] != new[k]]
    if not changed:
        if record and saved != current:
            store.write_settings(current)
        return
    raise StageSettingsChanged(
        f"{cfg.output_dir}/{st.name} was written with other settings ({'; '.join(changed[:4])}"
        f"{f'; and {len(changed) - 4} more' if len(changed) > 4 else ''}); resuming would mix its rows with "
        f"rows made by this config. {fix}"
    )


def check_resume_settings(cfg: AnnotateConfig, stages: Iterable[Stage]) -> None:
    """:func:`check_stage_settings` (checking only) for ``stages`` and every stage they read from.

    A single-stage job (``only=``) reads its upstream folders as they are: they must have been
    made with this config too.
    """
    seen: set[str] = set()
    for st in stages:
        for u in reversed(upstream_chain(st)):  # the earliest stale folder is the one to name
            if u.name not in seen:
                seen.add(u.name)
                check_stage_settings(cfg, u, StageStore(cfg.output_dir, u.name), record=False)


def select_stages(cfg: AnnotateConfig, only: str | None = None) -> list[Stage]:
    """The stages a run executes, in pipeline order.

    Args:
        cfg: the run configuration (``cfg.stages`` when ``only`` is ``None``).
        only: run just this stage; a stage fed by the source listing also reruns the listing
            (cheap, and resumes), any other upstream must have finished already.

    Returns:
        Table rows of the stages to run.

    Raises:
        KeyError: for an unknown stage.
        UpstreamNotFinished: when ``only``'s upstream has not finished in ``cfg.output_dir``.
    """
    if only is None:
        return [s for s in STAGE_TABLE if s.name in cfg.stages]
    target = stage(only)
    names = {only}
    if target.upstream is not None:
        upstream = stage(target.upstream)
        if upstream.upstream is None:
            names.add(upstream.name)
        elif not StageStore(cfg.output_dir, upstream.name).is_complete():
            raise UpstreamNotFinished(
                f"stage {upstream.name!r} has not finished in {cfg.output_dir}; "
                f"run jobs/{upstream.job}.py with the same config first"
            )
    return [s for s in STAGE_TABLE if s.name in names]


def run_stage(cfg: AnnotateConfig, st: Stage) -> StageSummary:
    """Runs one stage over the rows its upstream produced and that it has not processed yet.

    Every stage has the same shape: pending input rows -> the stage's batch transform, applied
    by Ray as the table and the config say -> part files in ``<output_dir>/<stage>/``.

    Args:
        cfg: the run configuration (settings and resources come from here).
        st: the stage's table row.

    Returns:
        Counts for the summary. Rows that fail carry ``error`` in the stage output.
    """
    store = StageStore(cfg.output_dir, st.name)
    check_stage_settings(cfg, st, store)
    summary = StageSummary(st.name)
    started = time.perf_counter()
    pending = _pending(cfg, st, store, summary)
    if not pending.empty:
        covered = _drain(_apply(cfg, st, pending), store, st.input_key)
        # A listing stage counts the rows it listed; a transform counts the input keys it covered.
        summary.processed = len(pending) if st.upstream is None else covered
    return _finish(store, st, summary, started)


def _pending(cfg: AnnotateConfig, st: Stage, store: StageStore, summary: StageSummary) -> pd.DataFrame:
    """Input rows of ``st`` whose key is not in its output yet; fills the input counts."""
    if st.upstream is None:
        from physio_ray.annotate.sources import list_sources

        rows = list_sources(getattr(cfg, st.config_key))
        done = store.done_keys(st.output_key)
        listed = [r for r in rows if r[st.input_key] not in done]
        summary.input_rows = len(rows)
        summary.skipped_done = len(rows) - len(listed)
        return pd.DataFrame(listed)
    upstream = StageStore(cfg.output_dir, st.upstream).read(unique_by=stage(st.upstream).output_key)
    if upstream.empty:
        return upstream
    if S.ERROR in upstream.columns:
        upstream = upstream[upstream[S.ERROR].isna()]
    summary.input_rows = int(upstream[st.input_key].nunique()) if not upstream.empty else 0
    done = store.done_keys(st.input_key)
    pending = upstream[~upstream[st.input_key].astype(str).isin(done)] if not upstream.empty else upstream
    summary.skipped_done = summary.input_rows - (int(pending[st.input_key].nunique()) if not pending.empty else 0)
    return pending


def _apply(cfg: AnnotateConfig, st: Stage, pending: pd.DataFrame) -> Iterable[Any]:
    """Applies the stage's transform with Ray; yields output batches (frames or Arrow tables).

    ``driver`` stages are written as listed; a stage whose engine kind is ``vllm`` runs on the
    ``ray.data.llm`` processor (its GPU replicas are actors managed by ``ray.data.llm`` itself);
    every other stage maps its transform over an ``ActorPoolStrategy`` sized by its resources.
    """
    if st.compute == "driver":
        return [pending]
    import ray
    from ray.data import ActorPoolStrategy

    settings = getattr(cfg, st.config_key)
    if st.vllm and settings.engine.kind == "vllm":
        from physio_ray.llm.vllm_stage import build_vllm_processor

        if settings.engine.multimodal:  # the VLM sees the keyframes: join where they are
            pending = _with_keyframes(cfg, pending)
        return _batches(build_vllm_processor(settings)(ray.data.from_pandas(pending.reset_index(drop=True))))
    res: Resources = settings.resources
    pool = (
        ActorPoolStrategy(size=res.actors)
        if res.min_actors is None
        else ActorPoolStrategy(min_size=res.min_actors, max_size=res.actors)
    )
    mapped = ray.data.from_pandas(pending.reset_index(drop=True)).map_batches(
        st.transform_class(),
        fn_constructor_kwargs=st.transform_kwargs(cfg),
        compute=pool,
        num_cpus=res.cpus_per_actor,
        num_gpus=res.gpus_per_actor,
        batch_size=res.batch_size,
        batch_format="numpy",
    )
    return _batches(mapped)


def _batches(ds: Any) -> Iterable[Any]:
    """A dataset's output as Arrow tables, streamed as they arrive."""
    return ds.iter_batches(batch_size=None, batch_format="pyarrow")


def _with_keyframes(cfg: AnnotateConfig, questions: pd.DataFrame) -> pd.DataFrame:
    """Adds each question's recording and keyframes (for multimodal prompts)."""
    cols = [S.VIDEO_ID, S.SOURCE_KIND, S.SOURCE_PATH, S.KEYFRAME_INDICES, S.KEYFRAME_TIMES]
    keyframes = StageStore(cfg.output_dir, "keyframes").read(unique_by=S.VIDEO_ID)
    keep = [c for c in cols if c in keyframes.columns and (c == S.VIDEO_ID or c not in questions.columns)]
    return questions.merge(keyframes[keep], on=S.VIDEO_ID, how="left")


def _drain(batches: Iterable[Any], store: StageStore, input_key: str) -> int:
    """Writes a stage's output batches into part files as they arrive; returns input keys covered."""
    keys: set[str] = set()
    for batch in batches:
        store.write_part(batch)
        names = batch.column_names if isinstance(batch, pa.Table) else list(batch.columns)
        if input_key in names:
            values = batch.column(input_key).to_pylist() if isinstance(batch, pa.Table) else batch[input_key].tolist()
            keys.update(str(k) for k in values)
    return len(keys)


def _finish(store: StageStore, st: Stage, summary: StageSummary, started: float) -> StageSummary:
    out = store.read(unique_by=st.output_key)
    summary.output_rows = len(out)
    if S.ERROR in out.columns:
        errs = out[out[S.ERROR].notna()]
        summary.errors = len(errs)
        summary.first_errors = [f"{r[st.output_key]}: {r[S.ERROR]}" for _, r in errs.head(3).iterrows()]
    store.mark_complete()
    summary.seconds = time.perf_counter() - started
    logger.info(
        "stage %s: %d rows in, %d already done, %d out, %d errors, %.1fs",
        st.name,
        summary.input_rows,
        summary.skipped_done,
        summary.output_rows,
        summary.errors,
        summary.seconds,
    )
    return summary


def run_annotation(cfg: AnnotateConfig, only: str | None = None) -> dict[str, Any]:
    """Runs the configured stages (or just one) in order, then writes the exports.

    Args:
        cfg: the whole run configuration; Ray must already be initialised.
        only: run just this stage (see :func:`select_stages`); ``None`` runs ``cfg.stages``.

    Returns:
        The summary dict also written to ``<output_dir>/summary.json``.

    Raises:
        UpstreamNotFinished: when ``only``'s upstream has not finished.
    """
    from physio_ray.annotate.finalize import finalize

    stages = select_stages(cfg, only)
    if only is not None:
        cfg = dataclasses.replace(cfg, stages=[s.name for s in stages])
    check_resume_settings(cfg, stages)  # refuse a changed config before any stage runs
    summaries = [run_stage(cfg, st) for st in stages]
    summary = finalize(cfg, summaries)
    summary["config"] = to_dict(cfg)
    return json.loads(json.dumps(summary, default=str))
