"""Typed configuration of the process reward model and its training: labels, prompt, towers, optimiser.

Every block is a frozen dataclass validated in ``__post_init__`` so that a YAML file (read
with :func:`physio_ray.config.load_config`) fails early with an actionable message.

Example:
    >>> cfg = PRMModelConfig(vision=VisionTowerConfig(kind="pose"))
    >>> cfg.text.mode, cfg.vision.kind
    ('frozen', 'pose')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from physio_ray.runtime import RayConfig
from physio_ray.train_runtime import LoraSettings, RunSettings, ScalingSettings, adopt_deprecated

LabelSource = Literal["hard", "soft", "judge"]


@dataclass(frozen=True)
class LabelConfig:
    """Which per-step labels become training targets, and how quirks are repaired.

    Attributes:
        source: ``hard`` (MC hard label / final hard label), ``soft`` (MC fraction of
            correct rollouts, Med-PRM ``prm_soft_label``), ``judge`` (RAG judge, Med-PRM
            ``prm_gemini_label``).
        zero_after_first_error: once a binary label is 0, every later step becomes 0
            (Med-PRM applies this to Gemini labels). Applies to ``hard`` and ``judge``.
        length_mismatch: ``fix`` truncates a label list longer than the steps and leaves
            missing labels unlabelled (masked); ``skip`` drops the record. Both log a warning.
        require_labels: drop an example whose steps are all unlabelled.
    """

    source: LabelSource = "judge"
    zero_after_first_error: bool = True
    length_mismatch: Literal["fix", "skip"] = "fix"
    require_labels: bool = True


@dataclass(frozen=True)
class SplitConfig:
    """Group-level train/validation/test split (no group in two splits).

    Attributes:
        by: ``video`` groups by ``video_id`` (falls back to ``question_id`` when absent);
            ``question`` groups by ``question_id``.
        val_fraction: share of groups in validation.
        test_fraction: share of groups in test.
        seed: shuffling seed.
    """

    by: Literal["video", "question"] = "video"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.val_fraction < 0 or self.test_fraction < 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"split fractions val={self.val_fraction} test={self.test_fraction} must be >= 0 and sum below 1"
            )


@dataclass(frozen=True)
class PromptConfig:
    """How an example is rendered and tokenised.

    Attributes:
        chat_template: wrap system + user message in the tokenizer's chat template.
        include_options: list the answer options after the question.
        step_separator: text between consecutive steps (Med-PRM joins with a space).
        max_length: token budget; the question is shortened first, then trailing steps drop.
    """

    chat_template: bool = True
    include_options: bool = True
    step_separator: str = " "
    max_length: int = 2048

    def __post_init__(self) -> None:
        if self.max_length < 32:
            raise ValueError(f"prompt.max_length={self.max_length} must be >= 32")


@dataclass(frozen=True)
class TextTowerConfig:
    """The causal LM that reads the solution.

    Attributes:
        model: ``smollm2-135m`` (embedded, offline) or an HF name / local path
            (``meta-llama/Llama-3.1-8B-Instruct`` on the cluster).
        dtype: weights dtype of the tower.
        mode: ``frozen`` (no gradient into the LM), ``lora`` (PEFT adapters), ``full``.
        lora: the adapters in ``lora`` mode: the ``lora:`` block every training job shares
            (:class:`physio_ray.train_runtime.LoraSettings`; here r 8, alpha 16, no dropout).
        train_head: train the 2-row (+, -) head initialised from the LM's ``lm_head``.
        gradient_checkpointing: trade compute for memory in ``lora`` / ``full`` modes.
        num_layers: keep only the first K decoder layers (``None``: all). A CPU budget knob:
            SmolLM2-135M has 30 layers and a laptop PRM reads its 8th layer well enough.
        lora_r: deprecated, read as ``lora.r``.
        lora_alpha: deprecated, read as ``lora.alpha``.
        lora_dropout: deprecated, read as ``lora.dropout``.
        lora_targets: deprecated, read as ``lora.target_modules``.
    """

    model: str = "smollm2-135m"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    mode: Literal["frozen", "lora", "full"] = "frozen"
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(r=8, alpha=16, dropout=0.0))
    train_head: bool = True
    gradient_checkpointing: bool = False
    num_layers: int | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    lora_targets: list[str] | None = None

    def __post_init__(self) -> None:
        adopt_deprecated(
            self,
            {
                "lora_r": "lora.r",
                "lora_alpha": "lora.alpha",
                "lora_dropout": "lora.dropout",
                "lora_targets": "lora.target_modules",
            },
        )
        if self.num_layers is not None and self.num_layers < 1:
            raise ValueError(f"text.num_layers={self.num_layers} must be >= 1 (or null for all)")


@dataclass(frozen=True)
class PoseTowerConfig:
    """Encoder over keyframe pose features ``[T, F]`` (no weights to download).

    Attributes:
        input_dim: features per keyframe (16 joint angles by default).
        d_model: width of the encoder.
        layers: encoder layers.
        heads: attention heads (``transformer`` only).
        encoder: ``transformer`` or ``gru``.
        max_keyframes: longest sequence (learned positions).
        feature_scale: multiplies raw features (degrees -> ~[0, 1]).
        dropout: dropout inside the encoder.
    """

    input_dim: int = 16
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    encoder: Literal["transformer", "gru"] = "transformer"
    max_keyframes: int = 64
    feature_scale: float = 1.0 / 180.0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.input_dim < 1 or self.d_model < 1 or self.layers < 1 or self.max_keyframes < 1:
            raise ValueError("vision.pose: input_dim, d_model, layers and max_keyframes must be >= 1")
        if self.encoder == "transformer" and self.d_model % self.heads:
            raise ValueError(f"vision.pose.d_model={self.d_model} must be divisible by heads={self.heads}")


@dataclass(frozen=True)
class ClipTowerConfig:
    """An open_clip image tower over keyframe images ``[T, 3, H, W]``.

    Attributes:
        arch: open_clip model name, e.g. ``ViT-S-32`` (tests, random init) or
            ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`` (cluster).
        pretrained: open_clip ``pretrained`` tag; ``None`` builds random weights offline.
        image_size: overrides the architecture's input size (small in tests).
        trainable: fine-tune the image tower (the seed keeps BiomedCLIP trainable).
    """

    arch: str = "ViT-S-32"
    pretrained: str | None = None
    image_size: int | None = None
    trainable: bool = True


@dataclass(frozen=True)
class VisionTowerConfig:
    """Which vision tower feeds the fusion layer.

    Attributes:
        kind: ``none`` (text-only PRM), ``pose`` or ``clip``.
        pose: settings of the pose-sequence encoder.
        clip: settings of the open_clip tower.
    """

    kind: Literal["none", "pose", "clip"] = "pose"
    pose: PoseTowerConfig = field(default_factory=PoseTowerConfig)
    clip: ClipTowerConfig = field(default_factory=ClipTowerConfig)


@dataclass(frozen=True)
class FusionConfig:
    """Cross-attention of text hidden states (queries) over vision tokens (keys/values).

    Attributes:
        heads: attention heads (must divide the text hidden size).
        dropout: attention dropout.
        gate_init: initial value of the tanh gate on the residual branch; 0 makes the
            untrained model reproduce the text-only PRM exactly.
    """

    heads: int = 8
    dropout: float = 0.0
    gate_init: float = 0.0


@dataclass(frozen=True)
class PRMModelConfig:
    """The two-tower PRM (seed 000 §3.3).

    Attributes:
        text: text tower.
        vision: vision tower.
        fusion: fusion layer.
        plus_token: text whose last token's ``lm_head`` row scores a correct step.
        minus_token: text whose last token's ``lm_head`` row scores a wrong step.
    """

    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    vision: VisionTowerConfig = field(default_factory=VisionTowerConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    plus_token: str = " +"
    minus_token: str = " -"


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings for :func:`physio_ray.prm.train.make_optimizer`.

    Attributes:
        lr: learning rate of the new modules (fusion, vision, head).
        text_lr: learning rate of LoRA / full text-tower parameters.
        weight_decay: AdamW weight decay.
        clip: gradient-norm clip (0 disables).
    """

    lr: float = 1e-4
    text_lr: float = 2e-5
    weight_decay: float = 0.0
    clip: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.text_lr <= 0:
            raise ValueError("optim.lr and optim.text_lr must be > 0")
        if self.clip < 0:
            raise ValueError(f"optim.clip={self.clip} must be >= 0")


