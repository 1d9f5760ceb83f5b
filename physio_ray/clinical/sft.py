"""Phase 2 building blocks: the TRL ``SFTTrainer`` with its LoRA adapter, and adapter bookkeeping.

These functions only *build* things; :mod:`physio_ray.clinical.train` runs them inside a Ray
Train worker (``prepare_trainer`` + ``RayTrainReportCallback``). Records come from
:func:`physio_ray.clinical.prompts.build_sft_records` (conversational ``prompt`` /
``completion``), so TRL applies the model's chat template and computes the loss on the
completion ("ERROR - ..." / "CORRECT - ...") only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from physio_ray.clinical.config import ClinicalModelConfig, SFTStageConfig
from physio_ray.train_runtime import LoraSettings, hf_trainer_args

logger = logging.getLogger(__name__)

__all__ = [
    "STAGE_FILE",
    "StageMarkerCallback",
    "build_sft_trainer",
    "parameter_delta",
    "trainable_snapshot",
]

STAGE_FILE = "physio_ray_stage.json"
"""Written into every HF checkpoint folder: which stage (``sft`` / ``grpo``) saved it."""


def trainable_snapshot(model: Any) -> dict[str, Any]:
    """Copies of every trainable parameter, by name (LoRA weights: a few MB at most).

    Args:
        model: a torch module.

    Returns:
        ``{name: detached CPU float32 clone}``.
    """
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def parameter_delta(before: Mapping[str, Any], model: Any) -> float:
    """L2 norm of the change of the parameters in ``before`` (matched by name, ``module.`` ignored).

    Args:
        before: from :func:`trainable_snapshot`.
        model: the same model after training (possibly DDP-wrapped).

    Returns:
        ``sqrt(sum ||p_after - p_before||^2)``; 0.0 when nothing changed.

    Raises:
        KeyError: a parameter of ``before`` is missing from ``model``.
    """
    import torch

    now = {n.removeprefix("module."): p for n, p in model.named_parameters()}
    total = torch.zeros((), dtype=torch.float64)
    for name, old in before.items():
        new = now[name.removeprefix("module.")].detach().float().cpu()
        total += ((new - old).double() ** 2).sum()
    return float(total.sqrt())


class StageMarkerCallback(TrainerCallback):
    """Writes :data:`STAGE_FILE` into each checkpoint HF saves, before Ray Train copies it.

    Put it *before* ``RayTrainReportCallback`` in the callback list so the marker travels with
    the reported checkpoint; the train loop reads it on resume to know which stage to continue.

    Args:
        stage: ``"sft"`` or ``"grpo"``.
        max_steps: the stage's planned step count (recorded for resume decisions).
        summary: JSON-friendly results of earlier stages, carried in the marker so a resumed
            run still reports them.
    """

    def __init__(self, stage: str, max_steps: int, summary: Mapping[str, Any] | None = None) -> None:
        self.stage = stage
        self.max_steps = max_steps
        self.summary = dict(summary or {})

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Marks ``<output_dir>/checkpoint-<global_step>``."""
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir() and state.is_world_process_zero:
            info = {
                "stage": self.stage,
                "global_step": state.global_step,
                "max_steps": self.max_steps,
                "summary": self.summary,
            }
            (ckpt / STAGE_FILE).write_text(json.dumps(info))


def _common_args(
    stage: SFTStageConfig | Any, model_cfg: ClinicalModelConfig, output_dir: str, seed: int, use_cpu: bool
) -> dict[str, Any]:
    max_steps = stage.max_steps
    return {
        **hf_trainer_args(
            output_dir,
            stage.learning_rate,
            # save_steps 0 means "at the end": the last step, or each epoch when training by epochs
            stage.save_steps or max(max_steps, 1),
            stage.logging_steps,
            use_cpu=use_cpu,
            bf16=model_cfg.dtype == "bfloat16",
            fp16=model_cfg.dtype == "float16",
            save_strategy="epoch" if max_steps < 0 and not stage.save_steps else "steps",
        ),
        "max_steps": max_steps,
        "per_device_train_batch_size": stage.batch_size,
        "save_total_limit": 2,
        "seed": seed,
        "gradient_checkpointing": model_cfg.gradient_checkpointing,
        "ddp_find_unused_parameters": False,
    }


def _records_dataset(records: Sequence[Mapping[str, Any]], columns: Sequence[str], if_empty: str) -> Any:
    """An HF ``Dataset`` of ``columns`` of ``records``.

    Raises:
        ValueError: ``if_empty``, when ``records`` is empty.
    """
    from datasets import Dataset

    if not records:
        raise ValueError(if_empty)
    return Dataset.from_list([{c: r[c] for c in columns} for r in records])


def build_sft_trainer(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    stage: SFTStageConfig,
    model_cfg: ClinicalModelConfig,
    lora: LoraSettings,
    output_dir: str,
    *,
    seed: int = 0,
    use_cpu: bool = True,
    callbacks: Sequence[Any] = (),
) -> Any:
    """A TRL ``SFTTrainer`` that puts a fresh LoRA adapter on ``model``.

    Args:
        model: a causal LM (``PreTrainedModel``), not yet wrapped by PEFT.
        tokenizer: its tokenizer (with a chat template).
        records: training records with conversational ``prompt`` and ``completion``.
        stage: steps, learning rate, lengths.
        model_cfg: dtype / gradient checkpointing.
        lora: the adapter.
        output_dir: local folder for HF checkpoints.
        seed: training seed.
        use_cpu: train on CPU even when a GPU is visible.
        callbacks: extra ``TrainerCallback`` objects, in order.

    Returns:
        The trainer (``trainer.model`` is the ``PeftModel``).

    Raises:
        ValueError: ``records`` is empty.
    """
    from trl import SFTConfig, SFTTrainer

    ds = _records_dataset(records, ("prompt", "completion"), "SFT needs at least one training record")
    args = SFTConfig(
        **_common_args(stage, model_cfg, output_dir, seed, use_cpu),
        num_train_epochs=stage.epochs,
        gradient_accumulation_steps=stage.grad_accum,
        warmup_steps=stage.warmup_steps,
        weight_decay=stage.weight_decay,
        max_length=stage.max_length,
        completion_only_loss=True,
        packing=False,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=tokenizer,
        peft_config=lora.to_peft(),
        callbacks=list(callbacks),
    )
