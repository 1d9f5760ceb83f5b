"""The multiplexed session stream: typed messages, their validation, and one tick of many sessions.

One connection carries many sessions (an app backend or a clinic hub holds one socket). Every
client message is a JSON object with a ``type``; every reply is one too. A message that cannot
be read at all (not JSON, too large, no known ``type``) gets one ``error`` reply and the stream
stays open; a bad *item* inside a readable message (one frame of a tick) gets its own error
entry while every other item is processed.

Client -> server (``session_id`` as returned by ``started``)::

    {"type": "auth", "token": "..."}                       first, when the service has a token
    {"type": "start", "exercise": "squat", "client_ref": "a"}  [+ coordinates, image_width, image_height]
    {"type": "frames", "frames": [{"session_id": ..., "timestamp_ms": ..., "keypoints": [[x, y, score] x 17]}]}
    {"type": "confirm", "session_id": ...}
    {"type": "reselect", "session_id": ..., "exercise": "deep_squat"}
    {"type": "status", "session_id": ...}
    {"type": "end", "session_id": ...}

Server -> client: ``authenticated``, ``started`` (``client_ref``, ``session_id``, ``state``),
``states`` (one entry per frame item, in order: ``session_id``, ``timestamp_ms``, ``state``,
``reps``, ``phase``, ``feedback``, ``event``, ``resumed``, ``error``), ``state`` (after confirm,
reselect, status), ``ended`` (``summary``), and ``error`` (``code``, ``message``, plus the
``client_ref`` / ``session_id`` it is about). Error codes are listed in :data:`ERROR_CODES`.

Pure Python (no Ray, no HTTP); :func:`step_tick` is the single place where the frames of one
tick meet the engine, so a batched engine can replace its inside without touching the service.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from physio_ray.guidance.batch_engine import step_frames
from physio_ray.guidance.results import FrameResult
from physio_ray.guidance.session import GuidanceSession
from physio_ray.guidance.states import GuidanceError

ERROR_CODES = {
    "bad_json": "the message is not a JSON object",
    "too_large": "the message exceeds the size limit",
    "bad_message": "a field is missing or has the wrong type",
    "unknown_type": "no such message type",
    "unauthorized": "send {'type': 'auth', 'token': ...} first",
    "too_many_frames": "the tick carries more frame items than the limit",
    "bad_frame": "keypoints or timestamp invalid (NaN/inf, point or channel count, range)",
    "out_of_order": "timestamp_ms is not after the session's previous frame",
    "unknown_session": "no active session with this id (unknown, ended, expired or another token's)",
    "conflict": "the session's state does not allow this action",
    "unknown_exercise": "no rule for this exercise",
    "busy": "the session is held by another replica or is being moved; retry shortly",
    "limit": "the server holds its maximum number of sessions",
}
POINT_COUNTS = (17, 33)
MESSAGE_TYPES = ("auth", "start", "frames", "confirm", "reselect", "status", "end")


class StreamError(Exception):
    """A typed stream error: ``code`` (a key of :data:`ERROR_CODES`) and a message for the client."""

    def __init__(self, code: str, message: str) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    def payload(self, **about: Any) -> dict[str, Any]:
        """The ``error`` reply (``about``: ``client_ref`` or ``session_id`` it concerns)."""
        return {"type": "error", "code": self.code, "message": self.message, **about}

    def entry(self) -> dict[str, str]:
        """The ``error`` value of one item of a ``states`` reply."""
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class StreamLimits:
    """Bounds of one stream message.

    Attributes:
        max_message_bytes: a larger message is refused unread (``too_large``).
        max_frames_per_tick: frame items of one ``frames`` message at most.
    """

    max_message_bytes: int = 1024 * 1024
    max_frames_per_tick: int = 1000

    def __post_init__(self) -> None:
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes={self.max_message_bytes} must be >= 1024")
        if self.max_frames_per_tick < 1:
            raise ValueError(f"max_frames_per_tick={self.max_frames_per_tick} must be >= 1")


@dataclass(frozen=True)
class TickFrame:
    """One validated frame item of a tick.

    Attributes:
        session_id: the session it belongs to.
        timestamp_ms: capture time (finite, >= 0).
        keypoints: ``[17|33, 2..4]`` float64, finite.
    """

    session_id: str
    timestamp_ms: float
    keypoints: np.ndarray


@dataclass(frozen=True)
class Message:
    """A parsed client message: its ``type`` and its fields (validated per type)."""

    type: str
    fields: dict[str, Any]
    items: tuple[TickFrame | StreamError, ...] = ()


def parse_message(text: str | bytes, limits: StreamLimits) -> Message:
    """Reads one client message.

    Args:
        text: the raw WebSocket message.
        limits: size and count bounds.

    Returns:
        The message; for ``frames`` its ``items`` hold a :class:`TickFrame` or the item's
        :class:`StreamError`, in order.

    Raises:
        StreamError: when the message as a whole cannot be used.

    >>> parse_message('{"type": "end", "session_id": "r.1"}', StreamLimits()).fields
    {'session_id': 'r.1'}
    >>> parse_message("{nope", StreamLimits())
    Traceback (most recent call last):
    ...
    physio_ray.guidance.stream.StreamError: message is not valid JSON: Expecting property name enclosed in double quotes at char 1
    """
    if len(text) > limits.max_message_bytes:
        raise StreamError("too_large", f"message of {len(text)} bytes exceeds {limits.max_message_bytes} bytes")
    try:
        obj = _loads(text)
    except (ValueError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        pos = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise StreamError("bad_json", f"message is not valid JSON: {msg}{pos}") from None
    if not isinstance(obj, dict):
        raise StreamError("bad_json", f"message must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind not in MESSAGE_TYPES:
        raise StreamError("unknown_type", f"type={kind!r}; send one of {list(MESSAGE_TYPES)}")
    if kind == "frames":
        frames = obj.get("frames")
        if not isinstance(frames, list):
            raise StreamError("bad_message", "a 'frames' message needs a list 'frames'")
        if len(frames) > limits.max_frames_per_tick:
            raise StreamError(
                "too_many_frames", f"{len(frames)} frame items; a tick carries at most {limits.max_frames_per_tick}"
            )
        return Message("frames", {}, tuple(_frame_item(f, i) for i, f in enumerate(frames)))
    fields = {k: v for k, v in obj.items() if k != "type"}
    if kind == "auth":
        _need_str(fields, "token", 4096)
    elif kind == "start":
        _need_str(fields, "exercise", 64)
        ref = fields.get("client_ref")
        if ref is not None and not (isinstance(ref, str | int) and len(str(ref)) <= 128):
            raise StreamError("bad_message", "client_ref must be a string or integer of at most 128 characters")
    else:
        _need_str(fields, "session_id", 128)
        if kind == "reselect":
            _need_str(fields, "exercise", 64)
    return Message(kind, fields)


def _loads(text: str | bytes) -> Any:  # noqa: ANN401 - any JSON value
    """``orjson.loads`` (2.5x faster on a tick of 50 sessions' keypoints), falling back to
    ``json.loads`` for what strict JSON refuses but Python clients send (``NaN`` from
    ``json.dumps``, integers beyond 64 bits), so such a frame still gets its own item error."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _need_str(fields: dict[str, Any], key: str, max_len: int) -> None:
    v = fields.get(key)
    if not isinstance(v, str) or not 0 < len(v) <= max_len:
        raise StreamError("bad_message", f"{key!r} must be a non-empty string of at most {max_len} characters")


def _frame_item(item: Any, i: int) -> TickFrame | StreamError:
    """One frame item validated on its own (its error does not affect the other items)."""
    where = f"frames[{i}]"
    if not isinstance(item, dict):
        return StreamError("bad_frame", f"{where} must be an object with session_id, timestamp_ms, keypoints")
    sid = item.get("session_id")
    if not isinstance(sid, str) or not 0 < len(sid) <= 128:
        return StreamError("bad_frame", f"{where}.session_id must be a non-empty string")
    t = item.get("timestamp_ms")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        return StreamError("bad_frame", f"{where}.timestamp_ms={t!r} must be a finite number >= 0")
    try:
        kp = np.asarray(item.get("keypoints"), dtype=np.float64)
    except (TypeError, ValueError):
        return StreamError("bad_frame", f"{where}.keypoints must be [17|33][2..4] numbers, one row per point")
    if kp.ndim != 2 or kp.shape[0] not in POINT_COUNTS or not 2 <= kp.shape[1] <= 4:
        return StreamError(
            "bad_frame", f"{where}.keypoints has shape {list(kp.shape)}; send 17 or 33 points of 2..4 numbers"
        )
    if not np.all(np.isfinite(kp)):
        j = int(np.argwhere(~np.isfinite(kp))[0][0])
        return StreamError(
            "bad_frame", f"{where}.keypoints[{j}] is NaN or inf; send finite values, a low score instead"
        )
    return TickFrame(sid, float(t), kp)


def step_tick(sessions: Sequence[GuidanceSession], frames: Sequence[TickFrame]) -> list[FrameResult | StreamError]:
    """Steps the frames of one tick through their sessions (``sessions[i]`` takes ``frames[i]``)
    with the batched engine (:func:`physio_ray.guidance.batch_engine.step_frames`: one vectorised
    step for every session of the tick, the same results as one session at a time).

    A session may appear more than once (its frames in time order). An engine error for one
    frame (time order, state) leaves that session unchanged and is returned in its slot; the
    other frames are stepped.

    Args:
        sessions: the session of each frame (already resolved and checked by the caller).
        frames: validated frames, same length.

    Returns:
        Per frame its :class:`FrameResult`, or a :class:`StreamError`.
    """
    outcomes = step_frames(sessions, [f.timestamp_ms for f in frames], [f.keypoints for f in frames])
    out: list[FrameResult | StreamError] = []
    for outcome in outcomes:
        if isinstance(outcome, GuidanceError):  # ConflictError: ended, not started
            out.append(StreamError("conflict", str(outcome)))
        elif isinstance(outcome, ValueError):  # the caller checks time order first; this is a layout problem
            out.append(StreamError("bad_frame", str(outcome)))
        else:
            out.append(outcome)
    return out


def frame_payload(result: FrameResult) -> dict[str, Any]:
    """What a client sees of one frame: state, reps, one sentence or null (no scores)."""
    return {
        "timestamp_ms": result.timestamp_ms,
        "state": result.state.value,
        "exercise": result.exercise,
        "reps": result.reps,
        "phase": result.phase.value,
        "feedback": result.feedback,
        "guidance": result.guidance,
        "event": result.event,
        "suggestion": result.suggestion,
        "view": result.view,
    }


def state_entry(result: FrameResult, session_id: str, resumed: bool = False) -> dict[str, Any]:
    """One item of a ``states`` reply for a stepped frame: :func:`frame_payload` plus the session."""
    return {"session_id": session_id, **frame_payload(result), "resumed": resumed, "error": None}


def error_entry(err: StreamError, session_id: str | None) -> dict[str, Any]:
    """One item of a ``states`` reply for a frame that was not stepped."""
    return {
        "session_id": session_id,
        "state": None,
        "reps": None,
        "phase": None,
        "feedback": None,
        "resumed": False,
        "error": err.entry(),
    }
