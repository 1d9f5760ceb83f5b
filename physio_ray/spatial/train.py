"""LoRA SFT then GRPO of a Qwen2-VL on spatial records, each stage a Ray Train ``TorchTrainer``.

Stage loops (run on every Ray Train worker):

* :func:`sft_loop`: TRL ``SFTTrainer`` on ``sft_stage1/train`` (image + pointing answer).
* :func:`grpo_loop`: TRL ``GRPOTrainer`` on ``grpo/train`` with
  :func:`physio_ray.spatial.rewards.trl_spatial_reward` (0.5 distance-to-region + 0.3 instrument
  + 0.2 position class). It starts from the merged SFT model, which is also the KL reference
  (PEFT: the reference is the model with the new adapter disabled).

Both wrap the TRL trainer with Ray's ``prepare_trainer`` and report checkpoints through
``RayTrainReportCallback`` (HF checkpoint = adapter + optimizer + scheduler + RNG state). A
stage that finds a checkpoint (``ray.train.get_checkpoint()``, restored by Ray Train V2 when a
run with the same name exists under the same storage path) resumes from it with
``trainer.train(resume_from_checkpoint=...)``. At the end rank 0 merges the adapter and writes
``<output_dir>/<stage>/model`` (model + processor) and ``<stage>/DONE``; :func:`run_stage` skips
a stage whose ``DONE`` exists, so a rerun of the job continues where it stopped.

The Ray wiring lives in :func:`run_stage` only (the loops are plain functions of a config dict).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from physio_ray.config import from_dict, to_dict
from physio_ray.spatial.config import TrainSpatialConfig
from physio_ray.spatial.tiny_qwen2vl import TinyQwen2VLSpec, load_model_and_processor
from physio_ray.train_runtime import apply_torch_threads, build_torch_trainer, hf_trainer_args

logger = logging.getLogger(__name__)

__all__ = ["StageResult", "absolute_paths", "grpo_loop", "run_stage", "sft_loop", "stage_dir"]

DONE = "DONE"
METRICS_FILE = "train_metrics.json"


@dataclass(frozen=True)
class StageResult:
    """One finished training stage.

    Attributes:
        stage: ``"sft"`` or ``"grpo"``.
        model_dir: merged model + processor (loadable by :func:`load_model_and_processor`).
        metrics: last reported metrics (``loss``, ``reward``, ``global_step``, ...).
        checkpoint: the last Ray Train checkpoint path (``None`` when the stage was skipped).
        skipped: the stage was already done (its ``DONE`` marker existed).
    """

    stage: str
    model_dir: str
    metrics: dict[str, Any]
    checkpoint: str | None
    skipped: bool = False


def stage_dir(cfg: TrainSpatialConfig, stage: str) -> Path:
    """``<output_dir>/<stage>`` (holds ``model/``, ``DONE`` and ``train_metrics.json``)."""
    return Path(cfg.output_dir).resolve() / stage


def absolute_paths(cfg: TrainSpatialConfig) -> TrainSpatialConfig:
    """The config with absolute dataset/images/output paths (Ray workers run in another folder)."""

    def resolve(path: str) -> str:
        return str(Path(path).expanduser().resolve())

    return dataclasses.replace(
        cfg,
        dataset_dir=resolve(cfg.dataset_dir),
        images_dir=resolve(cfg.images_dir) if cfg.images_dir else None,
        output_dir=resolve(cfg.output_dir),
    )


def _setup_worker(cfg: TrainSpatialConfig) -> None:
    """Offline hub, and the torch threads of ``cfg.scaling`` (oversubscription is very slow)."""
    if cfg.model.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    apply_torch_threads(cfg.scaling)


def _load(cfg: TrainSpatialConfig, name: str) -> tuple[Any, Any]:
    spec: TinyQwen2VLSpec = cfg.model.tiny
    return load_model_and_processor(name, spec, cfg.model.dtype, cfg.model.min_pixels, cfg.model.max_pixels)


def _restored_checkpoint(local_root: Path) -> str | None:
    """Copies the HF checkpoint inside the Ray Train checkpoint (if any) to a local folder."""
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    target = local_root / "restored"
    with ckpt.as_directory() as d:
        shutil.copytree(Path(d) / RayTrainReportCallback.CHECKPOINT_NAME, target, dirs_exist_ok=True)
    logger.info("resuming from Ray Train checkpoint %s", ckpt.path)
    return str(target)


def _common_args(cfg: TrainSpatialConfig, out: Path, lr: float, save_steps: int, logging_steps: int) -> dict:
    import torch

    return {
        **hf_trainer_args(
            str(out),
            lr,
            save_steps,
            logging_steps,
            use_cpu=not cfg.scaling.use_gpu,
            bf16=cfg.model.dtype == "bfloat16" and torch.cuda.is_available(),
        ),
        "save_only_model": False,
    }


def _stage_inputs(config: dict[str, Any], stage: str, kind: str) -> tuple[TrainSpatialConfig, Path, Any, Any, list]:
    """What both stage loops start with: the config, a local folder, the start model and the train records.

    Args:
        config: the loop's config dict (``cfg``, ``start_model``).
        stage: ``"sft"`` or ``"grpo"`` (names the local folder).
        kind: the record kind to train on (``sft_stage1``, ``grpo``).

    Returns:
        ``(cfg, local folder, model, processor, train records)``.
    """
    from physio_ray.spatial.train_data import load_records

    cfg = from_dict(TrainSpatialConfig, config["cfg"])
    _setup_worker(cfg)
    local = Path(tempfile.mkdtemp(prefix=f"spatial-{stage}-"))
    model, processor = _load(cfg, config["start_model"])
    return cfg, local, model, processor, load_records(cfg.dataset_dir, kind, "train")


def _train_and_finish(trainer: Any, processor: Any, cfg: TrainSpatialConfig, stage: str, local: Path) -> None:
    """Trains (resuming when a checkpoint exists), checkpoints the last step, merges and saves."""
    import ray.train
    from ray.train.huggingface.transformers import prepare_trainer
    from transformers.trainer_utils import get_last_checkpoint

    trainer = prepare_trainer(trainer)
    trainer.train(resume_from_checkpoint=_restored_checkpoint(local))
    last = get_last_checkpoint(trainer.args.output_dir)
    if last is None or not last.endswith(f"-{trainer.state.global_step}"):
        # The last step is not a multiple of save_steps: checkpoint it so Ray reports it.
        trainer._save_checkpoint(trainer.model, trial=None)
        trainer.callback_handler.on_save(trainer.args, trainer.state, trainer.control)
    if ray.train.get_context().get_world_rank() == 0:
        out = stage_dir(cfg, stage)
        model_dir = out / "model"
        merged = trainer.model.merge_and_unload() if hasattr(trainer.model, "merge_and_unload") else trainer.model
        merged.save_pretrained(model_dir)
        processor.save_pretrained(model_dir)
        (out / METRICS_FILE).write_text(json.dumps(trainer.state.log_history, indent=1) + "\n")
        (out / DONE).write_text(f"global_step={trainer.state.global_step}\n")
        logger.info("%s: merged model written to %s", stage, model_dir)


def _peft_config(cfg: TrainSpatialConfig) -> Any:
    """The stage's PEFT config, or ``None`` for full fine-tuning."""
    return cfg.lora.to_peft() if cfg.finetune == "lora" else None


