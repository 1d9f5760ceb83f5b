"""Clinical training plumbing without Ray: configs, folds, stage markers / resume state, reports."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

from physio_ray.clinical.config import CVConfig, GRPOStageConfig, SFTStageConfig, TrainClinicalConfig
from physio_ray.clinical.data import load_clinical_dataset
from physio_ray.clinical.evaluate import build_report, plot_report
from physio_ray.clinical.loop import SUMMARY_FILE, _scalars, read_resume_state
from physio_ray.clinical.sft import STAGE_FILE, StageMarkerCallback, parameter_delta, trainable_snapshot
from physio_ray.clinical.train import PREDICTOR_SFT, make_folds, select_scenarios
from physio_ray.config import ConfigError, load_config
from physio_ray.train_runtime import LoraSettings
from tests.conftest import REPO, shared_path


def test_shipped_yamls_load_with_seed_lora() -> None:
    for variant in ("local", "cluster"):
        cfg = load_config(TrainClinicalConfig, [str(REPO / "configs" / "train_clinical" / f"{variant}.yaml")])
        assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (16, 32, 0.1)
        assert cfg.lora.target_modules == ["q_proj", "v_proj", "o_proj"]
    local = load_config(TrainClinicalConfig, [str(REPO / "configs/train_clinical/local.yaml")])
    cluster = load_config(TrainClinicalConfig, [str(REPO / "configs/train_clinical/cluster.yaml")])
    assert local.model.name == "smollm2-135m" and local.vision.random_weights and not local.scaling.use_gpu
    assert "medgemma" in cluster.model.name and cluster.vision.model_name.startswith("hf-hub:microsoft/BiomedCLIP")
    assert cluster.scaling.use_gpu and not cluster.prompt.system_role


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="multiple of num_generations"):
        GRPOStageConfig(batch_size=6, num_generations=4)
    with pytest.raises(ValueError, match="num_generations"):
        GRPOStageConfig(num_generations=1, batch_size=2)
    with pytest.raises(ValueError, match="max_steps"):
        SFTStageConfig(max_steps=0)
    with pytest.raises(ValueError, match="dropout"):
        LoraSettings(dropout=1.0)
    with pytest.raises(ConfigError, match="sft.learnig_rate"):
        load_config(TrainClinicalConfig, [str(REPO / "configs/train_clinical/local.yaml"), "sft.learnig_rate=1"])


def test_lora_config_matches_seed() -> None:
    lc = TrainClinicalConfig().lora.to_peft()
    assert (lc.r, lc.lora_alpha, lc.lora_dropout) == (16, 32, 0.1)
    assert set(lc.target_modules) == {"q_proj", "v_proj", "o_proj"}
    assert lc.task_type == "CAUSAL_LM"


def test_old_run_keys_still_work_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    local = str(REPO / "configs/train_clinical/local.yaml")
    with caplog.at_level("WARNING", logger="physio_ray.train_runtime"):
        cfg = load_config(TrainClinicalConfig, [local, "run_name=old-name", "storage_path=/tmp/rr"])
    assert (cfg.run.name, cfg.run.storage_path, cfg.run_name, cfg.storage_path) == ("old-name", "/tmp/rr", None, None)
    assert "'run_name' is deprecated" in caplog.text and "'run.storage_path'" in caplog.text
    new = load_config(TrainClinicalConfig, [local, "run.name=old-name", "run.storage_path=/tmp/rr"])
    assert new == cfg and new.run.keep_checkpoints == 3 and new.scaling.threads() == 2


def test_folds_never_share_an_image() -> None:
    ds = load_clinical_dataset(shared_path("medbilldozer-clinical"))
    cfg = TrainClinicalConfig()
    scenarios = select_scenarios(ds, cfg)
    assert len(scenarios) == 24
    folds = make_folds(scenarios, ds, cfg)
    assert [len(f.test_ids) for f in folds] == [8, 8, 8]
    by_id = {s.id: s for s in scenarios}
    for f in folds:
        train_px = {ds.images[by_id[i].image_file].stats.pixel_sha256 for i in f.train_ids}
        assert not any(ds.images[by_id[i].image_file].stats.pixel_sha256 in train_px for i in f.test_ids)
    one = make_folds(scenarios, ds, TrainClinicalConfig(cv=CVConfig(k=3, max_folds=1)))
    assert len(one) == 1 and one[0] == folds[0]


def test_parameter_delta_and_snapshot() -> None:
    lin = torch.nn.Linear(3, 2)
    lin.bias.requires_grad_(False)
    before = trainable_snapshot(lin)
    assert set(before) == {"weight"}
    assert parameter_delta(before, lin) == 0.0
    with torch.no_grad():
        lin.weight[0, 0] += 3.0
        lin.weight[1, 2] -= 4.0
    assert parameter_delta(before, lin) == pytest.approx(5.0)


class _FakeCheckpoint:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    @contextmanager
    def as_directory(self):  # noqa: ANN202 - mimics ray.train.Checkpoint
        yield self.path


def test_stage_marker_and_resume_state(tmp_path: Path) -> None:
    hf_out = tmp_path / "hf"
    (hf_out / "checkpoint-2").mkdir(parents=True)
    cb = StageMarkerCallback("grpo", 4, {"sft": {"loss": [1.5, 0.5]}})
    cb.on_save(NS(output_dir=str(hf_out)), NS(global_step=2, is_world_process_zero=True), None)
    marker = json.loads((hf_out / "checkpoint-2" / STAGE_FILE).read_text())
    assert marker == {"stage": "grpo", "global_step": 2, "max_steps": 4, "summary": {"sft": {"loss": [1.5, 0.5]}}}
    # RayTrainReportCallback puts the HF folder under "checkpoint/"
    ray_ckpt = tmp_path / "ray_ckpt"
    (hf_out / "checkpoint-2").rename(tmp_path / "moved")
    ray_ckpt.mkdir()
    (tmp_path / "moved").rename(ray_ckpt / "checkpoint")
    state = read_resume_state(_FakeCheckpoint(ray_ckpt), tmp_path / "work")
    assert state is not None
    assert (state.stage, state.global_step, state.summary["sft"]["loss"]) == ("grpo", 2, [1.5, 0.5])
    assert Path(state.path, STAGE_FILE).is_file()
    final = tmp_path / "final"
    final.mkdir()
    (final / SUMMARY_FILE).write_text(json.dumps({"fold": "fold0"}))
    done = read_resume_state(_FakeCheckpoint(final), tmp_path / "work2")
    assert done is not None and done.stage == "done" and done.summary == {"fold": "fold0"}
    assert read_resume_state(None, tmp_path) is None


def test_scalars_flatten_last_values() -> None:
    summary = {"sft": {"loss": [2.0, 1.0], "global_step": 2, "param_delta": 0.5},
               "grpo": {"loss": [0.1], "reward": [-3.0, 1.5], "global_step": 2, "param_delta": 0.25}}  # fmt: skip
    assert _scalars(summary) == {
        "sft_loss": 1.0,
        "sft_global_step": 2.0,
        "sft_param_delta": 0.5,
        "grpo_loss": 0.1,
        "grpo_reward": 1.5,
        "grpo_global_step": 2.0,
        "grpo_param_delta": 0.25,
    }


def test_report_puts_shortcut_beside_model(tmp_path: Path) -> None:
    ds = load_clinical_dataset(shared_path("medbilldozer-clinical"))
    cfg = TrainClinicalConfig()
    scenarios = select_scenarios(ds, cfg)
    folds = make_folds(scenarios, ds, cfg)
    # a model that always says ERROR: catches every error, validates nothing
    preds = {s.id: "ERROR - Treatment does not match imaging" for s in scenarios}
    report, md = build_report({PREDICTOR_SFT: preds}, scenarios, folds, notes=["test"])
    model, shortcut = report["results"]
    assert (model["predictor"], shortcut["predictor"]) == ("sft", "shortcut")
    assert model["pooled"]["accuracy"] == 0.5 and model["pooled"]["tp_rate"] == 1.0
    assert model["pooled"]["tn_rate"] == 0.0 and model["pooled"]["missed_critical"] == 0
    # 6 critical x 3.0 + 3 high x 2.5 + 3 moderate x 2.0 + 12 false alarms x -2.0 over 24
    assert model["pooled"]["mean_reward"] == pytest.approx((18 + 7.5 + 6 - 24) / 24)
    assert shortcut["pooled"]["accuracy"] == 1.0 and shortcut["pooled"]["mean_reward"] == pytest.approx(
        (18 + 7.5 + 6 + 12 * 1.5) / 24
    )
    assert "sft / shortcut" in md and "| **pooled** | 24 |" in md
    png = plot_report(report, tmp_path / "m.png")
    assert png.stat().st_size > 5000
    assert not any(isinstance(v, float) and math.isnan(v) for v in model["pooled"].values())


def test_common_trainer_args_are_the_seed_recipe_s() -> None:
    from physio_ray.clinical.config import ClinicalModelConfig, SFTStageConfig
    from physio_ray.clinical.sft import _common_args

    args = _common_args(SFTStageConfig(max_steps=-1), ClinicalModelConfig(dtype="float16"), "out", 3, True)
    assert args == {
        "output_dir": "out",
        "max_steps": -1,
        "learning_rate": 1e-4,
        "per_device_train_batch_size": 4,
        "logging_steps": 1,
        "save_strategy": "epoch",
        "save_steps": 1,
        "save_total_limit": 2,
        "report_to": "none",
        "seed": 3,
        "bf16": False,
        "fp16": True,
        "use_cpu": True,
        "gradient_checkpointing": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "ddp_find_unused_parameters": False,
    }
    assert (
        _common_args(SFTStageConfig(max_steps=7, save_steps=0), ClinicalModelConfig(), "o", 0, True)["save_steps"] == 7
    )
