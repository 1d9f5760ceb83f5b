"""``physio_ray.prm.scoring.score_solution`` on a tiny checkpoint written by the checkpoint writer (no Ray)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from physio_ray.prm import scoring
from physio_ray.prm.checkpoint import save_checkpoint
from physio_ray.prm.config import PoseTowerConfig, PRMModelConfig, PromptConfig, TextTowerConfig, VisionTowerConfig
from physio_ray.prm.data import PRMExample
from physio_ray.prm.model import build_prm_model

MODEL = PRMModelConfig(
    text=TextTowerConfig(num_layers=1),
    vision=VisionTowerConfig(kind="pose", pose=PoseTowerConfig(d_model=16, layers=1, heads=2)),
)
PROMPT = PromptConfig(max_length=128, chat_template=False)
QUESTION = "How deep is the squat?"
OPTIONS = ["Quarter squat", "Half squat", "Parallel", "Deep squat"]
STEPS = ["Step 1: the knee angle at the bottom is 95 degrees ки", "Step 2: so about parallel. The answer is (C) ки"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    torch.manual_seed(0)
    model, prm_tok = build_prm_model(MODEL, PROMPT)
    with torch.no_grad():  # a trained-looking head: not the LM's own rows any more
        model.head.weight.add_(0.05 * torch.randn_like(model.head.weight))
    folder = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "prm", model.trainable_state_dict(), MODEL, PROMPT)
    ex = PRMExample("q", "s", QUESTION, OPTIONS, STEPS, [None, None])
    (expected,) = scoring.score_examples(model, prm_tok, [ex])
    assert expected is not None
    return folder, expected.tolist()


def test_scores_match_the_saved_model_and_load_once(checkpoint) -> None:
    folder, expected = checkpoint
    scoring._cached_scorer.cache_clear()
    probs = scoring.score_solution(folder, QUESTION, OPTIONS, STEPS)
    assert len(probs) == 2 and all(0.0 <= p <= 1.0 for p in probs)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    again = scoring.score_solution(str(folder / ".." / "prm"), QUESTION, OPTIONS, STEPS)  # same resolved path
    np.testing.assert_allclose(again, probs, atol=1e-7)
    assert scoring._cached_scorer.cache_info().misses == 1


def test_pose_features_are_read(checkpoint) -> None:
    folder, _ = checkpoint
    probs = scoring.score_solution(folder, QUESTION, OPTIONS, STEPS, features=np.full((4, 16), 90.0).tolist())
    assert len(probs) == 2 and all(math.isfinite(p) for p in probs)


def test_bad_input_is_refused(checkpoint, tmp_path: Path) -> None:
    folder, _ = checkpoint
    with pytest.raises(ValueError, match="step marker"):
        scoring.score_solution(folder, QUESTION, OPTIONS, ["Step 1: no marker"])
    with pytest.raises(FileNotFoundError, match="not a PRM checkpoint"):
        scoring.score_solution(tmp_path, QUESTION, OPTIONS, STEPS)


def test_lora_text_tower_trains_only_its_adapters_and_scores_from_its_checkpoint(tmp_path: Path) -> None:
    """``model.text.mode: lora`` puts the shared ``lora:`` block's adapters (r 2 on q_proj) into the
    text tower; only they, the head and the pose tower train, and a checkpoint scores as the model did."""
    from physio_ray.train_runtime import LoraSettings

    cfg = PRMModelConfig(
        text=TextTowerConfig(
            num_layers=1, mode="lora", lora=LoraSettings(r=2, alpha=4, dropout=0.0, target_modules=["q_proj"])
        ),
        vision=MODEL.vision,
    )
    torch.manual_seed(0)
    model, prm_tok = build_prm_model(cfg, PROMPT)
    text_trainable = {n: tuple(p.shape) for n, p in model.text.named_parameters() if p.requires_grad}
    # SmolLM2-135M: hidden 576, one decoder layer kept -> lora_A [2, 576] and lora_B [576, 2] on q_proj
    assert sorted(text_trainable.values()) == [(2, 576), (576, 2)]
    assert all("lora_" in n and "q_proj" in n for n in text_trainable)
    with torch.no_grad():  # adapters that change the output (lora_B starts at zero)
        for p in model.text_parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = save_checkpoint(tmp_path / "prm", model.trainable_state_dict(), cfg, PROMPT)
    ex = PRMExample("q", "s", QUESTION, OPTIONS, STEPS, [None, None])
    (expected,) = scoring.score_examples(model, prm_tok, [ex])
    got = scoring.score_solution(folder, QUESTION, OPTIONS, STEPS)
    np.testing.assert_allclose(got, expected.tolist(), atol=1e-5)
