"""Exports: the seed appendix JSON and Med-PRM's training JSON, written atomically."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.export import (
    appendix_records,
    export_appendix,
    export_medprm,
    medprm_records,
    write_json_atomic,
)
from tests.conftest import shared_path


def _questions() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                S.QUESTION_ID: "q1",
                S.VIDEO_ID: "tfjs-squats",
                S.QUESTION: "What compensation is present?",
                S.OPTIONS: ["none", "knee valgus", "trunk lean", "heel rise"],
                S.ANSWER: "B",
            },
            {
                S.QUESTION_ID: "q0",
                S.VIDEO_ID: "uiprmd-m01",
                S.QUESTION: "Is the squat deep enough?",
                S.OPTIONS: ["yes", "no", "n/a", "unclear"],
                S.ANSWER: "A",
                S.EXERCISE: "deep_squat",
                S.SOURCE_KIND: "uiprmd",
                S.FPS: 30.0,
                S.N_FRAMES: 315,
                S.KEYFRAME_INDICES: [0, 150, 314],
            },
            {S.QUESTION_ID: "q9", S.QUESTION: "no solutions", S.OPTIONS: ["a", "b", "c", "d"], S.ANSWER: "C"},
        ]
    )


def _videos() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                S.VIDEO_ID: "tfjs-squats",
                S.SOURCE_KIND: "tfjs",
                S.EXERCISE: "squat",
                S.FPS: 25.0,
                S.N_FRAMES: 262,
                S.KEYFRAME_INDICES: np.array([0, 75, 150]),
                S.KEYFRAME_TIMES: [0.0, 3.0, 6.0],
            }
        ]
    )


def _annotated() -> pd.DataFrame:
    base = {
        S.QUESTION_ID: "q1",
        S.RETRIEVED_DOCS: ["physio-12", "physio-3"],
        S.PREDICTED_ANSWER: "B",
        S.IS_CORRECT: True,
        S.ERROR: None,
    }
    return pd.DataFrame(
        [
            {
                **base,
                S.SOLUTION_ID: "q1-s1",
                S.STEPS: ["Step 1: knees move in. ки", "Step 2: valgus. ки"],
                S.JUDGE_LABELS: [1, None],
                S.JUDGE_CONFIDENCES: [0.95, 0.0],
                S.MC_SCORES: [None, 0.8125],
                S.MC_ROLLOUTS: [0, 16],
                S.LABELS: [1, 1],
                S.SOFT_LABELS: [1.0, 0.8125],
                S.ANNOTATION_METHOD: ["rag", "mc_0.81"],
            },
            {
                **base,
                S.SOLUTION_ID: "q1-s0",
                S.SOLUTION_TEXT: "raw model text",
                S.STEPS: ["Step 1: heels rise. ки"],
                S.PREDICTED_ANSWER: None,
                S.IS_CORRECT: False,
                S.RETRIEVED_DOCS: ["physio-3", "physio-7"],
                S.JUDGE_LABELS: [0],
                S.JUDGE_CONFIDENCES: [0.9],
                S.MC_SCORES: [float("nan")],
                S.MC_ROLLOUTS: [0],
                S.LABELS: [0],
                S.SOFT_LABELS: [0.0],
                S.ANNOTATION_METHOD: ["rag"],
            },
            {**base, S.QUESTION_ID: "q0", S.SOLUTION_ID: "q0-s0", S.STEPS: ["Step 1: x ки"], S.ERROR: "judge: boom"},
        ]
    )


def test_appendix_format_by_hand() -> None:
    docs = {"physio-12": "Knee valgus in squats...", "physio-3": "FMS squat protocol"}
    recs = appendix_records(_annotated(), _questions(), videos=_videos(), docs=docs)
    assert [r["question_id"] for r in recs] == ["q1"]  # q0's only solution errored, q9 has none
    q = recs[0]
    assert q["modality"] == "video"
    assert q["video_metadata"] == {
        "source": "tfjs",
        "video_id": "tfjs-squats",
        "duration_sec": 10.48,
        "fps": 25.0,
        "exercise_type": "squat",
        "key_frames": [0, 75, 150],
        "key_frame_times_sec": [0.0, 3.0, 6.0],
    }
    assert q["options"] == ["A) none", "B) knee valgus", "C) trunk lean", "D) heel rise"]
    assert q["correct_answer"] == "B"
    assert [s["solution_id"] for s in q["solutions"]] == ["q1-s0", "q1-s1"]
    s0, s1 = q["solutions"]
    assert s0["solution_text"] == "raw model text"
    assert s1["solution_text"] == "Step 1: knees move in. ки\nStep 2: valgus. ки"
    assert s1["annotation"] == [1, 1]
    assert s1["annotation_method"] == ["rag", "mc_0.81"]
    assert s1["rag_confidence"] == [0.95, 0.0]
    assert s1["monte_carlo_score"] == [None, 0.8125]
    assert q["related_docs"] == [
        "Document 1: FMS squat protocol (physio-3)",
        "Document 2: (physio-7)",
        "Document 3: Knee valgus in squats... (physio-12)",
    ]


def test_appendix_takes_video_fields_from_question_rows_and_skeleton_modality() -> None:
    ann = _annotated()
    ann.loc[2, S.ERROR] = None
    for col in (S.LABELS, S.ANNOTATION_METHOD, S.JUDGE_CONFIDENCES, S.MC_SCORES):
        ann.at[2, col] = [1] if col == S.LABELS else (["rag"] if col == S.ANNOTATION_METHOD else [0.9])
    recs = {r["question_id"]: r for r in appendix_records(ann.to_dict(orient="records"), _questions())}
    q0 = recs["q0"]
    assert q0["modality"] == "skeleton"
    assert q0["video_metadata"]["duration_sec"] == 10.5
    assert q0["video_metadata"]["key_frames"] == [0, 150, 314]
    assert recs["q1"]["video_metadata"]["source"] is None  # no videos frame given


def test_export_appendix_writes_valid_json_with_nulls(tmp_path: Path) -> None:
    path = export_appendix(_annotated(), _questions(), tmp_path / "out" / "appendix.json", videos=_videos())
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "ки" in text  # NaN -> null, UTF-8 kept
    assert json.loads(text)[0]["solutions"][0]["monte_carlo_score"] == [None]
    assert [p.name for p in path.parent.iterdir()] == ["appendix.json"]


def test_medprm_format_by_hand() -> None:
    items = medprm_records(_annotated(), _questions(), data_source="physio_squat")
    assert len(items) == 1
    item = items[0]
    assert {k: item[k] for k in ("question_id", "correct_answer", "data_source")} == {
        "question_id": "q1",
        "correct_answer": "B",
        "data_source": "physio_squat",
    }
    assert item["options"] == ["none", "knee valgus", "trunk lean", "heel rise"]
    assert item["related_docs"] == ["physio-3", "physio-7", "physio-12"]
    s1 = item["solutions"][1]
    assert s1["prm_processed_solution"] == "Step 1: knees move in. ки Step 2: valgus. ки"
    assert s1["orm_processed_solution"] == "Step 1: knees move in. Step 2: valgus. ки"
    assert (s1["prm_hard_label"], s1["prm_soft_label"], s1["prm_gemini_label"]) == ([1, 1], [1.0, 0.8125], [1, 0])
    assert (s1["orm_label"], s1["answer"], s1["score"]) == (1, "B", 1)
    s0 = item["solutions"][0]
    assert (s0["orm_label"], s0["answer"], s0["score"]) == (0, None, 0)


def test_medprm_round_trip_of_real_records(tmp_path: Path) -> None:
    records = json.loads(shared_path("medprm-samples", "medprm_samples_80.json").read_text())[:10]
    ann, qs = [], []
    for r in records:
        qid = str(r["question_id"])
        opts = [re.sub(r"^\s*[A-H]\.\s*", "", o) for o in r["options"].split("\n")]
        qs.append({S.QUESTION_ID: qid, S.QUESTION: r["question"], S.OPTIONS: opts, S.ANSWER: r["correct_answer"]})
        ann.append(
            {
                S.QUESTION_ID: qid,
                S.SOLUTION_ID: f"{qid}-s0",
                S.STEPS: r["steps"],
                S.SOLUTION_TEXT: r["full_solution"],
                S.PREDICTED_ANSWER: r["model_answer"],
                S.IS_CORRECT: r["is_correct"],
                S.JUDGE_LABELS: r["prm_gemini_label"],
                S.JUDGE_CONFIDENCES: [1.0] * len(r["steps"]),
                S.LABELS: r["prm_hard_label"],
                S.SOFT_LABELS: r["prm_soft_label"],
                S.ANNOTATION_METHOD: ["mc_x"] * len(r["steps"]),
            }
        )
    path = export_medprm(ann, qs, tmp_path / "medprm.json", data_source="med_qa")
    items = {it["question_id"]: it for it in json.loads(path.read_text(encoding="utf-8"))}
    assert len(items) == 10
    for r in records:
        sol = items[str(r["question_id"])]["solutions"][0]
        assert sol["prm_processed_solution"] == r["full_solution"]  # Med-PRM's own layout
        assert sol["orm_processed_solution"].endswith(". ки") and sol["orm_processed_solution"].count("ки") == 1
        assert sol["prm_hard_label"] == r["prm_hard_label"]
        assert sol["prm_soft_label"] == r["prm_soft_label"]
        assert sol["prm_gemini_label"] == r["prm_gemini_label"]
        assert sol["orm_label"] == r["orm_label"] == sol["score"]
        assert sol["answer"] == r["model_answer"]
        assert len(items[str(r["question_id"])]["options"]) == r["options"].count("\n") + 1


def test_write_json_atomic_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = write_json_atomic({"ok": np.int64(3), "x": np.array([1.5, np.inf])}, tmp_path / "a.json")
    assert json.loads(path.read_text()) == {"ok": 3, "x": [1.5, None]}
    with pytest.raises(TypeError):
        write_json_atomic({"bad": object()}, path)
    assert json.loads(path.read_text()) == {"ok": 3, "x": [1.5, None]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind
