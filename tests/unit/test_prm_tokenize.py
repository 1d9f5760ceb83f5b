"""The step marker is one token and labels sit exactly on the markers (SmolLM2's tokenizer)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from physio_ray import schemas as S
from physio_ray.prm.config import LabelConfig, PromptConfig, TextTowerConfig
from physio_ray.prm.data import PRMExample
from physio_ray.prm.medprm import load_medprm
from physio_ray.prm.model import load_text_tokenizer
from physio_ray.prm.tokenize import IGNORE, PRMTokenizer
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def hf_tokenizer():
    return load_text_tokenizer(TextTowerConfig())


@pytest.fixture(scope="module")
def examples() -> list[PRMExample]:
    path = shared_path("medprm-samples", "medprm_samples_80.json")
    return load_medprm(str(path), LabelConfig(source="soft"))


def test_marker_is_one_special_token(hf_tokenizer) -> None:
    tok = PRMTokenizer(hf_tokenizer)
    ids = hf_tokenizer.encode("Step 1: a. ки Step 2: bки" + S.STEP_MARKER, add_special_tokens=False)
    assert ids.count(tok.marker_id) == 2  # "bки" without the space is not a marker
    assert tok.marker_piece_ids == [31338, 7872]  # how SmolLM2 split " ки" before
    assert (tok.plus_id, tok.minus_id) == (1232, 731)
    assert PRMTokenizer(hf_tokenizer).marker_id == tok.marker_id  # adding twice is a no-op


@pytest.mark.parametrize("chat_template", [True, False])
def test_alignment_on_all_80_records(hf_tokenizer, examples, chat_template: bool) -> None:
    tok = PRMTokenizer(hf_tokenizer, PromptConfig(chat_template=chat_template))
    assert len(examples) == 80
    for ex in examples:
        enc = tok.encode(ex)
        positions = np.nonzero(enc.input_ids == tok.marker_id)[0]
        assert len(positions) == len(ex.steps) == enc.n_steps, ex.solution_id
        assert positions[-1] == len(enc.input_ids) - 1  # cut right after the last marker
        labelled = np.nonzero(enc.labels != IGNORE)[0]
        assert labelled.tolist() == positions.tolist()
        assert enc.labels[positions].tolist() == pytest.approx(ex.labels)
        assert enc.step_index[positions].tolist() == list(range(len(ex.steps)))
        assert (enc.step_index >= 0).sum() == len(ex.steps)
        # the tokens between two markers decode to exactly that step's text
        starts = [_find(enc.input_ids.tolist(), hf_tokenizer.encode("Solution:", add_special_tokens=False))]
        starts += positions[:-1].tolist()
        for k, (a, b) in enumerate(zip(starts, positions, strict=False)):
            text = hf_tokenizer.decode(enc.input_ids[a + 1 : b].tolist()).strip()
            assert text == ex.steps[k][: -len(S.STEP_MARKER)].strip(), (ex.solution_id, k)


def _find(ids: list[int], sub: list[int]) -> int:
    """Index of the last token of the first occurrence of ``sub`` in ``ids``."""
    for i in range(len(ids) - len(sub) + 1):
        if ids[i : i + len(sub)] == sub:
            return i + len(sub) - 1
    raise AssertionError(f"{sub} not found")


def test_truncation_keeps_alignment(hf_tokenizer, examples, caplog) -> None:
    tok = PRMTokenizer(hf_tokenizer, PromptConfig(max_length=160))
    with caplog.at_level(logging.WARNING, logger="physio_ray.prm.tokenize"):
        encoded = [tok.encode(ex) for ex in examples[:10]]
    for ex, enc in zip(examples, encoded, strict=False):
        assert len(enc.input_ids) <= 160
        positions = np.nonzero(enc.input_ids == tok.marker_id)[0]
        assert 1 <= len(positions) == enc.n_steps <= len(ex.steps)
        assert enc.labels[positions].tolist() == pytest.approx(ex.labels[: enc.n_steps])
    assert "steps fit in max_length=160" in caplog.text


def test_unlabelled_steps_are_ignored(hf_tokenizer, examples) -> None:
    tok = PRMTokenizer(hf_tokenizer)
    ex = dataclasses.replace(examples[0], labels=[None, 1.0, None, 0.0, None, 0.0])
    enc = tok.encode(ex)
    positions = np.nonzero(enc.input_ids == tok.marker_id)[0]
    assert enc.labels[positions].tolist() == [IGNORE, 1.0, IGNORE, 0.0, IGNORE, 0.0]
    assert enc.step_index[positions].tolist() == [0, 1, 2, 3, 4, 5]


def test_collate_pads_text_and_vision(hf_tokenizer, examples) -> None:
    tok = PRMTokenizer(hf_tokenizer, PromptConfig(max_length=192))
    vis = np.ones((3, 16), dtype=np.float32)
    exs = [dataclasses.replace(examples[0], vision=vis), examples[1], dataclasses.replace(examples[2], vision=vis[:2])]
    enc = [tok.encode(e) for e in exs]
    batch = tok.collate(enc)
    lengths = [len(e.input_ids) for e in enc]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["vision"].shape == (3, 3, 16)
    assert batch["vision_mask"].tolist() == [[True] * 3, [False] * 3, [True, True, False]]
    assert torch.equal(batch["labels"] != IGNORE, batch["step_index"] >= 0)
    assert "vision" not in tok.collate(enc[1:2])
