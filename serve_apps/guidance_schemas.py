"""Typed requests and settings of the guidance service (pydantic, validated at the HTTP boundary).

Keypoints arrive as ``[[x, y], ...]``, ``[[x, y, score|z], ...]`` or ``[[x, y, z, visibility], ...]``
with 17 COCO (MoveNet) or 33 BlazePose (MediaPipe) points. Every number must be finite: JSON
``NaN``/``Infinity`` tokens are rejected with a 422 that names the position. Coordinates are
normalised image coordinates (0..1) unless the session was started with
``coordinates="pixels"`` and the picture size.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Finite = Annotated[float, Field(allow_inf_nan=False)]
Point = Annotated[list[Finite], Field(min_length=2, max_length=4)]
POINT_COUNTS = (17, 33)
MAX_FRAMES_PER_REQUEST = 64
"""A batch carries at most this many frames (about two seconds of a 30 fps camera)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(_Strict):
    """``POST /api/session/start``.

    Attributes:
        exercise: the exercise the user selected (an id from ``GET /api/exercises``).
        coordinates: ``normalized`` (0..1, default) or ``pixels`` (needs the picture size).
        image_width: picture width in pixels; with normalised points it corrects the aspect ratio.
        image_height: picture height in pixels.
    """

    exercise: Annotated[str, Field(min_length=1, max_length=64)]
    coordinates: Literal["normalized", "pixels"] = "normalized"
    image_width: Annotated[Finite, Field(gt=0, le=100_000)] | None = None
    image_height: Annotated[Finite, Field(gt=0, le=100_000)] | None = None

    @model_validator(mode="after")
    def _size_together(self) -> StartRequest:
        if (self.image_width is None) != (self.image_height is None):
            raise ValueError("give both image_width and image_height, or neither")
        if self.coordinates == "pixels" and self.image_width is None:
            raise ValueError("coordinates='pixels' needs image_width and image_height to normalise the points")
        return self


class Frame(_Strict):
    """One frame of keypoints.

    Attributes:
        timestamp_ms: capture time in milliseconds; strictly increasing within a session.
        keypoints: ``[17|33][2..4]`` points (see the module docstring for channel meanings).
    """

    timestamp_ms: Annotated[Finite, Field(ge=0)]
    keypoints: Annotated[list[Point], Field(min_length=1, max_length=33)]

    @field_validator("keypoints")
    @classmethod
    def _layout(cls, points: list[list[float]]) -> list[list[float]]:
        if len(points) not in POINT_COUNTS:
            raise ValueError(f"got {len(points)} keypoints; send 17 (COCO/MoveNet) or 33 (BlazePose/MediaPipe)")
        widths = {len(p) for p in points}
        if len(widths) != 1:
            raise ValueError(f"every keypoint needs the same number of values, got {sorted(widths)}")
        return points


class FrameBatch(_Strict):
    """``POST /api/session/{id}/frame`` with several frames at once (in time order).

    Attributes:
        frames: 1..``MAX_FRAMES_PER_REQUEST`` frames.
    """

    frames: Annotated[list[Frame], Field(min_length=1, max_length=MAX_FRAMES_PER_REQUEST)]

    @model_validator(mode="after")
    def _ordered(self) -> FrameBatch:
        times = [f.timestamp_ms for f in self.frames]
        for i in range(1, len(times)):
            if not times[i] > times[i - 1]:
                raise ValueError(
                    f"frames[{i}].timestamp_ms={times[i]} is not after frames[{i - 1}] ({times[i - 1]}); "
                    "send frames in time order"
                )
        return self


class ReselectRequest(_Strict):
    """``POST /api/session/{id}/reselect``: the exercise the user picks instead."""

    exercise: Annotated[str, Field(min_length=1, max_length=64)]


class GuidanceAppArgs(_Strict):
    """Arguments of :func:`serve_apps.guidance.build_app` (the ``args:`` block of the Serve YAML).

    Attributes:
        num_replicas: ingress replicas; each owns the sessions it started (see the app docstring).
        max_sessions: live sessions one replica holds; a start beyond it gets 429.
        session_ttl_s: a session with no request for this long is dropped (later calls: 404).
        auth_token_env: name of an environment variable holding a bearer token. When it is set
            and non-empty, every ``/api`` call except ``/api/health`` needs
            ``Authorization: Bearer <token>`` (WebSocket: ``?token=``). Empty: no token.
        max_body_bytes: a request body above this is refused with 422 before it is parsed.
        max_ongoing_requests: Serve's per-replica concurrency limit.
        static_dir: folder of the browser page (default: ``serve_apps/static/guidance``).
        vendor_dir: ``node_modules`` folder with ``@mediapipe/pose`` (default: the repo's).
        sticky_router: route each session's requests to the replica that owns it (needed with
            more than one replica; off only to measure its cost).
        snapshots: keep session snapshots in a detached actor so sessions survive a replica crash.
        snapshot_interval_s: a changed session is snapshotted at least this often (and at once
            on a state or rep change).
        owner_lease_s: a replica that has not synced its snapshots for this long is presumed
            gone and its sessions may be restored elsewhere.
        max_stream_message_bytes: a larger ``/api/stream`` message gets a ``too_large`` error.
        max_frames_per_tick: frame items of one ``/api/stream`` tick at most.
    """

    num_replicas: Annotated[int, Field(ge=1, le=64)] = 1
    max_sessions: Annotated[int, Field(ge=1, le=100_000)] = 500
    session_ttl_s: Annotated[float, Field(gt=0)] = 900.0
    auth_token_env: str = "PHYSIO_GUIDANCE_TOKEN"
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    max_ongoing_requests: Annotated[int, Field(ge=1)] = 1000
    static_dir: str | None = None
    vendor_dir: str | None = None
    sticky_router: bool = True
    snapshots: bool = True
    snapshot_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    owner_lease_s: Annotated[float, Field(gt=0, le=600)] = 3.0
    max_stream_message_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 2 * 1024 * 1024
    max_frames_per_tick: Annotated[int, Field(ge=1, le=100_000)] = 1000

    @field_validator("session_ttl_s")
    @classmethod
    def _finite_ttl(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("session_ttl_s must be finite")
        return v
