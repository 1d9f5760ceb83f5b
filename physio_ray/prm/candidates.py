"""Best-of-N candidates: sampled solutions for Med-PRM-style questions, and rows from Parquet.

Med-PRM questions have 4 to 6 options, so the annotation sampler (exactly 4 options,
physiotherapy prompt) does not fit them; :class:`MedQACandidateSampler` asks the text
engine for Med-PRM-shaped solutions ("Step k: ... ки", then "the answer is (X)") and parses
the final letter strictly against the question's own option letters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.batches import object_array
from physio_ray.llm.engine import Generation, SamplingParams, TextEngine
from physio_ray.llm.steps import split_steps

logger = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJ"
SAMPLE_ERROR = "sample_error"  # str | None: why a sampled candidate has no usable answer
_ANSWER_RE = re.compile(r"(?:answer\s*(?:is|:)\s*|\\boxed\{)\(?\s*([A-J])\s*\)?(?![A-Za-z])", re.IGNORECASE)


def medqa_prompt(question: str, options: Sequence[str]) -> str:
    """The solution prompt for a multiple-choice question with 2..10 options.

    Raises:
        ValueError: when there are fewer than 2 or more than 10 options.
    """
    if not 2 <= len(options) <= len(LETTERS):
        raise ValueError(f"a question needs 2..{len(LETTERS)} options, got {len(options)}")
    lines = "\n".join(f"({LETTERS[i]}) {str(o).strip()}" for i, o in enumerate(options))
    return (
        f"Question: {question.strip()}\n{lines}\n\n"
        f"Solve it in 3 to 6 short steps. Write each step as 'Step k: ...' and end it with '{S.STEP_MARKER}'.\n"
        "Finish with one line: 'the answer is (X)'."
    )


def parse_letter(text: str, n_options: int) -> str | None:
    """The last explicit answer letter, if it is one of the question's options; never guesses.

    >>> parse_letter("Step 1: x ки\\nthe answer is (E)", 5), parse_letter("Answer: F", 5)
    ('E', None)
    >>> parse_letter("the answer is (A) or (B)", 4) is None, parse_letter("no letter here", 4)
    (False, None)
    """
    hits = list(_ANSWER_RE.finditer(text or ""))
    if not hits:
        return None
    letter = hits[-1].group(1).upper()
    return letter if letter in LETTERS[:n_options] else None


class MedQACandidateSampler:
    """Ray-Data-ready: ``n`` sampled solutions per question row (one ``generate`` call per batch).

    Reads ``question_id``, ``question``, ``options`` (list), ``answer`` (gold letter); emits one
    row per solution with ``solution_id``, ``steps``, ``predicted_answer``, ``is_correct``,
    ``sample_error`` and ``error`` (``error`` only when no step could be read).

    Args:
        engine_model: causal LM of the local HF engine (ignored when ``engine`` is given).
        n: solutions per question.
        temperature: sampling temperature.
        max_new_tokens: budget per solution.
        seed: base sampling seed.
        engine: an already built engine (tests).
    """

    def __init__(
        self,
        engine_model: str = "smollm2-135m",
        n: int = 4,
        temperature: float = 0.8,
        max_new_tokens: int = 160,
        seed: int = 0,
        engine: TextEngine | None = None,
    ) -> None:
        if engine is None:
            from physio_ray.llm.engine import EngineConfig
            from physio_ray.llm.factory import build_engine

            engine = build_engine(EngineConfig(kind="hf", model=engine_model))
        self.engine = engine
        self.params = SamplingParams(n=n, temperature=temperature, top_p=0.95, max_new_tokens=max_new_tokens, seed=seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Expands ``[Q]`` question rows into ``[Q * n]`` candidate rows."""
        cols = (S.QUESTION_ID, S.SOLUTION_ID, S.QUESTION, S.OPTIONS, S.ANSWER, S.STEPS, S.PREDICTED_ANSWER)
        out: dict[str, list[Any]] = {c: [] for c in (*cols, S.IS_CORRECT, SAMPLE_ERROR, S.ERROR)}
        prompts: list[str] = []
        rows: list[tuple[int, list[str]]] = []
        for i in range(len(batch[S.QUESTION_ID])):
            options = [str(o) for o in batch[S.OPTIONS][i]]
            try:
                prompts.append(medqa_prompt(str(batch[S.QUESTION][i]), options))
                rows.append((i, options))
            except ValueError as exc:
                logger.warning("no candidates for %s: %s", batch[S.QUESTION_ID][i], exc)
        try:
            gens = self.engine.generate(prompts, self.params) if prompts else []
        except Exception as exc:  # an engine failure marks the rows, never kills the batch
            logger.exception("candidate sampling failed")
            gens = [Generation(error=f"{type(exc).__name__}: {exc}") for _ in prompts]
        for (i, options), gen in zip(rows, gens, strict=True):
            gold = str(batch[S.ANSWER][i])
            texts = gen.texts if gen.error is None else [""] * self.params.n
            for k, text in enumerate(texts):
                steps = split_steps(text) if text else []
                letter = parse_letter(text, len(options))
                out[S.QUESTION_ID].append(str(batch[S.QUESTION_ID][i]))
                out[S.SOLUTION_ID].append(f"{batch[S.QUESTION_ID][i]}-s{k}")
                out[S.QUESTION].append(str(batch[S.QUESTION][i]))
                out[S.OPTIONS].append(options)
                out[S.ANSWER].append(gold)
                out[S.STEPS].append(steps)
                out[S.PREDICTED_ANSWER].append(letter)
                out[S.IS_CORRECT].append(letter is not None and letter == gold)
                out[SAMPLE_ERROR].append(gen.error or (None if letter else "no parseable final answer"))
                out[S.ERROR].append(None if steps else f"candidate: no steps ({gen.error or 'empty text'})")
        result = {c: object_array(v) for c, v in out.items()}
        result[S.IS_CORRECT] = np.asarray(out[S.IS_CORRECT], dtype=bool)
        return result
