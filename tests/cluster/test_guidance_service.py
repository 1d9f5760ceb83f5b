"""The guidance service on a real local Ray Serve (one serve.run for the module, two replicas).

Every endpoint over HTTP through Serve's proxy, the WebSocket stream, bad input (422 with a
message, session unchanged), 404/409/401, and the keyed router: with two replicas every request
of a session must reach the replica that owns it (a miss would be a 404).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import shared_path

TOKEN = "test-token-7f3a"
TOKEN_ENV = "PHYSIO_GUIDANCE_TEST_TOKEN"
W, H = 720, 1280


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def token_env() -> Iterator[None]:
    """Set before Ray starts so the replicas inherit it."""
    old = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = TOKEN
    yield
    if old is None:
        os.environ.pop(TOKEN_ENV, None)
    else:
        os.environ[TOKEN_ENV] = old


@pytest.fixture(scope="module")
def base_url(token_env: None, ray_local: None) -> Iterator[str]:
    from ray import serve

    from serve_apps.guidance import build_app

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app({"num_replicas": 2, "max_sessions": 100, "session_ttl_s": 300, "auth_token_env": TOKEN_ENV})
    serve.run(app, name="guidance", route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def squat_px() -> np.ndarray:
    """Real tfjs squat clip: [65, 33, 3] BlazePose pixels (720x1280), 5 fps, 2 complete reps."""
    path = shared_path("tfjs-pose-squats", "pose_squats.full.json")
    return np.asarray(json.loads(Path(path).read_text()), dtype=np.float64)


def start(client: httpx.Client, exercise: str = "squat", pixels: bool = True) -> str:
    body: dict = {"exercise": exercise}
    if pixels:
        body |= {"coordinates": "pixels", "image_width": W, "image_height": H}
    r = client.post("/api/session/start", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "POSITIONING"
    return r.json()["session_id"]


def frame(kp: np.ndarray, i: int) -> dict:
    return {"timestamp_ms": i * 200.0, "keypoints": kp[i].tolist()}


def test_health_exercises_and_token(base_url: str, client: httpx.Client) -> None:
    assert httpx.get(f"{base_url}/api/health").json()["status"] == "ok"  # no token needed
    r = httpx.get(f"{base_url}/api/exercises")
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    r = httpx.get(f"{base_url}/api/exercises", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    ids = [e["id"] for e in client.get("/api/exercises").json()["exercises"]]
    assert "squat" in ids and "shoulder_abduction" in ids


def test_real_squats_counted_at_seed_cadence(client: httpx.Client, squat_px: np.ndarray) -> None:
    sid = start(client)
    last = None
    for i in range(0, 65, 10):  # one request per 10 frames, as the seed's browser does
        r = client.post(
            f"/api/session/{sid}/frame", json={"frames": [frame(squat_px, j) for j in range(i, min(i + 10, 65))]}
        )
        assert r.status_code == 200, r.text
        last = r.json()
    assert last["reps"] == 2 and last["state"] == "ACTIVE"
    status = client.get(f"/api/session/{sid}/status").json()
    assert status["reps"] == 2 and status["frames"] == 65
    r = client.post(f"/api/session/{sid}/end")
    assert r.status_code == 200 and r.json()["summary"]["reps"] == 2


def test_single_frames_and_state_flow(client: httpx.Client, squat_px: np.ndarray) -> None:
    sid = start(client)
    assert client.post(f"/api/session/{sid}/confirm").status_code == 409  # still POSITIONING
    states = [client.post(f"/api/session/{sid}/frame", json=frame(squat_px, i)).json()["state"] for i in range(4)]
    assert states[-1] == "VERIFYING", states
    assert client.post(f"/api/session/{sid}/reselect", json={"exercise": "deep_squat"}).status_code == 409
    r = client.post(f"/api/session/{sid}/confirm")
    assert r.status_code == 200 and r.json()["state"] == "READY"
    assert client.post(f"/api/session/{sid}/confirm").status_code == 409


def test_uncertainty_then_reselect(client: httpx.Client, squat_px: np.ndarray) -> None:
    sid = start(client, "shoulder_abduction")  # but the person squats
    out = None
    for i in range(0, 30, 10):
        out = client.post(f"/api/session/{sid}/frame", json={"frames": [frame(squat_px, j) for j in range(i, i + 10)]})
        if out.json()["state"] == "UNCERTAINTY":
            break
    body = out.json()
    assert body["state"] == "UNCERTAINTY"
    assert body["feedback"] == "It looks like a different movement. Please confirm the exercise."
    r = client.post(f"/api/session/{sid}/reselect", json={"exercise": "cartwheel"})
    assert r.status_code == 422 and "squat" in r.json()["detail"]
    r = client.post(f"/api/session/{sid}/reselect", json={"exercise": "squat"})
    assert r.status_code == 200 and r.json()["state"] == "VERIFYING" and r.json()["exercise"] == "squat"


BAD_BODIES = {
    "nan": b'{"timestamp_ms": 9000, "keypoints": [[NaN, 0.5]' + b", [0.5, 0.5]" * 16 + b"]}",
    "inf": b'{"timestamp_ms": 9000, "keypoints": [[1e999, 0.5]' + b", [0.5, 0.5]" * 16 + b"]}",
    "16 points": json.dumps({"timestamp_ms": 9000, "keypoints": [[0.5, 0.5]] * 16}).encode(),
    "5 channels": json.dumps({"timestamp_ms": 9000, "keypoints": [[0.5, 0.5, 1, 1, 1]] * 17}).encode(),
    "not json": b"{timestamp_ms: 1",
    "huge": json.dumps({"timestamp_ms": 9000, "keypoints": [[0.5, 0.5]] * 17, "pad": "x" * 300_000}).encode(),
    "too many frames": json.dumps(
        {"frames": [{"timestamp_ms": 9000 + i, "keypoints": [[0.5, 0.5]] * 17} for i in range(65)]}
    ).encode(),
    "out of order": json.dumps({"timestamp_ms": 200.0, "keypoints": [[100.0, 100.0]] * 33}).encode(),
    "unordered batch": json.dumps(
        {"frames": [{"timestamp_ms": t, "keypoints": [[100.0, 100.0]] * 33} for t in (9000, 8000)]}
    ).encode(),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_frames_get_422_and_leave_the_session_unchanged(
    client: httpx.Client, squat_px: np.ndarray, case: str
) -> None:
    sid = start(client)
    client.post(f"/api/session/{sid}/frame", json={"frames": [frame(squat_px, j) for j in range(0, 8)]})
    before = client.get(f"/api/session/{sid}/status").json()
    r = client.post(f"/api/session/{sid}/frame", content=BAD_BODIES[case], headers={"Content-Type": "application/json"})
    assert r.status_code == 422, (case, r.text)
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert client.get(f"/api/session/{sid}/status").json() == before
    assert client.post(f"/api/session/{sid}/frame", json=frame(squat_px, 8)).status_code == 200  # still usable


def test_unknown_and_ended_sessions_are_404(client: httpx.Client, squat_px: np.ndarray) -> None:
    sid = start(client)
    assert client.post(f"/api/session/{sid}/end").status_code == 200
    owner = sid.split(".")[0]
    for bad in (sid, f"{owner}.nope", "nope"):
        assert client.post(f"/api/session/{bad}/frame", json=frame(squat_px, 0)).status_code == 404
        assert client.get(f"/api/session/{bad}/status").status_code == 404
        assert client.post(f"/api/session/{bad}/confirm").status_code == 404
        assert client.post(f"/api/session/{bad}/reselect", json={"exercise": "squat"}).status_code == 404
        r = client.post(f"/api/session/{bad}/end")
        assert r.status_code == 404 and "no active session" in r.json()["detail"]
    r = client.post("/api/session/start", json={"exercise": "cartwheel"})
    assert r.status_code == 422


def test_sessions_stick_to_their_owner_replica(client: httpx.Client, squat_px: np.ndarray) -> None:
    sids = [start(client) for _ in range(12)]
    owners = {s.split(".")[0] for s in sids}
    assert len(owners) == 2, "two replicas should both own sessions"
    for i in range(0, 20):
        for sid in sids:
            r = client.post(f"/api/session/{sid}/frame", json=frame(squat_px, i))
            assert r.status_code == 200, r.text  # a request routed to the wrong replica would be 404
    for sid in sids:
        assert client.post(f"/api/session/{sid}/end").json()["summary"]["frames"] == 20


def test_websocket_stream(base_url: str, client: httpx.Client, squat_px: np.ndarray) -> None:
    from websockets.sync.client import connect

    sid = start(client)
    ws_url = base_url.replace("http", "ws") + f"/api/session/{sid}/stream?token={TOKEN}"
    with connect(ws_url) as ws:
        reps = []
        for i in range(65):
            ws.send(json.dumps(frame(squat_px, i)))
            reps.append(json.loads(ws.recv())["reps"])
            if i == 30:  # a bad frame in the middle: error message, stream stays open
                ws.send(json.dumps({"timestamp_ms": 1.0, "keypoints": [[0.5, 0.5]] * 17}))
                err = json.loads(ws.recv())
                assert err["status"] == 422 and "time order" in err["error"]
        assert reps[-1] == 2 and reps == sorted(reps)
    with connect(base_url.replace("http", "ws") + f"/api/session/{sid.split('.')[0]}.gone/stream?token={TOKEN}") as ws:
        assert json.loads(ws.recv())["status"] == 404
    with connect(base_url.replace("http", "ws") + f"/api/session/{sid}/stream") as ws:
        assert json.loads(ws.recv())["status"] == 401


def test_page_and_bundled_assets(base_url: str) -> None:
    r = httpx.get(f"{base_url}/guidance/")
    assert r.status_code == 200 and "Exercise guidance" in r.text and "/vendor/pose/pose.js" in r.text
    css = httpx.get(f"{base_url}/guidance/style.css").text
    assert "#3b82f6" in css and "opacity: 0.6" in css
    assert httpx.get(f"{base_url}/guidance/..%2Fguidance.py").status_code == 404
    pose = httpx.get(f"{base_url}/vendor/pose/pose.js")
    if pose.status_code == 404:
        pytest.skip("node_modules/@mediapipe/pose not installed (run scripts/setup_browser.sh)")
    assert pose.status_code == 200
