"""jobs/train_policy.py end to end on the shared local Ray: real SmolLM2, real questions, two steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from physio_ray.config import load_config
from physio_ray.policy.config import TrainPolicyConfig
from tests.conftest import ASSETS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from physio_ray.policy.loop import run_train_policy

    out = tmp_path_factory.mktemp("policy")
    cfg = load_config(
        TrainPolicyConfig,
        [
            str(REPO / "configs/train_policy/local.yaml"),
            f"questions_dir={ASSETS / 'policy'}",
            f"output_dir={out}",
            "held_out_subjects=[uiprmd-s09]",
            "sft.max_steps=2",
            "sft.max_seconds=0",
            "sft.batch_size=2",
            "eval.max_questions=2",
            "eval.n=2",
            "eval.max_new_tokens=24",
            "eval.batch_size=8",
        ],
    )
    return run_train_policy(cfg)


def test_job_writes_an_adapter_the_engine_loads(trained: dict) -> None:
    import torch

    from physio_ray.llm.engine import EngineConfig, SamplingParams
    from physio_ray.llm.hf_engine import HFEngine
    from physio_ray.llm.smollm2 import load_causal_lm

    out = Path(trained["output_dir"])
    assert {p.name for p in (out / "adapter").iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert (out / "policy_loss.png").stat().st_size > 1000
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2-135m"  # not this machine's cache path
    card = (out / "adapter" / "README.md").read_text()
    assert "held out (never trained on): uiprmd-s09" in card and "| this adapter |" in card
    engine = HFEngine(EngineConfig(adapter=str(out / "adapter"), max_batch_size=2))
    base, _ = load_causal_lm("smollm2-135m", "float32")
    name = "model.layers.29.self_attn.q_proj.weight"
    merged_w = dict(engine.model.named_parameters())[name]
    base_w = dict(base.named_parameters())[name]
    assert not torch.equal(merged_w, base_w)  # two steps moved the adapter off its zero init
    assert not any(n.endswith(".weight") and "lora" in n for n, _ in engine.model.named_parameters())  # merged
    (gen,) = engine.generate(["Say yes."], SamplingParams(n=1, temperature=0.0, max_new_tokens=4))
    assert gen.error is None and gen.texts[0]


def test_eval_sits_beside_its_baselines_on_held_out_people(trained: dict) -> None:
    saved = json.loads((Path(trained["output_dir"]) / "policy_eval.json").read_text())
    assert saved["held_out_subjects"] == ["uiprmd-s09"]
    assert "uiprmd-s09" not in saved["train"]["subjects"]
    assert saved["train"]["steps"] == 2 and len(saved["history"]) == 2
    assert saved["policy"]["n_questions"] == 2 and saved["policy"]["n_solutions"] == 4
    base = saved["baselines"]
    assert set(base) == {"untrained", "majority_letter", "template_prior"}
    assert base["untrained"]["n_questions"] == 2


def test_missing_questions_fail_with_the_command_that_writes_them(tmp_path: Path) -> None:
    job = [sys.executable, str(REPO / "jobs/train_policy.py"), str(REPO / "configs/train_policy/local.yaml")]
    done = subprocess.run(
        [*job, f"questions_dir={tmp_path}", f"output_dir={tmp_path}/o"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "configs/annotate/policy_questions.yaml" in done.stderr
    helped = subprocess.run([*job[:2], "--help"], capture_output=True, text=True, check=True).stdout
    assert "sampler.engine.adapter=DIR" in helped and "policy_eval.json" in helped
