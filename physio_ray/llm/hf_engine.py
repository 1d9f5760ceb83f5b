"""A batched local text engine on Hugging Face transformers (SmolLM2 by default).

All prompts of one ``generate`` call are tokenised together with left padding and decoded in
forward passes of ``EngineConfig.max_batch_size`` prompts, each producing ``n`` completions
per prompt. The prompts are prefilled ONCE (not ``n`` times, which is what
``num_return_sequences`` does): one forward pass fills the KV cache for all but the last prompt
token, the cache is repeated ``n`` times along the batch, and ``generate`` continues from it.
Prefill dominates on CPU for ~250-token prompts and short answers, so this is where most of the
batched speed-up over a one-completion-at-a-time loop comes from (``benchmarks/bench_sampling.py``).
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
        cfg: engine settings (``model``, ``dtype``, ``chat_template``, ``max_batch_size``).

    Raises:
        FileNotFoundError / OSError: when the model cannot be loaded offline.
    """

    def __init__(self, cfg: EngineConfig) -> None:
        import torch

        self.cfg = cfg
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
        enc = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=not self.cfg.chat_template,
        ).to(self.device)
        greedy = params.temperature == 0
        n_seq = 1 if greedy else params.n
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "num_return_sequences": n_seq,
            "pad_token_id": self.pad_id,
            "do_sample": not greedy,
        }
        if not greedy:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        inputs = dict(enc)
        with torch.inference_mode(), _seeded(seed, self.device):
            if n_seq > 1 and enc["input_ids"].shape[1] > 1:
                inputs = self._shared_prefill(enc, n_seq)
                kwargs["num_return_sequences"] = 1  # the inputs are already repeated n times
            seqs = self.model.generate(**inputs, **kwargs)
        gen = seqs[:, enc["input_ids"].shape[1] :].cpu()
        decoded = self.tokenizer.batch_decode(gen, skip_special_tokens=True)
        lengths = [self._generated_length(row.tolist()) for row in gen]
        tokens_in = enc["attention_mask"].sum(dim=1).tolist()
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

    def _shared_prefill(self, enc: Any, n_seq: int) -> dict[str, Any]:
        """Prefills each prompt once and repeats its KV cache for ``n_seq`` samples.

        Args:
            enc: the tokenised chunk, ``input_ids`` / ``attention_mask`` ``[prompts, length]``
                (left padded).
            n_seq: completions per prompt.

        Returns:
            ``generate`` inputs: ``input_ids`` and ``attention_mask`` ``[prompts * n_seq, length]``
            (prompt-major, as ``num_return_sequences`` orders them) and ``past_key_values``
            holding the first ``length - 1`` positions; ``generate`` feeds the last token.
        """
        from transformers import DynamicCache

        ids, mask = enc["input_ids"], enc["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate derives them
        cache = DynamicCache(config=self.model.config)
        self.model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, :-1],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,  # only the KV cache is needed, not logits over the vocabulary
        )
        cache.batch_repeat_interleave(n_seq)
        return {
            "input_ids": ids.repeat_interleave(n_seq, dim=0),
            "attention_mask": mask.repeat_interleave(n_seq, dim=0),
            "past_key_values": cache,
        }

    def _generated_length(self, ids: list[int]) -> int:
        """Tokens the model produced: up to and including its first EOS, excluding padding."""
        for i, tok in enumerate(ids):
            if tok in self.eos_ids:
                return i + 1
            if tok == self.pad_id:
                return i
        return len(ids)
