"""The sessions one replica owns: ids, TTL, limits, coordinate handling, errors -> HTTP codes.

Plain Python over :class:`physio_ray.guidance.session.GuidanceSession`, no Ray and no HTTP, so it
is tested directly. The Serve ingress (:mod:`serve_apps.guidance`) keeps one :class:`SessionStore`
per replica and calls it from its event loop, one request at a time: no locks are needed.

Session ids are ``<owner>.<random>``: ``owner`` names the replica that holds the session, which
is what :mod:`serve_apps.guidance_router` reads to send later requests back to it.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from physio_ray.guidance.exercise_rules import RULES, known
from physio_ray.guidance.feedback_library import neutral
from physio_ray.guidance.session import FrameResult, GuidanceSession, SessionSummary
from physio_ray.guidance.states import ConflictError, UnknownExerciseError
from serve_apps.guidance_schemas import Frame, StartRequest

logger = logging.getLogger(__name__)

_NORMALISED_RANGE = (-1.0, 2.0)  # a little outside 0..1 is normal (points just off the picture)


class ServiceError(Exception):
    """An error with its HTTP status code and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def exercise_catalogue() -> list[dict[str, object]]:
    """The exercises a user can pick: ``[{"id", "name", "countable"}]``."""
    return [
        {"id": name, "name": name.replace("_", " ").capitalize(), "countable": RULES[name].countable}
        for name in known()
    ]


def frame_payload(result: FrameResult) -> dict[str, object]:
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
    }


def summary_payload(summary: SessionSummary) -> dict[str, object]:
    """The end-of-session summary as JSON (``quality`` is not shown to the user)."""
    return {
        "exercise": summary.exercise,
        "reps": summary.reps,
        "segments": [{"exercise": e, "reps": r} for e, r in summary.segments],
        "unconfirmed_reps": summary.unconfirmed_reps,
        "duration_ms": summary.duration_ms,
        "frames": summary.frames,
        "feedback": [{"timestamp_ms": t, "text": s} for t, s in summary.feedback],
        "uncertainty_episodes": summary.uncertainty_episodes,
    }


@dataclass
class _Live:
    session: GuidanceSession
    scale: tuple[float, float] | None  # divide x, y by these (pixel coordinates)
    last_seen: float
    last_ts: float = -math.inf


