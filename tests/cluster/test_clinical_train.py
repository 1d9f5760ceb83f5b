"""SFT + GRPO on SmolLM2-135M inside a Ray Train TorchTrainer, and resume after a failure.

Two ``fit`` calls on one run name (each ~30 s of Ray Train overhead plus SmolLM2 on CPU):

1. the GRPO prompts carry a broken ``scenario`` column, so the clinical reward raises during
   the first GRPO step, after SFT (2 steps) has reported its checkpoint; ``fit`` fails;
2. the same run with fixed records restores that checkpoint, skips SFT, runs GRPO (2 steps)
   and decodes the test scenarios.

The real embedded SmolLM2-135M-Instruct is used (no tiny random LM), with tiny lengths.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest

from physio_ray.clinical.config import (
    EvalConfig,
    GRPOStageConfig,
    SFTStageConfig,
    TrainClinicalConfig,
)
from physio_ray.clinical.data import load_clinical_dataset
from physio_ray.clinical.parsing import parse_verdict
from physio_ray.clinical.prompts import build_sft_records
from physio_ray.clinical.splits import Fold
from physio_ray.clinical.train import run_fold
from physio_ray.train_runtime import RunSettings, ScalingSettings
from tests.conftest import shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def records() -> tuple[list[dict], list[dict]]:
    ds = load_clinical_dataset(shared_path("medbilldozer-clinical"))
    tm = ds.select("treatment_matching")
    # GRPO prompts whose truth is CORRECT: CORRECT 1.5, ERROR -2.0, unparseable -3.0 all differ,
    # so a group of sampled answers has reward variance as soon as one of them states a verdict.
    train = [s for s in tm if s.label == "CORRECT"][:2] + [s for s in tm if s.severity == "moderate"][:2]
    test = [s for s in tm if s.image_type == "negative" and s.modality == "mri"][:1] + [
        s for s in tm if s.image_type == "positive" and s.modality == "histopathology"
    ][:1]
    assert not {s.image_file for s in train} & {s.image_file for s in test}
    return build_sft_records(train), build_sft_records(test)


def _cfg(tmp: Path, grpo_steps: int = 2) -> TrainClinicalConfig:
    return TrainClinicalConfig(
        output_dir=str(tmp),
        run=RunSettings(name="clin-test", keep_checkpoints=3),
        use_image_context=False,
        sft=SFTStageConfig(max_steps=2, learning_rate=1e-3, batch_size=2, max_length=192),
        grpo=GRPOStageConfig(
            max_steps=grpo_steps,
            learning_rate=1e-4,
            batch_size=4,
            num_generations=4,
            max_completion_length=8,
            temperature=0.8,
        ),  # fmt: skip
        eval=EvalConfig(max_new_tokens=6, batch_size=2),
        scaling=ScalingSettings(num_workers=1, use_gpu=False, cpus_per_worker=2),
    )


def test_sft_grpo_resume_in_torchtrainer(ray_local: None, records: tuple, tmp_path: Path) -> None:
    from ray.train import TrainingFailedError

    train, test = records
    cfg = _cfg(tmp_path)
    fold = Fold(0, "fold0", tuple(r["id"] for r in train), tuple(r["id"] for r in test))
    broken = copy.deepcopy(train)
    for r in broken:
        r["scenario"] = json.dumps({"id": r["id"]})  # no error_type: the reward raises in GRPO step 1
    with pytest.raises(TrainingFailedError):
        run_fold(cfg, fold, broken, test)
    ckpts = sorted(p for p in (tmp_path / "ray_results" / "clin-test-fold0").glob("checkpoint_*") if p.is_dir())
    assert ckpts, "SFT reported no checkpoint before GRPO failed"
    marker = json.loads(next(ckpts[-1].rglob("physio_ray_stage.json")).read_text())
    assert (marker["stage"], marker["global_step"]) == ("sft", 2)

    summary = run_fold(cfg, fold, train, test)  # same run name: Ray Train restores the SFT checkpoint
    assert summary["resumed"] == [{"stage": "sft", "global_step": 2}]
    sft, grpo = summary["sft"], summary["grpo"]
    assert sft["global_step"] == 2 and sft["resumed_from_step"] == 2
    assert len(sft["loss"]) == 2 and all(math.isfinite(x) for x in sft["loss"])  # restored log history
    assert sft["param_delta"] > 0  # adapter loaded from the checkpoint differs from a fresh LoRA init
    assert grpo["global_step"] == 2 and grpo["resumed_from_step"] is None
    assert grpo["loss"] and all(math.isfinite(x) for x in grpo["loss"])
    assert any(s > 0 for s in grpo["reward_std"]), f"no reward variance in any group: {grpo}"
    assert grpo["param_delta"] > 0
    for stage in (sft, grpo):
        assert set(stage["answers"]) == set(fold.test_ids)
        assert all(isinstance(a, str) for a in stage["answers"].values())
    final = Path(summary["checkpoint"])
    assert (final / "adapter_model.safetensors").is_file() and (final / "summary.json").is_file()
    # strict parsing is what scores them; print for the log
    print({k: (a, parse_verdict(a)) for k, a in grpo["answers"].items()})
    assert dataclasses.asdict(cfg.lora)["r"] == 16