def scale_vision_lr(trainer: Any, multiplier: float) -> int:
    """Creates the trainer's optimiser with the vision tower's parameters at ``lr * multiplier``.

    The trainer reuses an optimiser that exists when training starts (and builds its scheduler
    on it, so the warm-up and decay apply to both groups alike). Each of the optimiser's groups
    is split into its vision (``visual`` in the parameter name) and other parameters.

    Returns:
        How many parameter tensors got the multiplied rate (0 when ``multiplier`` is 1).
    """
    if multiplier == 1.0:
        return 0
    optimizer = trainer.create_optimizer()
    vision = {id(p) for name, p in trainer.model.named_parameters() if ".visual." in f".{name}."}
    groups = []
    for group in optimizer.param_groups:
        for is_vision in (False, True):
            params = [p for p in group["params"] if (id(p) in vision) == is_vision]
            if params:
                lr = group["lr"] * (multiplier if is_vision else 1.0)
                groups.append({**group, "params": params, "lr": lr})
    optimizer.param_groups.clear()
    for group in groups:
        optimizer.add_param_group(group)
    moved = sum(len(g["params"]) for g in groups if any(id(p) in vision for p in g["params"]))
    logger.info("vision tower: %d parameter tensors at %.3g x lr", moved, multiplier)
    return moved


def _holdout_curve(cfg: TrainSpatialConfig, processor: Any) -> list[Any]:
    """The :class:`~physio_ray.spatial.curve.HoldoutCurve` callback of ``sft.curve_every`` (or none)."""
    import ray.train

    from physio_ray.spatial.curve import HoldoutCurve
    from physio_ray.spatial.evaluate import eval_rows
    from physio_ray.spatial.train_data import load_records, record_targets, true_points

    s = cfg.sft
    if not s.curve_every or ray.train.get_context().get_world_rank() != 0:
        return []  # only rank 0 scores (and so loads) the held-out frames
    records = load_records(cfg.dataset_dir, "grpo", cfg.eval.split)[: s.curve_examples]
    rows = eval_rows(records, cfg.images_dir or cfg.dataset_dir, None)
    targets = record_targets(records, true_points(cfg.dataset_dir, cfg.eval.split))
    return [HoldoutCurve(processor, rows, targets, s.curve_every, cfg.eval.max_new_tokens, cfg.eval.batch_size)]


