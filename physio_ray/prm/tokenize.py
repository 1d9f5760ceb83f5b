"""Prompt rendering, tokenisation with the step marker as one token, and batching.

The step marker ``schemas.STEP_MARKER`` (" ки", leading space included) is added to the
tokenizer as ONE special token, so each step ends in exactly one marker token and the PRM
reads its (+, -) scores at those positions. Labels are aligned by construction: the k-th
marker token in the sequence carries the label of step k (``labels[pos]``) and its index
(``step_index[pos] = k``); every other position carries ``IGNORE`` / ``-1``.

Because the text tower is causal, nothing after the last marker can change a score, so
the sequence is cut right after it (the chat template's closing tokens are dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from physio_ray import schemas as S
from physio_ray.prm.config import PromptConfig
from physio_ray.prm.data import PRMExample

logger = logging.getLogger(__name__)

IGNORE = -100.0  # label of positions without a target (also every padded position)

SYSTEM_PROMPT = (
    "You review clinical reasoning one step at a time. Each step of the solution ends with a "
    "marker. After a marker, write + when that step is correct and justified, and - when it "
    "contains a factual or logical error."
)


@dataclass(frozen=True, eq=False)
class EncodedExample:
    """One tokenised example.

    Attributes:
        solution_id: id of the source example.
        input_ids: int64 ``[L]``.
        labels: float32 ``[L]``: the step label at marker positions, ``IGNORE`` elsewhere.
        step_index: int64 ``[L]``: step number (0-based) at marker positions, -1 elsewhere.
        n_steps: steps whose marker survived truncation.
        vision: the example's ``vision`` array or ``None``.
    """

    solution_id: str
    input_ids: np.ndarray
    labels: np.ndarray
    step_index: np.ndarray
    n_steps: int
    vision: np.ndarray | None


class PRMTokenizer:
    """Wraps an HF tokenizer: adds the marker token, renders prompts, encodes and collates.

    Args:
        tokenizer: an HF (fast) tokenizer; the marker token is added to it in place.
        cfg: prompt settings.
        plus_token: text whose last token id scores a correct step (Med-PRM: " +").
        minus_token: text whose last token id scores a wrong step (Med-PRM: " -").
    """

    def __init__(
        self, tokenizer: Any, cfg: PromptConfig | None = None, plus_token: str = " +", minus_token: str = " -"
    ) -> None:
        from tokenizers import AddedToken

        self.tokenizer = tokenizer
        self.cfg = cfg or PromptConfig()
        vocab = tokenizer.get_vocab()
        if S.STEP_MARKER in vocab:
            self.marker_piece_ids: list[int] = []
        else:
            self.marker_piece_ids = tokenizer.encode(S.STEP_MARKER, add_special_tokens=False)
            marker = AddedToken(S.STEP_MARKER, special=True, normalized=False, lstrip=False, rstrip=False)
            tokenizer.add_tokens([marker], special_tokens=True)
        self.marker_id = int(tokenizer.convert_tokens_to_ids(S.STEP_MARKER))
        self.plus_id = int(tokenizer.encode(plus_token, add_special_tokens=False)[-1])
        self.minus_id = int(tokenizer.encode(minus_token, add_special_tokens=False)[-1])
        if self.plus_id == self.minus_id:
            raise ValueError(f"plus_token {plus_token!r} and minus_token {minus_token!r} map to the same token")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def __len__(self) -> int:
        return len(self.tokenizer)

    def render(
        self, ex: PRMExample, question: str | None = None, n_steps: int | None = None, options: bool = True
    ) -> str:
        """The full prompt text of an example.

        Args:
            ex: the example.
            question: replaces ``ex.question`` (used when shortening).
            n_steps: keep only the first ``n_steps`` steps.
            options: list the options (when ``cfg.include_options``).

        Returns:
            The text, with one step marker per kept step and none elsewhere.
        """
        q = (ex.question if question is None else question).replace(S.STEP_MARKER, " ")
        user = f"Question: {q}"
        if options and self.cfg.include_options and ex.options:
            letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            user += "\n" + "\n".join(f"{letters[i]}. {o.replace(S.STEP_MARKER, ' ')}" for i, o in enumerate(ex.options))
        steps = ex.steps if n_steps is None else ex.steps[:n_steps]
        user += "\n\nSolution: " + self.cfg.step_separator.join(steps)
        if self.cfg.chat_template and getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False))
        return f"{SYSTEM_PROMPT}\n\n{user}"

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode(self, ex: PRMExample) -> EncodedExample:
        """Tokenises one example, shortening it to ``cfg.max_length`` when needed.

        The question is shortened first; if the steps alone do not fit, trailing steps
        are dropped (a warning names the solution). The sequence ends at the last marker.

        Returns:
            The encoded example.

        Raises:
            ValueError: when not even the first step fits, or when the marker count does
                not match the steps (a bug or a tokenizer that splits the marker).
        """
        ids = self._ids(self.render(ex))
        limit = self.cfg.max_length
        if len(ids) > limit:
            ids = self._shorten(ex, ids, limit)
        positions = [i for i, t in enumerate(ids) if t == self.marker_id]
        n_keep = len(positions)
        if n_keep == 0:
            raise ValueError(f"{ex.solution_id}: no step fits in max_length={limit}; raise prompt.max_length")
        if n_keep > len(ex.steps):
            raise ValueError(f"{ex.solution_id}: {n_keep} marker tokens for {len(ex.steps)} steps")
        if n_keep < len(ex.steps):
            logger.warning(
                "%s: only %d of %d steps fit in max_length=%d; the rest are dropped",
                ex.solution_id,
                n_keep,
                len(ex.steps),
                limit,
            )
        ids = ids[: positions[-1] + 1]
        input_ids = np.asarray(ids, dtype=np.int64)
        labels = np.full(len(ids), IGNORE, dtype=np.float32)
        step_index = np.full(len(ids), -1, dtype=np.int64)
        for k, pos in enumerate(positions):
            value = ex.labels[k]
            labels[pos] = IGNORE if value is None else float(value)
            step_index[pos] = k
        return EncodedExample(ex.solution_id, input_ids, labels, step_index, n_keep, ex.vision)

    def _shorten(self, ex: PRMExample, ids: list[int], limit: int) -> list[int]:
        """Shortens the question, then drops the options, then drops trailing steps."""
        q_ids = self._ids(ex.question)
        while len(ids) > limit and q_ids:
            keep = max(0, len(q_ids) - (len(ids) - limit) - 4)
            q_ids = q_ids[:keep]
            question = self.tokenizer.decode(q_ids).rstrip() + " ..." if keep else "..."
            ids = self._ids(self.render(ex, question=question))
        if len(ids) > limit:
            ids = self._ids(self.render(ex, question="...", options=False))
        if len(ids) <= limit:
            return ids
        n_steps = sum(1 for i, t in enumerate(ids) if t == self.marker_id and i < limit)
        if n_steps == 0:
            return ids[:limit]
        return self._ids(self.render(ex, question="...", n_steps=n_steps, options=False))[:limit]

    def encode_many(self, examples: Sequence[PRMExample]) -> list[EncodedExample]:
        """Encodes examples, skipping (with a warning) those that cannot be encoded."""
        out = []
        for ex in examples:
            try:
                out.append(self.encode(ex))
            except ValueError as exc:
                logger.warning("skipping %s: %s", ex.solution_id, exc)
        return out

    def collate(self, batch: Sequence[EncodedExample]) -> dict[str, Any]:
        """Pads encoded examples into a batch (right padding).

        Returns:
            ``input_ids`` int64 ``[B, L]``, ``attention_mask`` int64 ``[B, L]``, ``labels``
            float32 ``[B, L]`` (``IGNORE`` where no target), ``step_index`` int64 ``[B, L]``,
            ``vision`` float32 ``[B, T, ...]`` and ``vision_mask`` bool ``[B, T]`` (only
            when some example has vision; rows without it are all-False), ``solution_ids``.

        Raises:
            ValueError: when the examples' vision arrays have different feature shapes.
        """
        n = len(batch)
        length = max(len(e.input_ids) for e in batch)
        input_ids = torch.full((n, length), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, length), dtype=torch.long)
        labels = torch.full((n, length), IGNORE, dtype=torch.float32)
        step_index = torch.full((n, length), -1, dtype=torch.long)
        for i, e in enumerate(batch):
            m = len(e.input_ids)
            input_ids[i, :m] = torch.from_numpy(e.input_ids)
            attention[i, :m] = 1
            labels[i, :m] = torch.from_numpy(e.labels)
            step_index[i, :m] = torch.from_numpy(e.step_index)
        out: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "step_index": step_index,
            "solution_ids": [e.solution_id for e in batch],
        }
        visions = [e.vision for e in batch]
        if any(v is not None for v in visions):
            out["vision"], out["vision_mask"] = pad_vision(visions)
        return out


def pad_vision(visions: Sequence[np.ndarray | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pads per-example vision arrays ``[T_i, ...]`` to ``[B, T_max, ...]`` with a validity mask.

    Args:
        visions: arrays with equal trailing shapes, or ``None`` (text-only example).

    Returns:
        ``(vision float32 [B, T_max, ...], mask bool [B, T_max])``; NaNs are kept.

    Raises:
        ValueError: on mismatched trailing shapes.
    """
    shapes = {tuple(np.shape(v)[1:]) for v in visions if v is not None}
    if len(shapes) != 1:
        raise ValueError(f"vision arrays in one batch need the same feature shape, got {sorted(shapes)}")
    feat = shapes.pop()
    t_max = max(1, *(len(v) for v in visions if v is not None))
    vision = torch.zeros((len(visions), t_max, *feat), dtype=torch.float32)
    mask = torch.zeros((len(visions), t_max), dtype=torch.bool)
    for i, v in enumerate(visions):
        if v is None or len(v) == 0:
            continue
        vision[i, : len(v)] = torch.from_numpy(np.array(v, dtype=np.float32))  # a copy: Ray's arrays are read-only
        mask[i, : len(v)] = True
    return vision, mask
