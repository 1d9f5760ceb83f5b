"""Judge backends: which one a config names, and the local one.

:func:`make_backend` builds the backend named by ``judge.backend``: ``local`` here, the API
backends (``gemini``, ``openai``) in :mod:`physio_ray.annotate.judge_api`.

:class:`LocalProbeJudge` (``local``): SmolLM2 through
:func:`physio_ray.llm.smollm2.load_causal_lm`. A 135M model writes unreliable JSON, so it is
not asked to write anything: the prompt ends every step with a probe (``"\\nVerdict:"``) and
ONE forward pass gives, at each probe position, the probabilities of the next token being
" correct" or " incorrect". Causal attention means text after a probe cannot change what the
probe sees. label = argmax, confidence = max / (P(correct) + P(incorrect)), so confidences
lie in [0.5, 1].
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from physio_ray.annotate.config import JudgeConfig
from physio_ray.annotate.judge_api import GeminiJudge, OpenAIJudge
from physio_ray.annotate.judge_protocol import (
    ABSTAIN,
    JudgeBackend,
    JudgeRequest,
    JudgeResult,
    StepJudgement,
    request_context,
)

logger = logging.getLogger(__name__)


def make_backend(cfg: JudgeConfig) -> JudgeBackend:
    """Builds the backend named by ``cfg.backend`` (loads the model / reads the API key now)."""
    builders: dict[str, Callable[[JudgeConfig], JudgeBackend]] = {
        "local": LocalProbeJudge,
        "gemini": GeminiJudge,
        "openai": OpenAIJudge,
    }
    return builders[cfg.backend](cfg)


# ---------------------------------------------------------------- local: token probabilities
PROBE = "\nVerdict:"
POSITIVE = (" correct", " Correct")
NEGATIVE = (" incorrect", " wrong")


def build_probe_text(request: JudgeRequest) -> tuple[str, list[str]]:
    """The local judge's prompt: a header, then one piece per step ending in :data:`PROBE`.

    Returns:
        ``(header, pieces)``; the probe position of step ``k`` is the last token of ``pieces[k]``.
    """
    head = [
        "Below is a question, a solution split into steps, and after each step a verdict "
        "saying whether that step is correct or incorrect.",
        *request_context(request),
    ]
    header = "\n\n".join(head) + "\n\nSolution:\n"
    pieces = [("" if k == 0 else "\n") + f"{step}{PROBE}" for k, step in enumerate(request.steps)]
    return header, pieces


def _single_token_ids(tokenizer: Any, words: tuple[str, ...]) -> list[int]:
    ids = []
    for w in words:
        enc = tokenizer.encode(w, add_special_tokens=False)
        if len(enc) == 1:
            ids.append(enc[0])
    if not ids:
        raise ValueError(f"none of {words} is a single token for this tokenizer; pick other verdict words")
    return ids


def answer_check(request: JudgeRequest, confidence: float | None) -> list[StepJudgement | None]:
    """Verdicts for the steps that state a final answer, from the reference answer.

    A step whose text commits to an option (read strictly by
    :func:`physio_ray.llm.steps.parse_answer`: "The answer is D", "Answer: (B)") is correct
    iff that letter is the reference answer. A 135M model cannot be trusted to compare two
    letters, and the Monte-Carlo label of such a step is exactly this comparison.

    Args:
        request: the solution, with ``answer`` set (otherwise nothing is checked).
        confidence: confidence given to checked steps (``None`` disables the check).

    Returns:
        Per step a :class:`StepJudgement`, or ``None`` where the step states no answer.
    """
    if confidence is None or not request.answer:
        return [None] * len(request.steps)
    from physio_ray.llm.steps import parse_answer

    out: list[StepJudgement | None] = []
    for step in request.steps:
        letter = parse_answer(step)
        out.append(None if letter is None else StepJudgement(int(letter == request.answer.strip()), confidence))
    return out


class LocalProbeJudge:
    """Per-step verdicts from next-token probabilities at probe positions, in one forward pass.

    Steps that state a final answer are labelled by :func:`answer_check` instead (when the
    request carries the reference answer), still within the same single call.

    Args:
        cfg: judge settings (``cfg.engine.model`` / ``cfg.engine.dtype`` choose the model).
        model: a loaded causal LM (``None``: ``load_causal_lm(cfg.engine.model, cfg.engine.dtype)``).
        tokenizer: its tokenizer (required with ``model``).
        answer_confidence: confidence of answer-checked steps (``None``: probe every step).
    """

    def __init__(
        self, cfg: JudgeConfig, model: Any = None, tokenizer: Any = None, answer_confidence: float | None = 0.95
    ) -> None:
        self.answer_confidence = answer_confidence
        if model is None:
            from physio_ray.llm.smollm2 import load_causal_lm

            model, tokenizer = load_causal_lm(cfg.engine.model, cfg.engine.dtype)
        if tokenizer is None:
            raise ValueError("LocalProbeJudge needs the tokenizer of the model it is given")
        self.model = model
        self.tokenizer = tokenizer
        self.pos_ids = _single_token_ids(tokenizer, POSITIVE)
        self.neg_ids = _single_token_ids(tokenizer, NEGATIVE)
        self.max_len = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def judge(self, request: JudgeRequest) -> JudgeResult:
        import torch

        start = time.perf_counter()
        header, pieces = build_probe_text(request)
        head_ids = self._encode(header)
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if bos is not None:
            head_ids = [bos, *head_ids]
        step_ids = [self._encode(p) for p in pieces]
        ids = list(head_ids)
        probes = []
        for piece in step_ids:
            if len(ids) + len(piece) > self.max_len:
                break  # steps that do not fit abstain
            ids += piece
            probes.append(len(ids) - 1)
        if len(probes) < len(pieces):
            logger.warning("prompt too long: %d of %d steps judged", len(probes), len(pieces))
        judgements = [ABSTAIN] * len(pieces)
        checked = answer_check(request, self.answer_confidence)
        if probes:
            device = next(self.model.parameters()).device
            with torch.inference_mode():
                logits = self.model(input_ids=torch.tensor([ids], device=device)).logits[0, probes]  # [n_probes, vocab]
            probs = torch.softmax(logits.float(), dim=-1)
            p_pos = probs[:, self.pos_ids].sum(-1)  # [n_probes]
            p_neg = probs[:, self.neg_ids].sum(-1)
            for k, (pp, pn) in enumerate(zip(p_pos.tolist(), p_neg.tolist(), strict=True)):
                total = pp + pn
                if total > 0:
                    judgements[k] = StepJudgement(int(pp >= pn), max(pp, pn) / total)
        judgements = [c if c is not None else j for c, j in zip(checked, judgements, strict=True)]
        return JudgeResult(judgements, tokens_in=len(ids), seconds=time.perf_counter() - start)
