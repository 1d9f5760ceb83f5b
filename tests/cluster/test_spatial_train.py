"""Spatial SFT and GRPO on the tiny Qwen2-VL inside Ray Train TorchTrainers, and resume.

Three fits in one module (each TorchTrainer.fit costs ~30 s of fixed overhead):

1. SFT (TRL SFTTrainer + PEFT LoRA) on rendered "no instrument" frames: the loss is finite and
   falls, and the merged weights differ from the random init.
2. GRPO (TRL GRPOTrainer, spatial reward) for 2 steps from the SFT model: the loss is finite,
   the reward varies within groups (so the advantages are not all zero) and the weights change.
3. GRPO again with ``max_steps=3`` after removing the ``DONE`` marker: Ray Train restores the
   step-2 checkpoint and the trainer continues at step 3 (the first two steps are not redone).
4. ``run_train_spatial`` on a rendered hold-out with instruments: the done stages are skipped
   and ``eval/metrics.json`` carries, per stage, issue 13's ``quadrant_accuracy``, ``coord_mae``,
   ``instrument_f1`` and ``baselines`` with the same keys (plus the old keys).

The SFT stage trains on the "no instrument" answer only, because a 0.2 M-parameter model
learns that one sentence in a few dozen steps; sampled completions then sometimes say it and
sometimes do not, which gives GRPO a reward signal to follow (rendered data).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from physio_ray.config import from_dict, to_dict
from physio_ray.spatial.config import RenderedConfig, TrainSpatialConfig
from physio_ray.spatial.dataset import rendered_records
from physio_ray.spatial.records import write_records
from physio_ray.spatial.train import DONE, METRICS_FILE, run_stage
from physio_ray.spatial.train_pipeline import run_train_spatial


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rendered")
    recs = rendered_records(root, RenderedConfig(count=8, seed=11, val_fraction=0.0, none_fraction=1.0))
    for kind, rows in recs.items():
        write_records(rows, kind, root, "train", ["parquet"])
    return root


def _cfg(dataset: Path, out: Path, **over: dict) -> TrainSpatialConfig:
    base = {
        "dataset_dir": str(dataset),
        "output_dir": str(out),
        "run": {"name": "t"},
        "lora": {
            "r": 8,
            "alpha": 16,
            "dropout": 0.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
            "modules_to_save": ["embed_tokens", "lm_head"],
        },
        "sft": {
            "max_steps": 40,
            "batch_size": 8,
            "lr": 0.01,
            "save_steps": 40,
            "logging_steps": 5,
            "tasks": ["primary"],
        },
        "grpo": {
            "max_steps": 2,
            "batch_size": 8,
            "num_generations": 4,
            "max_completion_length": 12,
            "lr": 0.003,
            "save_steps": 1,
            "logging_steps": 1,
        },
        "scaling": {"num_workers": 1, "cpus_per_worker": 1},
    }
    for key, value in over.items():
        base[key] = {**base[key], **value}
    return from_dict(TrainSpatialConfig, base)


def _weights(model_dir: str) -> dict:
    from physio_ray.spatial.tiny_qwen2vl import load_model_and_processor

    model, _ = load_model_and_processor(model_dir)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _history(out: Path, stage: str) -> list[dict]:
    return json.loads((out / stage / METRICS_FILE).read_text())


@pytest.mark.slow
def test_sft_grpo_and_resume(ray_local: None, dataset: Path, tmp_path: Path) -> None:
    from physio_ray.spatial.tiny_qwen2vl import build_processor, build_tiny_model

    out = tmp_path / "run"
    cfg = _cfg(dataset, out)
    base = {k: v.detach().clone() for k, v in build_tiny_model(build_processor(), cfg.model.tiny).state_dict().items()}

    sft = run_stage(cfg, "sft", cfg.model.name)
    assert (out / "sft" / DONE).is_file() and sft.checkpoint is not None
    losses = [h["loss"] for h in _history(out, "sft") if "loss" in h]
    assert losses and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 1.0, losses
    sft_w = _weights(sft.model_dir)
    q = next(k for k in sft_w if k.endswith("layers.0.self_attn.q_proj.weight"))
    assert not sft_w[q].equal(base[q]), "LoRA did not change the merged q_proj"

    grpo = run_stage(cfg, "grpo", sft.model_dir)
    hist = [h for h in _history(out, "grpo") if "reward" in h]
    assert [h["step"] for h in hist] == [1, 2]
    assert all(math.isfinite(h["loss"]) for h in hist)
    assert any(h["reward_std"] > 0 for h in hist), f"no reward variance, GRPO had nothing to learn: {hist}"
    grpo_w = _weights(grpo.model_dir)
    assert any(not grpo_w[k].equal(sft_w[k]) for k in grpo_w), "GRPO did not change any weight"
    assert grpo.checkpoint is not None

    # resume: the stage is no longer done, and now wants one more step
    (out / "grpo" / DONE).unlink()
    cfg3 = from_dict(TrainSpatialConfig, {**to_dict(cfg), "grpo": {**to_dict(cfg.grpo), "max_steps": 3}})
    resumed = run_stage(cfg3, "grpo", sft.model_dir)
    hist3 = [h for h in _history(out, "grpo") if "reward" in h]
    assert [h["step"] for h in hist3] == [1, 2, 3]
    assert hist3[:2] == hist, "steps 1-2 must come from the restored checkpoint, not be retrained"
    assert resumed.metrics.get("step", resumed.metrics.get("global_step")) in (3, None)
    assert (out / "grpo" / DONE).read_text().strip() == "global_step=3"
    # a finished stage is skipped on rerun
    assert run_stage(cfg3, "grpo", sft.model_dir).skipped

    # 4. evaluation of base / sft / grpo on a hold-out with instruments and true points
    holdout = tmp_path / "holdout"
    recs = rendered_records(holdout, RenderedConfig(count=10, seed=21, val_fraction=0.4, none_fraction=0.1))
    for kind, rows in recs.items():
        for split in ("train", "val"):
            write_records([r for r in rows if r["split"] == split], kind, holdout, split, ["parquet"])
    cfg4 = from_dict(
        TrainSpatialConfig,
        {**to_dict(cfg3), "dataset_dir": str(holdout), "eval": {"max_new_tokens": 12, "batch_size": 4}},
    )
    summary = run_train_spatial(cfg4)
    assert all(st["skipped"] for st in summary.stages.values())
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"base", "sft", "grpo"}
    for stage in ("sft", "grpo"):
        m = metrics[stage]
        assert {"quadrant_accuracy", "coord_mae", "instrument_f1", "baselines", "instrument_macro_f1"} <= set(m)
        assert m["n_coord"] == m["n_quadrant"] > 0 and isinstance(m["coord_mae"], float)
        assert 0.0 <= m["quadrant_accuracy"] <= 1.0 and len(m["quadrant_accuracy_ci"]) == 2
        b = m["baselines"]
        assert {"quadrant_accuracy", "coord_mae", "instrument_f1", "majority_class", "untrained"} <= set(b), b
        assert all(isinstance(b[k], float) for k in ("quadrant_accuracy", "coord_mae", "instrument_f1"))
        assert b["untrained"]["quadrant_accuracy"] == metrics["base"]["quadrant_accuracy"]
