"""Seed 002 end to end: Phase 1 image context, LoRA SFT and GRPO per fold on Ray Train, CV report.

:func:`run_train_clinical` (called by ``jobs/train_clinical.py``, Ray already started):

1. loads the scenarios and their data-quality report (:mod:`physio_ray.clinical.data`);
2. Phase 1: encodes each image with the configured open_clip tower and renders its nearest
   finding descriptions (:class:`~physio_ray.clinical.features.ImageFeaturizer`) into the
   ``[IMAGE_FEATURES]`` slot of seed 002's prompt template; 24 images, so this runs in the
   driver. With random weights (local) the context is a real code path but carries no
   clinical meaning, and every report says so;
3. splits scenarios into image-grouped folds (:mod:`physio_ray.clinical.splits`);
4. per fold, one ``TorchTrainer`` runs :func:`~physio_ray.clinical.loop.clinical_train_loop`
   (SFT, test answers, GRPO, test answers) with resources from ``cfg.scaling``; a finished fold
   is cached under ``<output_dir>/folds/`` and an unfinished one restores from its last
   checkpoint (Ray Train reloads a run of the same name in the same storage);
5. scores the answers after SFT and after GRPO next to the image_type shortcut and writes
   ``report.json``, ``report.md``, ``metrics.png`` and ``data_report.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physio_ray.clinical.config import TrainClinicalConfig
from physio_ray.clinical.data import load_clinical_dataset
from physio_ray.clinical.evaluate import build_report, plot_report, write_json
from physio_ray.clinical.loop import SUMMARY_FILE, clinical_train_loop
from physio_ray.clinical.prompts import build_sft_records
from physio_ray.clinical.records import ClinicalDataset, Scenario
from physio_ray.clinical.splits import Fold, grouped_kfold, leave_one_modality_out, upstream_fold
from physio_ray.config import to_dict
from physio_ray.train_runtime import build_torch_trainer

logger = logging.getLogger(__name__)

__all__ = ["ClinicalRunResult", "image_contexts", "make_folds", "run_fold", "run_train_clinical", "select_scenarios"]

PREDICTOR_SFT = "sft"
PREDICTOR_GRPO = "sft+grpo"


@dataclass(frozen=True)
class ClinicalRunResult:
    """What a run wrote.

    Attributes:
        output_dir: the run folder.
        report_path: ``report.json``.
        markdown_path: ``report.md``.
        plot_path: ``metrics.png``.
        markdown: the metric tables (each model result beside the shortcut).
        report: the report dict.
        fold_summaries: per fold, the loop's summary (losses, rewards, answers).
    """

    output_dir: str
    report_path: str
    markdown_path: str
    plot_path: str
    markdown: str
    report: dict[str, Any]
    fold_summaries: dict[str, dict[str, Any]]


def select_scenarios(ds: ClinicalDataset, cfg: TrainClinicalConfig) -> list[Scenario]:
    """The scenarios of ``cfg.validation_types``, in file order."""
    return [s for s in ds.scenarios if s.validation_type in cfg.validation_types]


def make_folds(scenarios: list[Scenario], ds: ClinicalDataset, cfg: TrainClinicalConfig) -> list[Fold]:
    """Folds for ``cfg.cv`` (image-grouped except ``upstream``), cut to ``cv.max_folds``.

    Raises:
        ValueError: ``upstream`` asked with scenarios the upstream split does not name.
    """
    if cfg.cv.scheme == "grouped_kfold":
        folds = grouped_kfold(scenarios, cfg.cv.k, seed=cfg.cv.seed, images=ds.images)
    elif cfg.cv.scheme == "modality":
        folds = leave_one_modality_out(scenarios, ds.images)
    else:
        folds = [upstream_fold(scenarios, ds.upstream)]
    return folds[: cfg.cv.max_folds]


def image_contexts(scenarios: list[Scenario], cfg: TrainClinicalConfig) -> dict[str, str]:
    """Phase 1: ``{image_file: nearest finding descriptions}`` (empty when disabled).

    Raises:
        RuntimeError: open_clip cannot build ``cfg.vision.model_name`` offline.
    """
    if not cfg.use_image_context:
        return {}
    from physio_ray.clinical.features import ImageFeaturizer

    files = {s.image_file: s.image_path for s in scenarios if s.image_path}
    featurizer = ImageFeaturizer(cfg.vision)
    return featurizer.contexts_for_files(files, {s.image_file: s.modality for s in scenarios})


def _fingerprint(cfg: TrainClinicalConfig, fold: Fold) -> str:
    data = to_dict(cfg)
    for key in ("output_dir", "resume", "ray", "cv", "run_name", "storage_path"):
        data.pop(key)
    data["run"].pop("storage_path")
    data["fold"] = [fold.name, list(fold.train_ids), list(fold.test_ids)]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_fold(
    cfg: TrainClinicalConfig, fold: Fold, train_records: list[dict[str, Any]], test_records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Trains and tests one fold in a ``TorchTrainer`` and returns the loop's summary.

    Args:
        cfg: the run config (``scaling`` sets the workers, ``run`` the name, storage, failures).
        fold: the fold (names the Ray Train run ``<run.name>-<fold>``).
        train_records: its training records.
        test_records: its test records.

    Returns:
        The summary dict (see :mod:`physio_ray.clinical.loop`), plus ``checkpoint`` (the final
        checkpoint's path) and ``fit_seconds``.

    Raises:
        ray.train.TrainingFailedError: the loop failed (after ``run.max_failures`` retries).
    """
    suffix = fold.name if cfg.resume else fold.name + time.strftime("-%Y%m%d-%H%M%S")
    trainer = build_torch_trainer(
        clinical_train_loop,
        {"cfg": cfg, "fold": fold.name, "train_records": train_records, "test_records": test_records},
        cfg.scaling,
        cfg.run,
        output_dir=cfg.output_dir,
        name_suffix=suffix,
    )
    start = time.perf_counter()
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"fold {fold.name}: the train loop reported no final checkpoint")
    with result.checkpoint.as_directory() as d:
        summary = json.loads((Path(d) / SUMMARY_FILE).read_text())
    summary["checkpoint"] = result.checkpoint.path
    summary["fit_seconds"] = round(time.perf_counter() - start, 1)
    return summary


