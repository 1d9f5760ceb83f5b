"""Our annotation run's Parquet as PRM examples, with keyframe pose features as vision input.

The annotated stage's rows (``schemas`` column names) become :class:`~physio_ray.prm.data.PRMExample`
through the shared label repair; the keyframes stage joined with the poses stage gives each
recording's keyframe angles ``[T, 16]``, attached to the examples of that video.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.prm.config import LabelConfig
from physio_ray.prm.data import LoadReport, PRMExample, normalise_steps, repair_labels
from physio_ray.video.angles import N_ANGLES

logger = logging.getLogger(__name__)


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
