"""Exports of annotated solutions: the seed's appendix JSON and Med-PRM's training JSON.

Both take the annotated stage's rows (a DataFrame or a list of dicts; rows with ``error``
set are left out) plus the questions stage's rows, group solutions by question, and write
one JSON list atomically (temp file in the same folder, then rename).

* :func:`export_appendix` — seed 000 §12.1: per question ``question_id``, ``modality``,
  ``video_metadata`` {source, duration_sec, fps, exercise_type, key_frames}, ``question``,
  ``options`` as ``"A) ..."`` strings, ``correct_answer``, ``solutions`` [{solution_text,
  annotation, annotation_method, rag_confidence, monte_carlo_score}], ``related_docs``.
* :func:`export_medprm` — Med-PRM's nested training schema (``python/2_training.py``):
  item {question_id, question, options[list], correct_answer, data_source, related_docs,
  solutions [{solution, prm_processed_solution, orm_processed_solution, prm_hard_label,
  prm_soft_label, prm_gemini_label, orm_label, answer, score}]}.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physio_ray import schemas as S

__all__ = ["appendix_records", "export_appendix", "export_medprm", "medprm_records", "write_json_atomic"]

# Recording sources whose raw input is a camera video; the others are motion-capture skeletons.
_VIDEO_SOURCES = {"video", "tfjs"}


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Writes ``obj`` as UTF-8 JSON via a temp file in the same folder and ``os.replace``.

    Args:
        obj: JSON-serialisable data (numpy scalars/arrays and NaN are converted: NaN -> null).
        path: destination file; its folder is created.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(plain(obj), fh, ensure_ascii=False, indent=2, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plain(value: Any) -> Any:
    """Converts numpy containers/scalars to Python ones and NaN/inf to ``None`` (JSON-safe)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(rows, pd.DataFrame):
        return [dict(r) for r in rows.to_dict(orient="records")]
    return [dict(r) for r in rows]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _list(v: Any) -> list[Any]:
    if _missing(v):
        return []
    return plain(list(v)) if not isinstance(v, str) else [v]


def _ok(row: Mapping[str, Any]) -> bool:
    err = row.get(S.ERROR)
    return _missing(err) or err == ""


