"""A batched local text engine on Hugging Face transformers (SmolLM2 by default).

All prompts of one ``generate`` call are decoded in forward passes of
``EngineConfig.max_batch_size`` prompts, each producing ``n`` completions per prompt.
Prefill dominates on CPU for ~500-token prompts and short answers, so the engine prefills as
little as it can (``benchmarks/bench_sampling.py`` measures the effect):

* the tokens every prompt of a chunk starts with (chat template, instructions, reference
  values: 242 of ~550 tokens for the solution prompts) go through the model ONCE;
* each prompt's own tokens go through once, not ``n`` times (which is what
  ``num_return_sequences`` does): the KV cache is repeated ``n`` times along the batch and
  ``generate`` continues from it;
* nucleus sampling looks for the nucleus among the most likely tokens instead of sorting the
  whole vocabulary every step (:mod:`physio_ray.llm.nucleus`; the same tokens are kept).

A seeded call is reproducible: the RNG is re-seeded per chunk inside a forked RNG state, so the
caller's global torch RNG is left untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from physio_ray.llm.engine import EngineConfig, Generation, SamplingParams
from physio_ray.llm.smollm2 import load_causal_lm

logger = logging.getLogger(__name__)


def trim_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cuts ``text`` at the earliest occurrence of any stop string (the stop string excluded).

    >>> trim_at_stop("Step 1 ки\\nAnswer: B\\n\\nQuestion: next", ("\\n\\nQuestion",))
    'Step 1 ки\\nAnswer: B'
    """
    cut = len(text)
    for s in stop:
        if s:
            idx = text.find(s)
            if 0 <= idx < cut:
                cut = idx
    return text[:cut]


def common_prefix_length(token_lists: Sequence[Sequence[int]], min_shared: int = 16) -> int:
    """Tokens every list starts with, kept at least 2 short of the shortest list.

    Two or more prompts sharing fewer than ``min_shared`` tokens share nothing (not worth a
    separate forward pass); one prompt shares nothing either.

    >>> common_prefix_length([[1] * 20 + [2, 3], [1] * 20 + [4, 5, 6]])
    20
    >>> common_prefix_length([[1] * 20 + [2], [1] * 20 + [2]])  # identical: two left to prefill
    19
    >>> common_prefix_length([[1, 2, 3], [1, 2, 4]])
    0
    """
    if len(token_lists) < 2:
        return 0
    first = token_lists[0]
    limit = min(len(t) for t in token_lists) - 2
    n = 0
    while n < limit and all(t[n] == first[n] for t in token_lists):
        n += 1
    return n if n >= min_shared else 0


def pad_after_prefix(token_lists: Sequence[Sequence[int]], shared: int, pad_id: int) -> tuple[Any, Any]:
    """Pads rows to one length with the padding between the shared prefix and the rest.

    With ``shared == 0`` this is plain left padding. The last token of every row is its
    own last token, so ``generate`` continues each prompt where it ends.

    >>> ids, mask = pad_after_prefix([[7, 7, 1], [7, 7, 2, 3]], 2, 0)
    >>> ids.tolist(), mask.tolist()
    ([[7, 7, 0, 1], [7, 7, 2, 3]], [[1, 1, 0, 1], [1, 1, 1, 1]])
    """
    import torch

    width = max(len(t) for t in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.long)
    for i, tokens in enumerate(token_lists):
        gap = width - len(tokens)
        ids[i, :shared] = torch.tensor(tokens[:shared], dtype=torch.long)
        ids[i, shared + gap :] = torch.tensor(tokens[shared:], dtype=torch.long)
        mask[i, :shared] = 1
        mask[i, shared + gap :] = 1
    return ids, mask