@dataclass(frozen=True)
class PRMDataConfig:
    """Where training examples come from.

    Attributes:
        medprm: Med-PRM JSON files (flat or nested schema); relative paths are read from the
            working directory (the repo root).
        annotated_dir: our annotation run's ``<output_dir>``; its ``annotated/`` Parquet is
            used when it exists (keyframe features from ``keyframes/`` become vision input).
            ``None`` or a missing folder trains on Med-PRM only (logged).
        labels: which labels, and how quirks are repaired.
        split: leakage-free grouping and fractions.
        limit: cap on examples after loading (``None``: all), for smoke runs.
    """

    medprm: list[str] = field(default_factory=lambda: ["../shared/data/medprm-samples/medprm_samples_80.json"])
    annotated_dir: str | None = None
    labels: LabelConfig = field(default_factory=LabelConfig)
    split: SplitConfig = field(default_factory=lambda: SplitConfig(by="video"))
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.medprm and not self.annotated_dir:
            raise ValueError("data: give at least one Med-PRM file (data.medprm) or data.annotated_dir")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"data.limit={self.limit} must be >= 2 (or null)")


@dataclass(frozen=True)
class TrainLoopConfig:
    """The optimisation schedule.

    Attributes:
        epochs: passes over the training split.
        max_steps: stop after this many optimiser steps in total (``None``: ``epochs``);
            a later run with a larger value continues from the checkpoint.
        batch_size: examples per worker per micro-batch.
        grad_accum: micro-batches per optimiser step.
        warmup_steps: linear warm-up before the cosine decay.
        schedule: ``cosine`` decay to 0 over the run, or ``constant``.
        cache_text_hidden: run a frozen text tower once and reuse its hidden states.
        eval_every: evaluate on the validation split every K steps (0: only at the end).
        seed: torch / shuffling seed.
    """

    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    cache_text_hidden: bool = True
    eval_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1 or self.warmup_steps < 0:
            raise ValueError("train: epochs, batch_size and grad_accum must be >= 1, warmup_steps >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"train.max_steps={self.max_steps} must be >= 1 (or null)")


CV_VARIANTS = {
    "prm": "the PRM's heads on the frozen tower's marker states, the recording's own poses",
    "prm_balanced": "the same, each class weighted by n / (2 n_class) in the loss",
    "prm_shuffled_poses": "the same, every recording's poses moved to another recording (does the pose tower matter?)",
    "prm_text_only": "the same without the pose tower's input",
}


@dataclass(frozen=True)
class CrossvalSettings:
    """Grouped cross-validation of the PRM (``jobs/crossval_prm.py``), beside its baselines.

    Attributes:
        k: folds, grouped by recording (physio) or question (Med-PRM).
        variants: which fits to run, names from :data:`CV_VARIANTS`.
        epochs: passes over the training folds per fit.
        lr: AdamW learning rate of the fitted parts.
        batch_size: solutions per optimiser step.
        bootstrap: cluster-bootstrap resamples for the 95% intervals.
        seed: fold, fit and bootstrap seed.
    """

    k: int = 5
    variants: tuple[str, ...] = ("prm", "prm_balanced", "prm_shuffled_poses")
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 8
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError(f"crossval.k={self.k} must be >= 2")
        unknown = [v for v in self.variants if v not in CV_VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"crossval.variants {list(self.variants)}: choose from {sorted(CV_VARIANTS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.bootstrap < 100 or self.lr <= 0:
            raise ValueError("crossval: epochs and batch_size must be >= 1, bootstrap >= 100, lr > 0")


@dataclass(frozen=True)
class TrainPRMConfig:
    """``jobs/train_prm.py``: train the PRM on Ray Train and report held-out step AUC.

    Attributes:
        output_dir: where the final checkpoint, metrics JSON and plot go.
        ray: how the job starts / joins Ray.
        data: training data.
        model: the two-tower PRM.
        prompt: prompt rendering (must match at scoring time; saved with the checkpoint).
        optim: optimiser.
        train: schedule.
        scaling: Ray Train workers (the ``scaling:`` block shared by every training job).
        run: Ray Train run name, storage, fault tolerance and ``checkpoint_every`` optimiser steps.
        crossval: ``jobs/crossval_prm.py``'s grouped cross-validation on the same data and model.
    """

    output_dir: str = "outputs/train_prm-local"
    ray: RayConfig = field(default_factory=RayConfig)
    data: PRMDataConfig = field(default_factory=PRMDataConfig)
    model: PRMModelConfig = field(default_factory=PRMModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    scaling: ScalingSettings = field(default_factory=lambda: ScalingSettings(num_workers=2, torch_threads=1))
    run: RunSettings = field(
        default_factory=lambda: RunSettings(name="prm-local", storage_path="outputs/ray_train", max_failures=1)
    )
    crossval: CrossvalSettings = field(default_factory=CrossvalSettings)
