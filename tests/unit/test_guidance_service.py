"""The guidance service without Ray: session store (TTL, limits, atomic 422s), schemas, router keys,
and the shipped Serve YAML (validated with Serve's own schema; the builder imported and called)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from serve_apps.guidance_router import owner_from_request, owner_of_key
from serve_apps.guidance_schemas import MAX_FRAMES_PER_REQUEST, Frame, FrameBatch, StartRequest
from serve_apps.guidance_sessions import ServiceError, SessionStore, exercise_catalogue
from tests.conftest import REPO, shared_path

W, H = 720, 1280


@pytest.fixture(scope="module")
def squat_px() -> np.ndarray:
    """The real tfjs squat clip: [65, 33, 3] BlazePose (x_px, y_px, z), 5 fps, 2 complete reps."""
    path = shared_path("tfjs-pose-squats", "pose_squats.full.json")
    return np.asarray(json.loads(Path(path).read_text()), dtype=np.float64)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def frames(kp: np.ndarray, start: int, stop: int) -> list[Frame]:
    return [Frame(timestamp_ms=i * 200.0, keypoints=kp[i].tolist()) for i in range(start, stop)]


def pixel_session(store: SessionStore) -> str:
    sid, info = store.start(StartRequest(exercise="squat", coordinates="pixels", image_width=W, image_height=H))
    assert info["state"] == "POSITIONING"
    return sid


def test_store_counts_the_real_squats_in_batches_of_ten(squat_px: np.ndarray) -> None:
    store = SessionStore("own1", max_sessions=4, ttl_s=60)
    sid = pixel_session(store)
    assert sid.startswith("own1.")
    outs = [store.frames(sid, frames(squat_px, i, min(i + 10, 65))) for i in range(0, 65, 10)]
    assert outs[-1]["reps"] == 2 and outs[-1]["state"] == "ACTIVE"
    assert "rep" in sum((o.get("events", []) for o in outs), [])
    assert outs[-1]["view"] == store.status(sid)["view"] != "unknown"  # the view estimate passes through
    summary = store.end(sid)["summary"]
    assert summary["reps"] == 2 and summary["frames"] == 65
    with pytest.raises(ServiceError) as err:
        store.status(sid)
    assert err.value.status == 404


def test_bad_frames_are_422_and_leave_the_session_unchanged(squat_px: np.ndarray) -> None:
    store = SessionStore("own1", max_sessions=4, ttl_s=60)
    sid = pixel_session(store)
    store.frames(sid, frames(squat_px, 0, 20))
    before = store.status(sid)
    # out of order inside the session (batch that starts at the last timestamp)
    with pytest.raises(ServiceError) as err:
        store.frames(sid, frames(squat_px, 19, 25))
    assert err.value.status == 422 and "time order" in err.value.message
    # a later batch whose last frame is bad: nothing of it is applied
    bad = frames(squat_px, 20, 25)
    bad[-1] = Frame(timestamp_ms=24 * 200.0, keypoints=(squat_px[24] * 10).tolist())  # far outside the picture
    with pytest.raises(ServiceError) as err:
        store.frames(sid, bad)
    assert err.value.status == 422 and "normalised" in err.value.message
    assert store.status(sid) == before


def test_normalised_session_rejects_pixel_values_with_a_hint(squat_px: np.ndarray) -> None:
    store = SessionStore("own1", max_sessions=4, ttl_s=60)
    sid, _ = store.start(StartRequest(exercise="squat"))
    with pytest.raises(ServiceError) as err:
        store.frames(sid, frames(squat_px, 0, 1))
    assert err.value.status == 422 and "coordinates='pixels'" in err.value.message


def test_ttl_and_max_sessions() -> None:
    clock = FakeClock()
    store = SessionStore("own1", max_sessions=2, ttl_s=30, clock=clock)
    a, _ = store.start(StartRequest(exercise="squat"))
    clock.t += 20
    b, _ = store.start(StartRequest(exercise="squat"))
    with pytest.raises(ServiceError) as err:
        store.start(StartRequest(exercise="squat"))
    assert err.value.status == 429
    clock.t += 15  # a idle 35 s > ttl, b idle 15 s
    c, _ = store.start(StartRequest(exercise="squat"))  # full: sweeps first, a is gone
    assert store.expired == 1 and len(store) == 2
    with pytest.raises(ServiceError) as err:
        store.status(a)
    assert err.value.status == 404
    store.status(b)  # b refreshed by use
    clock.t += 29
    store.status(b)
    store.status(c)


def test_conflicts_and_unknown_exercise() -> None:
    store = SessionStore("own1", max_sessions=2, ttl_s=30)
    with pytest.raises(ServiceError) as err:
        store.start(StartRequest(exercise="cartwheel"))
    assert err.value.status == 422 and "squat" in err.value.message
    sid, _ = store.start(StartRequest(exercise="squat"))
    for action in (lambda: store.confirm(sid), lambda: store.reselect(sid, "deep_squat")):
        with pytest.raises(ServiceError) as err:
            action()
        assert err.value.status == 409


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"timestamp_ms": 1.0, "keypoints": [[0.5, 0.5, 1.0]] * 16}, "16 keypoints"),
        ({"timestamp_ms": 1.0, "keypoints": [[0.5, 0.5, 1.0, 1.0, 1.0]] * 17}, "at most 4"),
        ({"timestamp_ms": -1.0, "keypoints": [[0.5, 0.5]] * 17}, "greater than or equal"),
        ({"timestamp_ms": 1.0, "keypoints": [[0.5, 0.5]] * 16 + [[0.5, 0.5, 1.0]]}, "same number"),
        ({"timestamp_ms": 1.0, "keypoints": [[0.5, 0.5]] * 17, "extra": 1}, "Extra inputs"),
    ],
)
def test_frame_schema_rejects(body: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Frame.model_validate_json(json.dumps(body))


def test_frame_schema_rejects_nan_and_inf_and_unordered_batches() -> None:
    for token in ("NaN", "Infinity", "-Infinity", "1e999"):
        raw = '{"timestamp_ms": 1, "keypoints": [[' + token + ", 0.5]" + ", [0.5, 0.5]" * 16 + "]}"
        with pytest.raises(ValueError, match="finite"):
            Frame.model_validate_json(raw)
    f = {"timestamp_ms": 5.0, "keypoints": [[0.5, 0.5]] * 17}
    with pytest.raises(ValueError, match="time order"):
        FrameBatch.model_validate({"frames": [f, f]})
    with pytest.raises(ValueError, match=f"at most {MAX_FRAMES_PER_REQUEST}"):
        FrameBatch.model_validate(
            {"frames": [{**f, "timestamp_ms": float(i)} for i in range(MAX_FRAMES_PER_REQUEST + 1)]}
        )
    with pytest.raises(ValueError, match="image_width"):
        StartRequest(exercise="squat", coordinates="pixels")


def test_catalogue_lists_every_exercise_once() -> None:
    ids = [e["id"] for e in exercise_catalogue()]
    assert "squat" in ids and len(ids) == len(set(ids))


def test_router_reads_the_owner_from_public_metadata_only() -> None:
    assert owner_of_key("abc123.tok-_en") == "abc123"
    assert owner_of_key("abc123.owner2.tok") == "abc123"
    assert owner_of_key("start") is None and owner_of_key("") is None
    header = SimpleNamespace(multiplexed_model_id="r1.x", session_id="")
    assert owner_from_request(SimpleNamespace(metadata=header, args=[])) == "r1"
    assert (
        owner_from_request(SimpleNamespace(metadata=SimpleNamespace(multiplexed_model_id="", session_id="r2.y")))
        == "r2"
    )
    scope = SimpleNamespace(asgi_scope={"path": "/api/session/r1.x/frame"})
    none = SimpleNamespace(multiplexed_model_id="", session_id="")
    assert owner_from_request(SimpleNamespace(metadata=none, args=[pickle.dumps(scope)])) is None  # never unpickled
    assert owner_from_request(None) is None


def test_serve_yaml_validates_and_builds() -> None:
    from ray.serve.schema import ServeDeploySchema

    from serve_apps.guidance import build_app

    path = REPO / "configs" / "serve" / "guidance.yaml"
    text = path.read_text()
    assert "serve run configs/serve/guidance.yaml" in text.split("\n\n")[0]
    schema = ServeDeploySchema.model_validate(yaml.safe_load(text))
    assert schema.http_options.host == "127.0.0.1" and schema.http_options.port == 8000
    (app_cfg,) = schema.applications
    assert app_cfg.import_path == "serve_apps.guidance:build_app"
    app = build_app(app_cfg.args)
    assert type(app).__name__ == "Application"
