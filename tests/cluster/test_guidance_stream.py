"""``WS /api/stream`` on a real local Ray Serve with two replicas: many sessions on one socket,
per-item errors, the token, and a replica killed mid-session (the session resumes from its
snapshot on another replica with its reps intact, never counted twice)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path

TOKENS = ("stream-token-a1", "stream-token-b2")
TOKEN_ENV = "PHYSIO_GUIDANCE_STREAM_TEST_TOKEN"
W, H = 720, 1280


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def token_env() -> Iterator[None]:
    """Set before Ray starts so the replicas inherit it (two tokens: two tenants)."""
    old = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = ",".join(TOKENS)
    yield
    if old is None:
        os.environ.pop(TOKEN_ENV, None)
    else:
        os.environ[TOKEN_ENV] = old


@pytest.fixture(scope="module")
def ws_url(token_env: None, ray_local: None) -> Iterator[str]:
    from ray import serve

    from serve_apps.guidance import build_app

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app({"num_replicas": 2, "max_sessions": 100, "session_ttl_s": 300, "auth_token_env": TOKEN_ENV})
    serve.run(app, name="guidance", route_prefix="/")
    try:
        yield f"ws://127.0.0.1:{port}/api/stream"
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def squat_px() -> np.ndarray:
    """Real tfjs squat clip: [65, 33, 3] BlazePose pixels (720x1280), 5 fps, 2 complete reps."""
    path = shared_path("tfjs-pose-squats", "pose_squats.full.json")
    return np.asarray(json.loads(Path(path).read_text()), dtype=np.float64)


def ask(ws, msg: dict | str) -> dict:  # noqa: ANN001 - a websockets connection
    ws.send(msg if isinstance(msg, str) else json.dumps(msg))
    return json.loads(ws.recv(timeout=60))


def open_stream(url: str, token: str = TOKENS[0]):  # noqa: ANN201
    from websockets.sync.client import connect

    ws = connect(url, max_size=None, open_timeout=30)
    assert ask(ws, {"type": "auth", "token": token}) == {"type": "authenticated"}
    return ws


def start(ws, ref: str) -> str:  # noqa: ANN001
    r = ask(ws, {"type": "start", "exercise": "squat", "client_ref": ref, "coordinates": "pixels",
                 "image_width": W, "image_height": H})  # fmt: skip
    assert r["type"] == "started" and r["client_ref"] == ref and r["state"] == "POSITIONING", r
    return r["session_id"]


def tick(sids: list[str], kp: np.ndarray, i: int) -> dict:
    return {
        "type": "frames",
        "frames": [{"session_id": s, "timestamp_ms": i * 200.0, "keypoints": kp[i].tolist()} for s in sids],
    }


def test_many_sessions_on_one_socket_count_the_real_squats(ws_url: str, squat_px: np.ndarray) -> None:
    with open_stream(ws_url) as ws:
        sids = [start(ws, f"p{i}") for i in range(5)]
        assert len(set(sids)) == 5 and len({s.split(".")[0] for s in sids}) == 1  # all on this socket's replica
        reps = []
        for i in range(65):
            r = ask(ws, tick(sids, squat_px, i))
            assert r["type"] == "states" and [e["session_id"] for e in r["states"]] == sids
            assert all(e["error"] is None for e in r["states"]), r
            reps.append([e["reps"] for e in r["states"]])
        assert reps[-1] == [2] * 5 and r["states"][0]["state"] == "ACTIVE"
        assert ask(ws, {"type": "status", "session_id": sids[0]})["reps"] == 2
        end = ask(ws, {"type": "end", "session_id": sids[0]})
        assert end["type"] == "ended" and end["summary"]["reps"] == 2 and end["summary"]["frames"] == 65
        gone = ask(ws, {"type": "end", "session_id": sids[0]})
        assert gone["type"] == "error" and gone["code"] == "unknown_session"


def test_bad_input_gets_typed_errors_and_harms_nothing_else(ws_url: str, squat_px: np.ndarray) -> None:
    with open_stream(ws_url, TOKENS[1]) as other:
        foreign = start(other, "x")
    with open_stream(ws_url) as ws:
        a, b = start(ws, "a"), start(ws, "b")
        ask(ws, tick([a, b], squat_px, 0))
        for bad, code in [
            ("{not json", "bad_json"),
            ('{"type": "jump"}', "unknown_type"),
            (
                json.dumps(
                    {
                        "type": "frames",
                        "frames": [
                            {"session_id": f"r.{k}", "timestamp_ms": 1, "keypoints": [[0.5, 0.5, 0.9]] * 17}
                            for k in range(10_000)
                        ],
                    }
                ),
                "too_large",
            ),  # fmt: skip
            ('{"type": "frames", "frames": [' + ",".join(['{"session_id": "s"}'] * 10_000) + "]}", "too_many_frames"),
            ("x" * 10_000_000, "too_large"),
        ]:
            r = ask(ws, bad)
            assert (r["type"], r["code"]) == ("error", code), (code, r)
        nan = f'{{"session_id": "{b}", "timestamp_ms": 400, "keypoints": [[NaN, 1, 1]' + ", [1, 1, 1]" * 32 + "]}"
        msg = tick([a], squat_px, 1)
        items = [
            msg["frames"][0],
            json.loads(json.dumps({"session_id": b, "timestamp_ms": 400.0, "keypoints": [[1, 1, 1]] * 16})),
            {"session_id": "nobody.here", "timestamp_ms": 400.0, "keypoints": squat_px[2].tolist()},
            {"session_id": foreign, "timestamp_ms": 400.0, "keypoints": squat_px[2].tolist()},
            {"session_id": b, "timestamp_ms": 0.0, "keypoints": squat_px[1].tolist()},  # out of order
        ]
        text = json.dumps({"type": "frames", "frames": items})[:-2] + ", " + nan + "]}"
        r = ask(ws, text)
        codes = [e["error"]["code"] if e["error"] else None for e in r["states"]]
        assert codes == [None, "bad_frame", "unknown_session", "unknown_session", "out_of_order", "bad_frame"], r
        r = ask(ws, tick([a, b], squat_px, 2))
        assert [e["error"] for e in r["states"]] == [None, None]  # both still fine
        assert ask(ws, {"type": "status", "session_id": b})["frames"] == 2
        assert ask(ws, {"type": "confirm", "session_id": a})["type"] == "error"  # POSITIONING: conflict


def test_token_first(ws_url: str) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(ws_url) as ws:
        r = ask(ws, {"type": "start", "exercise": "squat"})
        assert (r["type"], r["code"]) == ("error", "unauthorized")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    with connect(ws_url + f"?token={TOKENS[0]}") as ws:  # or the token in the URL
        assert ask(ws, {"type": "start", "exercise": "squat"})["type"] == "started"


def test_killed_replica_sessions_resume_with_their_reps(ws_url: str, squat_px: np.ndarray) -> None:
    import ray

    ws = open_stream(ws_url)
    sids = [start(ws, f"k{i}") for i in range(3)]
    for i in range(30):
        assert all(e["error"] is None for e in ask(ws, tick(sids, squat_px, i))["states"])
    before = ask(ws, {"type": "status", "session_id": sids[0]})["reps"]
    time.sleep(1.5)  # the once-a-second snapshot has run (the last second may be lost, by design)
    owner = sids[0].split(".")[0]
    (name,) = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].endswith(owner)]
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    ws.close()
    deadline = time.monotonic() + 90
    first = None
    while first is None and time.monotonic() < deadline:  # reconnect; items say busy until the lease runs out
        try:
            ws = open_stream(ws_url)
            r = ask(ws, tick(sids, squat_px, 30))
        except Exception:  # noqa: BLE001 - the proxy may still pick the dead replica for a moment
            time.sleep(1.0)
            continue
        if all(e["error"] is None for e in r["states"]):
            first = r
        else:
            assert {e["error"]["code"] for e in r["states"] if e["error"]} <= {"busy"}, r
            ws.close()
            time.sleep(1.0)
    assert first is not None, "sessions were not resumed within 90 s"
    assert all(e["resumed"] for e in first["states"]) and all(e["reps"] == before for e in first["states"])
    replay = ask(ws, tick(sids[:1], squat_px, 29))["states"][0]
    assert replay["error"]["code"] == "out_of_order"  # a replayed frame is never counted again
    reps = []
    for i in range(31, 65):
        states = ask(ws, tick(sids, squat_px, i))["states"]
        assert all(e["error"] is None and not e["resumed"] for e in states)
        reps.append(states[0]["reps"])
    assert reps[-1] == 2 and reps == sorted(reps)
    assert ask(ws, {"type": "end", "session_id": sids[0]})["summary"]["reps"] == 2
    ws.close()
