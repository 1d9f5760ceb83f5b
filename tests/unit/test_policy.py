"""The policy's training data, loss and evaluation bookkeeping (no Ray; the real SmolLM2 tokenizer)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from physio_ray.llm.engine import EngineConfig
from physio_ray.llm.sampler import solution_prompt
from physio_ray.policy.data import rotate, sft_examples, split_by_subject, subject_of
from physio_ray.policy.evaluate import constant_baselines, summarise
from physio_ray.policy.run import PolicyEvalSettings, run_policy_sft
from physio_ray.policy.train import IGNORE, PolicySFTSettings, collate_left, encode_example, target_loss
from tests.conftest import ASSETS

FRAME = pd.read_parquet(ASSETS / "policy" / "questions.parquet")


def test_examples_rotate_the_answer_over_every_letter_and_use_the_sampler_prompt() -> None:
    ex = sft_examples(FRAME, rotations=4, seed=0)
    with_reference = FRAME[FRAME.template != "rep_count"]
    assert len(ex) == 4 * len(with_reference)
    assert Counter(e["answer"] for e in ex) == Counter({letter: len(with_reference) for letter in "ABCD"})
    row = with_reference.iloc[0]
    first = [e for e in ex if e["question_id"] == row.question_id]
    for shift, e in enumerate(first):
        options, letter = rotate(list(row.options), row.answer, shift)
        assert e["target"].endswith(f"Answer: {letter}")
        # the prompt is the sampler's, for one of the 4 worked-example rotations
        assert e["prompt"] in {solution_prompt(row.question, options, row.features, k) for k in range(4)}
    with pytest.raises(ValueError, match="rotations=5"):
        sft_examples(FRAME, rotations=5)


def test_split_by_subject_keeps_people_apart() -> None:
    train, test = split_by_subject(FRAME, ["uiprmd-s09"])
    assert {subject_of(r["video_id"]) for r in test} == {"uiprmd-s09"}
    assert "uiprmd-s09" not in {subject_of(r["video_id"]) for r in train}
    assert len(train) + len(test) == len(FRAME)
    with pytest.raises(ValueError, match="subjects in both"):
        run_policy_sft(train, train[:2], PolicySFTSettings(), PolicyEvalSettings(), "/nonexistent")


def test_loss_is_on_the_target_only_and_equals_the_full_model_loss() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from physio_ray.llm.smollm2 import load_causal_lm

    _, tok = load_causal_lm("smollm2-135m", "float32")
    ex = sft_examples(FRAME.head(4), rotations=1)
    encoded = [encode_example(tok, e["prompt"], e["target"]) for e in ex[:2]]
    ids, labels = encoded[0]
    n_target = sum(1 for t in labels if t != IGNORE)
    assert ids[-n_target:] == labels[-n_target:] and labels[-1] == tok.eos_token_id
    assert tok.decode(ids[-n_target:-1]) == ex[0]["target"]
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
        )
    ).eval()
    batch = collate_left(encoded, [0, 1], tok.eos_token_id)
    with torch.no_grad():
        ours = float(target_loss(model, batch))
        # the reference: each example alone, unpadded, transformers' own shifted loss
        per = [model(input_ids=torch.tensor([x]), labels=torch.tensor([y])).loss for x, y in encoded]
        counts = [sum(1 for t in y if t != IGNORE) for _, y in encoded]
    expected = float(sum(loss * c for loss, c in zip(per, counts, strict=True)) / sum(counts))
    assert ours == pytest.approx(expected, rel=1e-4)


def test_summary_counts_questions_not_samples() -> None:
    correct = {"q1": [True, False, False, False], "q2": [True, True, True, True], "q3": [False] * 4}
    out = summarise(correct, {"q1": "a", "q2": "a", "q3": "b"})
    assert out["n_questions"] == 3 and out["n_solutions"] == 12
    assert out["accuracy"] == pytest.approx((0.25 + 1 + 0) / 3, abs=1e-4)
    assert out["mixed"] == pytest.approx(1 / 3, abs=1e-4)
    assert out["per_template"]["a"] == {"n": 2, "accuracy": 0.625, "mixed": 0.5}
    lo, hi = out["accuracy_ci95"]
    assert 0 <= lo <= out["accuracy"] <= hi <= 1


def test_constant_baselines_learn_on_train_and_score_on_test() -> None:
    train, test = split_by_subject(FRAME, ["uiprmd-s09"])
    out = constant_baselines(train, test)
    prior = out["template_prior"]["answers"]
    assert prior["rep_count"] == "1 complete repetition"  # UI-PRMD's segmented recordings hold one rep each
    right = [list(r["options"])["ABCD".index(r["answer"])] for r in test]
    expected = np.mean([prior.get(r["template"]) == text for r, text in zip(test, right, strict=True)])
    assert out["template_prior"]["accuracy"] == pytest.approx(expected, abs=1e-4)


def test_engine_adapter_needs_the_local_engine_and_an_existing_folder() -> None:
    from physio_ray.llm.adapters import resolve_adapter

    with pytest.raises(ValueError, match="engine.kind=hf"):
        EngineConfig(kind="openai", base_url="http://x", adapter="outputs/train-policy-local/adapter")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        resolve_adapter("no/such/adapter")


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        PolicySFTSettings(learning_rate=0)
    with pytest.raises(ValueError, match="max_seconds"):
        PolicySFTSettings(max_seconds=-1)
    with pytest.raises(ValueError, match="max_questions"):
        PolicyEvalSettings(max_questions=-1)


def test_the_job_prints_the_policy_beside_its_baselines() -> None:
    import json

    from physio_ray.policy.loop import render_policy_eval

    saved = json.loads((ASSETS / "quality" / "policy" / "policy_eval.json").read_text())
    text = render_policy_eval(saved)
    assert "32 questions, 128 solutions" in text
    assert "trained policy               0.508 [0.398, 0.617]   0.750" in text
    assert "untrained model              0.234 [0.164, 0.305]   0.719" in text
    assert "template_prior               0.594 [0.438, 0.750]" in text
    assert "trained 218 steps on 2056 examples" in text


@pytest.mark.usefixtures("one_torch_thread")
def test_sample_correctness_reads_every_sample_and_reports_progress() -> None:
    from physio_ray.llm.config import SamplerConfig
    from physio_ray.llm.hf_engine import HFEngine
    from physio_ray.llm.sampler import SolutionSampler
    from physio_ray.policy.evaluate import sample_correctness

    rows = FRAME.head(3).to_dict("records")
    sampler = SolutionSampler(SamplerConfig(n=2, max_new_tokens=16, seed=0), engine=HFEngine(EngineConfig()))
    calls: list[tuple[int, int]] = []
    correct = sample_correctness(sampler, rows, batch=2, on_batch=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 3), (3, 3)]
    assert set(correct) == {r["question_id"] for r in rows}
    # 16 tokens end before "Answer: X": an unreadable answer counts as wrong, never as missing
    assert all(v == [False, False] for v in correct.values())
