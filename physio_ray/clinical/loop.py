"""The Ray Train worker loop of one cross-validation fold: SFT -> eval -> GRPO -> eval.

:func:`clinical_train_loop` is the ``train_loop_per_worker`` of the fold's ``TorchTrainer``
(wired in :mod:`physio_ray.clinical.train`). Each HF trainer is wrapped with
``ray.train.huggingface.transformers.prepare_trainer`` and reports every checkpoint through
``RayTrainReportCallback``; a :class:`~physio_ray.clinical.sft.StageMarkerCallback` stamps the
checkpoint with its stage (and the summary so far) so a restarted run continues where it
stopped: inside SFT (HF ``resume_from_checkpoint``), between SFT and GRPO (adapter reloaded),
inside GRPO, or after the end (the final summary is reported again). The last report carries a
checkpoint with the adapter and :data:`SUMMARY_FILE` (losses, rewards, parameter change norms
and the raw test answers after each stage); rank 0 decodes, every rank reports.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physio_ray.clinical.config import TrainClinicalConfig
from physio_ray.clinical.sft import STAGE_FILE, StageMarkerCallback, parameter_delta, trainable_snapshot
from physio_ray.train_runtime import apply_torch_threads

logger = logging.getLogger(__name__)

__all__ = ["HF_CHECKPOINT", "SUMMARY_FILE", "ResumeState", "clinical_train_loop", "read_resume_state"]

SUMMARY_FILE = "summary.json"
HF_CHECKPOINT = "checkpoint"  # RayTrainReportCallback.CHECKPOINT_NAME
STAGE_SFT, STAGE_GRPO, STAGE_DONE = "sft", "grpo", "done"


@dataclass
class ResumeState:
    """Where a restarted fold continues.

    Attributes:
        stage: ``sft`` | ``grpo`` | ``done``.
        global_step: the step of the checkpoint (0 for ``done``).
        path: a local copy of the checkpoint folder (HF checkpoint or final adapter).
        summary: the summary written so far (losses and answers of finished stages).
    """

    stage: str
    global_step: int
    path: str
    summary: dict[str, Any] = field(default_factory=dict)


def read_resume_state(checkpoint: Any, workdir: str | Path) -> ResumeState | None:
    """Copies a Ray Train checkpoint to ``workdir`` and reads which stage wrote it.

    Args:
        checkpoint: ``ray.train.Checkpoint`` or ``None``.
        workdir: local folder to copy into.

    Returns:
        The state, or ``None`` when there is no checkpoint or it has no stage marker.
    """
    if checkpoint is None:
        return None
    dest = Path(workdir) / "restored"
    with checkpoint.as_directory() as src:
        shutil.copytree(src, dest, dirs_exist_ok=True)
    if (dest / SUMMARY_FILE).is_file():
        return ResumeState(STAGE_DONE, 0, str(dest), json.loads((dest / SUMMARY_FILE).read_text()))
    marker = dest / HF_CHECKPOINT / STAGE_FILE
    if not marker.is_file():
        logger.warning("checkpoint %s has no %s; starting the fold from scratch", dest, STAGE_FILE)
        return None
    info = json.loads(marker.read_text())
    return ResumeState(info["stage"], int(info["global_step"]), str(dest / HF_CHECKPOINT), info.get("summary", {}))


def _losses(log_history: list[dict[str, Any]]) -> list[float]:
    return [float(e["loss"]) for e in log_history if "loss" in e]


def _answers(model: Any, tokenizer: Any, test_records: list[dict[str, Any]], cfg: TrainClinicalConfig) -> dict:
    from physio_ray.clinical.evaluate import generate_answers

    answers = generate_answers(
        model, tokenizer, [r["prompt"] for r in test_records], cfg.eval.max_new_tokens, cfg.eval.batch_size
    )
    return {r["id"]: a for r, a in zip(test_records, answers, strict=True)}


def _stage_report(trainer: Any, before: dict[str, Any], seconds: float, resumed_from: int | None) -> dict[str, Any]:
    from physio_ray.clinical.grpo import reward_stats

    history = trainer.state.log_history
    out = {
        "global_step": int(trainer.state.global_step),
        "loss": _losses(history),
        "param_delta": parameter_delta(before, trainer.model),
        "seconds": round(seconds, 2),
        "resumed_from_step": resumed_from,
    }
    rewards = reward_stats(history)
    if rewards["reward"]:
        out["reward"] = rewards["reward"]
        out["reward_std"] = rewards["reward_std"]
    return out


def _run_stage(stage: str, trainer: Any, resume: ResumeState | None) -> tuple[Any, dict[str, Any]]:
    from ray.train.huggingface.transformers import prepare_trainer

    trainer = prepare_trainer(trainer)
    before = trainable_snapshot(trainer.model)
    from_path = resume.path if resume is not None and resume.stage == stage else None
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=from_path)
    report = _stage_report(
        trainer, before, time.perf_counter() - start, resume.global_step if from_path and resume is not None else None
    )
    if any(not math.isfinite(x) for x in report["loss"]):
        raise FloatingPointError(f"{stage}: non-finite loss {report['loss']}")
    return trainer, report


def _train_and_test(
    stage: str,
    trainer: Any,
    resume: ResumeState | None,
    summary: dict[str, Any],
    test: Callable[[Any], dict[str, str]] | None,
) -> Any:
    """Trains one stage into ``summary[stage]``, adds its test ``answers`` when ``test`` is given.

    Returns:
        The trained (PEFT) model.
    """
    trainer, summary[stage] = _run_stage(stage, trainer, resume)
    if test is not None:
        summary[stage]["answers"] = test(trainer.model)
    return trainer.model


def clinical_train_loop(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of one fold (see the module docstring).

    Args:
        config: ``cfg`` (:class:`~physio_ray.clinical.config.TrainClinicalConfig`), ``fold``
            (name), ``train_records`` and ``test_records`` (from
            :func:`~physio_ray.clinical.prompts.build_sft_records`).

    Raises:
        FloatingPointError: a stage logged a non-finite loss.
    """
    import ray.train
    from ray.train import Checkpoint
    from ray.train.huggingface.transformers import RayTrainReportCallback

    from physio_ray.clinical.grpo import build_grpo_trainer
    from physio_ray.clinical.sft import build_sft_trainer
    from physio_ray.llm.smollm2 import load_causal_lm

    cfg: TrainClinicalConfig = config["cfg"]
    train_records, test_records = config["train_records"], config["test_records"]
    rank = ray.train.get_context().get_world_rank()
    use_cpu = not cfg.scaling.use_gpu
    apply_torch_threads(cfg.scaling)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(tempfile.mkdtemp(prefix=f"clinical-{config['fold']}-"))
    resume = read_resume_state(ray.train.get_checkpoint(), work)
    if resume is not None and resume.stage == STAGE_DONE:
        logger.info("fold %s already finished; reporting its summary again", config["fold"])
        ckpt = Checkpoint.from_directory(resume.path) if rank == 0 else None
        ray.train.report(metrics=_scalars(resume.summary), checkpoint=ckpt)
        return
    summary: dict[str, Any] = dict(resume.summary) if resume else {}
    summary.update({"fold": config["fold"], "model": cfg.model.name, "n_train": len(train_records)})
    if resume is not None:
        summary.setdefault("resumed", []).append({"stage": resume.stage, "global_step": resume.global_step})
    model, tokenizer = load_causal_lm(cfg.model.name, cfg.model.dtype, memo=False)
    test = (lambda m: _answers(m, tokenizer, test_records, cfg)) if rank == 0 else None  # answers on rank 0
    model.train()
    peft_model: Any
    if cfg.sft.enabled and (resume is None or resume.stage == STAGE_SFT):
        marker = StageMarkerCallback(STAGE_SFT, cfg.sft.max_steps)
        trainer = build_sft_trainer(
            model, tokenizer, train_records, cfg.sft, cfg.model, cfg.lora, str(work / STAGE_SFT),
            seed=cfg.seed, use_cpu=use_cpu, callbacks=[marker, RayTrainReportCallback()],
        )  # fmt: skip
        peft_model = _train_and_test(STAGE_SFT, trainer, resume, summary, test)
    elif resume is not None:  # resume inside GRPO: the adapter comes from its checkpoint
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(model, resume.path, is_trainable=True)
    else:  # SFT disabled: GRPO starts from a fresh adapter
        from peft import get_peft_model

        peft_model = get_peft_model(model, cfg.lora.to_peft())
    if cfg.grpo.enabled:
        marker = StageMarkerCallback(STAGE_GRPO, cfg.grpo.max_steps, _jsonable(summary))
        trainer = build_grpo_trainer(
            peft_model, tokenizer, train_records, cfg.grpo, cfg.model, str(work / STAGE_GRPO),
            seed=cfg.seed, use_cpu=use_cpu, callbacks=[marker, RayTrainReportCallback()],
        )  # fmt: skip
        peft_model = _train_and_test(STAGE_GRPO, trainer, resume, summary, test)
    final = work / "final"
    ckpt = None
    if rank == 0:
        final.mkdir()
        peft_model.save_pretrained(str(final))
        (final / SUMMARY_FILE).write_text(json.dumps(_jsonable(summary), indent=2))
        ckpt = Checkpoint.from_directory(str(final))
    ray.train.report(metrics=_scalars(summary), checkpoint=ckpt)


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


def _scalars(summary: dict[str, Any]) -> dict[str, float]:
    """Last loss / reward / step of each stage, as flat metrics for Ray Train."""
    out: dict[str, float] = {}
    for stage in (STAGE_SFT, STAGE_GRPO):
        part = summary.get(stage) or {}
        for key in ("loss", "reward"):
            if part.get(key):
                out[f"{stage}_{key}"] = float(part[key][-1])
        if "global_step" in part:
            out[f"{stage}_global_step"] = float(part["global_step"])
            out[f"{stage}_param_delta"] = float(part["param_delta"])
    return out
