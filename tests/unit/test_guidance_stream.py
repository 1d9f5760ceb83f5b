"""The multiplexed stream's messages: typed parse errors, per-item errors, one tick of many sessions."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from physio_ray.guidance import GuidanceSession
from physio_ray.guidance.stream import ERROR_CODES, StreamError, StreamLimits, TickFrame, parse_message, step_tick
from physio_ray.guidance.synthetic import squat_stream
from serve_apps.guidance_schemas import StartRequest
from serve_apps.guidance_sessions import SessionStore
from serve_apps.guidance_snapshots import chunked, snapshot_bytes

LIMITS = StreamLimits(max_message_bytes=64 * 1024, max_frames_per_tick=100)
PTS = [[0.5, 0.5, 0.9]] * 17


def _code(text: str | bytes) -> str:
    with pytest.raises(StreamError) as info:
        parse_message(text, LIMITS)
    assert info.value.code in ERROR_CODES and info.value.message
    return info.value.code


def test_unreadable_messages_get_typed_errors() -> None:
    assert _code("{nope") == "bad_json"
    assert _code("[1, 2]") == "bad_json"
    assert _code('{"type": "dance"}') == "unknown_type"
    assert _code('{"type": "start"}') == "bad_message"
    assert _code('{"type": "end", "session_id": 3}') == "bad_message"
    assert _code('{"type": "frames", "frames": {}}') == "bad_message"
    assert _code("x" * (64 * 1024 + 1)) == "too_large"
    tick = {"type": "frames", "frames": [{"session_id": "a", "timestamp_ms": 1, "keypoints": PTS}] * 101}
    assert _code(json.dumps(tick)) == "too_many_frames"
    assert _code("[" * 100_000 + "]" * 100_000) in ("bad_json", "too_large")


def test_frame_items_are_validated_one_by_one() -> None:
    frames = [
        {"session_id": "a", "timestamp_ms": 1.0, "keypoints": PTS},
        {"session_id": "b", "timestamp_ms": 1.0, "keypoints": [[0.5, 0.5]] * 16},
        {"session_id": "c", "timestamp_ms": float("nan"), "keypoints": PTS},
        {"session_id": "d", "timestamp_ms": 1.0, "keypoints": [[float("nan"), 0.5, 0.9]] + PTS[1:]},
        {"session_id": "e", "timestamp_ms": 1.0, "keypoints": "no"},
        "not an object",
        {"timestamp_ms": 1.0, "keypoints": PTS},
    ]
    msg = parse_message(json.dumps({"type": "frames", "frames": frames}), LIMITS)
    ok, *bad = msg.items
    assert isinstance(ok, TickFrame) and ok.keypoints.shape == (17, 3)
    assert [b.code for b in bad] == ["bad_frame"] * 6  # type: ignore[union-attr]


def test_step_tick_matches_stepping_each_session_alone() -> None:
    ts, kp = squat_stream(30.0, 8.0)
    alone = GuidanceSession()
    alone.start("squat")
    want = [alone.frame(float(t), k) for t, k in zip(ts, kp, strict=True)]
    sessions = [GuidanceSession() for _ in range(3)]
    for s in sessions:
        s.start("squat")
    got = []
    for t, k in zip(ts, kp, strict=True):
        out = step_tick(sessions, [TickFrame(str(i), float(t), k) for i in range(3)])
        got.append(out)
    assert all(r == w for tick, w in zip(got, want, strict=True) for r in tick)
    ended = GuidanceSession()
    ended.start("squat")
    ended.end()
    (err,) = step_tick([ended], [TickFrame("x", 1.0, kp[0])])
    assert isinstance(err, StreamError) and err.code == "conflict"


def test_store_tick_gives_each_item_its_own_entry() -> None:
    store = SessionStore("r1", max_sessions=10, ttl_s=60)
    a, _ = store.start(StartRequest(exercise="squat"), tenant="t1")
    b, _ = store.start(StartRequest(exercise="squat"), tenant="t1")
    other, _ = store.start(StartRequest(exercise="squat"), tenant="t2")
    ts, kp = squat_stream(30.0, 8.0)
    items: list = [TickFrame(a, float(ts[0]), kp[0]), TickFrame(b, float(ts[0]), kp[0])]
    first = store.tick(items, "t1")
    assert [e["error"] for e in first] == [None, None] and first[0]["state"] == "POSITIONING"
    before = store.status(b)
    items = [
        TickFrame(a, float(ts[1]), kp[1]),
        TickFrame(b, float(ts[0]), kp[0]),  # replayed: out of order
        TickFrame(other, float(ts[1]), kp[1]),  # another token's session
        TickFrame("r1.nope", float(ts[1]), kp[1]),
        TickFrame(a, float(ts[2]), np.full((17, 3), 50.0)),  # far outside the picture
        StreamError("bad_frame", "frames[5].keypoints ..."),
        TickFrame(a, float(ts[2]), kp[2]),  # a second frame of a in the same tick
    ]
    out = store.tick(items, "t1")
    codes = [e["error"]["code"] if e["error"] else None for e in out]
    assert codes == [None, "out_of_order", "unknown_session", "unknown_session", "bad_frame", "bad_frame", None]
    assert store.status(b) == before and store.status(a)["frames"] == 3
    assert out[0]["session_id"] == a and out[6]["timestamp_ms"] == float(ts[2])


def test_snapshots_are_taken_on_change_and_restore_with_resumed() -> None:
    store = SessionStore("r1", max_sessions=10, ttl_s=60)
    sid, _ = store.start(StartRequest(exercise="squat"), tenant="t")
    ts, kp = squat_stream(30.0, 14.0)
    for t, k in zip(ts[:200], kp[:200], strict=True):
        store.tick([TickFrame(sid, float(t), k)], "t")
    puts, drops = store.take_snapshots(every_dirty=True)
    assert set(puts) == {sid} and drops == []
    assert store.take_snapshots(every_dirty=True) == ({}, [])  # nothing changed since
    other = SessionStore("r2", max_sessions=10, ttl_s=60)
    snap, meta = puts[sid]
    other.adopt(sid, snap, meta)
    (entry,) = other.tick([TickFrame(sid, float(ts[200]), kp[200])], "t")
    assert entry["resumed"] is True and entry["error"] is None
    for t, k in zip(ts[201:], kp[201:], strict=True):
        (entry,) = other.tick([TickFrame(sid, float(t), k)], "t")
        assert entry["resumed"] is False
    assert entry["reps"] == 3  # the same as an uninterrupted session (test_guidance_session)
    other.end(sid)
    assert other.take_snapshots(every_dirty=True)[1] == [sid]
    assert other.gone(sid) and not other.has(sid)  # an ended session is never restored again


def test_regular_snapshots_spread_over_the_interval_and_urgent_ones_come_at_once() -> None:
    store = SessionStore("r1", max_sessions=100, ttl_s=60)
    sids = [store.start(StartRequest(exercise="squat"), tenant="")[0] for _ in range(40)]
    ts, kp = squat_stream(30.0, 3.0)
    store.take_snapshots(every_dirty=True)  # the starts (urgent) are stored

    def tick(i: int) -> None:
        store.tick([TickFrame(s, float(ts[i]), kp[i]) for s in sids], "")

    tick(0)
    assert not store.urgent  # one frame of POSITIONING changes no state or count
    taken: list[set[str]] = []
    for k in range(10):  # ten wake-ups cover the interval once: each dirty session exactly once
        puts, _ = store.take_snapshots(every_dirty=False, window=(k / 10, (k + 1) / 10))
        taken.append(set(puts))
    assert set().union(*taken) == set(sids) and sum(len(t) for t in taken) == len(sids)
    assert max(len(t) for t in taken) <= 12  # spread: no wake-up takes most of them
    tick(1)
    puts, _ = store.take_snapshots(every_dirty=False, window=(0.9, 0.1))  # wraps past 1.0
    live = store._live
    assert set(puts) == {s for s in sids if live[s].phase >= 0.9 or live[s].phase < 0.1}
    assert store.take_snapshots(every_dirty=False, window=(0.9, 0.1)) == ({}, [])  # taken: clean now
    store.take_snapshots(every_dirty=True)  # everything clean
    live[sids[0]].urgent = live[sids[0]].dirty = True  # a rep: stored at the next wake, any phase
    p = live[sids[0]].phase
    assert set(store.take_snapshots(every_dirty=False, window=((p + 0.5) % 1, (p + 0.6) % 1))[0]) == {sids[0]}


def test_snapshot_calls_stay_under_the_inline_size() -> None:
    store = SessionStore("r1", max_sessions=100, ttl_s=60)
    sids = [store.start(StartRequest(exercise="squat"), tenant="")[0] for _ in range(12)]
    ts, kp = squat_stream(30.0, 14.0)
    for t, k in zip(ts, kp, strict=True):
        store.tick([TickFrame(s, float(t), k) for s in sids], "")
    puts, _ = store.take_snapshots(every_dirty=True)
    sizes = {sid: len(pickle.dumps(item)) for sid, item in puts.items()}
    for sid, item in puts.items():  # the estimate is within 8 KB of the real pickled size
        assert abs(snapshot_bytes(item[0]) - sizes[sid]) < 8192, (snapshot_bytes(item[0]), sizes[sid])
    chunks = chunked(puts, 90 * 1024)
    assert [s for c in chunks for s in c] == list(puts)  # every session once, in order
    assert all(len(pickle.dumps(c)) < 100 * 1024 for c in chunks)  # Ray's inline-argument limit
    assert len(chunks) == len(puts)  # a 12 s window at 30 fps is ~50 KB: one session per call
    assert len(chunked(puts, 10**9)) == 1
