"""PRM training examples: the record type, label repair, splits, and our annotated Parquet.

One :class:`PRMExample` is one solution: its steps (each ending in the step marker), one
label per step (``None`` = unlabelled, masked out of the loss) and, optionally, the keyframe
pose features of the recording the question is about (``vision``, ``[T, F]``).

Label repair is shared by every loader (:func:`repair_labels`): label lists longer or
shorter than the steps, and binary labels that go 0 -> 1 (Med-PRM zeroes every step after
the first 0). Every repair is logged and counted in a :class:`LoadReport`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.labels import zero_after_first_error
from physio_ray.prm.config import LabelConfig, SplitConfig

logger = logging.getLogger(__name__)

N_ANGLES = 16  # joint angles per frame in the poses stage (schemas.ANGLES)


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
    values = [_as_label(v) for v in raw] if raw is not None else [None] * n_steps
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
    train, val, test = [], [], []
    for ex in examples:
        g = key(ex)
        (test if g in test_g else val if g in val_g else train).append(ex)
    return train, val, test


def keyframe_vision(angles: Sequence[float], n_frames: int, keyframe_indices: Sequence[int]) -> np.ndarray:
    """Picks the keyframe rows of a flat angle sequence.

    Args:
        angles: ``[n_frames * 16]`` joint angles (degrees, NaN where not visible).
        n_frames: frames in the recording.
        keyframe_indices: frame index of each keyframe.

    Returns:
        float32 ``[T, 16]`` (``T = len(keyframe_indices)``).

    Raises:
        ValueError: when the sizes disagree or an index is out of range.
    """
    arr = np.asarray(angles, dtype=np.float32)
    if arr.size != n_frames * N_ANGLES:
        raise ValueError(f"angles has {arr.size} values, expected n_frames * {N_ANGLES} = {n_frames * N_ANGLES}")
    idx = np.asarray(keyframe_indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_frames):
        raise ValueError(f"keyframe index out of range 0..{n_frames - 1}: {idx.tolist()}")
    return arr.reshape(n_frames, N_ANGLES)[idx]


def vision_by_video(rows: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Keyframe features per video from rows carrying angles, n_frames and keyframe indices.

    Rows come from the keyframes stage joined with the poses stage (columns
    ``video_id``, ``angles``, ``n_frames``, ``keyframe_indices``). Rows with an error or
    inconsistent sizes are skipped with a warning.

    Returns:
        ``video_id -> float32 [T, 16]``.
    """
    out: dict[str, np.ndarray] = {}
    for row in rows:
        vid = row.get(S.VIDEO_ID)
        if row.get(S.ERROR) or vid is None:
            continue
        try:
            out[str(vid)] = keyframe_vision(row[S.ANGLES], int(row[S.N_FRAMES]), row[S.KEYFRAME_INDICES])
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("video %s: no keyframe features (%s)", vid, exc)
    return out


def attach_vision(examples: Sequence[PRMExample], vision: Mapping[str, np.ndarray]) -> list[PRMExample]:
    """Returns the examples with ``vision`` set from their video (text-only when absent)."""
    missing = sum(1 for ex in examples if ex.video_id and ex.video_id not in vision)
    if missing:
        logger.warning("%d examples have a video_id without keyframe features; they stay text-only", missing)
    return [
        dataclasses.replace(ex, vision=vision[ex.video_id]) if ex.video_id and ex.video_id in vision else ex
        for ex in examples
    ]


_LABEL_COLUMN = {"hard": S.LABELS, "soft": S.SOFT_LABELS, "judge": S.JUDGE_LABELS}


def examples_from_rows(
    rows: Iterable[Mapping[str, Any]], cfg: LabelConfig, report: LoadReport | None = None
) -> list[PRMExample]:
    """Builds examples from rows of the annotated stage (``schemas`` column names).

    Args:
        rows: dicts with ``question_id``, ``question``, ``options``, ``answer``, ``steps``,
            ``labels`` / ``soft_labels`` / ``judge_labels``, ``is_correct`` and optionally
            ``solution_id``, ``video_id``, ``predicted_answer``, ``error``.
        cfg: label settings.
        report: counters updated in place (a fresh one when ``None``).

    Returns:
        The usable examples; rows with ``error`` set or unusable fields are skipped.
    """
    report = report if report is not None else LoadReport()
    out = []
    for i, row in enumerate(rows):
        report.records += 1
        name = str(row.get(S.SOLUTION_ID) or f"row {i}")
        if row.get(S.ERROR):
            report.skip(f"upstream error: {row.get(S.ERROR)}", name)
            continue
        steps = row.get(S.STEPS)
        if steps is None or len(steps) == 0 or row.get(S.QUESTION_ID) is None:
            report.skip("missing steps or question_id", name)
            continue
        steps = normalise_steps([str(s) for s in steps], name)
        labels = repair_labels(_to_list(row.get(_LABEL_COLUMN[cfg.source])), len(steps), cfg, name, report)
        if labels is None:
            report.skip("label length mismatch", name)
            continue
        if cfg.require_labels and all(v is None for v in labels):
            report.skip(f"no usable {cfg.source} labels", name)
            continue
        correct = row.get(S.IS_CORRECT)
        out.append(
            PRMExample(
                question_id=str(row[S.QUESTION_ID]),
                solution_id=name if row.get(S.SOLUTION_ID) else f"{row[S.QUESTION_ID]}-r{i}",
                question=str(row.get(S.QUESTION) or ""),
                options=[str(o) for o in _to_list(row.get(S.OPTIONS)) or []],
                steps=steps,
                labels=labels,
                is_correct=None if correct is None else bool(correct),
                answer=row.get(S.PREDICTED_ANSWER),
                correct_answer=row.get(S.ANSWER),
                video_id=None if row.get(S.VIDEO_ID) is None else str(row[S.VIDEO_ID]),
                source="annotated",
            )
        )
    report.examples += len(out)
    return out


def load_annotated(
    path: str, cfg: LabelConfig | None = None, vision_path: str | None = None
) -> tuple[list[PRMExample], LoadReport]:
    """Reads the annotated stage's Parquet (file or folder) into examples.

    Args:
        path: ``<output_dir>/annotated`` (Parquet file or directory of files).
        cfg: label settings (defaults: judge labels, Med-PRM's zeroing).
        vision_path: optional Parquet with ``video_id``, ``angles``, ``n_frames`` and
            ``keyframe_indices`` (keyframes joined with poses) to attach ``vision``.

    Returns:
        ``(examples, report)``.
    """
    import pyarrow.parquet as pq

    cfg = cfg or LabelConfig()
    report = LoadReport()
    rows = pq.read_table(path).to_pylist()
    examples = examples_from_rows(rows, cfg, report)
    if vision_path:
        examples = attach_vision(examples, vision_by_video(pq.read_table(vision_path).to_pylist()))
    logger.info("annotated %s: %s", path, report.summary())
    return examples, report


def _to_list(value: Any) -> list[Any] | None:
    """Parquet / numpy / JSON-string list values -> list (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) else None
    if isinstance(value, np.ndarray):
        return value.tolist()
    return list(value)