def sft_loop(config: dict[str, Any]) -> None:
    """Ray Train worker loop of the SFT stage.

    Args:
        config: ``{"cfg": to_dict(TrainSpatialConfig), "start_model": name or folder}``.
    """
    from ray.train.huggingface.transformers import RayTrainReportCallback
    from trl import SFTConfig, SFTTrainer

    from physio_ray.spatial.train_data import sft_dataset

    cfg, local, model, processor, records = _stage_inputs(config, "sft", "sft_stage1")
    s = cfg.sft
    train_ds = sft_dataset(records, cfg.images_dir or cfg.dataset_dir, s.tasks, s.max_examples)
    args = SFTConfig(
        **_common_args(cfg, local / "hf", s.lr, s.save_steps, s.logging_steps),
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        warmup_steps=s.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the steps
        assistant_only_loss=s.assistant_only_loss,
        max_length=None,  # never cut image placeholder tokens
        seed=s.seed,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        processing_class=processor,
        peft_config=_peft_config(cfg),
        # the curve runs first, so the checkpoint Ray reports at that step already holds its point
        callbacks=[*_holdout_curve(cfg, processor), RayTrainReportCallback()],
    )
    scale_vision_lr(trainer, s.vision_lr_multiplier)
    _train_and_finish(trainer, processor, cfg, "sft", local)


def grpo_loop(config: dict[str, Any]) -> None:
    """Ray Train worker loop of the GRPO stage (TRL ``GRPOTrainer``, spatial reward).

    Args:
        config: ``{"cfg": to_dict(TrainSpatialConfig), "start_model": name or folder}``.
    """
    from ray.train.huggingface.transformers import RayTrainReportCallback
    from trl import GRPOConfig, GRPOTrainer

    from physio_ray.spatial.rewards import trl_spatial_reward
    from physio_ray.spatial.train_data import grpo_dataset

    cfg, local, model, processor, records = _stage_inputs(config, "grpo", "grpo")
    g = cfg.grpo
    train_ds = grpo_dataset(records, cfg.images_dir or cfg.dataset_dir, g.max_prompts)
    args = GRPOConfig(
        **_common_args(cfg, local / "hf", g.lr, g.save_steps, g.logging_steps),
        max_steps=g.max_steps,
        per_device_train_batch_size=g.batch_size,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        epsilon=g.epsilon,
        seed=g.seed,
    )
    trainer = GRPOTrainer(
        model=model,
        args=args,
        reward_funcs=[cast(Any, trl_spatial_reward)],  # TRL types rewards as returning list[float | None]
        train_dataset=train_ds,
        processing_class=processor,
        peft_config=_peft_config(cfg),
        callbacks=[RayTrainReportCallback()],
    )
    _train_and_finish(trainer, processor, cfg, "grpo", local)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, float) or math.isfinite(v)}


def run_stage(cfg: TrainSpatialConfig, stage: str, start_model: str) -> StageResult:
    """Runs one stage in a ``TorchTrainer`` (or skips it when its ``DONE`` marker exists).

    Args:
        cfg: the run configuration (``scaling``; ``run``: name ``<run.name>-<stage>``, storage).
        stage: ``"sft"`` or ``"grpo"``.
        start_model: model name or merged-model folder the stage starts from.

    Returns:
        A :class:`StageResult`.

    Raises:
        ValueError: for an unknown stage.
        RuntimeError: when the trainer finished without writing the merged model.
    """
    cfg = absolute_paths(cfg)
    loops = {"sft": sft_loop, "grpo": grpo_loop}
    if stage not in loops:
        raise ValueError(f"stage {stage!r} is not one of {sorted(loops)}")
    out = stage_dir(cfg, stage)
    if (out / DONE).is_file():
        logger.info("%s already done (%s); skipping", stage, out / DONE)
        return StageResult(stage, str(out / "model"), _last_metrics(out), None, skipped=True)
    out.mkdir(parents=True, exist_ok=True)
    trainer = build_torch_trainer(
        loops[stage],
        {"cfg": to_dict(cfg), "start_model": start_model},
        cfg.scaling,
        cfg.run,
        output_dir=cfg.output_dir,
        name_suffix=stage,
    )
    result = trainer.fit()
    if not (out / DONE).is_file():
        raise RuntimeError(f"{stage}: training finished but {out / DONE} was not written (see worker logs)")
    ckpt = result.checkpoint.path if result.checkpoint is not None else None
    return StageResult(stage, str(out / "model"), _finite(dict(result.metrics or {})) or _last_metrics(out), ckpt)


def _last_metrics(out: Path) -> dict[str, Any]:
    path = out / METRICS_FILE
    if not path.is_file():
        return {}
    merged: dict[str, Any] = {}
    for entry in json.loads(path.read_text()):
        merged.update(entry)
    return merged
