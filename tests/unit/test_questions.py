"""Question generation from real keyframe features (UI-PRMD Kinect recordings, the squat video's
MediaPipe landmarks): templates, ground-truth answers, validation, the Ray Data stage class."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.config import QuestionConfig, SourcesConfig
from physio_ray.annotate.question_exercises import DEVIATIONS
from physio_ray.annotate.question_templates import CORRECT_OPTION, read_measures
from physio_ray.annotate.question_writers import MCQ, LLMWriter, check_rephrasing
from physio_ray.annotate.questions import QuestionGenerator, build_questions, validate_mcq
from physio_ray.llm.engine import Generation, SamplingParams
from physio_ray.schemas import MCQ_LETTERS as LETTERS
from tests.conftest import ASSETS, shared_path


def _keyframe_row(src: dict[str, Any], kp: np.ndarray, fps: float, space: str, aspect: float) -> dict[str, Any]:
    from physio_ray.video.angles import joint_angles
    from physio_ray.video.keyframes import keyframes_for_row

    ang = joint_angles(kp, space, aspect=aspect)
    pose = dict(src, fps=fps, n_frames=len(kp), keypoints=kp.ravel().tolist(), coord_space=space)
    pose.update(angles=ang.ravel().tolist(), aspect=aspect)
    return {**src, **keyframes_for_row(pose)}


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, Any]]:
    """Keyframe-stage rows of real recordings, keyed by video_id."""
    from physio_ray.annotate.sources import list_sources
    from physio_ray.video.layout import to_coco17
    from physio_ray.video.pose import load_sequence

    uiprmd = shared_path("ui-prmd")
    out = {}
    cfg = SourcesConfig(uiprmd_dir=str(uiprmd), uiprmd_movements=["m01", "m10"], uiprmd_subjects=["s01"])
    for src in list_sources(cfg):
        seq = load_sequence(src[S.SOURCE_KIND], src[S.SOURCE_PATH])
        out[src[S.VIDEO_ID]] = _keyframe_row(src, seq.keypoints, seq.fps, seq.coord_space, seq.aspect)
    z = np.load(ASSETS / "pose_squats_mediapipe33.npz")  # MediaPipe on pose_squats.mp4, see its SOURCE.txt
    src = {S.VIDEO_ID: "video-pose_squats", S.SOURCE_KIND: "video", S.SOURCE_PATH: "pose_squats.mp4"}
    src.update({S.EXERCISE: "squat", S.GROUND_TRUTH: None, S.ERROR: None})
    out[src[S.VIDEO_ID]] = _keyframe_row(src, to_coco17(z["landmarks"]), float(z["fps"]), "image3d", 720 / 1280)
    return out


def _answer_text(q: MCQ) -> str:
    return q.options[LETTERS.index(q.answer)]


def _build(row: dict[str, Any], n: int = 5) -> dict[str, MCQ]:
    res = build_questions(
        row[S.VIDEO_ID],
        row[S.EXERCISE],
        row[S.GROUND_TRUTH],
        json.loads(row[S.FEATURES]),
        row[S.KEYFRAME_TIMES],
        row[S.KEYFRAME_KINDS],
        max_questions=n,
    )
    for q in res.kept:
        assert validate_mcq(q) is None
    return {q.template: q for q in res.kept}


def test_squat_video_questions_have_measured_answers(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["video-pose_squats"]
    m = read_measures(json.loads(row[S.FEATURES]))
    assert m.rep_count == 2 and m.rep_duration_s == pytest.approx(4.9)
    qs = _build(row)
    assert set(qs) == {"squat_depth", "rep_count", "depth_limiter", "trunk_lean", "tempo"}
    assert _answer_text(qs["rep_count"]) == "2 complete repetitions"  # 2 full squats + 1 partial
    assert _answer_text(qs["squat_depth"]).startswith("About parallel")
    assert _answer_text(qs["trunk_lean"]).startswith("Moderate forward lean")
    assert _answer_text(qs["tempo"]).startswith("Controlled")
    assert all(q.answer_source == "measured" for q in qs.values())
    # the evidence block carries the measurements but hides the counted answer
    assert "Measured movement data" in qs["rep_count"].context and "repetitions counted" not in qs["rep_count"].context
    assert "keyframes: start 0.0 s" in qs["tempo"].context


def test_uiprmd_ground_truth_gives_known_answers(rows: dict[str, dict[str, Any]]) -> None:
    correct, wrong = _build(rows["uiprmd-m01-s01-e01"]), _build(rows["uiprmd-m01-s01-e01-inc"])
    assert correct["gt_execution"].answer_source == "ground_truth"
    assert _answer_text(correct["gt_execution"]) == CORRECT_OPTION
    assert _answer_text(wrong["gt_execution"]) == DEVIATIONS["deep_squat"][0]
    assert set(correct["gt_execution"].options) == set(wrong["gt_execution"].options)
    assert _answer_text(correct["squat_depth"]).startswith("Below parallel")  # knee angle ~55 deg
    # scaption, incorrect execution: the arm stayed below shoulder height (peak ~79 deg)
    scap = _build(rows["uiprmd-m10-s01-e01-inc"])
    assert _answer_text(scap["gt_execution"]) == DEVIATIONS["shoulder_scaption"][0]
    assert _answer_text(scap["shoulder_range"]).startswith("The arm stayed below shoulder height")


def test_ambiguous_measurements_are_refused_with_a_reason(rows: dict[str, dict[str, Any]]) -> None:
    res = build_questions("x", "deep squat", None, {"knee_min_deg": 98.5, "rep_count": 1}, max_questions=5)
    assert ("squat_depth", "ambiguous: minimum knee angle 98.5 is within 4.0 of the band edge 100.0") in res.dropped
    assert [q.template for q in res.kept] == ["rep_count"]
    unknown = build_questions("x", "rowing", None, {"rep_count": 3})
    assert not unknown.kept and "unknown exercise" in unknown.dropped[0][1]


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        (MCQ("", ("a", "b", "c", "d"), "A", "measured", "t"), "empty stem"),
        (MCQ("Q?", ("a", "b", "c"), "A", "measured", "t"), "needs exactly 4 options, got 3"),
        (MCQ("Q?", ("a", "b", "c", "d", "e"), "A", "measured", "t"), "needs exactly 4 options, got 5"),
        (MCQ("Q?", ("a", "b", " ", "d"), "A", "measured", "t"), "empty or non-text option"),
        (MCQ("Q?", ("Knee valgus", "b", "knee  VALGUS", "d"), "A", "measured", "t"), "duplicate options"),
        (MCQ("Q?", ("a", "b", "c", "d"), "E", "measured", "t"), "answer must be exactly one letter"),
        (MCQ("Q?", ("a", "b", "c", "d"), "AB", "measured", "t"), "answer must be exactly one letter"),
        (MCQ("Q?", ("a", "b", "c", "d"), "a", "measured", "t"), "answer must be exactly one letter"),
        (MCQ("Q?", ("a", "b", "c", "d"), "A", "guess", "t"), "answer_source"),
    ],
)
def test_validate_mcq_rejects(q: MCQ, reason: str) -> None:
    assert reason in (validate_mcq(q) or "")


def _batch(rows: dict[str, dict[str, Any]], ids: list[str]) -> dict[str, np.ndarray]:
    cols = [S.VIDEO_ID, S.EXERCISE, S.GROUND_TRUTH, S.FEATURES, S.KEYFRAME_TIMES, S.KEYFRAME_KINDS, S.ERROR]
    out = {}
    for c in cols:
        arr = np.empty(len(ids), dtype=object)
        for i, vid in enumerate(ids):
            arr[i] = rows[vid].get(c)
        out[c] = arr
    return out


def test_question_generator_stage(rows: dict[str, dict[str, Any]]) -> None:
    bad = dict(rows["uiprmd-m01-s01-e01"], video_id="bad-features", features="[1, 2]")
    broken = dict(rows["uiprmd-m01-s01-e01"], video_id="upstream", error="poses: no person detected")
    odd = dict(rows["uiprmd-m01-s01-e01"], video_id="odd", exercise="rowing", ground_truth=None)
    all_rows = {**rows, "bad-features": bad, "upstream": broken, "odd": odd}
    ids = ["video-pose_squats", "uiprmd-m01-s01-e01", "uiprmd-m01-s01-e01-inc", "bad-features", "upstream", "odd"]
    stage = QuestionGenerator(QuestionConfig(max_per_recording=2))
    out = stage(_batch(all_rows, ids))
    assert set(out) == {
        S.QUESTION_ID,
        S.VIDEO_ID,
        S.EXERCISE,
        S.QUESTION,
        S.OPTIONS,
        S.ANSWER,
        S.ANSWER_SOURCE,
        S.TEMPLATE,
        S.FEATURES,
        S.ERROR,
    }
    qids = out[S.QUESTION_ID].tolist()
    assert qids[:6] == [
        "video-pose_squats-q0",
        "video-pose_squats-q1",
        "uiprmd-m01-s01-e01-q0",
        "uiprmd-m01-s01-e01-q1",
        "uiprmd-m01-s01-e01-inc-q0",
        "uiprmd-m01-s01-e01-inc-q1",
    ]
    assert qids[6:] == ["bad-features-noq", "upstream-noq", "odd-noq"]
    errors = out[S.ERROR].tolist()
    assert errors[:6] == [None] * 6
    assert errors[6].startswith("features unreadable") and errors[7] == "upstream error: poses: no person detected"
    assert "unknown exercise 'rowing'" in errors[8]
    for k in range(6):
        q = MCQ(out[S.QUESTION][k], tuple(out[S.OPTIONS][k]), out[S.ANSWER][k], out[S.ANSWER_SOURCE][k], "t")
        assert validate_mcq(q) is None and out[S.QUESTION][k].endswith("?")
    assert out[S.TEMPLATE].tolist()[2:4] == ["gt_execution", "squat_depth"]
    assert stage.stats["questions"] == 6 and stage.stats["rows_without_questions"] == 1
    # deterministic: same seed, same options order; a pandas batch gives the same rows
    again = QuestionGenerator(QuestionConfig(max_per_recording=2))(
        pd.DataFrame({k: list(v) for k, v in _batch(all_rows, ids).items()})
    )
    assert again[S.ANSWER].tolist() == out[S.ANSWER].tolist()
    assert [list(o) for o in again[S.OPTIONS]] == [list(o) for o in out[S.OPTIONS]]
    empty = stage(_batch(all_rows, []))
    assert all(len(v) == 0 for v in empty.values())


class _ScriptedEngine:
    """A TextEngine whose replies are given (the writer's checks are what is tested)."""

    def __init__(self, replies: list[Generation]) -> None:
        self.replies, self.prompts = replies, []

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        self.prompts += prompts
        return self.replies[: len(prompts)]


def test_llm_writer_keeps_template_stem_when_rephrasing_fails(rows: dict[str, dict[str, Any]]) -> None:
    qs = list(_build(rows["video-pose_squats"]).values())[:4]
    right = _answer_text(qs[2])
    replies = [
        Generation(["How many full squats did the person complete in this clip?"]),
        Generation(["Answer: B"]),
        Generation([f"Is it {right.lower()}?"]),
        Generation([], error="timeout"),
    ]
    engine = _ScriptedEngine(replies)
    written = LLMWriter(engine).write(qs)
    assert [w.source for w in written] == ["llm", "template", "template", "template"]
    assert written[1].note == 'not a question (must end with "?")' and written[1].stem == qs[1].stem
    assert written[3].note == "engine error: timeout"
    assert len(engine.prompts) == 4 and qs[0].stem in engine.prompts[0]


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("", "empty rephrasing"),
        ("Two lines?\nYes?", "more than one line"),
        ("How deep, at 90 degrees?", None),
        ("How deep?", "length"),
        ("How deep was the squat, in degrees?", "dropped numbers ['90']"),
        ("Which is right at 90 degrees: A) deep B) shallow?", "lists lettered options"),
        ("Was the squat about parallel at 90 degrees?", "gives away the right option"),
    ],
)
def test_check_rephrasing(candidate: str, reason: str | None) -> None:
    got = check_rephrasing("How deep was the squat at 90 degrees?", candidate, ["About parallel", "b", "c", "d"], "A")
    assert (got is None) if reason is None else (reason in (got or ""))


def test_evidence_keeps_the_measurement_a_template_answers_from() -> None:
    """A lunge's features fill the block past its cut; the trunk lean at the bottom must survive it.

    Before the fix the block showed only the largest lean (8.4, the "upright" band) of this
    in-line lunge and cut the lean at the bottom (3.2) that the trunk-lean question is about.
    """
    from physio_ray.llm.evidence import evidence_block

    features: dict[str, Any] = {
        "angle_min": {"left_knee": 106.0, "right_knee": 106.6, "left_hip": 130.0, "right_hip": 130.8},
        "angle_max": {
            "left_knee": 173.0,
            "right_knee": 173.2,
            "left_hip": 153.0,
            "right_hip": 153.4,
            "left_shoulder": 111.8,
            "trunk_lean": 8.4,
        },
        **{f"extra_{i}_s": float(i) for i in range(12)},
        "trunk_lean_at_working_deg": 3.2,
    }
    block = evidence_block(features)
    assert "- trunk lean at the bottom (deg from vertical): 3.2" in block
    assert "- largest trunk lean: 8.4 deg" in block
    assert len(block.splitlines()) == 1 + 11  # the header and the cut at 11 items still hold
