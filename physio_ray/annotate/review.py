"""Clinician review (seed 000 §5.1 "Expert Review (10% Sample)"): export a sample, read verdicts back.

:func:`export_review` draws a seeded random share of the annotated questions and writes

* ``review.csv``: one row per step (question_id, solution_id, step_idx, step, label, method,
  confidence, empty ``clinician_verdict`` and ``clinician_comment``), and
* ``review.html``: a static page per question with its keyframes (``<img>`` of JPEGs written
  into ``frames/`` beside it when frames are given, else keyframe times and movement features),
  the question, and every solution's steps with our labels. All text is HTML-escaped.

:func:`import_verdicts` reads the filled CSV back (verdicts ``correct`` / ``incorrect`` /
blank, case-insensitive, nothing else) and compares them with our labels.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physio_ray import schemas as S
from physio_ray.annotate.export import _group, _list, _missing, _records

__all__ = ["CSV_COLUMNS", "ReviewExport", "export_review", "import_verdicts", "sample_questions"]

CSV_COLUMNS = (
    "question_id",
    "solution_id",
    "step_idx",
    "step",
    "label",
    "method",
    "confidence",
    "clinician_verdict",
    "clinician_comment",
)
VERDICTS = {"correct": 1, "incorrect": 0}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ReviewExport:
    """Where the review set went.

    Attributes:
        csv_path: the per-step verdict sheet.
        html_path: the static review page.
        question_ids: sampled questions, sorted.
        frame_files: JPEGs written under ``frames/``.
    """

    csv_path: Path
    html_path: Path
    question_ids: list[str]
    frame_files: list[Path] = field(default_factory=list)


def sample_questions(question_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A seeded random sample of ``ceil(fraction * n)`` distinct questions, sorted.

    Args:
        question_ids: candidate ids (duplicates ignored).
        fraction: share in ``[0, 1]``.
        seed: sampling seed.

    Returns:
        Sorted sampled ids (at least one when ``fraction > 0`` and there are candidates).
    """
    ids = sorted({str(q) for q in question_ids})
    k = min(len(ids), math.ceil(fraction * len(ids) - 1e-9)) if fraction > 0 else 0
    rng = np.random.default_rng(seed)
    return sorted(ids[i] for i in rng.choice(len(ids), size=k, replace=False)) if k else []