def _notes(cfg: TrainClinicalConfig, folds: list[Fold], n_all_folds: int, ds: ClinicalDataset) -> list[str]:
    notes = [
        f"model: {cfg.model.name}; LoRA r={cfg.lora.r} alpha={cfg.lora.alpha} dropout={cfg.lora.dropout} "
        f"on {cfg.lora.target_modules}; SFT {cfg.sft.max_steps} steps"
        + (f", GRPO {cfg.grpo.max_steps} steps x {cfg.grpo.num_generations} generations" if cfg.grpo.enabled else ""),
        "RL stage is TRL GRPO with the seed's severity-weighted reward: PPOTrainer is no longer in TRL 1.x.",
        f"CV: {cfg.cv.scheme}, {len(folds)} of {n_all_folds} folds trained and tested"
        + ("" if len(folds) == n_all_folds else " (metrics cover only these folds' test scenarios)"),
        "shortcut = label from image_type alone (negative -> ERROR); it is the bar every model must beat.",
    ]
    if cfg.use_image_context and cfg.vision.random_weights:
        notes.append(
            f"Phase 1 vision tower {cfg.vision.model_name} has RANDOM weights (built from config, no download): "
            "the image context is a real code path but carries no clinical meaning."
        )
    elif not cfg.use_image_context:
        notes.append("no image context (use_image_context=false): text-only prompts.")
    warnings = getattr(ds.report, "warnings", None)
    notes.append(
        f"data-quality warnings: {len(warnings) if warnings is not None else 'see data_report.md'} "
        "(ultrasound images are segmentation masks; some findings contradict their images; see data_report.md)."
    )
    return notes


def run_train_clinical(cfg: TrainClinicalConfig) -> ClinicalRunResult:
    """Runs the whole seed-002 pipeline (see the module docstring); Ray must be initialised.

    Args:
        cfg: the run config.

    Returns:
        The :class:`ClinicalRunResult`.

    Raises:
        FileNotFoundError: ``cfg.data_dir`` has no scenario file.
        ray.train.TrainingFailedError: a fold failed.
    """
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_clinical_dataset(cfg.data_dir)
    (out / "data_report.md").write_text(ds.report.render())
    scenarios = select_scenarios(ds, cfg)
    all_folds = make_folds(scenarios, ds, dataclasses.replace(cfg, cv=dataclasses.replace(cfg.cv, max_folds=None)))
    folds = all_folds[: cfg.cv.max_folds]
    start = time.perf_counter()
    contexts = image_contexts(scenarios, cfg)
    logger.info("Phase 1 contexts for %d images in %.1f s", len(contexts), time.perf_counter() - start)
    records = {r["id"]: r for r in build_sft_records(scenarios, contexts, cfg.prompt)}
    summaries: dict[str, dict[str, Any]] = {}
    for fold in folds:
        cache = out / "folds" / f"{fold.name}.json"
        key = _fingerprint(cfg, fold)
        cached = json.loads(cache.read_text()) if cfg.resume and cache.is_file() else None
        if cached and cached.get("fingerprint") == key:
            logger.info("fold %s: reusing %s", fold.name, cache)
            summaries[fold.name] = cached
            continue
        summary = run_fold(cfg, fold, [records[i] for i in fold.train_ids], [records[i] for i in fold.test_ids])
        summary["fingerprint"] = key
        write_json(summary, cache)
        summaries[fold.name] = summary
    predictions: dict[str, dict[str, str]] = {}
    for stage, predictor in (("sft", PREDICTOR_SFT), ("grpo", PREDICTOR_GRPO)):
        if all(stage in s and "answers" in s[stage] for s in summaries.values()):
            predictions[predictor] = {k: v for s in summaries.values() for k, v in s[stage]["answers"].items()}
    curves = {
        name: {stage: {k: s[stage].get(k) for k in ("loss", "reward", "param_delta", "global_step", "seconds")}
               for stage in ("sft", "grpo") if stage in s}
        for name, s in summaries.items()
    }  # fmt: skip
    report, markdown = build_report(
        predictions,
        scenarios,
        folds,
        notes=_notes(cfg, folds, len(all_folds), ds),
        extra={
            "config": to_dict(cfg),
            "training": curves,
            "image_contexts": contexts,
            "answers": predictions,
        },
    )
    report_path = write_json(report, out / "report.json")
    md_path = out / "report.md"
    md_path.write_text(markdown)
    plot_path = plot_report(report, out / "metrics.png")
    return ClinicalRunResult(str(out), str(report_path), str(md_path), str(plot_path), markdown, report, summaries)
