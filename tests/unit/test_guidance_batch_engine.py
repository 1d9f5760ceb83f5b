"""The batched engine steps many sessions per tick with the semantics of one session at a time.

Streams: the real squat video (MediaPipe, 33 points, 5 fps), UI-PRMD deep squats and shoulder
abductions rendered by the virtual camera at three yaws (17 points, 30 and 15 fps), with
detector noise; sessions of the right exercise, of a wrong one (contradiction -> UNCERTAINTY),
a session fed an out-of-order frame mid-stream, and a tick that carries two frames of one
session. Rules and the shipped LSTMs.
"""

from __future__ import annotations

import numpy as np
import pytest

from physio_ray.guidance import GuidanceSession, SessionState
from physio_ray.guidance.batch_engine import step_frames
from physio_ray.guidance.features import as_xyzv
from physio_ray.guidance.models import load_guidance_models
from physio_ray.guidance.results import FrameResult
from physio_ray.video import view_sweep as vs
from physio_ray.video import virtual_camera as vc
from tests.conftest import ASSETS, shared_path

FIELDS = ("timestamp_ms", "state", "phase", "reps", "feedback", "guidance", "exercise", "event", "suggestion", "view")


@pytest.fixture(scope="module")
def streams() -> list[dict]:
    """(exercise selected, times, keypoints, image size) per session."""
    z = np.load(ASSETS / "pose_squats_mediapipe33.npz")
    video = z["landmarks"].astype(np.float64)[..., :3]
    out = [
        {"exercise": "squat", "ts": np.arange(len(video)) * 200.0, "kp": video, "size": (720.0, 1280.0)},
        {
            "exercise": "shoulder_abduction",
            "ts": np.arange(len(video)) * 200.0 + 7.0,
            "kp": video,
            "size": (720.0, 1280.0),
        },
    ]
    clips = vs.load_clips(shared_path(), exercises=["deep_squat", "shoulder_abduction"], subjects=["s01"])
    items = [it for it in vs.sweep_items(clips, singles=False) if it.source == "uiprmd-kinect"]
    for j, (yaw, fps) in enumerate(((0, 30.0), (45, 30.0), (75, 15.0))):
        for item in items[:2]:
            cam = vc.VirtualCamera(yaw_deg=yaw, pitch_deg=10, body_fraction=0.6)
            r = vc.render(item.points, item.fps, cam, fps, vc.DetectorNoise(), seed=yaw)
            kp = as_xyzv(vc.counter_input(r.keypoints, r.visibility), allow_missing=True)
            kp[..., 2] = 0.0
            kp = kp[: int(25 * fps)]  # 25 s: every state of a session, a fast test
            size = (float(r.image_size[0]), float(r.image_size[1]))
            wrong = "deep_squat" if item.exercise == "shoulder_abduction" else item.exercise
            chosen = wrong if j == 2 else item.exercise  # the 75-degree deep squat is started as itself
            out.append({"exercise": chosen, "ts": np.arange(len(kp)) * 1000.0 / fps + j, "kp": kp, "size": size})
    out.append({**out[2], "exercise": "side_lunge"})  # the wrong exercise: contradiction
    return out


def _sessions(streams: list[dict], factory) -> list[GuidanceSession]:  # noqa: ANN001
    sessions = [factory() for _ in streams]
    for s, st in zip(sessions, streams, strict=True):
        s.start(st["exercise"], image_size=st["size"])
    return sessions


def _ticks(streams: list[dict]) -> list[list[tuple[int, float, np.ndarray]]]:
    """Tick k carries frame k of every stream still running; stream 3 sends a stale frame at
    tick 40, and tick 60 carries frames 60 and 61 of stream 4 (61 is then skipped)."""
    ticks = []
    n = max(len(st["ts"]) for st in streams)
    for k in range(n):
        tick = []
        for i, st in enumerate(streams):
            if k < len(st["ts"]) and not (i == 4 and k == 61):
                tick.append((i, float(st["ts"][k]), st["kp"][k]))
                if i == 4 and k == 60:
                    tick.append((i, float(st["ts"][61]), st["kp"][61]))
        if k == 40:
            tick.append((3, float(streams[3]["ts"][10]), streams[3]["kp"][10]))  # out of order
        ticks.append(tick)
    return ticks


def _alone(session: GuidanceSession, t: float, kp: np.ndarray) -> FrameResult | Exception:
    try:
        return session.frame(t, kp)
    except ValueError as exc:
        return exc


def _same(a: FrameResult | Exception, b: FrameResult | Exception) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return type(a) is type(b) and str(a) == str(b)
    return all(getattr(a, f) == getattr(b, f) for f in FIELDS)


@pytest.mark.parametrize("engine", ["rules", "lstm"])
def test_a_tick_of_many_sessions_gives_what_each_session_gives_alone(streams: list[dict], engine: str) -> None:
    models = load_guidance_models() if engine == "lstm" else None

    def factory() -> GuidanceSession:
        return GuidanceSession.from_models(models) if models is not None else GuidanceSession()

    alone, batched = _sessions(streams, factory), _sessions(streams, factory)
    n_frames = n_errors = 0
    states: set[SessionState] = set()
    for tick in _ticks(streams):
        expected = [_alone(alone[i], t, kp) for i, t, kp in tick]
        got = step_frames([batched[i] for i, _, _ in tick], [t for _, t, _ in tick], [kp for _, _, kp in tick])
        for (i, t, _), e, g in zip(tick, expected, got, strict=True):
            assert _same(e, g), (engine, i, t, e, g)
            n_frames += 1
            n_errors += isinstance(g, Exception)
            if isinstance(g, FrameResult):
                states.add(g.state)
    assert n_errors == 1 and n_frames > 3000
    assert {SessionState.ACTIVE, SessionState.UNCERTAINTY} <= states, states
    for a, b in zip(alone, batched, strict=True):
        assert a.belief is not None and b.belief is not None
        np.testing.assert_allclose(
            b.belief.probabilities, a.belief.probabilities, atol=1e-5
        )  # float32 LSTM rounding at most
        np.testing.assert_allclose(b.belief.quality_belief, a.belief.quality_belief, atol=1e-5)
        assert np.isfinite(a.belief.quality_belief) or a.state != SessionState.ACTIVE
        sa, sb = a.end(), b.end()
        assert (sa.reps, sa.segments, sa.feedback, sa.unconfirmed_reps) == (
            sb.reps,
            sb.segments,
            sb.feedback,
            sb.unconfirmed_reps,
        )


def test_bad_frames_and_sessions_get_their_own_error() -> None:
    a, b, c = GuidanceSession(), GuidanceSession(), GuidanceSession()
    a.start("squat")
    b.start("squat")
    kp = np.full((17, 3), 0.5)
    bad = kp.copy()
    bad[3, 0] = np.nan
    out = step_frames([a, b, c, a], [0.0, 0.0, 0.0, 33.0], [kp, bad, kp, kp[:5]])
    assert isinstance(out[0], FrameResult) and out[0].timestamp_ms == 0.0
    assert isinstance(out[1], ValueError) and "NaN" in str(out[1])
    assert type(out[2]).__name__ == "ConflictError"
    assert isinstance(out[3], ValueError)
    assert a.status()["frames"] == 1 and b.status()["frames"] == 0
    with pytest.raises(ValueError, match="one session per frame"):
        step_frames([a], [0.0, 1.0], [kp])
