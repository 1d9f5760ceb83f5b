"""Frozen text-tower hidden states at the step markers, computed once and reused across folds.

With a frozen text tower the PRM's score of step ``k`` depends only on the tower's hidden
state at the ``k``-th marker (the head reads that position, and the pose cross-attention
uses text positions as independent queries), so grouped cross-validation and ablations only
need ``[n_steps, H]`` per example and per layer. Reading layer ``k`` of the full tower (after
its final norm) is exactly what ``text.num_layers=k`` computes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from physio_ray.prm.data import PRMExample
from physio_ray.prm.tokenize import PRMTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class MarkerStates:
    """One example's text-tower states at its step markers.

    Attributes:
        solution_id: the example's id.
        layers: layer number -> float32 ``[n_steps, H]`` (after the final norm).
        n_steps: steps whose marker fit in ``prompt.max_length``.
        n_tokens: tokens the tower read.
        shortened: whether the prompt was cut to fit (question, options or steps dropped).
    """

    solution_id: str
    layers: dict[int, np.ndarray]
    n_steps: int
    n_tokens: int
    shortened: bool


@torch.no_grad()
def marker_states(
    text_model: Any, prm_tok: PRMTokenizer, examples: Sequence[PRMExample], layers: Sequence[int]
) -> list[MarkerStates | None]:
    """Hidden states at the markers for every example (``None`` for one that cannot be encoded).

    Args:
        text_model: the full HF causal LM (with the marker row added, e.g. inside a :class:`PRMModel`).
        prm_tok: the tokenizer wrapper (prompt settings decide truncation).
        examples: the examples.
        layers: decoder layers to read (1-based; the last layer is the tower's output).

    Returns:
        One :class:`MarkerStates` per example, in order.

    Raises:
        ValueError: when a layer is outside ``1..num_hidden_layers``.
    """
    base = text_model.get_base_model() if hasattr(text_model, "get_base_model") else text_model
    decoder = base.get_decoder()
    total = int(base.config.num_hidden_layers)
    if any(not 1 <= k <= total for k in layers):
        raise ValueError(f"layers {list(layers)} must lie in 1..{total}")
    out: list[MarkerStates | None] = []
    for ex in examples:
        try:
            enc = prm_tok.encode(ex)
        except ValueError as exc:
            logger.warning("no marker states for %s: %s", ex.solution_id, exc)
            out.append(None)
            continue
        full = len(prm_tok._ids(prm_tok.render(ex)))
        ids = torch.as_tensor(enc.input_ids)[None]
        res = decoder(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        pos = torch.as_tensor(np.nonzero(enc.step_index >= 0)[0])
        states = {}
        for k in layers:
            h = res.last_hidden_state if k == total else decoder.norm(res.hidden_states[k])
            states[int(k)] = h[0, pos].float().numpy()
        out.append(MarkerStates(ex.solution_id, states, enc.n_steps, len(enc.input_ids), full > prm_tok.cfg.max_length))
    return out
