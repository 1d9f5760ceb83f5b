"""PRM training examples: the record type, label repair, step normalisation and splits.

One :class:`PRMExample` is one solution: its steps (each ending in the step marker), one
label per step (``None`` = unlabelled, masked out of the loss) and, optionally, the keyframe
pose features of the recording the question is about (``vision``, ``[T, F]``).

Label repair is shared by every loader (:func:`repair_labels`): label lists longer or
shorter than the steps, and binary labels that go 0 -> 1 (Med-PRM zeroes every step after
the first 0). Every repair is logged and counted in a :class:`LoadReport`. The loaders live
in :mod:`physio_ray.prm.medprm` (Med-PRM JSON) and :mod:`physio_ray.prm.annotated` (our
annotation run's Parquet).
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.labels import zero_after_first_error
from physio_ray.prm.config import LabelConfig, SplitConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PRMExample:
    """One solution with per-step labels.

    Attributes:
        question_id: question id (str, also for Med-PRM's integer ids).
        solution_id: unique id of this solution.
        question: question stem.
        options: option texts without letter prefixes (``[]`` when unknown).
        steps: reasoning steps, each ending in exactly one ``schemas.STEP_MARKER``.
        labels: one target per step in [0, 1]; ``None`` = unlabelled (masked).
        is_correct: whether the final answer is right (``None`` when unknown).
        answer: the solution's answer letter (``None`` when unparsed).
        correct_answer: the gold answer letter.
        video_id: recording the question is about (``None`` for text-only data).
        vision: keyframe features, float32 ``[T, F]`` (pose) or ``[T, 3, H, W]`` (images).
        source: where the example came from (``medprm-flat``, ``medprm-nested``, ``annotated``).
    """

    question_id: str
    solution_id: str
    question: str
    options: list[str]
    steps: list[str]
    labels: list[float | None]
    is_correct: bool | None = None
    answer: str | None = None
    correct_answer: str | None = None
    video_id: str | None = None
    vision: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.steps):
            raise ValueError(
                f"{self.solution_id}: {len(self.labels)} labels for {len(self.steps)} steps; repair with repair_labels"
            )

    @property
    def group_id(self) -> str:
        """The leakage unit for video-level splits: the video, else the question."""
        return self.video_id if self.video_id else self.question_id


@dataclass
class LoadReport:
    """What a loader kept, skipped and repaired.

    Attributes:
        records: records read.
        examples: examples returned.
        skipped: reason -> records skipped for it.
        length_mismatch: label lists whose length differed from the steps.
        zero_then_one: label lists (selected source) with a 1 after a 0.
        zeroed_steps: step labels set to 0 by ``zero_after_first_error``.
        unlabelled_steps: steps without a usable label (masked).
    """

    records: int = 0
    examples: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    length_mismatch: int = 0
    zero_then_one: int = 0
    zeroed_steps: int = 0
    unlabelled_steps: int = 0

    def skip(self, reason: str, name: str) -> None:
        """Counts and logs one skipped record."""
        self.skipped[reason] += 1
        logger.warning("skipping record %s: %s", name, reason)

    def summary(self) -> str:
        """One line for the logs."""
        skipped = sum(self.skipped.values())
        return (
            f"{self.examples}/{self.records} records kept, {skipped} skipped {dict(self.skipped)}; "
            f"label length mismatches {self.length_mismatch}, 0->1 label lists {self.zero_then_one} "
            f"({self.zeroed_steps} steps zeroed), unlabelled steps {self.unlabelled_steps}"
        )


def _as_label(value: Any) -> float | None:
    """One raw label -> float in [0, 1] or None (abstention, NaN, junk)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if math.isnan(v) or not 0.0 <= v <= 1.0:
            return None
        return v
    return None


def has_zero_then_one(labels: Sequence[float | None]) -> bool:
    """True when a label of 1 follows a label of 0 (binary labels).

    >>> has_zero_then_one([1, 0, 1]), has_zero_then_one([1, 0, 0]), has_zero_then_one([1, None, 1])
    (True, False, False)
    """
    seen_zero = False
    for v in labels:
        if v is None:
            continue
        if v == 0:
            seen_zero = True
        elif seen_zero and v == 1:
            return True
    return False


def repair_labels(
    raw: Sequence[Any] | None, n_steps: int, cfg: LabelConfig, name: str, report: LoadReport
) -> list[float | None] | None:
    """Turns a raw label list into one label per step, logging every repair.

    Args:
        raw: labels as stored (ints, floats, bools, ``None``); ``None`` = no labels at all.
        n_steps: number of steps of the solution.
        cfg: label settings.
        name: record name used in warnings.
        report: counters updated in place.

    Returns:
        ``n_steps`` labels in [0, 1] or ``None`` (unlabelled), or ``None`` when the record
        must be skipped (``length_mismatch="skip"``; the caller counts the skip).
    """
    values: list[float | None] = [_as_label(v) for v in raw] if raw is not None else [None] * n_steps
    if len(values) != n_steps:
        report.length_mismatch += 1
        logger.warning(
            "%s: %d %s labels for %d steps (%s)",
            name,
            len(values),
            cfg.source,
            n_steps,
            "record skipped" if cfg.length_mismatch == "skip" else "extra labels dropped, missing ones masked",
        )
        if cfg.length_mismatch == "skip":
            return None
        values = (values + [None] * n_steps)[:n_steps]
    if cfg.source in ("hard", "judge"):
        if any(v is not None and v not in (0.0, 1.0) for v in values):
            logger.warning("%s: non-binary %s labels %s, thresholded at 0.5", name, cfg.source, values)
            values = [None if v is None else float(v >= 0.5) for v in values]
        if has_zero_then_one(values):
            report.zero_then_one += 1
            if cfg.zero_after_first_error:
                fixed = zero_after_first_error(values)
                changed = sum(a != b for a, b in zip(values, fixed, strict=False))
                report.zeroed_steps += changed
                logger.warning("%s: %s labels go 0 -> 1 %s; %d later steps set to 0", name, cfg.source, values, changed)
                values = [None if v is None else float(v) for v in fixed]
    report.unlabelled_steps += sum(v is None for v in values)
    return values


def normalise_steps(steps: Sequence[str], name: str) -> list[str]:
    """Makes each step end in exactly one step marker and contain no other.

    Args:
        steps: raw step texts.
        name: record name used in warnings.

    Returns:
        The cleaned steps.

    >>> normalise_steps(["Step 1: a ки", "Step 2: b"], "x")
    ['Step 1: a ки', 'Step 2: b ки']
    """
    marker = S.STEP_MARKER
    out = []
    for i, step in enumerate(steps):
        body = str(step).rstrip()
        while body.endswith(marker):
            body = body[: -len(marker)].rstrip()
        if marker in body:
            logger.warning("%s: step %d has a step marker inside its text; removed", name, i + 1)
            body = body.replace(marker, "")
        out.append(body + marker)
    return out


def split_examples(
    examples: Sequence[PRMExample], cfg: SplitConfig
) -> tuple[list[PRMExample], list[PRMExample], list[PRMExample]]:
    """Splits by group (video or question) so that no group appears in two splits.

    Args:
        examples: examples to split.
        cfg: grouping, fractions and seed.

    Returns:
        ``(train, val, test)``; each keeps the input order.
    """

    def key(ex: PRMExample) -> str:
        return ex.group_id if cfg.by == "video" else ex.question_id

    groups = sorted({key(ex) for ex in examples})
    random.Random(cfg.seed).shuffle(groups)
    n_test = round(len(groups) * cfg.test_fraction)
    n_val = round(len(groups) * cfg.val_fraction)
    test_g = set(groups[:n_test])
    val_g = set(groups[n_test : n_test + n_val])
    train: list[PRMExample] = []
    val: list[PRMExample] = []
    test: list[PRMExample] = []
    for ex in examples:
        g = key(ex)
        (test if g in test_g else val if g in val_g else train).append(ex)
    return train, val, test
