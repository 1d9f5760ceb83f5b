"""The session state machine, feedback gating, uncertainty and input errors (seed 003)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physio_ray.guidance import (
    ConflictError,
    GuidanceConfig,
    GuidanceSession,
    SessionState,
    UnknownExerciseError,
    count_reps,
)
from physio_ray.guidance import feedback_library as lib
from physio_ray.guidance.features import as_xyzv
from physio_ray.guidance.feedback import REASONS, GateInputs, blocking_reasons
from physio_ray.guidance.states import TRANSITIONS
from physio_ray.guidance.synthetic import knee_profile, squat_frame, squat_stream
from physio_ray.video import view_sweep as vs
from physio_ray.video import virtual_camera as vc
from tests.conftest import shared_path

S = SessionState
RECONFIRM = "It looks like a different movement. Please confirm the exercise."


class FixedClassifier:
    """A classifier whose output the test sets (stands in for the LSTM)."""

    def __init__(self, exercises: tuple[str, ...], proba: np.ndarray) -> None:
        self.exercises = exercises
        self.proba = np.asarray(proba, dtype=np.float64)
        self.calls = 0

    def predict_proba(self, window: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.proba


def run(session: GuidanceSession, ts: np.ndarray, kp: np.ndarray) -> list:
    return [session.frame(float(t), k) for t, k in zip(ts, kp, strict=True)]


def test_library_is_human_and_has_the_seed_sentences() -> None:
    assert lib.neutral("reconfirm") == RECONFIRM
    squat = lib.FEEDBACK_LIBRARY["squat"]
    assert {"Good depth.", "That was good.", "Nice form."} <= set(squat["positive"])
    assert dict(squat["corrective"]) == {
        "go_lower": "Go slightly lower.",
        "slow_down": "Slow the movement.",
        "align_knees": "Keep knees aligned.",
    }
    for phrase in lib.all_phrases():
        assert not any(ch.isdigit() for ch in phrase), phrase
        assert not any(w in phrase.lower() for w in ("ai ", "model", "confidence", "score", "%", "degree")), phrase
        assert phrase.endswith("."), phrase


def test_every_exercise_has_its_sentences() -> None:
    """A live standing straight leg raise used to crash on its first "Slow the movement." (the
    library had the entry under another name)."""
    from physio_ray.guidance.exercise_rules import known

    assert set(known()) == set(lib.FEEDBACK_LIBRARY)
    for ex in known():
        assert lib.corrective(ex, "slow_down") == "Slow the movement." and lib.positive(ex, 0)


def test_each_gate_condition_blocks_on_its_own() -> None:
    cfg = GuidanceConfig()
    ok = dict(
        state=S.ACTIVE,
        in_transition=False,
        entropy=0.5,
        since_feedback_ms=2000.0,
        quality_confidence=0.66,
        stable_ms=450.0,
    )
    assert blocking_reasons(GateInputs(**ok), cfg) == ()  # every seed boundary is inclusive the right way
    cases = {
        "not_active": {"state": S.POSITIONING},
        "in_transition": {"in_transition": True},
        "high_entropy": {"entropy": 0.51},
        "cooldown": {"since_feedback_ms": 1999.0},
        "low_quality_confidence": {"quality_confidence": 0.65},
        "not_stable": {"stable_ms": 449.0},
    }
    assert set(cases) == set(REASONS)
    for reason, change in cases.items():
        assert blocking_reasons(GateInputs(**{**ok, **change}), cfg) == (reason,)
    for state in (S.VERIFYING, S.READY, S.UNCERTAINTY, S.COMPLETED):
        assert "not_active" in blocking_reasons(GateInputs(**{**ok, "state": state}), cfg)


def test_happy_path_states_reps_and_sparse_feedback() -> None:
    ts, kp = squat_stream(30.0, 14.0)
    s = GuidanceSession()
    assert s.start("squat") == S.POSITIONING
    out = run(s, ts, kp)
    states = [r.state for r in out]
    order = list(dict.fromkeys(states))
    assert order == [S.POSITIONING, S.VERIFYING, S.READY, S.ACTIVE]
    confirmed = next(r for r in out if r.event == "confirmed")
    assert confirmed.timestamp_ms == pytest.approx(900.0, abs=34.0)  # 450 ms positioning + 450+ ms belief
    assert out[-1].reps == 3
    # Counted from the view-invariant cues (hip height over leg length), as count_reps does: the
    # return to rest settles 4 frames earlier than the old knee-angle rule's (4800, 7800, 10800).
    reps_at = [r.timestamp_ms for r in out if r.event == "rep"]
    assert reps_at == pytest.approx([4667.0, 7667.0, 10667.0], abs=40)
    assert all(r.view == "profile" for r in out)  # the stick figure is seen from the side
    spoken = [(r.state, r.feedback) for r in out if r.feedback]
    assert spoken == [(S.ACTIVE, "Good depth.")]  # one praise after three good reps, nothing else
    assert all(r.guidance == "Position yourself in front of the camera." for r in out if r.state == S.POSITIONING)
    assert all(r.feedback is None for r in out if r.state != S.ACTIVE)
    summary = s.end()
    assert (summary.exercise, summary.reps, summary.segments, summary.frames) == ("squat", 3, (("squat", 3),), 420)
    assert s.state == S.COMPLETED and s.status()["state"] == "COMPLETED"


def test_shallow_squats_get_one_correction_per_cooldown() -> None:
    def shallow(t: np.ndarray) -> np.ndarray:
        return knee_profile(t, rep_s=1.6, n_reps=6, depth_deg=122.0, lead_s=2.0)

    ts, kp = squat_stream(30.0, 13.0, knee_fn=shallow)
    s = GuidanceSession()
    s.start("squat")
    out = run(s, ts, kp)
    said = [(r.timestamp_ms, r.feedback) for r in out if r.feedback]
    assert said and {f for _, f in said} == {"Go slightly lower."}
    gaps = np.diff([t for t, _ in said])
    assert np.all(gaps >= 2000.0)
    assert len(said) < sum(r.event == "shallow" for r in out)  # the cooldown held some back
    assert out[-1].reps == 0


def test_contradiction_enters_uncertainty_with_the_exact_sentence_and_never_switches() -> None:
    exercises = ("squat", "shoulder_abduction")
    clf = FixedClassifier(exercises, [0.5, 0.5])
    s = GuidanceSession(classifier=clf)
    s.start("squat")
    ts, kp = squat_stream(30.0, 14.0)
    out = run(s, ts[:180], kp[:180])  # 6 s: confirmed, first rep done
    assert out[-1].state == S.ACTIVE and out[-1].reps == 1
    clf.proba = np.array([1e-5, 1 - 1e-5])  # overwhelming evidence for another movement
    out = run(s, ts[180:], kp[180:])
    first = next(i for i, r in enumerate(out) if r.state == S.UNCERTAINTY)
    assert out[first].feedback == RECONFIRM and out[first].event == "uncertain"
    assert out[first].suggestion == "shoulder_abduction"
    after = out[first:]
    assert all(r.state == S.UNCERTAINTY and r.exercise == "squat" for r in after)  # no silent switch
    assert all(r.feedback is None for r in after[1:])  # feedback paused
    assert {r.reps for r in after} == {out[first].reps}  # reps held while uncertain
    assert s.confirm() == S.ACTIVE and s.exercise == "squat"  # back where it was
    with pytest.raises(ConflictError, match="confirm while the session is ACTIVE"):
        s.confirm()
    more = run(s, ts[-1] + 33.3 * np.arange(1, 31), np.stack([squat_frame(175.0)] * 30))
    assert all(r.state == S.ACTIVE for r in more)  # the confirmed contradiction episode is ignored


def test_confirm_and_reselect_rules() -> None:
    s = GuidanceSession()
    with pytest.raises(ConflictError, match="not been started"):
        s.frame(0.0, squat_frame(175.0))
    with pytest.raises(UnknownExerciseError, match="burpee"):
        s.start("burpee")
    s.start("squat")
    with pytest.raises(ConflictError, match="reselect while the session is POSITIONING"):
        s.reselect("deep_squat")
    with pytest.raises(ConflictError, match="confirm while the session is POSITIONING"):
        s.confirm()
    run(s, np.arange(20) * 33.3, np.stack([squat_frame(175.0)] * 20))
    assert s.state == S.VERIFYING
    assert s.confirm() == S.READY  # manual confirmation locks the exercise
    with pytest.raises(ConflictError, match="reselect"):
        s.reselect("deep_squat")

    clf = FixedClassifier(("squat", "shoulder_abduction"), [1e-5, 1 - 1e-5])
    u = GuidanceSession(classifier=clf)
    u.start("squat")
    run(u, np.arange(60) * 33.3, np.stack([squat_frame(175.0)] * 60))
    assert u.state == S.UNCERTAINTY  # contradicted before it could be confirmed
    assert u.reselect("shoulder_abduction") == S.VERIFYING and u.exercise == "shoulder_abduction"
    summary = u.end()
    assert summary.segments == (("squat", 0), ("shoulder_abduction", 0)) and summary.uncertainty_episodes == 1
    with pytest.raises(ConflictError, match="ended"):
        u.frame(1e6, squat_frame(175.0))


def test_bad_frames_leave_the_session_unchanged() -> None:
    s = GuidanceSession()
    s.start("squat")
    s.frame(0.0, squat_frame(175.0))
    before = s.status()
    bad_nan = squat_frame(175.0)
    bad_nan[5, 0] = np.nan
    for args, match in (
        ((33.0, bad_nan), "NaN or inf"),
        ((33.0, np.zeros((12, 3))), "12 points"),
        ((0.0, squat_frame(175.0)), "not after the previous frame"),
        ((float("inf"), squat_frame(175.0)), "finite"),
    ):
        with pytest.raises(ValueError, match=match):
            s.frame(*args)
        assert s.status() == before
    with pytest.raises(ValueError, match="strictly increasing"):
        s.frames(np.array([50.0, 40.0]), np.stack([squat_frame(175.0)] * 2))
    assert s.status() == before


def test_batched_frames_match_frame_by_frame() -> None:
    ts, kp = squat_stream(30.0, 8.0)
    one, many = GuidanceSession(), GuidanceSession()
    one.start("squat")
    many.start("squat")
    a = run(one, ts, kp)
    b = [r for i in range(0, len(ts), 10) for r in many.frames(ts[i : i + 10], kp[i : i + 10])]
    assert a == b


def test_every_transition_taken_is_declared() -> None:
    assert TRANSITIONS[S.ACTIVE] == frozenset({S.UNCERTAINTY, S.COMPLETED})  # never ACTIVE -> VERIFYING silently
    assert TRANSITIONS[S.COMPLETED] == frozenset()


def test_batched_frames_report_each_frames_own_view() -> None:
    ts, kp = squat_stream(30.0, 3.0)
    kp[40:45, [11, 12], 2] = 0.0  # hips lost for five frames
    one, many = GuidanceSession(), GuidanceSession()
    one.start("squat")
    many.start("squat")
    a = run(one, ts, kp)
    b = many.frames(ts, kp)
    assert a == b and [r.view for r in b[38:47]] == ["profile"] * 2 + ["unknown"] * 5 + ["profile"] * 2


def test_a_view_that_cannot_be_estimated_is_said_and_not_counted() -> None:
    ts, kp = squat_stream(30.0, 14.0)
    kp[..., [11, 12], 2] = 0.0  # no hips: no torso length, no view
    s = GuidanceSession()
    s.start("squat")
    out = run(s, ts, kp)
    assert {r.view for r in out} == {"unknown"} and s.status()["view"] == "unknown"
    assert out[-1].reps == 0 and not any(r.event == "rep" for r in out)
    assert s.state == S.POSITIONING  # the counted joints were never usable
    assert GuidanceSession().status()["view"] == "unknown"


def _live_reps(kp: np.ndarray, fps: float, exercise: str, image_size: tuple[float, float]) -> int:
    s = GuidanceSession()
    s.start(exercise, image_size=image_size)
    s.frames(np.arange(len(kp)) * 1000.0 / fps, kp)
    return s.end().reps


def test_live_session_counts_what_count_reps_counts_on_the_same_stream() -> None:
    """One logic: the service's session and the offline counter give the same final count."""
    path = shared_path("tfjs-pose-squats", "pose_squats.full.json")
    clip = np.asarray(json.loads(Path(path).read_text()), dtype=np.float64) / [720.0, 1280.0, 720.0]
    assert count_reps(clip, 5.0, image_size=(720, 1280)) == _live_reps(clip, 5.0, "squat", (720.0, 1280.0)) == 2
    clips = vs.load_clips(shared_path(), exercises=["deep_squat"], subjects=["s01"])
    item = next(it for it in vs.sweep_items(clips, singles=False) if it.source == "uiprmd-kinect")
    for yaw, fps in ((0, 30.0), (45, 30.0), (75, 15.0)):
        cam = vc.VirtualCamera(yaw_deg=yaw, pitch_deg=10, body_fraction=0.6)
        r = vc.render(item.points, item.fps, cam, fps, vc.DetectorNoise(), seed=yaw)
        kp = as_xyzv(vc.counter_input(r.keypoints, r.visibility), allow_missing=True)  # lost points: visibility 0
        kp[..., 2] = 0.0  # no depth from a 2D detector (a live frame must be finite)
        size = (float(r.image_size[0]), float(r.image_size[1]))
        offline = count_reps(kp, fps, "deep_squat", image_size=size)
        assert offline >= 8, (yaw, offline)
        assert _live_reps(kp, fps, "deep_squat", size) == offline, yaw


