"""Typed configuration of ``jobs/train_clinical.py`` (seed 002: Phase 1 features, LoRA SFT, GRPO, CV).

One YAML (``configs/train_clinical/<variant>.yaml``) fills :class:`TrainClinicalConfig`; the
local variant names the embedded SmolLM2-135M and a random-weight open_clip tower, the cluster
variant MedGemma and BiomedCLIP, with the same code path. Resources (workers, CPUs, GPUs) only
ever come from the ``scaling:`` block (:class:`~physio_ray.train_runtime.ScalingSettings`); the
``run:`` and ``lora:`` blocks are the shared ones of every training job too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from physio_ray.clinical.features import VisionFeatureConfig
from physio_ray.clinical.prompts import PromptConfig
from physio_ray.runtime import RayConfig
from physio_ray.train_runtime import LoraSettings, RunSettings, ScalingSettings, adopt_deprecated, check_grpo_group

__all__ = [
    "CVConfig",
    "ClinicalModelConfig",
    "EvalConfig",
    "GRPOStageConfig",
    "SFTStageConfig",
    "TrainClinicalConfig",
    "seed_lora",
]


def seed_lora() -> LoraSettings:
    """Seed 002 Phase 2's adapter: r 16, alpha 32, dropout 0.1 on the q/v/o projections.

    >>> seed_lora().target_modules
    ['q_proj', 'v_proj', 'o_proj']
    """
    return LoraSettings(r=16, alpha=32, dropout=0.1, target_modules=["q_proj", "v_proj", "o_proj"])


@dataclass(frozen=True)
class ClinicalModelConfig:
    """The text model that learns to say ERROR / CORRECT.

    Attributes:
        name: ``smollm2-135m`` (the embedded SmolLM2-135M-Instruct GGUF) or an HF name / local
            folder (``google/medgemma-4b-it`` on the cluster), loaded offline by
            :func:`physio_ray.llm.smollm2.load_causal_lm`.
        dtype: ``float32`` | ``bfloat16`` | ``float16``; ``bfloat16`` also turns on bf16 training.
        gradient_checkpointing: trade compute for memory (large models on GPU).
    """

    name: str = "smollm2-135m"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class SFTStageConfig:
    """Phase 2: supervised LoRA fine-tuning on prompt -> "ERROR - ..." / "CORRECT - ..." pairs.

    Attributes:
        enabled: run this stage.
        max_steps: optimiser steps (> 0), or -1 to run ``epochs`` epochs.
        epochs: epochs when ``max_steps == -1``.
        learning_rate: peak learning rate.
        batch_size: examples per device per step.
        grad_accum: gradient accumulation steps.
        max_length: truncation length of prompt + completion, in tokens.
        warmup_steps: linear warm-up steps (a value below 1 is a share of all steps).
        weight_decay: AdamW weight decay.
        save_steps: checkpoint every N steps (0: only at the end).
        logging_steps: log every N steps.
    """

    enabled: bool = True
    max_steps: int = 20
    epochs: float = 3.0
    learning_rate: float = 1e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 384
    warmup_steps: float = 0.0
    weight_decay: float = 0.0
    save_steps: int = 0
    logging_steps: int = 1

    def __post_init__(self) -> None:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"sft.max_steps={self.max_steps} must be > 0, or -1 to use sft.epochs")
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_length < 16:
            raise ValueError(
                f"sft.batch_size={self.batch_size}, grad_accum={self.grad_accum} must be >= 1 and "
                f"max_length={self.max_length} >= 16"
            )
        if self.learning_rate <= 0 or self.save_steps < 0 or self.logging_steps < 1:
            raise ValueError("sft.learning_rate must be > 0, save_steps >= 0, logging_steps >= 1")


@dataclass(frozen=True)
class GRPOStageConfig:
    """Phase 3: GRPO with seed 002's severity-weighted clinical reward.

    The seed asks for PPO with a learned reward model; PPO (``PPOTrainer``) is no longer in
    current TRL (1.x), and the reward here is programmatic, so the RL stage is TRL's
    ``GRPOTrainer`` (group-relative advantages, no value model) with
    :func:`physio_ray.clinical.reward.make_grpo_reward`.

    Attributes:
        enabled: run this stage (after SFT, on the same adapter).
        max_steps: optimiser steps.
        learning_rate: peak learning rate.
        batch_size: completions per device per step (a multiple of ``num_generations``).
        num_generations: completions sampled per prompt (the group).
        max_completion_length: tokens generated per completion.
        temperature: sampling temperature.
        beta: KL coefficient to the SFT adapter (0: no reference model, TRL's default).
        save_steps: checkpoint every N steps (0: only at the end).
        logging_steps: log every N steps.
    """

    enabled: bool = True
    max_steps: int = 4
    learning_rate: float = 1e-5
    batch_size: int = 4
    num_generations: int = 4
    max_completion_length: int = 16
    temperature: float = 1.0
    beta: float = 0.0
    save_steps: int = 0
    logging_steps: int = 1

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"grpo.max_steps={self.max_steps} must be >= 1")
        check_grpo_group(self.num_generations, self.batch_size)
        if self.max_completion_length < 1 or self.temperature <= 0 or self.beta < 0:
            raise ValueError("grpo.max_completion_length must be >= 1, temperature > 0, beta >= 0")


@dataclass(frozen=True)
class EvalConfig:
    """Greedy decoding of the test scenarios of each fold.

    Attributes:
        max_new_tokens: tokens generated per answer.
        batch_size: prompts per generate call.
    """

    max_new_tokens: int = 16
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("eval.max_new_tokens and eval.batch_size must be >= 1")


@dataclass(frozen=True)
class CVConfig:
    """Cross-validation over scenarios, grouped by image (see :mod:`physio_ray.clinical.splits`).

    Attributes:
        scheme: ``grouped_kfold`` (stratified by modality x image_type), ``modality``
            (leave one modality out) or ``upstream`` (the upstream 16/8 split; not image-grouped).
        k: folds for ``grouped_kfold``.
        seed: fold-assignment seed.
        max_folds: train and test only the first N folds (``None``: all); metrics then cover
            only those folds' test scenarios, and the report says so.
    """

    scheme: Literal["grouped_kfold", "modality", "upstream"] = "grouped_kfold"
    k: int = 3
    seed: int = 0
    max_folds: int | None = None

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError(f"cv.k={self.k} must be >= 2")
        if self.max_folds is not None and self.max_folds < 1:
            raise ValueError(f"cv.max_folds={self.max_folds} must be >= 1 or null")


@dataclass(frozen=True)
class TrainClinicalConfig:
    """Everything ``jobs/train_clinical.py`` needs.

    Attributes:
        data_dir: the medbilldozer-clinical folder.
        output_dir: run folder: ``report.json``, ``report.md``, ``metrics.png``, ``folds/``,
            ``ray_results/`` (Ray Train storage, unless ``run.storage_path`` is set).
        validation_types: scenario kinds to train and test on.
        use_image_context: put Phase 1 nearest finding descriptions into the prompts.
        vision: Phase 1 open_clip model and bank settings.
        prompt: prompt template settings.
        model: the text model.
        lora: the adapter (default: :func:`seed_lora`).
        sft: Phase 2 settings.
        grpo: Phase 3 settings.
        eval: test-time decoding.
        cv: cross-validation.
        scaling: Ray Train workers of each fold's ``TorchTrainer`` (CPU workers use as many
            torch threads as reserved CPUs).
        run: Ray Train run name prefix (``<name>-fold<i>``), storage (``None``:
            ``<output_dir>/ray_results``; shared storage such as NFS or ``s3://`` on a multi-node
            cluster), failures and checkpoints kept.
        ray: how the job starts or joins Ray.
        seed: training seed.
        resume: reuse finished folds and restore unfinished ones from their last checkpoint.
        run_name: deprecated, use ``run.name``.
        storage_path: deprecated, use ``run.storage_path``.
    """

    data_dir: str = "../shared/data/medbilldozer-clinical"
    output_dir: str = "outputs/train-clinical-local"
    validation_types: list[Literal["treatment_matching", "icd_coding"]] = field(
        default_factory=lambda: ["treatment_matching"]
    )
    use_image_context: bool = True
    vision: VisionFeatureConfig = field(default_factory=VisionFeatureConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    model: ClinicalModelConfig = field(default_factory=ClinicalModelConfig)
    lora: LoraSettings = field(default_factory=seed_lora)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    grpo: GRPOStageConfig = field(default_factory=GRPOStageConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    scaling: ScalingSettings = field(default_factory=lambda: ScalingSettings(cpus_per_worker=2))
    run: RunSettings = field(default_factory=lambda: RunSettings(name="train-clinical", keep_checkpoints=3))
    ray: RayConfig = field(default_factory=RayConfig)
    seed: int = 0
    resume: bool = True
    run_name: str | None = None
    storage_path: str | None = None

    def __post_init__(self) -> None:
        adopt_deprecated(self, {"run_name": "run.name", "storage_path": "run.storage_path"})
        if not self.data_dir or not self.output_dir:
            raise ValueError("data_dir and output_dir must be set")
        if not self.validation_types or len(set(self.validation_types)) != len(self.validation_types):
            raise ValueError(f"validation_types={self.validation_types} must name each kind once")
