"""Phase 3: TRL ``GRPOTrainer`` with seed 002's severity-weighted clinical reward.

Seed 002 plans PPO against a learned reward model. TRL 1.x no longer ships ``PPOTrainer``,
and this reward is programmatic (:func:`physio_ray.clinical.reward.clinical_reward`, strict
ERROR / CORRECT parsing), so the RL stage is GRPO: sample ``num_generations`` answers per
prompt, score each with the reward, and push up the answers that beat their group's mean.
A group whose answers all score the same carries no signal (zero advantage); with ``beta > 0``
the KL term to a frozen copy of the SFT adapter still pulls the policy back.

The trainer continues the LoRA adapter that SFT trained (``model`` is the ``PeftModel``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from physio_ray.clinical.config import ClinicalModelConfig, GRPOStageConfig
from physio_ray.clinical.reward import RewardTable, make_grpo_reward
from physio_ray.clinical.sft import _common_args, _records_dataset

logger = logging.getLogger(__name__)

__all__ = ["build_grpo_trainer", "reward_stats"]


def build_grpo_trainer(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    stage: GRPOStageConfig,
    model_cfg: ClinicalModelConfig,
    output_dir: str,
    *,
    seed: int = 0,
    use_cpu: bool = True,
    table: RewardTable | None = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """A TRL ``GRPOTrainer`` on the clinical reward.

    Args:
        model: the ``PeftModel`` from SFT (its ``default`` adapter keeps training).
        tokenizer: its tokenizer.
        records: records with conversational ``prompt`` and ``scenario`` (JSON string), as made by
            :func:`physio_ray.clinical.prompts.build_sft_record`.
        stage: steps, group size, sampling.
        model_cfg: dtype / gradient checkpointing.
        output_dir: local folder for HF checkpoints.
        seed: training seed.
        use_cpu: train on CPU even when a GPU is visible.
        table: reward values (default: the seed's).
        callbacks: extra ``TrainerCallback`` objects, in order.

    Returns:
        The trainer.

    Raises:
        ValueError: ``records`` is empty.
    """
    from trl import GRPOConfig, GRPOTrainer

    ds = _records_dataset(records, ("prompt", "scenario"), "GRPO needs at least one training prompt")
    args = GRPOConfig(
        **_common_args(stage, model_cfg, output_dir, seed, use_cpu),
        num_generations=stage.num_generations,
        max_completion_length=stage.max_completion_length,
        temperature=stage.temperature,
        beta=stage.beta,
        log_completions=False,
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=[make_grpo_reward(table)],
        args=args,
        train_dataset=ds,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def reward_stats(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per-step reward curves from a GRPO trainer's ``state.log_history``.

    Args:
        log_history: the trainer's log entries.

    Returns:
        ``{"reward": [...], "reward_std": [...]}`` (one value per logged step;
        keys absent from the logs give empty lists).
    """
    out: dict[str, list[float]] = {"reward": [], "reward_std": []}
    for entry in log_history:
        if "reward" in entry:
            out["reward"].append(float(entry["reward"]))
            out["reward_std"].append(float(entry.get("reward_std", float("nan"))))
    return out
