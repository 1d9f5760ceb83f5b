"""Med-PRM / annotated loaders, label repair and leakage-free splits (no model needed)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from physio_ray import schemas as S
from physio_ray.prm.annotated import keyframe_vision, load_annotated
from physio_ray.prm.config import LabelConfig, SplitConfig
from physio_ray.prm.data import LoadReport, PRMExample, repair_labels, split_examples
from physio_ray.prm.medprm import load_medprm, load_medprm_with_report
from tests.conftest import ASSETS, shared_path


@pytest.fixture(scope="module")
def medprm_path() -> Path:
    return shared_path("medprm-samples", "medprm_samples_80.json")


@pytest.fixture(scope="module")
def raw_records(medprm_path: Path) -> list[dict]:
    return json.loads(medprm_path.read_text())


def test_real_file_loads_all_80_with_markers(medprm_path: Path) -> None:
    examples = load_medprm(str(medprm_path))
    assert len(examples) == 80
    assert len({e.question_id for e in examples}) == 80
    assert sum(e.is_correct for e in examples) == 56
    assert Counter(len(e.steps) for e in examples) == {7: 28, 6: 27, 5: 24, 4: 1}
    for e in examples:
        assert all(s.endswith(S.STEP_MARKER) and s.count(S.STEP_MARKER) == 1 for s in e.steps)
        assert len(e.labels) == len(e.steps)
        assert e.source == "medprm-flat" and e.answer in "ABCDEF" and e.correct_answer in "ABCDEF"
    first = examples[0]
    assert first.question_id == "2447" and first.answer == "D" and first.correct_answer == "B"
    assert first.options[:2] == ["Expansion of trinucleotide repeats", "Abnormal protein metabolism"]


@pytest.mark.parametrize(
    ("source", "zero", "zero_then_one", "zeroed", "positives"),
    [
        ("judge", True, 10, 17, 400),
        ("judge", False, 10, 0, 417),
        ("hard", True, 5, 5, 410),
        ("hard", False, 5, 0, 415),
        ("soft", True, 0, 0, None),
    ],
)
def test_quirk_counts_are_pinned(medprm_path: Path, source, zero, zero_then_one, zeroed, positives) -> None:
    cfg = LabelConfig(source=source, zero_after_first_error=zero)
    examples, report = load_medprm_with_report(str(medprm_path), cfg)
    assert report.records == 80 and report.examples == 80 and not report.skipped
    assert report.length_mismatch == 0
    assert report.zero_then_one == zero_then_one
    assert report.zeroed_steps == zeroed
    if positives is not None:
        assert sum(v for e in examples for v in e.labels) == positives
    else:  # soft labels are MC fractions over 16 rollouts
        values = [v for e in examples for v in e.labels]
        assert len(values) == 482 and all(abs(v * 16 - round(v * 16)) < 1e-9 for v in values)


def test_zeroing_follows_medprm_on_first_record(medprm_path: Path) -> None:
    on = load_medprm(str(medprm_path), LabelConfig(source="judge"))[0]
    off = load_medprm(str(medprm_path), LabelConfig(source="judge", zero_after_first_error=False))[0]
    assert off.labels == [1, 1, 1, 0, 1, 0]
    assert on.labels == [1, 1, 1, 0, 0, 0]


def test_nested_fixture_matches_flat_records(medprm_path: Path) -> None:
    nested = load_medprm(str(ASSETS / "medprm_nested_2.json"))
    flat = load_medprm(str(medprm_path))[:2]
    assert [e.source for e in nested] == ["medprm-nested"] * 2
    for n, f in zip(nested, flat, strict=False):
        assert n.question_id == f.question_id and n.steps == f.steps and n.labels == f.labels
        assert (n.answer, n.correct_answer, n.is_correct) == (f.answer, f.correct_answer, f.is_correct)
        assert n.options == f.options


def test_label_length_mismatch_like_sample_89(tmp_path: Path, raw_records: list[dict], caplog) -> None:
    rec = dict(raw_records[3])  # 7 steps
    long = dict(rec, sample_id=89, prm_gemini_label=[1] * 12)
    short = dict(rec, sample_id=90, prm_gemini_label=[1, 0])
    path = tmp_path / "mismatch.json"
    path.write_text(json.dumps([long, short]))
    with caplog.at_level(logging.WARNING, logger="physio_ray.prm.data"):
        examples, report = load_medprm_with_report(str(path))
    assert report.length_mismatch == 2 and len(examples) == 2
    assert examples[0].labels == [1.0] * 7
    assert examples[1].labels == [1.0, 0.0, None, None, None, None, None]
    assert "sample_id=89" in caplog.text and "12 judge labels for 7 steps" in caplog.text
    skipped, report = load_medprm_with_report(str(path), LabelConfig(length_mismatch="skip"))
    assert skipped == [] and report.skipped == {"label length mismatch": 2}


def test_malformed_records_are_skipped_and_counted(tmp_path: Path, raw_records: list[dict], caplog) -> None:
    good = raw_records[0]
    bad = [
        "not an object",
        {k: v for k, v in good.items() if k != "steps"},
        dict(good, steps="Step 1: one string ки"),
        dict(good, prm_gemini_label="1,1,0"),
        dict(good, prm_gemini_label=[None] * len(good["steps"])),
        {"question_id": 7, "question": "q?", "solutions": [{"answer": "A"}]},
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good, *bad]))
    with caplog.at_level(logging.WARNING):
        examples, report = load_medprm_with_report(str(path))
    assert len(examples) == 1 and report.records == 7
    assert sum(report.skipped.values()) == 6
    assert report.skipped["no list of step strings under 'steps'"] == 2
    assert "record 6 (question_id=7) solution 0" in caplog.text


def test_jsonl_is_accepted(tmp_path: Path, raw_records: list[dict]) -> None:
    path = tmp_path / "two.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in raw_records[:2]) + "\n")
    assert [e.question_id for e in load_medprm(str(path))] == ["2447", "1132"]


def test_repair_thresholds_nonbinary_judge_labels() -> None:
    report = LoadReport()
    out = repair_labels([1, 0.7, None, "x"], 4, LabelConfig(source="judge"), "r", report)
    assert out == [1.0, 1.0, None, None] and report.unlabelled_steps == 2


def _ex(qid: str, sid: str, video: str | None) -> PRMExample:
    return PRMExample(qid, sid, "q", [], ["s ки"], [1.0], video_id=video)


@pytest.mark.parametrize("by", ["video", "question"])
def test_split_has_no_leakage(by: str) -> None:
    examples = [_ex(f"q{v}-{k}", f"q{v}-{k}-s{s}", f"v{v}") for v in range(20) for k in range(3) for s in range(4)]
    train, val, test = split_examples(examples, SplitConfig(by=by, val_fraction=0.2, test_fraction=0.2, seed=3))
    assert len(train) + len(val) + len(test) == len(examples)
    key = (lambda e: e.video_id) if by == "video" else (lambda e: e.question_id)
    groups = [{key(e) for e in part} for part in (train, val, test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    n = 20 if by == "video" else 60
    assert [len(g) for g in groups] == [n - 2 * round(0.2 * n), round(0.2 * n), round(0.2 * n)]
    # every solution of a question stays together even in a video split
    q_of = [{e.question_id for e in part} for part in (train, val, test)]
    assert not (q_of[0] & q_of[1]) and not (q_of[0] & q_of[2])
    again = split_examples(examples, SplitConfig(by=by, val_fraction=0.2, test_fraction=0.2, seed=3))
    assert [e.solution_id for e in again[2]] == [e.solution_id for e in test]


def test_split_real_medprm_by_video_falls_back_to_question(medprm_path: Path) -> None:
    examples = load_medprm(str(medprm_path))
    train, val, test = split_examples(examples, SplitConfig(by="video"))
    assert (len(train), len(val), len(test)) == (64, 8, 8)


def test_annotated_parquet_with_vision(tmp_path: Path) -> None:
    rows = {
        S.QUESTION_ID: ["q1", "q1", "q2"],
        S.SOLUTION_ID: ["q1-s0", "q1-s1", "q2-s0"],
        S.VIDEO_ID: ["v1", "v1", "v2"],
        S.QUESTION: ["How deep?", "How deep?", "Knee valgus?"],
        S.OPTIONS: [["a", "b", "c", "d"]] * 3,
        S.ANSWER: ["B", "B", "A"],
        S.PREDICTED_ANSWER: ["B", "C", None],
        S.STEPS: [["Step 1: x ки", "Step 2: y ки"], ["Step 1: x ки", "Step 2: z"], ["Step 1: w ки"]],
        S.LABELS: [[1, 1], [1, 0], [0]],
        S.SOFT_LABELS: [[1.0, 0.75], [1.0, 0.0], [0.0]],
        S.JUDGE_LABELS: [[1, None], [1, 0], [0]],
        S.IS_CORRECT: [True, False, False],
        S.FEATURES: ['{"reps": 2}'] * 3,
        S.ERROR: [None, None, "judge failed"],
    }
    pq.write_table(pa.table(rows), tmp_path / "annotated.parquet")
    angles = np.arange(5 * 16, dtype=np.float32)
    vis = {S.VIDEO_ID: ["v1"], S.ANGLES: [angles.tolist()], S.N_FRAMES: [5], S.KEYFRAME_INDICES: [[0, 3, 4]]}
    pq.write_table(pa.table(vis), tmp_path / "keyframes.parquet")
    examples, report = load_annotated(
        str(tmp_path / "annotated.parquet"), LabelConfig(source="judge"), str(tmp_path / "keyframes.parquet")
    )
    assert [e.solution_id for e in examples] == ["q1-s0", "q1-s1"] and report.skipped
    assert examples[0].labels == [1.0, None] and examples[1].steps[1] == "Step 2: z ки"
    assert examples[0].vision.shape == (3, 16) and examples[0].vision[1, 0] == 48.0
    soft, _ = load_annotated(str(tmp_path / "annotated.parquet"), LabelConfig(source="soft"))
    assert soft[0].labels == [1.0, 0.75] and soft[0].vision is None


def test_keyframe_vision_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="expected n_frames"):
        keyframe_vision([0.0] * 10, 2, [0])
    with pytest.raises(ValueError, match="out of range"):
        keyframe_vision([0.0] * 32, 2, [2])