def test_a_long_session_keeps_bounded_history_and_counts_every_rep() -> None:
    """A live session runs for hours: its event history and summary feedback are bounded (its
    memory and snapshot stay flat), while the offline counter keeps every event."""
    from physio_ray.guidance.offline import count_reps
    from physio_ray.guidance.session_state import FEEDBACK_KEPT, LIVE_EVENTS_KEPT

    n_reps = 80
    ts, kp = squat_stream(30.0, 4.0 + 3.0 * n_reps, knee_fn=lambda t: knee_profile(t, n_reps=n_reps))
    s = GuidanceSession()
    s.start("squat")
    s.frames(ts, kp)
    tracker = s._live.selection.tracker
    assert s.reps == n_reps  # every rep counted, not only the kept ones
    assert len(tracker.movement.events) == LIVE_EVENTS_KEPT  # the latest events only
    assert tracker.movement.events[-1].kind == "rep" and tracker.movement.events[-1].timestamp_ms > ts[-120]
    assert len(s._live.tally.feedback) <= FEEDBACK_KEPT
    assert count_reps(np.asarray(kp), 30.0, "squat") == n_reps
    from physio_ray.guidance.config import GuidanceConfig
    from physio_ray.guidance.exercise_rules import ExerciseTracker

    assert ExerciseTracker("squat", GuidanceConfig())._reps.max_events is None  # offline: the whole history