def _static_copy(cache: Any, config: Any, max_len: int) -> Any:
    """The filled positions of a ``DynamicCache`` in a ``StaticCache`` of ``max_len`` positions.

    Decoding then writes each step's keys and values in place instead of concatenating the
    whole cache per layer per step (16 rows x ~600 positions: ~13 MB per layer per step).
    One row keeps the growing cache: its copies are small and a preallocated cache makes
    attention run over every position it reserved. On a GPU the growing cache stays too: a
    static cache switches on ``generate``'s automatic ``torch.compile`` (CUDA graphs), which a
    cache size that changes with every chunk's prompt would recompile.
    """
    from transformers import StaticCache

    static = StaticCache(config=config, max_cache_len=max_len)
    for i, layer in enumerate(cache.layers):
        static.update(layer.keys, layer.values, i)  # fills positions 0..filled-1 (its own counter)
    return static


@contextmanager
def _seeded(seed: int | None, device: Any) -> Iterator[None]:
    """Runs the block with torch's RNG seeded to ``seed`` (no-op for ``None``), then restores it."""
    import torch

    if seed is None:
        yield
        return
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class HFEngine:
    """Implements :class:`~physio_ray.llm.engine.TextEngine` with transformers ``generate``.

    Args:
        cfg: engine settings (``model``, ``dtype``, ``adapter``, ``chat_template``, ``max_batch_size``).
        model: an already-loaded causal LM to generate with instead of loading ``cfg.model``
            (the policy's evaluation samples with the model it is training); pass its
            ``tokenizer`` too.
        tokenizer: the tokenizer of ``model``.

    Raises:
        FileNotFoundError / OSError: when the model or adapter cannot be loaded offline.
        ValueError: when only one of ``model`` and ``tokenizer`` is given.
    """

    def __init__(self, cfg: EngineConfig, model: Any | None = None, tokenizer: Any | None = None) -> None:
        import torch

        self.cfg = cfg
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        self.model: Any
        self.tokenizer: Any
        if model is not None:
            self.model, self.tokenizer = model, tokenizer
        elif cfg.adapter:
            from physio_ray.llm.adapters import load_adapted_lm

            self.model, self.tokenizer = load_adapted_lm(cfg.model, cfg.dtype, cfg.adapter)
        else:
            self.model, self.tokenizer = load_causal_lm(cfg.model, cfg.dtype)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.model.device != self.device:
            self.model.to(self.device)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = int(self.tokenizer.pad_token_id)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(int(self.tokenizer.eos_token_id))
        self.eos_ids = eos_ids

    def render(self, prompt: str) -> str:
        """Returns the text the model sees for ``prompt`` (chat-wrapped when configured)."""
        if not self.cfg.chat_template or not getattr(self.tokenizer, "chat_template", None):
            return prompt
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """Samples ``params.n`` completions for every prompt.

        Args:
            prompts: ``[num_prompts]`` user prompts.
            params: sampling settings; ``temperature == 0`` is greedy (the ``n`` completions are
                then identical).

        Returns:
            ``[num_prompts]`` generations in order. A chunk whose forward pass fails yields
            generations with ``error`` set instead of raising.
        """
        out: list[Generation] = []
        size = self.cfg.max_batch_size
        for chunk_idx, start in enumerate(range(0, len(prompts), size)):
            chunk = prompts[start : start + size]
            seed = None if params.seed is None else params.seed + chunk_idx
            try:
                out.extend(self._generate_chunk(chunk, params, seed))
            except Exception as exc:  # a failed chunk becomes error rows, never a dead batch
                logger.exception("generation failed for %d prompts", len(chunk))
                out.extend(Generation(error=f"{type(exc).__name__}: {exc}") for _ in chunk)
        return out

    def _generate_chunk(self, prompts: list[str], params: SamplingParams, seed: int | None) -> list[Generation]:
        import torch

        started = time.perf_counter()
        texts = [self.render(p) + params.prefix for p in prompts]
        token_lists = self.tokenizer(texts, add_special_tokens=not self.cfg.chat_template)["input_ids"]
        shared = common_prefix_length(token_lists)
        ids, mask = pad_after_prefix(token_lists, shared, self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        greedy = params.temperature == 0
        n_seq = 1 if greedy else params.n
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "num_return_sequences": 1,  # the inputs are repeated n times by _prefill
            "pad_token_id": self.pad_id,
            "do_sample": not greedy,
        }
        if not greedy:
            kwargs.update(temperature=params.temperature, top_p=1.0, top_k=0)
            if params.top_p < 1:
                from transformers import LogitsProcessorList

                from physio_ray.llm.nucleus import TopKNucleus

                kwargs["logits_processor"] = LogitsProcessorList([TopKNucleus(params.top_p)])
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with torch.inference_mode(), _seeded(seed, self.device):
            inputs = self._prefill(ids, mask, shared, n_seq, params.max_new_tokens)
            seqs = self.model.generate(**inputs, **kwargs)
        gen = seqs[:, ids.shape[1] :].cpu()
        decoded = self.tokenizer.batch_decode(gen, skip_special_tokens=True)
        lengths = [self._generated_length(row.tolist()) for row in gen]
        tokens_in = [len(t) for t in token_lists]
        per_prompt = (time.perf_counter() - started) / len(prompts)
        results = []
        for i in range(len(prompts)):
            rows = range(i * n_seq, (i + 1) * n_seq)
            completions = [trim_at_stop(decoded[r], params.stop) for r in rows]
            tokens_out = sum(lengths[r] for r in rows)
            if greedy and params.n > 1:
                completions, tokens_out = completions * params.n, tokens_out * params.n
            results.append(
                Generation(texts=completions, tokens_in=int(tokens_in[i]), tokens_out=tokens_out, seconds=per_prompt)
            )
        return results

    def _prefill(self, ids: Any, mask: Any, shared: int, n_seq: int, max_new_tokens: int) -> dict[str, Any]:
        """Fills the KV cache once for what the rows share, and repeats it for ``n_seq`` samples.

        The prompts' common token prefix (``shared`` tokens: chat template, instructions,
        reference values) goes through the model once at batch 1; each prompt's own tokens
        then go through once, not ``n_seq`` times (``num_return_sequences`` would prefill every
        sample); the cache is repeated ``n_seq`` times along the batch and ``generate``
        continues from it. Padding sits between the shared prefix and each prompt's own
        tokens (:func:`pad_after_prefix`); positions skip it, as ``generate`` derives them.

        On a CPU a batch of more than one row then decodes into a preallocated cache
        (:func:`_static_copy`): the growing cache concatenates every layer's keys and values
        at every step, which took half of a 16-row decode.

        Args:
            ids, mask: ``[prompts, length]`` token ids and attention mask.
            shared: common prefix length (0: plain left padding).
            n_seq: completions per prompt.
            max_new_tokens: tokens ``generate`` will add (sizes the preallocated cache).

        Returns:
            ``generate`` inputs: ``input_ids`` / ``attention_mask`` ``[prompts * n_seq, length]``
            (prompt-major, as ``num_return_sequences`` orders them) and ``past_key_values``
            holding the first ``length - 1`` positions; ``generate`` feeds the last token.
        """
        from transformers import DynamicCache

        length = ids.shape[1]
        if length < 2:
            return {
                "input_ids": ids.repeat_interleave(n_seq, dim=0),
                "attention_mask": mask.repeat_interleave(n_seq, dim=0),
            }
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.model.config)
        if shared:
            self.model(
                input_ids=ids[:1, :shared],
                position_ids=positions[:1, :shared],
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,  # only the KV cache is needed, not logits over the vocabulary
            )
            cache.batch_repeat_interleave(ids.shape[0])
        self.model(
            input_ids=ids[:, shared:-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, shared:-1],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.batch_repeat_interleave(n_seq)
        rows = ids.shape[0] * n_seq
        return {
            "input_ids": ids.repeat_interleave(n_seq, dim=0),
            "attention_mask": mask.repeat_interleave(n_seq, dim=0),
            "past_key_values": (
                _static_copy(cache, self.model.config, length + max_new_tokens)
                if rows > 1 and self.device.type == "cpu"
                else cache
            ),
        }

    def _generated_length(self, ids: list[int]) -> int:
        """Tokens the model produced: up to and including its first EOS, excluding padding."""
        for i, tok in enumerate(ids):
            if tok in self.eos_ids:
                return i + 1
            if tok == self.pad_id:
                return i
        return len(ids)