class SessionStore:
    """Sessions held by one replica.

    Args:
        owner: short id of the replica, the prefix of every session id it issues.
        max_sessions: live sessions at most; :meth:`start` beyond it raises 429.
        ttl_s: sessions idle this long are dropped.
        clock: monotonic seconds (injectable for tests).
        session_factory: builds a fresh engine session (default: the engine's defaults).
    """

    def __init__(
        self,
        owner: str,
        max_sessions: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        session_factory: Callable[[], GuidanceSession] = GuidanceSession,
    ) -> None:
        if "." in owner or "/" in owner or not owner:
            raise ValueError(f"owner={owner!r} must be a non-empty id without '.' or '/'")
        self.owner = owner
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._clock = clock
        self._factory = session_factory
        self._live: dict[str, _Live] = {}
        self._next_sweep = 0.0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._live)

    # ------------------------------------------------------------------ lifecycle
    def sweep(self, force: bool = False) -> int:
        """Drops sessions idle longer than the TTL (at most once a second unless forced).

        Returns:
            How many were dropped.
        """
        now = self._clock()
        if not force and now < self._next_sweep:
            return 0
        self._next_sweep = now + 1.0
        stale = [sid for sid, live in self._live.items() if now - live.last_seen > self.ttl_s]
        for sid in stale:
            del self._live[sid]
        self.expired += len(stale)
        if stale:
            logger.info("dropped %d idle sessions (ttl %.0f s)", len(stale), self.ttl_s)
        return len(stale)

    def start(self, req: StartRequest) -> tuple[str, dict[str, object]]:
        """Creates a session for the user's selected exercise.

        Returns:
            ``(session_id, {"state", "exercise", "guidance"})``.

        Raises:
            ServiceError: 422 unknown exercise, 429 when the replica holds ``max_sessions``.
        """
        self.sweep(force=len(self._live) >= self.max_sessions)
        if len(self._live) >= self.max_sessions:
            raise ServiceError(
                429, f"this server holds its maximum of {self.max_sessions} sessions; end one or retry later"
            )
        session = self._factory()
        size = (req.image_width, req.image_height) if req.image_width is not None else None
        try:
            state = session.start(req.exercise, image_size=size)
        except UnknownExerciseError as exc:
            raise ServiceError(422, str(exc)) from exc
        sid = f"{self.owner}.{secrets.token_urlsafe(12)}"
        now = self._clock()
        scale = size if req.coordinates == "pixels" else None
        self._live[sid] = _Live(session, scale, last_seen=now)
        return sid, {"state": state.value, "exercise": req.exercise, "guidance": neutral("positioning")}

    def get(self, sid: str) -> _Live:
        """The live session ``sid`` (refreshes its TTL).

        Raises:
            ServiceError: 404 when unknown, ended or expired.
        """
        self.sweep()
        live = self._live.get(sid)
        if live is None:
            raise ServiceError(404, f"no active session {sid!r} (unknown, ended or idle for over {self.ttl_s:.0f} s)")
        live.last_seen = self._clock()
        return live

    # ------------------------------------------------------------------ actions
    def frames(self, sid: str, frames: list[Frame]) -> dict[str, object]:
        """Feeds frames (already schema-checked) to the session, all or none.

        Every frame is checked (layout, time order after the session's last frame, coordinate
        range) before the first one is processed, so a 422 leaves the session unchanged.

        Returns:
            The last frame's payload; ``feedback`` is the last sentence said within the batch and
            ``events`` lists the batch's events, when more than one frame was sent.

        Raises:
            ServiceError: 404 unknown session, 409 ended, 422 bad frames.
        """
        live = self.get(sid)
        arrays = []
        last = live.last_ts
        for i, frame in enumerate(frames):
            where = f"frames[{i}]" if len(frames) > 1 else "frame"
            if not frame.timestamp_ms > last:
                raise ServiceError(
                    422,
                    f"{where}.timestamp_ms={frame.timestamp_ms} is not after the session's previous frame "
                    f"({last}); frames must arrive in time order",
                )
            last = frame.timestamp_ms
            arrays.append(self._points(live, frame, where))
        results = []
        try:
            for frame, arr in zip(frames, arrays, strict=True):
                results.append(live.session.step(frame.timestamp_ms, arr))
                live.last_ts = frame.timestamp_ms
        except ConflictError as exc:
            raise ServiceError(409, str(exc)) from exc
        except ValueError as exc:  # should not happen after the checks above; still a client error
            raise ServiceError(422, str(exc)) from exc
        out = frame_payload(results[-1])
        if len(results) > 1:
            said = [r.feedback for r in results if r.feedback]
            out["feedback"] = said[-1] if said else None
            out["events"] = [r.event for r in results if r.event]
        return out

    def _points(self, live: _Live, frame: Frame, where: str) -> np.ndarray:
        arr = np.asarray(frame.keypoints, dtype=np.float64)
        if live.scale is not None:
            arr[:, 0] /= live.scale[0]
            arr[:, 1] /= live.scale[1]
        xy = arr[:, :2]
        lo, hi = _NORMALISED_RANGE
        if xy.min() < lo or xy.max() > hi:
            hint = (
                "start the session with coordinates='pixels', image_width and image_height, or divide by the picture size"
                if live.scale is None
                else "check image_width/image_height"
            )
            raise ServiceError(
                422,
                f"{where}: normalised x, y must lie in {lo}..{hi}, got {xy.min():.3g}..{xy.max():.3g}; {hint}",
            )
        return arr

    def confirm(self, sid: str) -> dict[str, object]:
        """Manual confirmation. Raises ServiceError 404/409."""
        live = self.get(sid)
        try:
            state = live.session.confirm()
        except ConflictError as exc:
            raise ServiceError(409, str(exc)) from exc
        return self._status(sid, live) | {"state": state.value}

    def reselect(self, sid: str, exercise: str) -> dict[str, object]:
        """Another exercise after an uncertainty prompt. Raises ServiceError 404/409/422."""
        live = self.get(sid)
        try:
            state = live.session.reselect(exercise)
        except ConflictError as exc:
            raise ServiceError(409, str(exc)) from exc
        except UnknownExerciseError as exc:
            raise ServiceError(422, str(exc)) from exc
        return self._status(sid, live) | {"state": state.value}

    def end(self, sid: str) -> dict[str, object]:
        """Ends the session, forgets it and returns its summary. Raises ServiceError 404."""
        live = self.get(sid)
        summary = live.session.end()
        del self._live[sid]
        return {"session_id": sid, "state": "COMPLETED", "summary": summary_payload(summary)}

    def status(self, sid: str) -> dict[str, object]:
        """Current state snapshot. Raises ServiceError 404."""
        live = self.get(sid)
        return self._status(sid, live)

    def _status(self, sid: str, live: _Live) -> dict[str, object]:
        return {"session_id": sid, **live.session.status()}
