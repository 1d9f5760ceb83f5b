"""Retrieval with the embedded MiniLM over the shipped physiotherapy corpus (real model, real corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physio_ray.annotate.retrieval import DEFAULT_CORPUS, MiniLMEmbedder, Retriever, load_corpus


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def retriever(embedder: MiniLMEmbedder) -> Retriever:
    return Retriever(embedder=embedder)


def test_shipped_corpus_is_sound_and_cited() -> None:
    passages = load_corpus()
    assert len(passages) == 61 and len({p.id for p in passages}) == 61
    for p in passages:
        # every passage cites a public source: an author-year reference, a guideline or a dataset paper
        assert any(ch.isdigit() for ch in p.source) and len(p.source) > 20, p.id
        assert 40 < len(p.text) < 1200, p.id
    assert DEFAULT_CORPUS.name == "physio_corpus.jsonl"


def test_minilm_embeddings_are_unit_norm_and_semantic(embedder: MiniLMEmbedder) -> None:
    vecs = embedder.encode(["knee valgus during a squat", "knees collapse inward when squatting", "price of bread"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sim = vecs @ vecs.T
    assert sim[0, 1] > 0.6 > 0.2 > sim[0, 2]
    assert embedder.encode([]).shape == (0, 384)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Knees collapse inward (dynamic knee valgus) during the squat", "valgus-definition"),
        ("How deep should a squat go? Below parallel knee angle", "squat-depth-bands"),
        ("The shoulder hikes up toward the ear while raising the arm sideways", "shoulder-abduction-faults"),
        ("Rising from a chair using the arms to push up", "sts-compensations"),
    ],
)
def test_search_finds_the_relevant_passage(retriever: Retriever, query: str, expected: str) -> None:
    ids = [p.id for p in retriever.search(query, k=3)]
    assert expected in ids, ids


def test_search_scores_and_limits(retriever: Retriever) -> None:
    hits = retriever.search("ankle dorsiflexion limits squat depth", k=5)
    scores = [p.score for p in hits]
    assert len(hits) == 5 and scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0
    assert retriever.search("anything", k=0) == []
    assert len(retriever.search("anything", k=1000)) == len(retriever.passages)
    batch = retriever.search_batch(["heel rise", "painful arc"], k=2)
    assert [len(b) for b in batch] == [2, 2] and retriever.search_batch([], k=2) == []
    assert [p.id for p in batch[0]] == [p.id for p in retriever.search("heel rise", k=2)]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["not json"], "not valid JSON"),
        (["[1, 2]"], "expected a JSON object"),
        ([json.dumps({"id": "a", "title": "t", "text": "x"})], "missing or empty"),
        ([json.dumps({"id": "a", "title": "t", "text": "x", "source": "s"})] * 2, "duplicate passage id"),
        ([""], "no passages"),
    ],
)
def test_bad_corpus_files_are_refused_with_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_corpus(path)
    with pytest.raises(FileNotFoundError, match="judge.corpus"):
        load_corpus(tmp_path / "missing.jsonl")


def test_custom_corpus(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = tmp_path / "c.jsonl"
    rows = [
        {"id": "a", "title": "Hamstring stretch", "text": "Static stretching of the hamstrings.", "source": "S 2020"},
        {"id": "b", "title": "Rotator cuff", "text": "External rotation strengthening.", "source": "R 2019"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    r = Retriever(path, embedder=embedder)
    assert r.search("stretch the back of the thigh", k=1)[0].id == "a"
