"""The PRM scoring app on a real local Ray Serve, answered over HTTP (one serve.run per module).

A 1-layer SmolLM2 text tower with the pose vision tower (untrained, gate 0) keeps startup short;
what is tested is the HTTP contract, batching and validation, not the scores' quality.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest

from physio_ray import schemas as S

QUESTION = "During a bodyweight squat the knee flexion peaks at 95 degrees. Is the depth adequate?"
OPTIONS = ["Yes, below parallel", "No, above parallel", "Cannot tell", "Only for the left knee"]
STEPS = [
    "Step 1: Parallel depth corresponds to roughly 90-100 degrees of knee flexion" + S.STEP_MARKER,
    "Step 2: 95 degrees is close to parallel but not clearly below it" + S.STEP_MARKER,
    "Step 3: So the depth is about parallel, not below" + S.STEP_MARKER,
]


@pytest.fixture(scope="module")
def base_url(ray_local) -> Iterator[str]:
    from ray import serve

    from serve_apps.prm_scoring import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args = {
        "checkpoint": None,
        "model": {"text": {"num_layers": 1}, "vision": {"kind": "pose", "pose": {"d_model": 32, "layers": 1}}},
        "prompt": {"max_length": 256},
        "max_batch_size": 8,
        "batch_wait_timeout_s": 0.05,
        "max_steps": 8,
        "max_body_bytes": 20_000,
    }
    serve.run(build_app(args), name="prm", route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


def test_health(base_url: str) -> None:
    r = httpx.get(f"{base_url}/healthz", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["vision"] == "pose"


def test_score_returns_one_probability_per_step(base_url: str) -> None:
    body = {"question": QUESTION, "options": OPTIONS, "steps": STEPS}
    r = httpx.post(f"{base_url}/score", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["step_scores"]) == 3 and all(0.0 <= p <= 1.0 for p in out["step_scores"])
    assert out["score"] == pytest.approx(min(out["step_scores"])) and out["aggregation"] == "min"
    with_pose = dict(body, features=[[90.0 + k] * 16 for k in range(4)])
    r2 = httpx.post(f"{base_url}/score", json=with_pose, timeout=60)
    assert r2.status_code == 200  # gate starts at 0: the untrained fusion leaves scores unchanged
    assert r2.json()["step_scores"] == pytest.approx(out["step_scores"], abs=1e-5)


def test_concurrent_requests_are_batched_consistently(base_url: str) -> None:
    bodies = [{"question": QUESTION, "options": OPTIONS, "steps": STEPS[: 1 + k % 3]} for k in range(8)]
    solo = [httpx.post(f"{base_url}/score", json=b, timeout=60).json()["step_scores"] for b in bodies[:3]]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(*(client.post(f"{base_url}/score", json=b) for b in bodies))

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 8
    for k, r in enumerate(responses):  # padding inside a batch must not change a score
        assert r.json()["step_scores"] == pytest.approx(solo[k % 3], abs=1e-4)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"question": QUESTION, "options": OPTIONS, "steps": []}, "steps is empty"),
        (
            {"question": QUESTION, "options": OPTIONS, "steps": ["Step 1: no marker"]},
            "does not end with the step marker",
        ),
        ({"question": QUESTION, "options": OPTIONS, "steps": STEPS * 3}, "9 steps exceed the limit of 8"),
        ({"question": QUESTION * 400, "options": OPTIONS, "steps": STEPS}, "exceeds 20000 bytes"),
        ({"question": QUESTION, "options": OPTIONS, "steps": "Step 1: x ки"}, "malformed request"),
        ({"question": QUESTION, "steps": STEPS, "features": [[1.0, 2.0]]}, "need 16 values"),
    ],
)
def test_malformed_requests_get_422(base_url: str, body: dict, needle: str) -> None:
    r = httpx.post(f"{base_url}/score", json=body, timeout=60)
    assert r.status_code == 422 and needle in r.json()["detail"], r.text
