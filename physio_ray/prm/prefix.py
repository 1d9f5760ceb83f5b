"""Scoring rows that share a token prefix: the prefix goes through the text tower once per group.

Best-of-N scores N candidate solutions of one question: their prompts are the same system
prompt, question (with the measured evidence) and options, and differ only from the solution
on. The text tower is causal, so the hidden states of the shared tokens do not depend on what
follows them: a group of rows with a common prefix of ``P`` tokens costs ``P + sum(len_i - P)``
token forwards instead of ``sum(len_i)``. On a CPU, where a batch of 8 costs about 8 single
forwards (compute-bound), this is the only saving a batch can buy; ``@serve.batch`` and Ray
Data batches of one question's candidates are where such groups form.

:func:`prefix_groups` decides the groups (pure); :func:`shared_hidden_states` runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MIN_SHARED = 16  # fewer shared tokens than this are not worth a separate forward pass


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_groups(rows: Sequence[Sequence[int]], min_shared: int = MIN_SHARED) -> list[tuple[list[int], int]]:
    """Groups rows by a shared token prefix.

    Rows are sorted by their tokens, so rows with long common prefixes become neighbours; a
    neighbour joins the current group while the group still shares ``min_shared`` tokens and
    what the group loses by sharing less (``members * (old - new)`` token forwards) is smaller
    than what the newcomer saves (``new``). Every row keeps at least one token of its own (the
    shared length is at most each member's length minus one), so identical rows still run.

    Args:
        rows: token ids per row, unpadded.
        min_shared: smallest prefix worth sharing.

    Returns:
        ``(member indices, shared length)`` per group, covering every row once; a row that
        shares nothing is a group of one with shared length 0.

    >>> prefix_groups([[1, 2, 3, 4, 9], [5, 6], [1, 2, 3, 4, 8, 7]], min_shared=3)
    [([2, 0], 4), ([1], 0)]
    >>> prefix_groups([[1, 2], [1, 2]], min_shared=1)  # identical: one token each stays their own
    [([0, 1], 1)]
    """
    order = sorted(range(len(rows)), key=lambda i: list(rows[i]))
    groups: list[tuple[list[int], int]] = []
    members: list[int] = []
    shared = 0
    for i in order:
        if members:
            new = min(shared, _common(rows[members[0]], rows[i]), len(rows[i]) - 1)
            if new >= min_shared and len(members) * (shared - new) < new:
                members.append(i)
                shared = new
                continue
            groups.append((members, shared if len(members) > 1 else 0))
        members, shared = [i], len(rows[i]) - 1
    if members:
        groups.append((members, shared if len(members) > 1 else 0))
    return groups


def shared_hidden_states(decoder: Any, input_ids: Any, attention_mask: Any, min_shared: int = MIN_SHARED) -> Any:
    """Final hidden states of a right-padded batch, each shared prefix computed once.

    Args:
        decoder: an HF decoder backbone (``LlamaModel``-like: ``input_ids``, ``attention_mask``,
            ``position_ids``, ``past_key_values`` -> ``last_hidden_state``).
        input_ids: int64 ``[B, L]``, right-padded.
        attention_mask: int64 ``[B, L]``, ones then zeros per row.
        min_shared: see :func:`prefix_groups`.

    Returns:
        ``[B, L, H]`` hidden states (the decoder's dtype); padded positions hold zeros. Equal to
        one forward over the batch up to floating-point reordering.
    """
    import torch
    from transformers import DynamicCache

    lengths = attention_mask.sum(dim=1).tolist()
    rows = [input_ids[b, : int(n)].tolist() for b, n in enumerate(lengths)]
    groups = prefix_groups(rows, min_shared)
    out: Any = None
    singles = [g[0][0] for g in groups if g[1] == 0]
    parts: list[tuple[list[int], Any]] = []  # (rows, their hidden states)
    if singles:
        width = max(int(lengths[i]) for i in singles)
        idx = torch.tensor(singles, device=input_ids.device)
        hidden = decoder(input_ids=input_ids[idx, :width], attention_mask=attention_mask[idx, :width]).last_hidden_state
        parts.append((singles, hidden))
    for members, shared in groups:
        if shared == 0:
            continue
        idx = torch.tensor(members, device=input_ids.device)
        width = max(int(lengths[i]) for i in members)
        cache = DynamicCache(config=decoder.config)
        head = decoder(input_ids=input_ids[idx[:1], :shared], past_key_values=cache, use_cache=True).last_hidden_state
        cache.batch_repeat_interleave(len(members))
        positions = torch.arange(shared, width, device=input_ids.device).expand(len(members), -1)
        tail = decoder(
            input_ids=input_ids[idx, shared:width],
            attention_mask=attention_mask[idx, :width],
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state
        parts.append((members, torch.cat([head.expand(len(members), -1, -1), tail], dim=1)))
    for members, hidden in parts:
        if out is None:
            out = hidden.new_zeros((input_ids.shape[0], input_ids.shape[1], hidden.shape[-1]))
        for j, b in enumerate(members):
            n = int(lengths[b])
            out[b, :n] = hidden[j, :n]
    return out
