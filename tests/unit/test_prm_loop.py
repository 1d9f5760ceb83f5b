"""The PRM training loop without Ray: resume equals an uninterrupted run, NaN stops, checkpoints load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from physio_ray.prm.checkpoint import load_checkpoint, load_checkpoint_config
from physio_ray.prm.config import (
    LabelConfig,
    OptimConfig,
    PRMModelConfig,
    PromptConfig,
    TextTowerConfig,
    TrainLoopConfig,
    TrainPRMConfig,
    VisionTowerConfig,
)
from physio_ray.prm.loop import fit_prm
from physio_ray.prm.medprm import load_medprm
from physio_ray.prm.model import PRMModel, load_text_tower
from physio_ray.prm.tokenize import PRMTokenizer
from physio_ray.train_runtime import RunSettings
from tests.conftest import shared_path

MODEL = PRMModelConfig(text=TextTowerConfig(num_layers=1), vision=VisionTowerConfig(kind="none"))
PROMPT = PromptConfig(max_length=256, chat_template=False, include_options=False)


class FakeReporter:
    """Keeps every report and copies checkpoint folders (they are temporary)."""

    def __init__(self, root: Path, resume: str | None = None) -> None:
        self.rank, self.world_size = 0, 1
        self.root, self.resume = root, resume
        self.reports: list[tuple[dict, str | None]] = []

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        kept = None
        if checkpoint_dir:
            kept = str(self.root / f"ckpt-{metrics['step']}")
            shutil.copytree(checkpoint_dir, kept)
        self.reports.append((metrics, kept))

    def latest_checkpoint(self) -> str | None:
        return self.resume


@pytest.fixture(scope="module")
def text_tower():
    return load_text_tower(MODEL.text)


@pytest.fixture(scope="module")
def splits():
    examples = load_medprm(str(shared_path("medprm-samples", "medprm_samples_80.json")), LabelConfig())[:12]
    test = [ex for ex in examples if 0.0 in ex.labels[:3]][:2]  # held-out steps of both classes
    train = [ex for ex in examples if ex not in test][:8]
    return train, [], test


def _cfg(max_steps: int, **optim) -> TrainPRMConfig:
    return TrainPRMConfig(
        model=MODEL,
        prompt=PROMPT,
        optim=OptimConfig(**{"lr": 1e-3, **optim}),
        train=TrainLoopConfig(max_steps=max_steps, batch_size=3, warmup_steps=1),
        run=RunSettings(checkpoint_every=2),
    )


def _fit(cfg, text_tower, splits, reporter):
    lm, tok = text_tower
    prm_tok = PRMTokenizer(tok, cfg.prompt)
    torch.manual_seed(0)
    return fit_prm(cfg, *splits, reporter, built=(PRMModel(lm, prm_tok, cfg.model), prm_tok))


def test_resume_continues_like_an_uninterrupted_run(tmp_path: Path, text_tower, splits) -> None:
    full = FakeReporter(tmp_path / "full")
    end = _fit(_cfg(4), text_tower, splits, full)
    assert [m["step"] for m, _ in full.reports] == [2, 4]
    assert end["step"] == 4 and len(end["history"]) == 4
    assert 0.0 <= end["test_step_auc"] <= 1.0 and end["test_labelled_steps"] > 0
    assert "baseline_test_step_auc" in end

    first = FakeReporter(tmp_path / "first")
    _fit(_cfg(2), text_tower, splits, first)
    ckpt = first.reports[-1][1]
    model_state, state = load_checkpoint(ckpt)
    assert state["step"] == 2 and "optimizer" in state and set(model_state) == {"head.weight"}
    assert load_checkpoint_config(ckpt) == (MODEL, PROMPT)

    second = FakeReporter(tmp_path / "second", resume=ckpt)
    resumed = _fit(_cfg(4), text_tower, splits, second)
    assert [m["step"] for m, _ in second.reports] == [4]
    losses = [h[1] for h in resumed["history"]]
    assert losses == pytest.approx([h[1] for h in end["history"]], rel=1e-4)
    assert resumed["test_step_auc"] == pytest.approx(end["test_step_auc"], abs=1e-6)


def test_nan_loss_stops_with_the_step(tmp_path: Path, text_tower, splits, monkeypatch) -> None:
    from physio_ray.prm import loop

    calls = []

    def poisoned(logits, labels):  # the 3rd micro-batch (training step 2 with batch 3 x 1) goes NaN
        calls.append(1)
        value = loop_loss(logits, labels)
        return value * float("nan") if len(calls) == 2 else value

    loop_loss = loop.prm_loss
    monkeypatch.setattr(loop, "prm_loss", poisoned)
    reporter = FakeReporter(tmp_path)
    out = _fit(_cfg(3), text_tower, splits, reporter)
    assert out["stopped"] == "nan" and out["step"] == 1
    assert "training step 2" in out["message"] and "medprm-" in out["message"]
    assert reporter.reports[-1][1] is None  # no checkpoint of a broken model
