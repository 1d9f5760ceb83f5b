"""One Ray Train runtime for every training job: scaling, run, LoRA configs and the trainer builder.

PRM, spatial and clinical training all read the same three YAML blocks and build their
``TorchTrainer`` with :func:`build_torch_trainer`:

.. code-block:: yaml

    scaling: {num_workers: 2, use_gpu: false, cpus_per_worker: 1, torch_threads: 1}
    run: {name: prm-local, storage_path: outputs/ray_train, max_failures: 1, keep_checkpoints: 2}
    lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, v_proj], modules_to_save: []}

The worker loops stay plain functions of a config dict; Ray is applied here, where the graph
is wired, and resources come only from :class:`ScalingSettings`. Old keys of a job's YAML
(``run_name``, a top-level ``storage_path``) keep working through :func:`adopt_deprecated`,
which logs a warning naming the old and the new key.

Example:
    >>> s = ScalingSettings(num_workers=2, cpus_per_worker=2)
    >>> s.resources_per_worker(), s.threads()
    ({'CPU': 2.0}, 2)
    >>> RunSettings(name="spatial").storage("outputs/x").endswith("outputs/x/ray_results")
    True
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "LoraSettings",
    "RunSettings",
    "ScalingSettings",
    "adopt_deprecated",
    "apply_torch_threads",
    "build_torch_trainer",
    "check_grpo_group",
    "hf_trainer_args",
    "resolve_storage",
]


@dataclass(frozen=True)
class ScalingSettings:
    """Ray Train ``ScalingConfig`` of a training job (the ``scaling:`` block).

    Attributes:
        num_workers: data-parallel workers (gloo on CPU, NCCL on GPU); 0 runs the loop in the
            driver (Ray Train local mode).
        use_gpu: one GPU per worker (NCCL) instead of CPU (gloo).
        cpus_per_worker: CPUs reserved per worker.
        gpus_per_worker: GPUs reserved per worker (``None``: Ray's default, 1 when ``use_gpu``).
        resources: extra custom resources per worker, e.g. ``{"train_group": 1}`` to land on a
            node type of ``cluster.yaml`` (``CPU`` / ``GPU`` go in the fields above).
        torch_threads: intra-op torch threads per worker (``None``: as many as reserved CPUs on
            CPU workers, torch's default on GPU workers).
    """

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.num_workers < 0:
            problems.append(f"scaling.num_workers={self.num_workers} must be >= 0 (0: local mode in the driver)")
        if self.cpus_per_worker <= 0:
            problems.append(f"scaling.cpus_per_worker={self.cpus_per_worker} must be > 0")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            problems.append(f"scaling.gpus_per_worker={self.gpus_per_worker} must be >= 0 (or null)")
        if self.gpus_per_worker and not self.use_gpu:
            problems.append(f"scaling.gpus_per_worker={self.gpus_per_worker} needs scaling.use_gpu=true")
        clash = sorted({"CPU", "GPU"} & set(self.resources))
        if clash:
            problems.append(f"scaling.resources must not name {clash}: use cpus_per_worker / gpus_per_worker")
        if any(v < 0 for v in self.resources.values()):
            problems.append(f"scaling.resources={self.resources} must be >= 0")
        if self.torch_threads is not None and self.torch_threads < 1:
            problems.append(f"scaling.torch_threads={self.torch_threads} must be >= 1 (or null)")
        if problems:
            raise ValueError("; ".join(problems))

    def resources_per_worker(self) -> dict[str, float]:
        """``ScalingConfig(resources_per_worker=...)``: CPUs, GPUs when set, custom resources."""
        out = {"CPU": float(self.cpus_per_worker)}
        if self.use_gpu and self.gpus_per_worker is not None:
            out["GPU"] = float(self.gpus_per_worker)
        out.update({k: float(v) for k, v in self.resources.items()})
        return out

    def threads(self) -> int | None:
        """Torch intra-op threads a worker should use (``None``: leave torch's default)."""
        if self.torch_threads is not None:
            return self.torch_threads
        return None if self.use_gpu else max(1, int(self.cpus_per_worker))

    def to_ray(self) -> Any:
        """The ``ray.train.ScalingConfig``."""
        from ray.train import ScalingConfig

        return ScalingConfig(
            num_workers=self.num_workers, use_gpu=self.use_gpu, resources_per_worker=self.resources_per_worker()
        )


@dataclass(frozen=True)
class RunSettings:
    """Ray Train ``RunConfig``: name, storage, fault tolerance, checkpoints (the ``run:`` block).

    Attributes:
        name: run name; rerunning the same name in the same storage resumes from its latest
            checkpoint. Jobs with several trainers add a suffix (``<name>-sft``, ``<name>-fold0``).
        storage_path: root of run folders (local path or ``s3://`` / ``gs://`` URI; relative
            local paths are made absolute); ``None``: ``<output_dir>/ray_results``.
        max_failures: worker-group restarts from the latest checkpoint before giving up
            (-1: unlimited).
        checkpoint_every: optimiser steps between checkpoints for loops that checkpoint on
            their own (PRM); TRL stages (spatial, clinical) checkpoint on their ``save_steps``.
        keep_checkpoints: checkpoints kept (newest).
    """

    name: str = "train"
    storage_path: str | None = None
    max_failures: int = 0
    checkpoint_every: int = 10
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"run.name={self.name!r} must be a non-empty name without '/'")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.max_failures < -1:
            raise ValueError(
                f"run.checkpoint_every={self.checkpoint_every} and run.keep_checkpoints={self.keep_checkpoints} "
                f"must be >= 1, run.max_failures={self.max_failures} >= -1"
            )
        if self.storage_path is not None and not self.storage_path:
            raise ValueError("run.storage_path must be a path or URI (or null for <output_dir>/ray_results)")

    def storage(self, output_dir: str | None = None) -> str:
        """The absolute storage path (or URI) of the run.

        Raises:
            ValueError: no ``storage_path`` and no ``output_dir`` to default to.
        """
        if self.storage_path is not None:
            return resolve_storage(self.storage_path)
        if output_dir is None:
            raise ValueError("run.storage_path is null and the job gave no output_dir to put ray_results/ under")
        return resolve_storage(str(Path(output_dir) / "ray_results"))

    def to_ray(self, output_dir: str | None = None, suffix: str | None = None) -> Any:
        """The ``ray.train.RunConfig`` (``name`` + ``-suffix`` when given)."""
        from ray.train import CheckpointConfig, FailureConfig, RunConfig

        return RunConfig(
            name=f"{self.name}-{suffix}" if suffix else self.name,
            storage_path=self.storage(output_dir),
            failure_config=FailureConfig(max_failures=self.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=self.keep_checkpoints),
        )


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter (PEFT) of a causal LM or VLM (the ``lora:`` block).

    Class defaults are seed 001's (r 16, alpha 32, dropout 0.05 on q/k/v/o); each job's config
    states its own seed's values as its default.

    Attributes:
        r: rank.
        alpha: scaling numerator (``alpha / r`` scales the update).
        dropout: dropout on the adapter input.
        target_modules: module names that get adapters.
        modules_to_save: modules trained in full and saved with the adapter (a randomly
            initialised tiny model needs its embeddings and head trained; a pretrained one none).
        layers: indices of the transformer blocks that get adapters (empty: all). Adapting only
            the upper blocks stops the backward pass there, which is most of a CPU step.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    modules_to_save: list[str] = field(default_factory=list)
    layers: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if any(i < 0 for i in self.layers):
            raise ValueError(f"lora.layers={self.layers} must be block indices >= 0")
        if self.r < 1 or self.alpha < 1:
            raise ValueError(f"lora.r={self.r} and lora.alpha={self.alpha} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout={self.dropout} must be in [0, 1)")
        if not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module, e.g. [q_proj, v_proj, o_proj]")

    def to_peft(self, task_type: str = "CAUSAL_LM") -> Any:
        """The ``peft.LoraConfig`` (no bias training)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            modules_to_save=list(self.modules_to_save) or None,
            layers_to_transform=list(self.layers) or None,
            bias="none",
            task_type=task_type,
        )


def resolve_storage(path: str) -> str:
    """A URI as given; a local path made absolute (Ray workers run in another folder).

    >>> resolve_storage("s3://bucket/runs")
    's3://bucket/runs'
    """
    return path if "://" in path else str(Path(path).expanduser().resolve())


def apply_torch_threads(scaling: ScalingSettings) -> None:
    """Sets torch's intra-op threads in a worker (oversubscribing 2 cores is very slow)."""
    threads = scaling.threads()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def check_grpo_group(num_generations: int, batch_size: int, block: str = "grpo") -> None:
    """Validates a GRPO stage's group: at least two completions per prompt, whole groups per batch.

    Raises:
        ValueError: naming both values when ``num_generations < 2`` or it does not divide ``batch_size``.

    >>> check_grpo_group(4, 8)
    >>> check_grpo_group(4, 6)
    Traceback (most recent call last):
    ...
    ValueError: grpo.num_generations=4 must be >= 2 (GRPO compares a group) and grpo.batch_size=6 a multiple of num_generations
    """
    if num_generations < 2 or batch_size % num_generations:
        raise ValueError(
            f"{block}.num_generations={num_generations} must be >= 2 (GRPO compares a group) and "
            f"{block}.batch_size={batch_size} a multiple of num_generations"
        )


def hf_trainer_args(
    output_dir: str,
    learning_rate: float,
    save_steps: int,
    logging_steps: int,
    *,
    use_cpu: bool,
    bf16: bool,
    fp16: bool = False,
    save_strategy: str = "steps",
) -> dict[str, Any]:
    """Keyword arguments every TRL stage (``SFTConfig`` / ``GRPOConfig``) of a Ray Train worker shares.

    No reporting integrations, no dataloader worker processes (the Ray worker owns its CPUs),
    no progress bars; checkpoints every ``save_steps`` so ``RayTrainReportCallback`` reports them.

    >>> args = hf_trainer_args("out", 1e-4, 10, 1, use_cpu=True, bf16=False)
    >>> args["report_to"], args["dataloader_num_workers"], args["save_strategy"]
    ('none', 0, 'steps')
    """
    return {
        "output_dir": output_dir,
        "learning_rate": learning_rate,
        "save_strategy": save_strategy,
        "save_steps": save_steps,
        "logging_steps": logging_steps,
        "report_to": "none",
        "use_cpu": use_cpu,
        "bf16": bf16,
        "fp16": fp16,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def build_torch_trainer(
    train_loop: Callable[[dict[str, Any]], None],
    loop_config: Mapping[str, Any],
    scaling: ScalingSettings,
    run: RunSettings,
    *,
    output_dir: str | None = None,
    name_suffix: str | None = None,
) -> Any:
    """The ``TorchTrainer`` of one training run, resources only from ``scaling``.

    Args:
        train_loop: ``train_loop_per_worker`` (a plain function of ``loop_config``).
        loop_config: passed to every worker.
        scaling: workers and their resources.
        run: name, storage, failures and checkpoints.
        output_dir: the job's output folder (storage defaults to ``<output_dir>/ray_results``).
        name_suffix: appended to ``run.name`` (``-sft``, ``-fold0``) when one job runs several trainers.

    Returns:
        A ``ray.train.torch.TorchTrainer`` (call ``.fit()``).
    """
    from ray.train.torch import TorchConfig, TorchTrainer

    return TorchTrainer(
        train_loop,
        train_loop_config=dict(loop_config),
        torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
        scaling_config=scaling.to_ray(),
        run_config=run.to_ray(output_dir, name_suffix),
    )


def adopt_deprecated(cfg: Any, renames: Mapping[str, str]) -> None:
    """Moves values of deprecated top-level keys into their new place, with a logged warning.

    Call from a frozen config's ``__post_init__``; each old field must default to ``None`` and
    is reset to ``None`` once adopted (the new key is the one source of truth).

    Args:
        cfg: the config dataclass being initialised.
        renames: ``{old_field: "block.field"}``, e.g. ``{"run_name": "run.name"}``.

    Raises:
        ValueError: the adopted value is rejected by the new block.

    >>> @dataclass(frozen=True)
    ... class Job:
    ...     run: RunSettings = field(default_factory=RunSettings)
    ...     run_name: str | None = None
    ...     def __post_init__(self) -> None:
    ...         adopt_deprecated(self, {"run_name": "run.name"})
    >>> job = Job(run_name="old")
    >>> job.run.name, job.run_name
    ('old', None)
    """
    for old, new in renames.items():
        value = getattr(cfg, old)
        if value is None:
            continue
        block, _, leaf = new.partition(".")
        logger.warning(
            "config key %r is deprecated and will be removed: use %r instead (read %s=%r as %s=%r)",
            old,
            new,
            old,
            value,
            new,
            value,
        )
        object.__setattr__(cfg, block, dataclasses.replace(getattr(cfg, block), **{leaf: value}))
        object.__setattr__(cfg, old, None)
