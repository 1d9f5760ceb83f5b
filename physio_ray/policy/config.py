"""Typed configuration of ``jobs/train_policy.py`` (the YAMLs under ``configs/train_policy/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from physio_ray.policy.run import PolicyEvalSettings
from physio_ray.policy.train import PolicySFTSettings
from physio_ray.runtime import RayConfig
from physio_ray.train_runtime import RunSettings, ScalingSettings


@dataclass(frozen=True)
class TrainPolicyConfig:
    """What ``jobs/train_policy.py`` runs: LoRA SFT of the local policy on reference solutions.

    Attributes:
        questions_dir: a question-stage output (Parquet) of ``jobs/annotate.py`` with
            ``configs/annotate/policy_questions.yaml`` (UI-PRMD subjects s02-s10, every movement).
        output_dir: where ``adapter/``, ``policy_eval.json`` and ``policy_loss.png`` go.
        held_out_subjects: subjects kept out of training and evaluated on (``uiprmd-s09``...).
        model: the base model (``smollm2-135m``: the embedded SmolLM2-135M-Instruct).
        rotations: option rotations per training question (1..4).
        sft: training settings.
        eval: held-out sampling settings.
        scaling: the one Ray Train worker (a 135M model's adapter needs no data parallelism).
        run: Ray Train run name and storage (default ``<output_dir>/ray_results``).
        ray: how the job starts or joins Ray.
    """

    questions_dir: str
    output_dir: str
    held_out_subjects: list[str] = field(default_factory=lambda: ["uiprmd-s09", "uiprmd-s10"])
    model: str = "smollm2-135m"
    rotations: int = 1
    sft: PolicySFTSettings = field(default_factory=PolicySFTSettings)
    eval: PolicyEvalSettings = field(default_factory=PolicyEvalSettings)
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    run: RunSettings = field(default_factory=lambda: RunSettings(name="policy"))
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.rotations <= 4:
            raise ValueError(f"rotations={self.rotations} must be in 1..4")
        if self.scaling.num_workers != 1:
            raise ValueError(
                f"scaling.num_workers={self.scaling.num_workers}: the policy trains on one worker "
                "(use scaling.use_gpu=true for speed, not more workers)"
            )
        if not self.held_out_subjects:
            raise ValueError("held_out_subjects must name at least one subject (e.g. [uiprmd-s09, uiprmd-s10])")
