"""Validating a scoring request before it reaches the PRM (pure; used by the Serve app).

A request carries a question, its options, the solution steps (each ending in exactly one
step marker " ки") and optional keyframe features ``[T, F]``. Every problem is collected
and returned as one message per problem, so the HTTP layer answers 422 with all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from physio_ray import schemas as S
from physio_ray.prm.data import PRMExample


@dataclass(frozen=True)
class RequestLimits:
    """What the scoring endpoint accepts.

    Attributes:
        max_steps: most steps per solution.
        max_chars: most characters over question, options and steps together.
        max_options: most answer options.
        max_keyframes: most keyframe rows in ``features``.
        feature_dim: values per keyframe row (16 joint angles); ``None`` accepts any width.
    """

    max_steps: int = 16
    max_chars: int = 16_000
    max_options: int = 10
    max_keyframes: int = 64
    feature_dim: int | None = 16


def request_problems(
    question: str,
    options: Sequence[str],
    steps: Sequence[str],
    features: Sequence[Sequence[float]] | None,
    limits: RequestLimits,
) -> list[str]:
    """Everything wrong with a request (empty when it can be scored).

    >>> request_problems("q", ["a"], ["Step 1: x ки", "Step 2: y"], None, RequestLimits())
    ["steps[1] does not end with the step marker ' ки' (every step must end with exactly one)"]
    >>> request_problems("q", [], [], None, RequestLimits())
    ['steps is empty: send at least one step ending in the step marker']
    """
    problems = []
    marker = S.STEP_MARKER
    if not question.strip():
        problems.append("question is empty")
    if len(options) > limits.max_options:
        problems.append(f"{len(options)} options exceed the limit of {limits.max_options}")
    if not steps:
        problems.append("steps is empty: send at least one step ending in the step marker")
    elif len(steps) > limits.max_steps:
        problems.append(f"{len(steps)} steps exceed the limit of {limits.max_steps}")
    else:
        for i, step in enumerate(steps):
            body = step.rstrip()
            if not body.endswith(marker):
                problems.append(
                    f"steps[{i}] does not end with the step marker {marker!r} (every step must end with exactly one)"
                )
            elif marker in body[: -len(marker)]:
                problems.append(f"steps[{i}] contains the step marker {marker!r} more than once; split it into steps")
            elif not body[: -len(marker)].strip():
                problems.append(f"steps[{i}] has no text before its marker")
    total = len(question) + sum(len(o) for o in options) + sum(len(s) for s in steps)
    if total > limits.max_chars:
        problems.append(f"payload has {total} characters of text, above the limit of {limits.max_chars}")
    if features is not None:
        rows = list(features)
        if len(rows) > limits.max_keyframes:
            problems.append(f"features has {len(rows)} keyframes, above the limit of {limits.max_keyframes}")
        widths = {len(r) for r in rows}
        if rows and len(widths) != 1:
            problems.append(f"features rows have different widths {sorted(widths)}")
        elif rows and limits.feature_dim is not None and widths != {limits.feature_dim}:
            problems.append(f"features rows need {limits.feature_dim} values (joint angles), got {widths.pop()}")
        if any(isinstance(v, float) and math.isinf(v) for r in rows for v in r):
            problems.append("features contain infinite values (use NaN for a joint that is not visible)")
    return problems


def request_example(
    question: str, options: Sequence[str], steps: Sequence[str], features: Sequence[Sequence[float]] | None
) -> PRMExample:
    """An unlabelled :class:`PRMExample` from a validated request (``features`` -> ``vision [T, F]``)."""
    vision = None if not features else np.asarray(features, dtype=np.float32)
    return PRMExample("request", "request", question, list(options), list(steps), [None] * len(steps), vision=vision)
