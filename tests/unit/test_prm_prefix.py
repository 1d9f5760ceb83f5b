"""Prefix sharing in PRM scoring (``physio_ray.prm.prefix``): the groups, and the same scores as a plain batch.

Real inputs: UI-PRMD question rows (measured evidence, question, options) of the policy asset,
with the reference reasoning of each option as 4 Best-of-N candidates per question, scored by
the embedded SmolLM2 (text tower cut to 2 layers) with and without sharing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from physio_ray.annotate.reference_solutions import reference_steps
from physio_ray.prm.api import request_example
from physio_ray.prm.config import PRMModelConfig, PromptConfig, TextTowerConfig, VisionTowerConfig
from physio_ray.prm.model import build_prm_model
from physio_ray.prm.prefix import prefix_groups
from physio_ray.prm.scoring import score_examples
from physio_ray.schemas import LETTERS
from tests.conftest import ASSETS


def test_groups_cover_every_row_once_and_keep_a_token_of_each() -> None:
    rows = [[1] * 20 + [2, 3], [9] * 30, [1] * 20 + [4], [1] * 20 + [2, 5, 6], [9] * 30]
    groups = prefix_groups(rows, min_shared=16)
    assert sorted(i for members, _ in groups for i in members) == [0, 1, 2, 3, 4]
    as_sets = {frozenset(m): shared for m, shared in groups}
    assert as_sets[frozenset({0, 2, 3})] == 20  # 0 and 3 share 21, but 2 joins at 20 (saves 20, costs 2)
    assert as_sets[frozenset({1, 4})] == 29  # identical rows: each keeps its last token
    assert prefix_groups([[1, 2, 3]], min_shared=1) == [([0], 0)]
    assert prefix_groups([], min_shared=1) == []


def test_a_short_common_prefix_is_not_shared() -> None:
    groups = prefix_groups([[1] * 10 + [2], [1] * 10 + [3]], min_shared=16)
    assert groups == [([0], 0), ([1], 0)]


def test_a_newcomer_that_would_cost_the_group_more_than_it_saves_starts_its_own_group() -> None:
    # Three rows share 100 tokens; a fourth shares only 20 with them: joining would cost 3 x 80.
    rows = [[1] * 100 + [k, 7] for k in (2, 3, 4)] + [[1] * 20 + [5] * 90]
    groups = {frozenset(m): shared for m, shared in prefix_groups(rows, min_shared=16)}
    assert groups[frozenset({0, 1, 2})] == 100
    assert groups[frozenset({3})] == 0


@pytest.fixture(scope="module")
def bon_examples() -> list:
    questions = pd.read_parquet(ASSETS / "policy" / "questions.parquet")
    out = []
    for row in questions.itertuples():
        options = [str(o) for o in row.options]
        for letter in LETTERS[: len(options)]:
            steps = reference_steps(str(row.template), str(row.exercise), options, letter, row.features)
            if steps:
                out.append(request_example(str(row.question), options, steps, None))
        if len(out) >= 12:
            break
    assert len(out) >= 12
    return out[:12]


def test_shared_scores_equal_plain_scores_on_best_of_n_candidates(
    bon_examples: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from physio_ray.prm import prefix

    calls: list[int] = []
    real = prefix.shared_hidden_states

    def spy(decoder, input_ids, attention_mask, min_shared=prefix.MIN_SHARED):  # noqa: ANN001, ANN202
        calls.append(int(input_ids.shape[0]))
        return real(decoder, input_ids, attention_mask, min_shared)

    monkeypatch.setattr(prefix, "shared_hidden_states", spy)
    torch.manual_seed(0)
    cfg = PRMModelConfig(text=TextTowerConfig(num_layers=2), vision=VisionTowerConfig(kind="none"))
    model, prm_tok = build_prm_model(cfg, PromptConfig(max_length=1024))
    # Candidates of 3 questions, shuffled so a batch mixes them (as Serve's batches do).
    order = np.random.default_rng(0).permutation(len(bon_examples))
    examples = [bon_examples[i] for i in order]
    plain = score_examples(model, prm_tok, examples, batch_size=12, share_prefix=False)
    assert calls == []
    shared = score_examples(model, prm_tok, examples, batch_size=12, share_prefix=True)
    assert calls == [12]  # the shared path ran, on the whole batch
    one_by_one = score_examples(model, prm_tok, examples, batch_size=1, share_prefix=True)
    for a, b, c in zip(plain, shared, one_by_one, strict=True):
        assert a is not None and b is not None and c is not None
        assert len(a) == len(b) >= 2
        np.testing.assert_allclose(b, a, atol=1e-5)
        np.testing.assert_allclose(c, a, atol=1e-5)
    rows = [prm_tok.encode(e).input_ids.tolist() for e in examples]
    groups = prefix_groups(rows)
    assert len(groups) == 3  # one per question: the 4 candidates share everything up to their findings
    assert all(len(m) == 4 and shared_len > 300 for m, shared_len in groups)
