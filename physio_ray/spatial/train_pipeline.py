"""The spatial training run: SFT -> GRPO (Ray Train) -> evaluation of every model (Ray Data).

:func:`run_train_spatial` is the one function ``jobs/train_spatial.py`` calls. Ray must be
initialised by the caller. Outputs under ``cfg.output_dir``::

    sft/model/  sft/DONE  sft/train_metrics.json      merged SFT model + processor
    grpo/model/ grpo/DONE grpo/train_metrics.json     merged GRPO model (started from sft/model)
    ray_results/<run.name>-<stage>/                   Ray Train checkpoints (resume)
    eval/metrics.json  eval/metrics.md  eval/metrics.png
    summary.json
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from physio_ray.config import to_dict
from physio_ray.spatial.config import TrainSpatialConfig
from physio_ray.spatial.curve import plot_curve
from physio_ray.spatial.evaluate import SpatialPredictor, attach_baselines, eval_rows, score_predictions, write_report
from physio_ray.spatial.train import METRICS_FILE, StageResult, absolute_paths, run_stage, stage_dir
from physio_ray.spatial.train_data import load_records, record_targets, true_points

logger = logging.getLogger(__name__)

__all__ = ["SpatialRunSummary", "eval_targets", "evaluate_model", "run_train_spatial"]


@dataclass
class SpatialRunSummary:
    """What a spatial run produced.

    Attributes:
        output_dir: run folder.
        stages: stage -> :class:`StageResult` as a dict.
        eval: label -> headline metrics.
        report_paths: kind -> path of the eval report (json, markdown, png).
        seconds: stage or ``eval`` -> wall seconds.
    """

    output_dir: str
    stages: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    report_paths: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        """A short human summary (data origin first)."""
        lines = [f"spatial run in {self.output_dir}"]
        for name, st in self.stages.items():
            m = st["metrics"]
            keys = ("global_step", "train_loss", "loss", "reward", "kl")
            shown = ", ".join(
                f"{k}={m[k]:.4g}" if isinstance(m.get(k), float) else f"{k}={m[k]}" for k in keys if k in m
            )
            lines.append(f"  {name}: {'skipped (done)' if st['skipped'] else 'trained'} -> {st['model_dir']} [{shown}]")
        for label, r in self.eval.items():
            lines.append(
                f"  eval {label} ({r['data_label']}, n={r['n']}): quadrant_acc={_f(r['quadrant_accuracy'])} "
                f"within_region={_f(r['within_region_rate'])} instrument_f1={_f(r['instrument_macro_f1'])} "
                f"mean_reward={_f(r['mean_reward'])} parse_rate={_f(r['parse_rate'])}"
            )
        if self.report_paths:
            lines.append(f"  report: {self.report_paths.get('markdown')} (+ json, png)")
        return "\n".join(lines)


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def evaluate_model(cfg: TrainSpatialConfig, model: str, label: str) -> dict[str, Any]:
    """Scores one model on ``grpo/<eval.split>`` with :class:`SpatialPredictor` actors.

    Args:
        cfg: run configuration (eval resources, images folder).
        model: model name or merged-model folder.
        label: report label.

    Returns:
        :func:`score_predictions` output (true tip points joined from the rendered records).
    """
    import ray.data
    from ray.data import ActorPoolStrategy

    e = cfg.eval
    rows = eval_rows(load_records(cfg.dataset_dir, "grpo", e.split), cfg.images_dir or cfg.dataset_dir, e.max_examples)
    ds = ray.data.from_items(rows).map_batches(
        SpatialPredictor,
        fn_constructor_kwargs={
            "model": model,
            "tiny": to_dict(cfg.model.tiny),
            "dtype": cfg.model.dtype,
            "max_new_tokens": e.max_new_tokens,
            "offline": cfg.model.offline,
            "min_pixels": cfg.model.min_pixels,
            "max_pixels": cfg.model.max_pixels,
        },
        compute=ActorPoolStrategy(size=e.actors),
        num_cpus=e.cpus_per_actor,
        num_gpus=e.gpus_per_actor,
        batch_size=e.batch_size,
        batch_format="numpy",
    )
    predicted = sorted(ds.take_all(), key=lambda r: r["id"])
    return score_predictions(predicted, label, true_points(cfg.dataset_dir, e.split))


def eval_targets(cfg: TrainSpatialConfig, split: str, max_examples: int | None = None) -> list[dict[str, Any]]:
    """Targets ``{"instrument", "position_class", "point"}`` of ``grpo/<split>``, ordered by id.

    With ``max_examples`` (the eval split: ``eval.max_examples``) they are the rows
    :func:`evaluate_model` scores, in its order.
    """
    records = load_records(cfg.dataset_dir, "grpo", split)
    records = sorted(records[:max_examples], key=lambda r: r["id"])
    return record_targets(records, true_points(cfg.dataset_dir, split))


def _stage_history(cfg: TrainSpatialConfig, stage: str) -> list[dict[str, Any]]:
    """The stage's ``train_metrics.json`` (the trainer's log history), ``[]`` when absent."""
    path = stage_dir(cfg, stage) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def run_train_spatial(cfg: TrainSpatialConfig) -> SpatialRunSummary:
    """Runs the configured stages in order; finished stages are skipped, so reruns resume.

    Args:
        cfg: the job configuration.

    Returns:
        A :class:`SpatialRunSummary` (also written to ``<output_dir>/summary.json``).
    """
    cfg = absolute_paths(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = SpatialRunSummary(output_dir=str(out.resolve()))
    current = cfg.model.name
    models = {"base": cfg.model.name}
    for stage, enabled in (("sft", cfg.sft.enabled), ("grpo", cfg.grpo.enabled)):
        if stage not in cfg.stages or not enabled:
            continue
        t0 = time.perf_counter()
        result: StageResult = run_stage(cfg, stage, current)
        summary.seconds[stage] = round(time.perf_counter() - t0, 1)
        summary.stages[stage] = asdict(result)
        current = result.model_dir
        models[stage] = current
    if "eval" in cfg.stages and cfg.eval.enabled:
        t0 = time.perf_counter()
        reports = {label: evaluate_model(cfg, model, label) for label, model in models.items()}
        reports = attach_baselines(
            reports, eval_targets(cfg, "train"), eval_targets(cfg, cfg.eval.split, cfg.eval.max_examples)
        )
        summary.seconds["eval"] = round(time.perf_counter() - t0, 1)
        summary.report_paths = write_report(reports, out / "eval")
        curve = plot_curve(
            _stage_history(cfg, "sft"), out / "eval" / "curve.png", reports.get("sft", {}).get("baselines")
        )
        if curve is not None:
            summary.report_paths["curve"] = str(curve)
        summary.eval = {k: {kk: vv for kk, vv in v.items() if kk != "examples"} for k, v in reports.items()}
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2, default=str) + "\n")
    return summary
