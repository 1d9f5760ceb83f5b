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
from physio_ray.guidance.session import GuidanceSession, SessionSummary
from physio_ray.guidance.snapshot import session_from_dict, session_to_dict
from physio_ray.guidance.states import ConflictError, UnknownExerciseError
from physio_ray.guidance.stream import StreamError, TickFrame, error_entry, frame_payload, state_entry, step_tick
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
    tenant: str = ""  # hash of the token that started it ("" without a token)
    resumed: bool = False  # restored from a snapshot; the next reply says so once
    dirty: bool = True  # changed since its last snapshot
    urgent: bool = True  # its state or rep count changed since its last snapshot
    phase: float = 0.0  # where in each snapshot interval its regular snapshot falls (0..1)

    def meta(self) -> dict[str, object]:
        """What a snapshot carries beside the engine state."""
        return {"scale": self.scale, "last_ts": self.last_ts, "tenant": self.tenant}


def _in_window(phase: float, window: tuple[float, float]) -> bool:
    """Whether ``phase`` lies in ``[a, b)`` of a window that may wrap past 1.0 (``a > b``)."""
    a, b = window
    return a <= phase < b if a <= b else phase >= a or phase < b


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
        self.resumed = 0
        self._dropped: list[str] = []  # ended or expired since the last snapshot sync
        self._gone: dict[str, float] = {}  # ended or expired here -> when (never restored again)
        self.urgent = False  # a state or rep count changed: snapshot now, not at the next second

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
            self._gone[sid] = now
        self._dropped.extend(stale)
        for sid in [s for s, t in self._gone.items() if now - t > self.ttl_s]:
            del self._gone[sid]
        self.expired += len(stale)
        if stale:
            logger.info("dropped %d idle sessions (ttl %.0f s)", len(stale), self.ttl_s)
        return len(stale)

    def start(self, req: StartRequest, tenant: str = "") -> tuple[str, dict[str, object]]:
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
        self._live[sid] = _Live(session, scale, last_seen=now, tenant=tenant, phase=secrets.randbelow(1000) / 1000)
        self.urgent = True
        return sid, {"state": state.value, "exercise": req.exercise, "guidance": neutral("positioning")}

    def has(self, sid: str) -> bool:
        """Whether this replica holds ``sid``."""
        return sid in self._live

    def gone(self, sid: str) -> bool:
        """Whether ``sid`` ended or expired here (its snapshot must not bring it back)."""
        return sid in self._gone

    def get(self, sid: str, tenant: str | None = None) -> _Live:
        """The live session ``sid`` (refreshes its TTL).

        Args:
            sid: the session id.
            tenant: when given, the session must have been started with this token.

        Raises:
            ServiceError: 404 when unknown, ended, expired or another tenant's.
        """
        self.sweep()
        live = self._live.get(sid)
        if live is None or (tenant is not None and live.tenant != tenant):
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
        live.dirty = True
        before = (live.session.state, live.session.reps)
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
            arrays.append(self._points(live, frame.keypoints, where))
        results = []
        try:
            for frame, arr in zip(frames, arrays, strict=True):
                results.append(live.session.step(frame.timestamp_ms, arr))
                live.last_ts = frame.timestamp_ms
        except ConflictError as exc:
            raise ServiceError(409, str(exc)) from exc
        except ValueError as exc:  # should not happen after the checks above; still a client error
            raise ServiceError(422, str(exc)) from exc
        if (live.session.state, live.session.reps) != before:
            live.urgent = self.urgent = True
        out = frame_payload(results[-1])
        if live.resumed:
            out["resumed"], live.resumed = True, False
        if len(results) > 1:
            said = [r.feedback for r in results if r.feedback]
            out["feedback"] = said[-1] if said else None
            out["events"] = [r.event for r in results if r.event]
        return out

    def _points(self, live: _Live, keypoints: list | np.ndarray, where: str) -> np.ndarray:
        arr = np.array(keypoints, dtype=np.float64)
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
        live.dirty = live.urgent = self.urgent = True
        try:
            state = live.session.confirm()
        except ConflictError as exc:
            raise ServiceError(409, str(exc)) from exc
        return self._status(sid, live) | {"state": state.value}

    def reselect(self, sid: str, exercise: str) -> dict[str, object]:
        """Another exercise after an uncertainty prompt. Raises ServiceError 404/409/422."""
        live = self.get(sid)
        live.dirty = live.urgent = self.urgent = True
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
        self._dropped.append(sid)
        self._gone[sid] = self._clock()
        self.urgent = True
        return {"session_id": sid, "state": "COMPLETED", "summary": summary_payload(summary)}

    def status(self, sid: str) -> dict[str, object]:
        """Current state snapshot. Raises ServiceError 404."""
        live = self.get(sid)
        return self._status(sid, live)

    def _status(self, sid: str, live: _Live) -> dict[str, object]:
        return {"session_id": sid, **live.session.status()}

    # ------------------------------------------------------------------ multiplexed stream
    def tick(self, items: list[TickFrame | StreamError], tenant: str) -> list[dict[str, object]]:
        """Steps one tick of the multiplexed stream; every item gets its own entry.

        Args:
            items: parsed frame items (a :class:`StreamError` for one that failed to parse).
            tenant: the connection's tenant; another tenant's session is ``unknown_session``.

        Returns:
            One ``states`` entry per item, in order.
        """
        out: list[dict[str, object] | None] = [None] * len(items)
        todo: list[int] = []
        lives: list[_Live] = []
        frames: list[TickFrame] = []
        last: dict[str, float] = {}
        for i, item in enumerate(items):
            if isinstance(item, StreamError):
                out[i] = error_entry(item, None)
                continue
            sid = item.session_id
            live = self._live.get(sid)
            if live is None or live.tenant != tenant:
                out[i] = error_entry(StreamError("unknown_session", f"no active session {sid!r} for this token"), sid)
                continue
            prev = last.get(sid, live.last_ts)
            if not item.timestamp_ms > prev:
                msg = f"timestamp_ms={item.timestamp_ms} is not after the session's previous frame ({prev})"
                out[i] = error_entry(StreamError("out_of_order", msg), sid)
                continue
            try:
                arr = self._points(live, item.keypoints, "frame")
            except ServiceError as exc:
                out[i] = error_entry(StreamError("bad_frame", exc.message), sid)
                continue
            last[sid] = item.timestamp_ms
            todo.append(i)
            lives.append(live)
            frames.append(TickFrame(sid, item.timestamp_ms, arr))
        before = {id(lv): (lv.session.state, lv.session.reps) for lv in lives}
        results = step_tick([lv.session for lv in lives], frames)
        now = self._clock()
        for i, live, frame, res in zip(todo, lives, frames, results, strict=True):
            live.last_seen = now
            if isinstance(res, StreamError):
                out[i] = error_entry(res, frame.session_id)
                continue
            live.last_ts = frame.timestamp_ms
            live.dirty = True
            out[i] = state_entry(res, frame.session_id, resumed=live.resumed)
            live.resumed = False
        for lv in lives:
            if (lv.session.state, lv.session.reps) != before[id(lv)]:
                lv.urgent = self.urgent = True
        return [o if o is not None else {} for o in out]

    # ------------------------------------------------------------------ snapshots
    def take_snapshots(
        self, every_dirty: bool, window: tuple[float, float] | None = None
    ) -> tuple[dict[str, tuple[dict, dict]], list[str]]:
        """Snapshots to store (``sid -> (snapshot, meta)``) and the sessions dropped since the last call.

        Every session has a fixed *phase* in the snapshot interval (drawn when it starts), so
        the regular snapshots of many sessions spread over the interval instead of all landing
        on one tick (50 sessions x ~0.2 ms each would stall the stream once a second).

        Args:
            every_dirty: take every session changed since its last snapshot; False takes only
                those whose state or rep count changed (``urgent``) plus, with ``window``, the
                changed sessions whose phase falls in it.
            window: ``(a, b)`` fractions of the interval that elapsed since the last call (may
                wrap: ``a > b`` means past 1.0 and round again); a changed session whose phase
                is in ``[a, b)`` is due.
        """
        puts = {}
        for sid, live in self._live.items():
            due = every_dirty or (window is not None and _in_window(live.phase, window))
            if live.urgent or (due and live.dirty):
                puts[sid] = (session_to_dict(live.session), live.meta())
                live.dirty = live.urgent = False
        drops, self._dropped = self._dropped, []
        self.urgent = False
        return puts, drops

    def adopt(self, sid: str, snapshot: dict, meta: dict) -> _Live:
        """Takes over a session from its snapshot (its owner is gone); the next reply says ``resumed``."""
        session = session_from_dict(snapshot, self._factory)
        scale = meta.get("scale")
        live = _Live(
            session,
            tuple(scale) if scale is not None else None,  # type: ignore[arg-type]
            last_seen=self._clock(),
            last_ts=float(meta.get("last_ts", -math.inf)),  # type: ignore[arg-type]
            tenant=str(meta.get("tenant", "")),
            resumed=True,
            dirty=False,
            urgent=False,
            phase=secrets.randbelow(1000) / 1000,
        )
        self._live[sid] = live
        self.resumed += 1
        logger.info("resumed session %s from its snapshot (%d frames)", sid, session.status()["frames"])
        return live
