"""Typed configurations of ``jobs/build_spatial_dataset.py`` and ``jobs/train_spatial.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from physio_ray.runtime import RayConfig
from physio_ray.spatial.pitvqa import OFFICIAL_TRAIN_VIDEOS, OFFICIAL_VAL_VIDEOS
from physio_ray.spatial.tiny_qwen2vl import TinyQwen2VLSpec
from physio_ray.train_runtime import LoraSettings, RunSettings, ScalingSettings, adopt_deprecated, check_grpo_group


@dataclass(frozen=True)
class RenderedConfig:
    """Synthetic (rendered) frames with known tip points, for local training runs.

    Attributes:
        count: frames to render (0: none). Written under ``<output_dir>/rendered/``.
        seed: base seed; frame ``i`` uses ``seed + i``, so the set is reproducible.
        width: image width in pixels.
        height: image height in pixels.
        val_fraction: share of rendered frames in the ``val`` split (the rest is ``train``).
        none_fraction: share of frames drawn without any instrument.
        secondary_fraction: share of instrument frames that also show a suction tip.
        marker_size: tip marker width as a share of the frame's shorter side (0.18: 27 px of 144,
            about one merged image token of Qwen2-VL; see ``render.MARKER_SIZE``; 0.09 draws the
            13 px markers of datasets built before it existed, at a 144 px side).
    """

    count: int = 0
    seed: int = 0
    width: int = 256
    height: int = 144
    val_fraction: float = 0.2
    none_fraction: float = 0.1
    secondary_fraction: float = 0.3
    marker_size: float = 0.18

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"rendered.count={self.count} must be >= 0")
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096):
            raise ValueError(f"rendered.width/height={self.width}x{self.height} must be within 32..4096")
        for name in ("val_fraction", "none_fraction", "secondary_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rendered.{name}={value} must be in [0, 1]")
        if not 0.02 <= self.marker_size <= 0.5:
            raise ValueError(f"rendered.marker_size={self.marker_size} must be within 0.02..0.5 of the shorter side")


@dataclass(frozen=True)
class BuildSpatialDatasetConfig:
    """What ``jobs/build_spatial_dataset.py`` reads and writes.

    Attributes:
        annotations_dir: folder with ``instruments_csv/`` and ``steps_csv/`` (PitVQA_Annotations).
        output_dir: dataset root; gets ``sft_stage1/``, ``sft_stage2/``, ``grpo/``,
            ``labels_per_second.parquet`` and ``stats.json``.
        formats: files to write per record kind and split.
        train_videos: video numbers of the train split (default: the official PitVQA split).
        val_videos: video numbers of the val split; any other video found is ``"unassigned"``.
        include_secondary: add ``named`` pointing records for the secondary instrument (suction).
        include_none: add "no instrument visible" records (primary task, stage 2, GRPO).
        rendered: synthetic frames with true points (see :class:`RenderedConfig`).
    """

    annotations_dir: str
    output_dir: str
    formats: list[Literal["parquet", "jsonl"]] = field(default_factory=lambda: ["parquet", "jsonl"])
    train_videos: list[int] = field(default_factory=lambda: list(OFFICIAL_TRAIN_VIDEOS))
    val_videos: list[int] = field(default_factory=lambda: list(OFFICIAL_VAL_VIDEOS))
    include_secondary: bool = True
    include_none: bool = True
    rendered: RenderedConfig = field(default_factory=RenderedConfig)

    def __post_init__(self) -> None:
        problems = []
        if not self.annotations_dir:
            problems.append("annotations_dir must be set (folder with instruments_csv/ and steps_csv/)")
        if not self.output_dir:
            problems.append("output_dir must be set")
        if not self.formats or len(set(self.formats)) != len(self.formats):
            problems.append(f"formats={self.formats} must list parquet and/or jsonl once each")
        both = sorted(set(self.train_videos) & set(self.val_videos))
        if both:
            problems.append(f"videos {both} are in both train_videos and val_videos")
        if any(v < 0 for v in [*self.train_videos, *self.val_videos]):
            problems.append("video numbers must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class SpatialModelConfig:
    """Which Qwen2-VL to fine-tune.

    Attributes:
        name: ``"tiny-qwen2vl"`` (built in code, random init, see
            :mod:`physio_ray.spatial.tiny_qwen2vl`), a local folder, or a hub id such as
            ``"Qwen/Qwen2-VL-2B-Instruct"`` (cluster: pre-fetched into the HF cache).
        dtype: weights dtype for training and inference.
        offline: set ``HF_HUB_OFFLINE=1`` where the model loads (nothing may download).
        min_pixels: image processor pixel floor for real models (``None``: the processor's).
        max_pixels: image processor pixel budget for real models (``None``: the processor's).
        tiny: sizes of the tiny model (used with ``name: tiny-qwen2vl`` only).
    """

    name: str = "tiny-qwen2vl"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    offline: bool = True
    min_pixels: int | None = None
    max_pixels: int | None = None
    tiny: TinyQwen2VLSpec = field(default_factory=TinyQwen2VLSpec)


@dataclass(frozen=True)
class SpatialSFTConfig:
    """Stage 1: supervised fine-tuning on pointing records (TRL ``SFTTrainer``).

    Attributes:
        enabled: run this stage.
        epochs: passes over the train records (seed: 3).
        max_steps: stop after this many optimiser steps (> 0 overrides ``epochs``).
        batch_size: examples per device per step.
        grad_accum: gradient accumulation steps.
        lr: learning rate (seed: 2e-5 for a pretrained model).
        warmup_ratio: share of steps with linear warm-up (in [0, 1)).
        save_steps: checkpoint (and report to Ray Train) every this many steps.
        logging_steps: log loss every this many steps.
        tasks: record tasks used (``primary``: find + name the main instrument; ``named``).
        max_examples: cap on train records (``None``: all).
        assistant_only_loss: loss on the answer tokens only.
        vision_lr_multiplier: the vision tower's learning rate is ``lr`` times this. A randomly
            initialised model first learns to answer without the image (the answer's prior),
            and its vision tower, reached only through near-uniform attention, gets too little
            gradient to escape: at 1.0 the tiny model's visual features stay image-independent.
        curve_every: every this many steps, answer ``curve_examples`` held-out prompts (the
            ``eval.split``) and log quadrant accuracy, coordinate error and instrument F1 beside
            the loss (:mod:`physio_ray.spatial.curve`; ``0``: off).
        curve_examples: held-out prompts scored at each curve point.
        seed: data order and LoRA init.
    """

    enabled: bool = True
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-5
    warmup_ratio: float = 0.0
    save_steps: int = 100
    logging_steps: int = 10
    tasks: list[str] = field(default_factory=lambda: ["primary", "named"])
    max_examples: int | None = None
    assistant_only_loss: bool = True
    vision_lr_multiplier: float = 1.0
    curve_every: int = 0
    curve_examples: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vision_lr_multiplier <= 0:
            raise ValueError(f"sft.vision_lr_multiplier={self.vision_lr_multiplier} must be > 0")
        if self.curve_every < 0 or self.curve_examples < 1:
            raise ValueError(f"sft.curve_every={self.curve_every} must be >= 0 and curve_examples >= 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("sft: set epochs > 0 or max_steps > 0")
        if self.batch_size < 1 or self.grad_accum < 1 or self.lr <= 0 or self.save_steps < 1:
            raise ValueError("sft: batch_size, grad_accum and save_steps must be >= 1 and lr > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"sft.warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        bad = sorted(set(self.tasks) - {"primary", "named"})
        if bad or not self.tasks:
            raise ValueError(f"sft.tasks={self.tasks} must be a non-empty subset of ['primary', 'named']")


@dataclass(frozen=True)
class SpatialGRPOConfig:
    """Stage 2: GRPO with :func:`physio_ray.spatial.rewards.spatial_reward` on the GRPO prompts.

    Attributes:
        enabled: run this stage (starts from the merged SFT model when SFT ran).
        max_steps: optimiser steps.
        batch_size: completions per device per step (a multiple of ``num_generations``).
        num_generations: completions sampled per prompt (the group).
        max_completion_length: generated tokens per completion.
        temperature: sampling temperature.
        lr: learning rate.
        beta: KL coefficient to the reference (the stage's starting model).
        epsilon: PPO-style clip range of the policy ratio.
        save_steps: checkpoint every this many steps.
        logging_steps: log every this many steps.
        max_prompts: cap on train prompts (``None``: all).
        seed: sampling and data order.
    """

    enabled: bool = True
    max_steps: int = 50
    batch_size: int = 8
    num_generations: int = 4
    max_completion_length: int = 40
    temperature: float = 1.0
    lr: float = 1e-5
    beta: float = 0.04
    epsilon: float = 0.2
    save_steps: int = 25
    logging_steps: int = 5
    max_prompts: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_grpo_group(self.num_generations, self.batch_size)
        if self.max_steps < 1 or self.max_completion_length < 1 or self.lr <= 0 or self.beta < 0:
            raise ValueError("grpo: max_steps and max_completion_length must be >= 1, lr > 0, beta >= 0")


@dataclass(frozen=True)
class SpatialEvalConfig:
    """Evaluation of each stage's model on held-out records (greedy decoding).

    Attributes:
        enabled: evaluate the base model and every trained stage.
        split: record split to score (``val`` for the official split or rendered hold-out).
        max_examples: cap on evaluated records (``None``: all).
        max_new_tokens: generated tokens per answer.
        batch_size: records per generation batch.
        actors: Ray Data actors that generate.
        cpus_per_actor: CPUs per actor.
        gpus_per_actor: GPUs per actor.
    """

    enabled: bool = True
    split: str = "val"
    max_examples: int | None = None
    max_new_tokens: int = 40
    batch_size: int = 16
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0


@dataclass(frozen=True)
class TrainSpatialConfig:
    """What ``jobs/train_spatial.py`` runs: SFT -> GRPO -> eval on a spatial dataset.

    Attributes:
        dataset_dir: a dataset root written by ``jobs/build_spatial_dataset.py`` (``sft_stage1/``,
            ``grpo/``), e.g. its ``rendered/`` folder for rendered frames.
        images_dir: folder the records' ``image`` paths are relative to (``None``: ``dataset_dir``;
            for PitVQA, the root of the extracted ``video_XX/frame_NNNNNN.jpg`` frames).
        output_dir: merged models, metrics reports; Ray Train checkpoints under ``ray_results/``.
        stages: which stages to run, in order.
        model: see :class:`SpatialModelConfig`.
        finetune: ``"lora"`` trains the ``lora:`` adapter in both stages (seed 001, for a
            pretrained checkpoint); ``"full"`` trains every weight (the randomly initialised tiny
            model: a low-rank update of random weights is not a recipe worth testing).
        lora: LoRA adapter trained in both stages (seed 001: r 16, alpha 32, q/k/v/o).
        sft: see :class:`SpatialSFTConfig`.
        grpo: see :class:`SpatialGRPOConfig`.
        eval: see :class:`SpatialEvalConfig`.
        scaling: Ray Train workers of each training stage.
        run: Ray Train run name prefix (``<name>-<stage>``; a rerun with the same name resumes from
            checkpoints), storage (default ``<output_dir>/ray_results``) and fault tolerance.
        ray: how the job starts or joins Ray.
        run_name: deprecated, use ``run.name``.
    """

    dataset_dir: str
    output_dir: str
    images_dir: str | None = None
    stages: list[Literal["sft", "grpo", "eval"]] = field(default_factory=lambda: ["sft", "grpo", "eval"])
    model: SpatialModelConfig = field(default_factory=SpatialModelConfig)
    finetune: Literal["lora", "full"] = "lora"
    lora: LoraSettings = field(default_factory=LoraSettings)
    sft: SpatialSFTConfig = field(default_factory=SpatialSFTConfig)
    grpo: SpatialGRPOConfig = field(default_factory=SpatialGRPOConfig)
    eval: SpatialEvalConfig = field(default_factory=SpatialEvalConfig)
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    run: RunSettings = field(default_factory=lambda: RunSettings(name="spatial"))
    ray: RayConfig = field(default_factory=RayConfig)
    run_name: str | None = None

    def __post_init__(self) -> None:
        adopt_deprecated(self, {"run_name": "run.name"})
        problems = []
        if not self.dataset_dir:
            problems.append("dataset_dir must be set (a folder with sft_stage1/ and grpo/)")
        if not self.output_dir:
            problems.append("output_dir must be set")
        if not self.stages or len(set(self.stages)) != len(self.stages):
            problems.append(f"stages={self.stages} must list sft, grpo and/or eval once each")
        if problems:
            raise ValueError("; ".join(problems))
