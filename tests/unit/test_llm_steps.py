"""Steps ending in " ки", strict answer parsing, the solution prompt and the marker token."""

from __future__ import annotations

import doctest
import importlib

import pytest

from physio_ray.llm.steps import (
    build_solution_prompt,
    features_to_text,
    marker_token_id,
    parse_answer,
    register_step_marker,
    split_steps,
)
from physio_ray.schemas import STEP_MARKER


@pytest.mark.parametrize("module", ["physio_ray.llm.steps", "physio_ray.llm.hf_engine", "physio_ray.llm.openai_engine"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def _one_marker_each(steps: list[str]) -> None:
    for s in steps:
        assert s.endswith(STEP_MARKER) and s.count("ки") == 1, s


# ------------------------------------------------------------------ split_steps


def test_split_on_model_markers_and_headers() -> None:
    text = "Step 1: knee flexes to 75 degrees ки\nStep 2: that is a deep squat ки\nAnswer: B"
    steps = split_steps(text)
    assert steps == ["Step 1: knee flexes to 75 degrees ки", "Step 2: that is a deep squat ки", "Answer: B ки"]
    _one_marker_each(steps)


def test_split_markers_glued_or_repeated_collapse_to_one() -> None:
    steps = split_steps("Step 1: hips drop ки ки\nStep 2: trunk leans forwardки Answer: C")
    assert steps == ["Step 1: hips drop ки", "Step 2: trunk leans forward ки", "Answer: C ки"]
    _one_marker_each(steps)


def test_split_without_markers_uses_headers_lines_then_sentences() -> None:
    assert split_steps("1. The knee bends.\n2) The hip bends.\nThe answer is A") == [
        "1. The knee bends. ки",
        "2) The hip bends. ки",
        "The answer is A ки",
    ]
    assert split_steps("first line\n\n  second line  \n") == ["first line ки", "second line ки"]
    assert split_steps("The knee bends. The hip follows! Then (A) fits.") == [
        "The knee bends. ки",
        "The hip follows! ки",
        "Then (A) fits. ки",
    ]


def test_split_keeps_cyrillic_words_and_drops_empty_steps() -> None:
    # "ки" inside a Cyrillic word is not a marker; punctuation-only pieces are dropped
    steps = split_steps("Step 1: кинетика колена ки\n... ки\nStep 2: ok ки")
    assert steps == ["Step 1: кинетика колена ки", "Step 2: ok ки"]


def test_split_merges_past_max_steps_without_losing_text() -> None:
    text = "\n".join(f"Step {k}: s{k} ки" for k in range(1, 7))
    steps = split_steps(text, max_steps=3)
    assert steps == ["Step 1: s1 ки", "Step 2: s2 ки", "Step 3: s3 Step 4: s4 Step 5: s5 Step 6: s6 ки"]
    _one_marker_each(steps)


def test_split_edge_cases() -> None:
    assert split_steps("") == [] and split_steps("   \n ") == [] and split_steps(None) == []  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_steps"):
        split_steps("a", max_steps=0)


# ------------------------------------------------------------------ parse_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 1: x ки\nAnswer: B", "B"),
        ("**Answer: C**", "C"),
        ("The final answer is (D).", "D"),
        ("the correct answer is option a.", "A"),
        ("Answer: \\boxed{C}", "C"),
        ("Answer: A\nOn reflection, the answer is B", "B"),  # the last cue wins
        ("reasoning...\n(C)", "C"),  # a bare last line
        ("Answer - b", "B"),
        ("answer: A or B", None),  # two letters
        ("Answer: A/C", None),
        ("the answer is not C", None),  # hedge
        ("The answer is unclear", None),
        ("the answer is a knee valgus", None),  # an article, not option A
        ("The movement is INCORRECT.", None),
        ("CORRECT", None),
        ("Answer: E", None),
        ("Answer: the knee", None),
        ("", None),
        ("Answer: B and B", "B"),  # repeating the same letter is not ambiguous
    ],
)
def test_parse_answer_is_strict(text: str, expected: str | None) -> None:
    assert parse_answer(text) == expected


# ------------------------------------------------------------------ prompt


def test_prompt_lists_options_and_asks_for_markers() -> None:
    prompt = build_solution_prompt("Which joint moves most?", ["Knee", " Hip ", "Ankle", "Wrist"], "knee.min: 71.2")
    assert "A) Knee [A]\nB) Hip [B]\nC) Ankle [C]\nD) Wrist [D]" in prompt
    # the worked example ends the way a solution should: the matching option's text, its tag, the answer
    example = prompt.split("Example:\n", 1)[1].split("\n\nNow the real case", 1)[0].splitlines()
    letter = example[-1].removeprefix("Answer: ")
    assert example[-2].startswith("Step 3: The matching option is ") and example[-2].endswith(
        f"[{letter}].{STEP_MARKER}"
    )
    assert f"{letter}) {example[-2].split(' is ', 1)[1].rsplit(' [', 1)[0]} [{letter}]" in example
    assert "knee.min: 71.2" in prompt and f"'{STEP_MARKER}'" in prompt and "Answer: X" in prompt
    assert "(no measurements)" in build_solution_prompt("q", ["a", "b", "c", "d"], "  ")
    with pytest.raises(ValueError, match="exactly 4 options"):
        build_solution_prompt("q", ["a", "b", "c"], "")


def test_features_to_text_flattens_and_rounds() -> None:
    text = features_to_text({"reps": 2, "knee": {"min": 71.26, "range": [1.04, 2.0]}, "side": "left"})
    assert text == "reps: 2\nknee.min: 71.3\nknee.range: [1.0, 2.0]\nside: left"
    assert features_to_text(None) == "" and features_to_text("not json") == "not json"
    assert features_to_text('{"a": [' + ",".join(["1.0"] * 20) + "]}").endswith(", ...]")
    assert len(features_to_text({f"k{i}": i for i in range(500)}, max_chars=100)) == 100


# ------------------------------------------------------------------ the marker as one token


@pytest.fixture(scope="module")
def private_tokenizer():  # noqa: ANN201
    from transformers import AutoTokenizer

    from physio_ray.llm.smollm2 import build_smollm2_cache

    return AutoTokenizer.from_pretrained(str(build_smollm2_cache()), local_files_only=True)


def test_register_step_marker_makes_one_token_and_grows_a_model(private_tokenizer) -> None:  # noqa: ANN001
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = private_tokenizer
    # before: SmolLM2's BPE splits " ки" into " к" + "и"
    assert tok.encode(STEP_MARKER, add_special_tokens=False) == [31338, 7872]
    with pytest.raises(ValueError, match="register_step_marker"):
        marker_token_id(tok)
    vocab_before = len(tok)
    torch.manual_seed(0)
    tiny = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab_before,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    tid = register_step_marker(tok, tiny)
    assert tid == vocab_before and len(tok) == vocab_before + 1 and marker_token_id(tok) == tid
    assert tiny.get_input_embeddings().weight.shape[0] == vocab_before + 1
    ids = tok.encode("Step 1: knee bends ки\nStep 2: ok ки", add_special_tokens=False)
    assert ids.count(tid) == 2
    assert tok.decode(ids, skip_special_tokens=True) == "Step 1: knee bends ки\nStep 2: ok ки"
    assert register_step_marker(tok, tiny) == tid and len(tok) == vocab_before + 1  # idempotent
