"""Nucleus (top-p) filtering without sorting the whole vocabulary, for the HF engine.

transformers' ``TopPLogitsWarper`` sorts every row of the vocabulary (49,152 logits for
SmolLM2) at every decoding step; on a CPU that sort was 12% of a batched sampling call
(57 ms per step for 16 rows, ``benchmarks/bench_sampling.py``). The kept set only ever
reaches as far as the smallest run of most likely tokens whose mass reaches ``top_p``,
and for a trained model that run is short, so :class:`TopKNucleus` looks for it among
the ``candidates`` most likely tokens (``torch.topk``) and sorts the full row only for a
row whose candidates do not reach ``top_p`` (a very flat distribution).

It keeps the same tokens as ``TopPLogitsWarper``: a token is removed when the mass of the
tokens strictly more likely than it already reaches ``top_p`` (HF's rule, "the ascending
cumulative probability up to and including the token is at most ``1 - top_p``", said from
the top), and the most likely token is always kept. Only float rounding exactly at the
boundary, or a tie between equal logits there, can differ.
"""

from __future__ import annotations

from typing import cast

import torch
from transformers import LogitsProcessor, TopPLogitsWarper

DEFAULT_CANDIDATES = 256


class TopKNucleus(LogitsProcessor):
    """Masks (to ``-inf``) every token outside the nucleus of mass ``top_p``.

    Args:
        top_p: nucleus mass, in (0, 1).
        candidates: how many of the most likely tokens are searched before falling back to
            a full sort of the row.

    Raises:
        ValueError: for ``top_p`` outside (0, 1) or ``candidates < 1``.
    """

    def __init__(self, top_p: float, candidates: int = DEFAULT_CANDIDATES) -> None:
        if not 0 < top_p < 1:
            raise ValueError(f"top_p={top_p} must be in (0, 1) (1 keeps every token: no filter needed)")
        if candidates < 1:
            raise ValueError(f"candidates={candidates} must be >= 1")
        self.top_p = float(top_p)
        self.candidates = int(candidates)
        self._full = TopPLogitsWarper(top_p=top_p)
        self.fallback_rows = 0  # rows that needed the full sort (for tests and curiosity)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(self.candidates, scores.shape[-1])
        probs = scores.softmax(dim=-1)
        top, idx = probs.topk(k, dim=-1)  # descending
        before = top.cumsum(dim=-1) - top  # mass of the strictly more likely candidates
        keep = before < self.top_p
        keep[..., 0] = True
        remove = torch.ones_like(scores, dtype=torch.bool).scatter(-1, idx, ~keep)
        out = scores.masked_fill(remove, float("-inf"))
        short = (top.sum(dim=-1) < self.top_p).nonzero().flatten()
        if short.numel():
            self.fallback_rows += int(short.numel())
            out[short] = self._full(input_ids[short], scores[short])
        return cast(torch.FloatTensor, out)