def _group(annotated: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by_q: dict[str, list[Mapping[str, Any]]] = {}
    for row in annotated:
        if _ok(row):
            by_q.setdefault(str(row[S.QUESTION_ID]), []).append(row)
    for sols in by_q.values():
        sols.sort(key=lambda r: str(r[S.SOLUTION_ID]))
    return by_q


def _related_docs(sols: Sequence[Mapping[str, Any]], docs: Mapping[str, str] | None) -> list[str]:
    ids: list[str] = []
    for sol in sols:
        for doc_id in _list(sol.get(S.RETRIEVED_DOCS)):
            if str(doc_id) not in ids:
                ids.append(str(doc_id))
    if docs is None:
        return ids
    return [
        f"Document {i + 1}: {docs[d]} ({d})" if docs.get(d) else f"Document {i + 1}: ({d})" for i, d in enumerate(ids)
    ]


def _solution_text(row: Mapping[str, Any]) -> str:
    text = row.get(S.SOLUTION_TEXT)
    if isinstance(text, str) and text:
        return text
    return "\n".join(str(s) for s in _list(row.get(S.STEPS)))


def _video_metadata(q: Mapping[str, Any], video: Mapping[str, Any]) -> dict[str, Any]:
    def pick(key: str) -> Any:
        v = q.get(key)
        return video.get(key) if _missing(v) or (isinstance(v, (list, np.ndarray)) and len(v) == 0) else v

    fps, n_frames = pick(S.FPS), pick(S.N_FRAMES)
    duration = None
    if not _missing(fps) and not _missing(n_frames) and float(fps) > 0:
        duration = round(float(n_frames) / float(fps), 3)
    return {
        "source": plain(pick(S.SOURCE_KIND)),
        "video_id": plain(pick(S.VIDEO_ID)),
        "duration_sec": duration,
        "fps": plain(fps),
        "exercise_type": plain(pick(S.EXERCISE)),
        "key_frames": _list(pick(S.KEYFRAME_INDICES)),
        "key_frame_times_sec": _list(pick(S.KEYFRAME_TIMES)),
    }


def appendix_records(
    annotated: pd.DataFrame | Sequence[Mapping[str, Any]],
    questions: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    videos: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    docs: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Builds the seed-appendix objects, one per question that has annotated solutions.

    Args:
        annotated: annotated-stage rows (question_id, solution_id, steps, labels,
            annotation_method, judge_confidences, mc_scores, optionally solution_text,
            retrieved_docs, error).
        questions: questions-stage rows (question_id, question, options, answer, and where
            present video_id / exercise / source_kind / fps / n_frames / keyframe_indices).
        videos: optional per-recording rows (keyframes stage) keyed by ``video_id`` that fill
            video metadata the question rows lack.
        docs: optional passage id -> text, to expand ``retrieved_docs`` ids into text.

    Returns:
        A list of dicts in question-id order. ``modality`` is ``"video"`` for camera sources
        (``video``, ``tfjs``) and ``"skeleton"`` for motion-capture ones (UI-PRMD, KERAAL).
    """
    by_q = _group(_records(annotated))
    vids = {str(v.get(S.VIDEO_ID)): v for v in _records(videos)} if videos is not None else {}
    out = []
    for q in sorted(_records(questions), key=lambda r: str(r[S.QUESTION_ID])):
        sols = by_q.get(str(q[S.QUESTION_ID]))
        if not sols:
            continue
        meta = _video_metadata(q, vids.get(str(q.get(S.VIDEO_ID)), {}))
        options = [str(o) for o in _list(q[S.OPTIONS])]
        out.append(
            {
                "question_id": str(q[S.QUESTION_ID]),
                "modality": "video" if meta["source"] in _VIDEO_SOURCES else "skeleton",
                "video_metadata": meta,
                "question": str(q[S.QUESTION]),
                "options": [f"{S.LETTERS[i]}) {o}" for i, o in enumerate(options)],
                "correct_answer": str(q[S.ANSWER]),
                "solutions": [
                    {
                        "solution_id": str(s[S.SOLUTION_ID]),
                        "solution_text": _solution_text(s),
                        "annotation": _list(s.get(S.LABELS)),
                        "annotation_method": _list(s.get(S.ANNOTATION_METHOD)),
                        "rag_confidence": _list(s.get(S.JUDGE_CONFIDENCES)),
                        "monte_carlo_score": _list(s.get(S.MC_SCORES)),
                    }
                    for s in sols
                ],
                "related_docs": _related_docs(sols, docs),
            }
        )
    return out


def _with_marker(step: str) -> str:
    step = step.rstrip()
    return step if step.endswith(S.STEP_MARKER.strip()) else step + S.STEP_MARKER


def _without_marker(step: str) -> str:
    step = step.rstrip()
    marker = S.STEP_MARKER.strip()
    return step[: -len(marker)].rstrip() if step.endswith(marker) else step


def medprm_records(
    annotated: pd.DataFrame | Sequence[Mapping[str, Any]],
    questions: pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    data_source: str = "physio_ray",
    docs: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Builds Med-PRM training items, one per question that has annotated solutions.

    ``prm_hard_label`` / ``prm_soft_label`` carry our *hybrid* labels (judge where confident,
    MC elsewhere): the labels a Med-PRM run with ``--train_label prm_hard_label`` should learn.
    ``prm_gemini_label`` carries our judge's raw labels with abstentions exported as 0 (Med-PRM's
    ``process_gemini_label`` expects 0/1). ``prm_processed_solution`` ends every step with
    " ки" (steps joined by spaces, as in the released set); ``orm_processed_solution`` has one
    " ки" at the end.
    ``annotation_method`` is an extra key Med-PRM's loader ignores.

    Args:
        annotated: annotated-stage rows (see :func:`appendix_records`), plus
            ``predicted_answer``, ``is_correct``, ``judge_labels``, ``soft_labels``.
        questions: questions-stage rows.
        data_source: value of ``data_source`` for every item.
        docs: optional passage id -> text for ``related_docs``.

    Returns:
        A list of dicts in question-id order.
    """
    by_q = _group(_records(annotated))
    out = []
    for q in sorted(_records(questions), key=lambda r: str(r[S.QUESTION_ID])):
        sols = by_q.get(str(q[S.QUESTION_ID]))
        if not sols:
            continue
        items = []
        for s in sols:
            steps = [str(x) for x in _list(s.get(S.STEPS))]
            correct = int(bool(s.get(S.IS_CORRECT)))
            pred = s.get(S.PREDICTED_ANSWER)
            items.append(
                {
                    "solution_id": str(s[S.SOLUTION_ID]),
                    "solution": _solution_text(s),
                    "prm_processed_solution": " ".join(_with_marker(x) for x in steps),
                    "orm_processed_solution": " ".join(_without_marker(x) for x in steps) + S.STEP_MARKER,
                    "prm_hard_label": [int(v) for v in _list(s.get(S.LABELS))],
                    "prm_soft_label": [float(v) for v in _list(s.get(S.SOFT_LABELS))],
                    "prm_gemini_label": [0 if _missing(v) else int(v) for v in _list(s.get(S.JUDGE_LABELS))],
                    "annotation_method": _list(s.get(S.ANNOTATION_METHOD)),
                    "orm_label": correct,
                    "answer": None if _missing(pred) else str(pred),
                    "score": correct,
                }
            )
        out.append(
            {
                "question_id": str(q[S.QUESTION_ID]),
                "question": str(q[S.QUESTION]),
                "options": [str(o) for o in _list(q[S.OPTIONS])],
                "correct_answer": str(q[S.ANSWER]),
                "data_source": data_source,
                "related_docs": _related_docs(sols, docs),
                "solutions": items,
            }
        )
    return out


def export_appendix(
    annotated: pd.DataFrame | Sequence[Mapping[str, Any]],
    questions: pd.DataFrame | Sequence[Mapping[str, Any]],
    path: str | Path,
    **kwargs: Any,
) -> Path:
    """Writes :func:`appendix_records` to ``path`` atomically; kwargs go to it."""
    return write_json_atomic(appendix_records(annotated, questions, **kwargs), path)


def export_medprm(
    annotated: pd.DataFrame | Sequence[Mapping[str, Any]],
    questions: pd.DataFrame | Sequence[Mapping[str, Any]],
    path: str | Path,
    **kwargs: Any,
) -> Path:
    """Writes :func:`medprm_records` to ``path`` atomically; kwargs go to it."""
    return write_json_atomic(medprm_records(annotated, questions, **kwargs), path)
