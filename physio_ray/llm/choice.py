"""Forced choice: which option letter a local model finds most likely after "Answer:".

Used to finish a sampled solution that never wrote a readable final answer (a 135M model
often copies the prompt's "Answer: X" placeholder or runs out of budget): one forward pass
over prompt + solution + ``"Answer:"`` and the letter with the highest next-token logit among
``" A"``..``" D"``. This is how multiple-choice answers are commonly read from small models
(log-likelihood over the options), and it can only answer with a valid letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def letter_token_ids(tokenizer: Any, letters: Sequence[str]) -> list[int]:
    """Token ids of ``" A"``, ``" B"``... (each must be a single token).

    Raises:
        ValueError: when a letter is not one token for this tokenizer.
    """
    ids = []
    for letter in letters:
        enc = tokenizer.encode(f" {letter}", add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(f"' {letter}' is {len(enc)} tokens for this tokenizer; forced choice needs one")
        ids.append(int(enc[0]))
    return ids


def letter_probabilities(
    engine: Any, prompts: Sequence[str], prefixes: Sequence[str], letters: Sequence[str]
) -> list[list[float]]:
    """The model's next-token distribution over ``letters`` after ``render(prompt) + prefix``.

    Args:
        engine: a local engine exposing ``model``, ``tokenizer``, ``render`` and ``device``
            (:class:`~physio_ray.llm.hf_engine.HFEngine`).
        prompts: user prompts (rendered with the engine's chat template).
        prefixes: the reply so far, ending in ``"Answer:"``, one per prompt.
        letters: allowed letters, e.g. ``("A", "B", "C", "D")``.

    Returns:
        One list per prompt: the softmax over the letters' logits (sums to 1).
    """
    import torch

    if len(prompts) != len(prefixes):
        raise ValueError(f"{len(prompts)} prompts but {len(prefixes)} prefixes")
    if not prompts:
        return []
    tok = engine.tokenizer
    ids = torch.tensor(letter_token_ids(tok, letters))
    texts = [engine.render(p) + pre for p, pre in zip(prompts, prefixes, strict=True)]
    out: list[list[float]] = []
    size = max(1, int(getattr(getattr(engine, "cfg", None), "max_batch_size", 8)))
    for start in range(0, len(texts), size):
        enc = tok(
            texts[start : start + size],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        ).to(engine.device)
        with torch.inference_mode():
            logits = engine.model(**enc, logits_to_keep=1).logits[:, -1, :].float().cpu()
        out.extend(torch.softmax(logits[:, ids], dim=-1).tolist())
    return out


def choose_letters(engine: Any, prompts: Sequence[str], prefixes: Sequence[str], letters: Sequence[str]) -> list[str]:
    """Returns, for each prompt, the most likely letter after ``render(prompt) + prefix``
    (the argmax of :func:`letter_probabilities`).

    Args:
        engine: a local engine exposing ``model``, ``tokenizer``, ``render`` and ``device``.
        prompts: user prompts (rendered with the engine's chat template).
        prefixes: the reply so far, ending in ``"Answer:"``, one per prompt.
        letters: allowed letters, e.g. ``("A", "B", "C", "D")``.

    Returns:
        One letter per prompt.
    """
    probs = letter_probabilities(engine, prompts, prefixes, letters)
    return [letters[max(range(len(letters)), key=row.__getitem__)] for row in probs]
