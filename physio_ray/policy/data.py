"""Supervised examples for the local policy: the sampler's own prompts, reference solutions as targets.

A question row (the question stage's columns: ``question``, ``options``, ``answer``,
``template``, ``exercise``, ``features``, ``video_id``) becomes ``rotations`` examples, one per
rotation of its options (so no answer letter is favoured), each with the prompt the sampler
would send (:func:`~physio_ray.llm.sampler.solution_prompt`, worked-example rotation drawn
per example) and the reference solution of
:func:`~physio_ray.annotate.reference_solutions.reference_solution` as the target.

Splits are by person: the subject of a UI-PRMD recording (``uiprmd-m01-s03-e01`` -> ``s03``),
the whole recording otherwise, so no person is in both the training and the held-out set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from physio_ray.annotate.reference_solutions import reference_solution
from physio_ray.llm.sampler import solution_prompt
from physio_ray.schemas import LETTERS

_SUBJECT_RE = re.compile(r"^uiprmd-m\d+-(s\d+)-")


def subject_of(video_id: str) -> str:
    """The person a recording shows: ``uiprmd-s03`` for UI-PRMD, the recording id otherwise.

    >>> subject_of("uiprmd-m07-s03-e02-inc"), subject_of("keraal-G3-BP-CTK")
    ('uiprmd-s03', 'keraal-G3-BP-CTK')
    """
    m = _SUBJECT_RE.match(video_id)
    return f"uiprmd-{m.group(1)}" if m else video_id


def rotate(options: Sequence[str], answer: str, shift: int) -> tuple[list[str], str]:
    """Options rotated left by ``shift`` and the answer's new letter.

    >>> rotate(["a", "b", "c", "d"], "B", 1)
    (['b', 'c', 'd', 'a'], 'A')
    """
    n = len(options)
    order = [(j + shift) % n for j in range(n)]
    return [str(options[o]) for o in order], LETTERS[order.index(LETTERS.index(answer))]


def _rows(frame: Any) -> Iterable[Mapping[str, Any]]:
    return frame.to_dict("records") if hasattr(frame, "to_dict") else frame


def sft_examples(questions: Any, rotations: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Prompt/target pairs for every question that has a reference solution.

    Args:
        questions: question rows (a pandas frame or an iterable of dicts); rows with an
            ``error`` are skipped.
        rotations: option rotations per question (1..4).
        seed: draws each example's worked-example rotation.

    Returns:
        Dicts with ``prompt`` (the sampler's user prompt), ``target`` (steps + ``"Answer: X"``),
        ``question_id``, ``template``, ``subject`` and ``answer``.

    Raises:
        ValueError: when ``rotations`` is outside 1..4.
    """
    if not 1 <= rotations <= 4:
        raise ValueError(f"rotations={rotations} must be in 1..4")
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for row in _rows(questions):
        if row.get("error"):
            continue
        options = [str(o) for o in row["options"]]
        if len(options) != 4:
            continue
        for shift in range(rotations):
            opts, letter = rotate(options, str(row["answer"]), shift)
            target = reference_solution(row["template"], row["exercise"], opts, letter, row["features"])
            if target is None:
                break  # no reference for this question (rep_count, missing measurement)
            out.append(
                {
                    "prompt": solution_prompt(row["question"], opts, row["features"], int(rng.integers(4))),
                    "target": target,
                    "question_id": str(row["question_id"]),
                    "template": str(row["template"]),
                    "subject": subject_of(str(row["video_id"])),
                    "answer": letter,
                }
            )
    return out


def split_by_subject(questions: Any, held_out: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Question rows split into (training, held-out) by :func:`subject_of`.

    Args:
        questions: question rows (frame or dicts); rows with an ``error`` are dropped.
        held_out: subjects kept out of training (``uiprmd-s09``...).

    Returns:
        ``(train_rows, held_out_rows)`` as lists of dicts.
    """
    keep = set(held_out)
    train: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for row in _rows(questions):
        if row.get("error"):
            continue
        (test if subject_of(str(row["video_id"])) in keep else train).append(dict(row))
    return train, test
