"""Best-of-N candidates: the annotation sampler, asked Med-PRM's question shape.

Med-PRM questions have 4 to 6 options, so the physiotherapy solution prompt (exactly 4
options, movement data) does not fit them. :class:`MedQACandidateSampler` runs the one
annotation sampler (:class:`~physio_ray.llm.sampler.SolutionSampler`, its engine and settings
from the ``sampler:`` section of the Best-of-N config) with :func:`medqa_prompt`; every answer
is read by the one strict parser (:func:`~physio_ray.llm.steps.parse_answer`) against the
question's own option letters. A candidate whose answer cannot be read is still a candidate
(the PRM may pick it; it counts as wrong): only a candidate without steps carries ``error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.batches import object_array
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import TextEngine
from physio_ray.llm.sampler import SolutionSampler
from physio_ray.schemas import LETTERS

SAMPLE_ERROR = "sample_error"  # str | None: why a sampled candidate has no usable answer
NO_ANSWER = "no parseable final answer"


def medqa_prompt(question: str, options: Sequence[str], features: Any = None, sample: int = 0) -> str:
    """The solution prompt for a multiple-choice question with 2..10 options.

    Args:
        question: the question stem.
        options: 2..10 option texts (without letter prefixes).
        features: unused (Med-PRM questions carry no measurements); accepted so that the
            function fits :class:`~physio_ray.llm.sampler.SolutionSampler`'s ``prompt_fn``.
        sample: unused: the prompt has no worked example, so every sample of a question gets
            the same prompt (and the sampler prefills it once for all of them).

    Raises:
        ValueError: when there are fewer than 2 or more than 10 options.

    >>> print(medqa_prompt("Which?", ["x", "y"]).splitlines()[1])
    (A) x
    """
    if not 2 <= len(options) <= len(LETTERS):
        raise ValueError(f"a question needs 2..{len(LETTERS)} options, got {len(options)}")
    lines = "\n".join(f"({LETTERS[i]}) {str(o).strip()}" for i, o in enumerate(options))
    return (
        f"Question: {question.strip()}\n{lines}\n\n"
        f"Solve it in 3 to 6 short steps. Write each step as 'Step k: ...' and end it with '{S.STEP_MARKER}'.\n"
        "Finish with one line: 'the answer is (X)'."
    )


def candidate_errors(steps: Sequence[str], predicted: str | None, error: str | None) -> tuple[str | None, str | None]:
    """``(sample_error, error)`` of a candidate from the sampler's ``error`` column.

    >>> candidate_errors(["Step 1: x ки"], None, "solution: no unambiguous final answer")
    ('no parseable final answer', None)
    >>> candidate_errors([], None, "solution: empty completion")
    ('solution: empty completion', 'candidate: no steps (solution: empty completion)')
    """
    if len(steps) == 0:
        return error, f"candidate: no steps ({error or 'empty text'})"
    return (NO_ANSWER if predicted is None else None), None


class MedQACandidateSampler:
    """Ray-Data-ready: ``cfg.n`` sampled solutions per question row (one ``generate`` call per batch).

    Reads ``question_id``, ``question``, ``options`` (list), ``answer`` (gold letter); emits one
    row per solution with the annotation sampler's columns (``solution_id``, ``solution_text``,
    ``steps``, ``predicted_answer``, ``is_correct``, costs) plus ``sample_error``, and ``error``
    only when no step could be read.

    Args:
        cfg: the sampler settings (engine, n, temperature, top_p, max_new_tokens, seed, ...).
        engine: an already built engine (tests); default builds ``cfg.engine`` once per actor.
    """

    def __init__(self, cfg: SamplerConfig, engine: TextEngine | None = None) -> None:
        self.sampler = SolutionSampler(cfg, engine=engine, prompt_fn=medqa_prompt)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Expands ``[Q]`` question rows into ``[Q * n]`` candidate rows."""
        out = self.sampler(batch)
        pairs = [
            candidate_errors(steps, pred, err)
            for steps, pred, err in zip(out[S.STEPS], out[S.PREDICTED_ANSWER], out[S.ERROR], strict=True)
        ]
        out[SAMPLE_ERROR] = object_array([p[0] for p in pairs])
        out[S.ERROR] = object_array([p[1] for p in pairs])
        return out