def _safe_cell(text: str) -> str:
    """Stops spreadsheet apps from running a step's text as a formula (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _file_token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:80] or "x"


def _write_text_atomic(text: str, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_jpeg(frame: Any, path: Path) -> None:
    """Writes an RGB ``uint8 [H, W, 3]`` array, JPEG bytes, or an existing image file as JPEG."""
    if isinstance(frame, (bytes, bytearray)):
        path.write_bytes(bytes(frame))
        return
    from PIL import Image

    img = Image.open(frame) if isinstance(frame, (str, Path)) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
    img.convert("RGB").save(path, format="JPEG", quality=85)


def _keyframe_block(q: Mapping[str, Any], video: Mapping[str, Any], images: list[str]) -> str:
    e = html.escape
    if images:
        return "<div class='frames'>" + "".join(f"<img src='{e(src)}' alt='keyframe'>" for src in images) + "</div>"

    def pick(key: str) -> Any:
        v = q.get(key)
        return video.get(key) if _missing(v) else v

    times, kinds = _list(pick(S.KEYFRAME_TIMES)), _list(pick(S.KEYFRAME_KINDS))
    parts = []
    if times:
        kinds = kinds + [""] * (len(times) - len(kinds))
        parts.append(
            "<p>Keyframes (no images): "
            + ", ".join(
                e(f"{k} @ {float(t):.2f}s" if k else f"{float(t):.2f}s") for t, k in zip(times, kinds, strict=False)
            )
            + "</p>"
        )
    feats = pick(S.FEATURES)
    if isinstance(feats, str) and feats:
        try:
            feats = json.loads(feats)
        except json.JSONDecodeError:
            feats = {"features": feats}
    if isinstance(feats, Mapping) and feats:
        parts.append("<dl>" + "".join(f"<dt>{e(str(k))}</dt><dd>{e(str(v))}</dd>" for k, v in feats.items()) + "</dl>")
    return "".join(parts) or "<p>No keyframes recorded.</p>"


_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto}section{border-top:2px solid #999;margin-top:2em}"
    ".frames img{height:160px;margin:2px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px}"
    ".l0{background:#fdd}.l1{background:#dfd}"
)


def export_review(
    annotated: pd.DataFrame | Sequence[Mapping[str, Any]],
    questions: pd.DataFrame | Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    fraction: float = 0.1,
    seed: int = 0,
    videos: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    frames: Mapping[str, Sequence[Any]] | None = None,
) -> ReviewExport:
    """Writes the clinician review sheet and page for a random share of questions.

    Args:
        annotated: annotated-stage rows (errors are left out).
        questions: questions-stage rows (question, options, answer; video fields if any).
        out_dir: folder for ``review.csv``, ``review.html`` and ``frames/``.
        fraction: share of annotated questions to sample (``ExportConfig.review_fraction``).
        seed: sampling seed (``ExportConfig.review_seed``).
        videos: optional keyframes-stage rows keyed by ``video_id`` (times, kinds, features).
        frames: optional ``video_id -> keyframe images`` (RGB ``uint8 [H, W, 3]`` arrays, JPEG
            bytes, or image paths), written as JPEGs next to the page.

    Returns:
        A :class:`ReviewExport`.
    """
    out_dir = Path(out_dir)
    (out_dir / "frames").mkdir(parents=True, exist_ok=True)
    by_q = _group(_records(annotated))
    qrows = {str(q[S.QUESTION_ID]): q for q in _records(questions)}
    vids = {str(v.get(S.VIDEO_ID)): v for v in _records(videos)} if videos is not None else {}
    chosen = sample_questions([q for q in by_q if q in qrows], fraction, seed)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    e = html.escape
    body = [f"<h1>Clinician review: {len(chosen)} questions</h1>"]
    written: list[Path] = []
    for qi, qid in enumerate(chosen):
        q = qrows[qid]
        video_id = str(q.get(S.VIDEO_ID, ""))
        images = []
        for k, frame in enumerate((frames or {}).get(video_id, [])):
            name = f"{qi:04d}_{_file_token(qid)}_{k:02d}.jpg"  # index: distinct ids never collide
            _write_jpeg(frame, out_dir / "frames" / name)
            written.append(out_dir / "frames" / name)
            images.append(f"frames/{name}")
        opts = "".join(f"<li>{e(chr(65 + i))}) {e(str(o))}</li>" for i, o in enumerate(_list(q.get(S.OPTIONS))))
        body.append(
            f"<section><h2>Question {e(qid)}</h2>{_keyframe_block(q, vids.get(video_id, {}), images)}"
            f"<p>{e(str(q.get(S.QUESTION, '')))}</p><ol style='list-style:none'>{opts}</ol>"
            f"<p>Correct answer: <b>{e(str(q.get(S.ANSWER, '')))}</b></p>"
        )
        for sol in by_q[qid]:
            sid = str(sol[S.SOLUTION_ID])
            steps, labels = _list(sol.get(S.STEPS)), _list(sol.get(S.LABELS))
            methods, confs = _list(sol.get(S.ANNOTATION_METHOD)), _list(sol.get(S.JUDGE_CONFIDENCES))
            body.append(
                f"<h3>Solution {e(sid)} (answer {e(str(sol.get(S.PREDICTED_ANSWER)))})</h3>"
                "<table><tr><th>#</th><th>step</th><th>label</th><th>method</th><th>judge conf.</th></tr>"
            )
            for k, step in enumerate(steps):
                lab = labels[k] if k < len(labels) else None
                meth = methods[k] if k < len(methods) else ""
                conf = confs[k] if k < len(confs) else None
                conf_s = "" if conf is None or _missing(conf) else f"{float(conf):.2f}"
                writer.writerow([qid, sid, k, _safe_cell(str(step)), "" if lab is None else lab, meth, conf_s, "", ""])
                body.append(
                    f"<tr class='l{e(str(lab))}'><td>{k}</td><td>{e(str(step))}</td><td>{e(str(lab))}</td>"
                    f"<td>{e(str(meth))}</td><td>{e(conf_s)}</td></tr>"
                )
            body.append("</table>")
        body.append("</section>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>physio_ray clinician review</title>"
        f"<style>{_STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
    csv_path, html_path = out_dir / "review.csv", out_dir / "review.html"
    _write_text_atomic(buf.getvalue(), csv_path)
    _write_text_atomic(page, html_path)
    return ReviewExport(csv_path, html_path, chosen, written)


def import_verdicts(csv_path: str | Path, annotated_df: pd.DataFrame) -> dict[str, Any]:
    """Reads clinicians' verdicts and compares them with our labels.

    Args:
        csv_path: a filled ``review.csv``.
        annotated_df: the annotated rows the sheet was made from (labels are taken from here,
            not from the sheet, so an edited ``label`` cell cannot change the result).

    Returns:
        ``{"rows", "reviewed", "coverage", "agreement", "confusion", "by_method"}`` where
        ``confusion`` counts ``ours_{1|0}_clinician_{correct|incorrect}`` and ``by_method``
        maps ``rag`` / ``mc`` / ``mc_reuse`` / ``solution`` to ``{"reviewed", "agreement"}``.
        ``agreement`` is ``None`` when nothing was reviewed.

    Raises:
        ValueError: on missing columns, a verdict other than correct/incorrect/blank, or a
            (solution_id, step_idx) that is not in ``annotated_df``; every bad row is listed.
    """
    ours: dict[tuple[str, int], tuple[int, str]] = {}
    for row in _records(annotated_df):
        labels, methods = _list(row.get(S.LABELS)), _list(row.get(S.ANNOTATION_METHOD))
        for k, lab in enumerate(labels):
            meth = str(methods[k]) if k < len(methods) else ""
            family = "mc" if meth.startswith("mc_") and meth != "mc_reuse" else meth
            ours[(str(row[S.SOLUTION_ID]), k)] = (int(lab), family)
    with open(csv_path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"solution_id", "step_idx", "clinician_verdict"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path}: missing columns {sorted(missing)}; export a fresh sheet with export_review")
        rows = list(reader)
    problems: list[str] = []
    confusion = {f"ours_{o}_clinician_{c}": 0 for o in (1, 0) for c in ("correct", "incorrect")}
    by_method: dict[str, list[int]] = {}
    reviewed = agree = 0
    for line, r in enumerate(rows, start=2):
        verdict = (r.get("clinician_verdict") or "").strip().lower()
        if verdict and verdict not in VERDICTS:
            problems.append(f"line {line}: verdict {r['clinician_verdict']!r} (use correct, incorrect or leave blank)")
            continue
        try:
            key = (str(r["solution_id"]), int(str(r["step_idx"]).strip()))
        except ValueError:
            problems.append(f"line {line}: step_idx {r['step_idx']!r} is not an integer")
            continue
        if key not in ours:
            problems.append(f"line {line}: solution {key[0]} step {key[1]} is not in the annotated rows")
            continue
        if not verdict:
            continue
        label, family = ours[key]
        hit = int(label == VERDICTS[verdict])
        reviewed += 1
        agree += hit
        confusion[f"ours_{label}_clinician_{verdict}"] += 1
        by_method.setdefault(family, []).append(hit)
    if problems:
        raise ValueError(f"{csv_path}: {len(problems)} bad rows:\n" + "\n".join(problems))
    return {
        "rows": len(rows),
        "reviewed": reviewed,
        "coverage": reviewed / len(rows) if rows else 0.0,
        "agreement": agree / reviewed if reviewed else None,
        "confusion": confusion,
        "by_method": {m: {"reviewed": len(h), "agreement": sum(h) / len(h)} for m, h in sorted(by_method.items())},
    }
