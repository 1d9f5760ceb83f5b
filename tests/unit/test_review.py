"""Clinician review: the seeded sample, the CSV sheet, the escaped HTML page, verdict import."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.review import CSV_COLUMNS, export_review, import_verdicts, sample_questions

EVIL = "<script>alert('x')</script> & \"quoted\""


def _questions(n: int = 20) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append(
            {
                S.QUESTION_ID: f"q{i:02d}",
                S.VIDEO_ID: f"v{i:02d}",
                S.QUESTION: f"Question {i} {EVIL}",
                S.OPTIONS: ["none", "knee <valgus>", "trunk lean", "heel rise"],
                S.ANSWER: "B",
                S.KEYFRAME_TIMES: [0.0, 1.25],
                S.KEYFRAME_KINDS: ["start", "bottom"],
                S.FEATURES: '{"reps": 3, "min_knee_deg": 71.5}',
            }
        )
    return pd.DataFrame(rows)


def _annotated(n: int = 20) -> pd.DataFrame:
    rows = []
    for i in range(n):
        for s in range(2):
            rows.append(
                {
                    S.QUESTION_ID: f"q{i:02d}",
                    S.SOLUTION_ID: f"q{i:02d}-s{s}",
                    S.STEPS: [f"Step 1: {EVIL} ки", '=HYPERLINK("http://x") ки', "Step 3: fine ки"],
                    S.PREDICTED_ANSWER: "B" if s == 0 else "C",
                    S.LABELS: [1, 0, 1],
                    S.ANNOTATION_METHOD: ["rag", "mc_0.00", "mc_reuse"],
                    S.JUDGE_CONFIDENCES: [0.91, 0.3, 0.2],
                    S.ERROR: None,
                }
            )
    return pd.DataFrame(rows)


def test_sample_questions_is_seeded_and_rounds_up() -> None:
    ids = [f"q{i:02d}" for i in range(20)]
    first = sample_questions(ids, 0.1, seed=0)
    assert len(first) == 2 and first == sample_questions(list(reversed(ids)) + ids, 0.1, seed=0)
    assert first != sample_questions(ids, 0.1, seed=1) or first != sample_questions(ids, 0.1, seed=2)
    assert len(sample_questions(ids[:3], 0.1, seed=0)) == 1  # ceil: at least one
    assert sample_questions(ids, 0.0, seed=0) == [] and sample_questions([], 0.5, seed=0) == []
    assert sample_questions(ids, 1.0, seed=5) == ids


def test_export_writes_csv_rows_per_step_and_an_escaped_page(tmp_path: Path) -> None:
    out = export_review(_annotated(), _questions(), tmp_path / "review", fraction=0.1, seed=0)
    assert len(out.question_ids) == 2 and out.frame_files == []
    with open(out.csv_path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 2 * 2 * 3  # questions x solutions x steps
    r0 = rows[0]
    assert (r0["question_id"], r0["solution_id"], r0["step_idx"], r0["label"], r0["method"], r0["confidence"]) == (
        out.question_ids[0],
        f"{out.question_ids[0]}-s0",
        "0",
        "1",
        "rag",
        "0.91",
    )
    assert r0["step"] == f"Step 1: {EVIL} ки"
    assert rows[1]["step"].startswith("'=HYPERLINK")  # formula neutralised for spreadsheets
    assert all(r["clinician_verdict"] == "" for r in rows)

    page = out.html_path.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "knee &lt;valgus&gt;" in page
    assert "start @ 0.00s, bottom @ 1.25s" in page  # no frames: keyframe times and features
    assert "<dt>min_knee_deg</dt><dd>71.5</dd>" in page


def test_export_writes_keyframe_jpegs_next_to_the_page(tmp_path: Path) -> None:
    from PIL import Image

    qs = _questions(1)
    qs.loc[0, S.QUESTION_ID] = "q/../evil id"
    ann = _annotated(1).assign(**{S.QUESTION_ID: "q/../evil id"})
    frame = np.zeros((8, 12, 3), dtype=np.uint8)
    frame[:, :6] = 255
    out = export_review(ann, qs, tmp_path, fraction=1.0, frames={"v00": [frame, frame]})
    assert [p.name for p in out.frame_files] == ["0000_q____evil_id_00.jpg", "0000_q____evil_id_01.jpg"]
    assert all(p.parent == tmp_path / "frames" for p in out.frame_files)
    with Image.open(out.frame_files[0]) as img:
        assert img.format == "JPEG" and img.size == (12, 8)
    page = out.html_path.read_text(encoding="utf-8")
    assert "<img src='frames/0000_q____evil_id_00.jpg' alt='keyframe'>" in page
    assert "Keyframes (no images)" not in page


def _fill(path: Path, verdicts: list[str]) -> None:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r, v in zip(rows, verdicts, strict=False):
        r["clinician_verdict"] = v
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def test_import_verdicts_agreement_and_confusion(tmp_path: Path) -> None:
    ann = _annotated()
    out = export_review(ann, _questions(), tmp_path, fraction=0.1, seed=0)
    # our labels per solution: [1 rag, 0 mc, 1 mc_reuse]; 12 rows, 7 reviewed
    _fill(out.csv_path, ["correct", "correct", " Incorrect ", "CORRECT", "incorrect", "", "", "incorrect"])
    rep = import_verdicts(out.csv_path, ann)
    assert rep["rows"] == 12 and rep["reviewed"] == 6
    assert rep["coverage"] == 0.5
    # rows: (1,c) hit, (0,c) miss, (1,i) miss, (1,c) hit, (0,i) hit, -, -, (0,i) hit
    assert rep["agreement"] == pytest.approx(4 / 6)
    assert rep["confusion"] == {
        "ours_1_clinician_correct": 2,
        "ours_1_clinician_incorrect": 1,
        "ours_0_clinician_correct": 1,
        "ours_0_clinician_incorrect": 2,
    }
    assert rep["by_method"] == {
        "mc": {"reviewed": 3, "agreement": pytest.approx(2 / 3)},
        "mc_reuse": {"reviewed": 1, "agreement": 0.0},
        "rag": {"reviewed": 2, "agreement": 1.0},
    }


def test_import_verdicts_is_strict(tmp_path: Path) -> None:
    ann = _annotated()
    out = export_review(ann, _questions(), tmp_path, fraction=0.1, seed=0)
    _fill(out.csv_path, ["yes", "correct", "maybe"])
    with pytest.raises(ValueError, match=r"2 bad rows:\nline 2: verdict 'yes'.*\nline 4: verdict 'maybe'"):
        import_verdicts(out.csv_path, ann)
    _fill(out.csv_path, [""] * 12)
    with pytest.raises(ValueError, match="is not in the annotated rows"):
        import_verdicts(out.csv_path, ann[ann[S.QUESTION_ID] == "nowhere"])
    assert import_verdicts(out.csv_path, ann)["agreement"] is None
    bad = tmp_path / "bad.csv"
    bad.write_text("solution_id,verdict\nx,correct\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing columns"):
        import_verdicts(bad, ann)
