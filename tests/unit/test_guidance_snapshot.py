"""Session snapshots restore a session that continues exactly as the original, and the store's claims."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from physio_ray.guidance import GuidanceSession
from physio_ray.guidance.snapshot import SnapshotError, SnapshotStore, session_from_dict, session_to_dict
from physio_ray.guidance.synthetic import squat_stream
from tests.conftest import shared_path


def _same(a: list, b: list) -> None:
    assert [(r.state, r.reps, r.phase, r.feedback, r.event, r.view) for r in a] == [
        (r.state, r.reps, r.phase, r.feedback, r.event, r.view) for r in b
    ]


def _body(hip_drop: float, facing: float) -> np.ndarray:
    """A COCO-17 ``(x, y, score)`` frame seen from the front (``facing`` 1) or behind (-1), the
    body above the knees lowered by ``hip_drop``."""
    w = 0.07 * facing
    f = np.zeros((17, 3))
    f[:, 2] = 0.9
    f[:5, :2] = (0.5, 0.15 + hip_drop)
    for i, (dx, y) in {5: (w, 0.25 + hip_drop), 7: (w, 0.37 + hip_drop), 9: (w, 0.49 + hip_drop),
                       11: (w, 0.45 + hip_drop), 13: (w, 0.65), 15: (w, 0.85)}.items():  # fmt: skip
        f[i, :2] = (0.5 + dx, y)
        f[i + 1, :2] = (0.5 - dx, y)
    return f


def _turning_stream() -> tuple[np.ndarray, np.ndarray]:
    """Squats facing the camera, a turn round at the bottom of the third, two more from behind."""
    t = np.arange(0.0, 16000.0, 33.0)
    phase = (t - 1000.0) % 3000.0
    drop = np.where(t < 1000.0, 0.0, np.interp(phase, [0, 700, 1500, 2200, 3000], [0, 0.25, 0.25, 0, 0]))
    facing = np.where(t < 7800.0, 1.0, -1.0)
    return t, np.stack([_body(d, f) for d, f in zip(drop, facing, strict=True)])


@pytest.mark.parametrize("cut", [5, 40, 150, 300])
def test_restored_session_continues_frame_for_frame(cut: int) -> None:
    ts, kp = squat_stream(30.0, 14.0)
    ref = GuidanceSession()
    ref.start("squat", image_size=(640.0, 480.0))
    head = [ref.frame(float(t), k) for t, k in zip(ts[:cut], kp[:cut], strict=True)]
    snap = pickle.loads(pickle.dumps(session_to_dict(ref)))  # what the store keeps
    copy = session_from_dict(snap)
    tail_ref = [ref.frame(float(t), k) for t, k in zip(ts[cut:], kp[cut:], strict=True)]
    tail_copy = [copy.frame(float(t), k) for t, k in zip(ts[cut:], kp[cut:], strict=True)]
    _same(tail_ref, tail_copy)
    assert head[-1].reps <= tail_copy[-1].reps
    assert tail_copy[-1].reps == 3
    assert ref.status() == copy.status()
    assert ref.end() == copy.end()


@pytest.mark.parametrize("cut", [100, 250, 258, 270, 300])
def test_restored_cues_view_and_side_switch_state_continue_frame_for_frame(cut: int) -> None:
    ts, kp = _turning_stream()
    ref = GuidanceSession()
    ref.start("squat", image_size=(480.0, 640.0))
    for t, k in zip(ts[:cut], kp[:cut], strict=True):
        ref.frame(float(t), k)
    snap = pickle.loads(pickle.dumps(session_to_dict(ref)))
    copy = session_from_dict(snap)
    live_ref, live_copy = ref._live, copy._live
    assert live_copy.stream.cues.view == live_ref.stream.cues.view  # type: ignore[union-attr]
    assert live_copy.selection.tracker._reps._need_rest == live_ref.selection.tracker._reps._need_rest  # type: ignore[union-attr]
    tail_ref = ref.frames(ts[cut:], kp[cut:])
    tail_copy = copy.frames(ts[cut:], kp[cut:])
    _same(tail_ref, tail_copy)
    assert ref.status() == copy.status() and copy.status()["view"] == "back"
    assert ref.end() == copy.end()


def test_the_turn_round_drops_the_rep_under_way_across_a_snapshot() -> None:
    ts, kp = _turning_stream()
    s = GuidanceSession()
    s.start("squat")
    out = s.frames(ts[:265], kp[:265])
    assert s._live.selection.tracker._reps._need_rest  # type: ignore[union-attr]  # just turned round
    assert out[-1].view == "back" and out[-1].reps == 2
    s = session_from_dict(session_to_dict(s))
    out = s.frames(ts[265:], kp[265:])
    assert not any(r.event == "shallow" for r in out)  # the half squat after the turn is no attempt
    assert s.end().reps == 4  # five squats, the one with the turn in it not counted


def test_real_squat_clip_across_a_snapshot_counts_two_not_more() -> None:
    path = shared_path("tfjs-pose-squats", "pose_squats.full.json")
    kp = np.asarray(json.loads(Path(path).read_text()), dtype=np.float64)
    kp[..., 0] /= 720.0
    kp[..., 1] /= 1280.0
    s = GuidanceSession()
    s.start("squat", image_size=(720.0, 1280.0))
    for i in range(33):
        s.frame(i * 200.0, kp[i])
    s = session_from_dict(session_to_dict(s))
    out = [s.frame(i * 200.0, kp[i]) for i in range(33, 65)]
    assert out[-1].reps == 2
    with pytest.raises(ValueError, match="not after the previous frame"):
        s.frame(32 * 200.0, kp[32])  # a replayed frame is refused, never counted twice


def test_snapshot_errors_are_clear() -> None:
    with pytest.raises(SnapshotError, match="not been started"):
        session_to_dict(GuidanceSession())
    s = GuidanceSession()
    s.start("squat")
    snap = session_to_dict(s)
    with pytest.raises(SnapshotError, match="version"):
        session_from_dict(snap | {"version": 0})
    with pytest.raises(SnapshotError, match="missing"):
        session_from_dict({k: v for k, v in snap.items() if k != "tally"})


def test_store_claims_only_from_gone_owners_and_only_once() -> None:
    now = [0.0]
    store = SnapshotStore(lease_s=3.0, ttl_s=60.0, clock=lambda: now[0])
    store.sync("a", {"a.1": ({"n": 1}, {"tenant": ""})}, [])
    assert store.claim("a.1", "b").outcome == "owned"  # a is alive
    assert store.claim("a.1", "a").outcome == "restored"  # the owner itself may reload
    now[0] = 4.0  # a silent for longer than the lease
    store.sync("b", {}, [])
    store.sync("c", {}, [])
    got = store.claim("a.1", "b")
    assert (got.outcome, got.snapshot, got.meta) == ("restored", {"n": 1}, {"tenant": ""})
    again = store.claim("a.1", "c")
    assert (again.outcome, again.owner) == ("owned", "b")  # never restored twice
    store.sync("a", {"a.1": ({"n": 99}, {})}, [])  # a stale writer cannot overwrite the new owner
    assert store.claim("a.1", "b").snapshot == {"n": 1}
    store.sync("a", {}, ["a.1"])  # nor drop it
    assert store.owner("a.1") == "b"
    store.sync("b", {}, ["a.1"])
    assert store.claim("a.1", "c").outcome == "missing"
    store.sync("b", {"b.2": ({}, {})}, [])
    now[0] = 100.0
    store.sync("b", {}, [])
    assert len(store) == 0  # expired by TTL
