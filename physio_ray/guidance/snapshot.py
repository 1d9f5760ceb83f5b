"""Session snapshots: a started guidance session as plain data, and back, plus a store for them.

A live session (:class:`~physio_ray.guidance.session_state.LiveSession`) is small: the One-Euro
filter state, the last ``BUFFER_MS`` of angle rows, the view-invariant cue extractor (its
smoothers, reference-length windows and view/side-switch state), the phase/rep counters (with
the side-switch "back to rest first" flag), the belief and the summary tally. :func:`session_to_dict` turns it into a dict of plain Python values (numbers,
strings, lists, and two numpy arrays for the angle window (``[T]`` times, ``[T, 16]`` rows), which pickle in one
piece; NaN and inf stay floats);
:func:`session_from_dict` builds a new :class:`~physio_ray.guidance.session.GuidanceSession`
that continues exactly where the old one was: the same later frames give the same results
(a unit test pins this frame by frame). Models are not stored: the classifier and the quality
model are stateless over their angle window and are rebuilt from the session's factories.

This module is the single reader of the engine objects' internal fields (filter, window and
counter state); when those classes change, :data:`SNAPSHOT_VERSION` changes with them and an
old snapshot is refused with a clear error rather than restored wrong.

:class:`SnapshotStore` keeps the latest snapshot of every session with the replica that owns
it and a heartbeat per replica (plain Python; the Serve app runs it as a detached named Ray
actor so it outlives any replica, see :mod:`serve_apps.guidance_snapshots`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from physio_ray.guidance.belief import BeliefState
from physio_ray.guidance.cues import RestLevel, ViewCues, ViewEstimate, _Ema, _WindowMax, _WindowMode
from physio_ray.guidance.phases import MovementPhase
from physio_ray.guidance.reps import MovementState, RepEvent
from physio_ray.guidance.session import GuidanceSession
from physio_ray.guidance.session_state import LiveSession, NotStarted
from physio_ray.guidance.states import SessionState
from physio_ray.video.smoothing import OneEuroFilter

SNAPSHOT_VERSION = 3
"""Bumped whenever the layout below changes; :func:`session_from_dict` refuses other versions."""


class SnapshotError(ValueError):
    """A snapshot that cannot be restored (wrong version, missing field, not started)."""


def _arr(a: np.ndarray | None) -> list | None:
    return None if a is None else np.asarray(a, dtype=np.float64).tolist()


def _filter_to_dict(f: OneEuroFilter | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "min_cutoff": f.min_cutoff,
        "beta": f.beta,
        "d_cutoff": f.d_cutoff,
        "channels": None if f.channels is None else list(f.channels),
        "x": _arr(f._x),
        "dx": _arr(f._dx),
        "t": f._t,
    }


def _filter_from_dict(d: dict[str, Any] | None) -> OneEuroFilter | None:
    if d is None:
        return None
    f = OneEuroFilter(
        d["min_cutoff"], d["beta"], d["d_cutoff"], None if d["channels"] is None else tuple(d["channels"])
    )
    f._x = None if d["x"] is None else np.asarray(d["x"], dtype=np.float64)
    f._dx = None if d["dx"] is None else np.asarray(d["dx"], dtype=np.float64)
    f._t = d["t"]
    return f


def _movement_to_dict(m: MovementState) -> dict[str, Any]:
    return {
        "current_phase": m.current_phase.value,
        "phase_frames": m.phase_frames,
        "phase_ms": m.phase_ms,
        "last_phase": m.last_phase.value,
        "settled_phase": m.settled_phase.value,
        "rep_count": m.rep_count,
        "last_rep_time": m.last_rep_time,
        "in_transition": m.in_transition,
        "stable_state_frames": m.stable_state_frames,
        "stable_ms": m.stable_ms,
        "excursions": m.excursions,
        "events": [[e.kind, e.timestamp_ms, e.duration_ms, e.extreme_deg, e.progress] for e in m.events],
    }


def _movement_from_dict(d: dict[str, Any]) -> MovementState:
    return MovementState(
        current_phase=MovementPhase(d["current_phase"]),
        phase_frames=d["phase_frames"],
        phase_ms=d["phase_ms"],
        last_phase=MovementPhase(d["last_phase"]),
        settled_phase=MovementPhase(d["settled_phase"]),
        rep_count=d["rep_count"],
        last_rep_time=d["last_rep_time"],
        in_transition=d["in_transition"],
        stable_state_frames=d["stable_state_frames"],
        stable_ms=d["stable_ms"],
        excursions=d["excursions"],
        events=[RepEvent(*e) for e in d["events"]],
    )


def _ema_to_dict(e: _Ema) -> list[float]:
    return [e.tau, e.max_gap, e._v, e._t]


def _ema_from_dict(d: list[float]) -> _Ema:
    e = _Ema(float(d[0]), float(d[1]))
    e._v, e._t = float(d[2]), float(d[3])
    return e


def _window_to_dict(w: _WindowMax | _WindowMode) -> list[Any]:
    return [w.window_ms, [list(q) for q in w._q]]


def _window_from_dict(d: list[Any]) -> _WindowMax:
    w = _WindowMax(float(d[0]))
    w._q.extend((float(t), float(x)) for t, x in d[1])
    return w


def _rest_to_dict(r: RestLevel | None) -> list[Any] | None:
    return None if r is None else [r.sign, r.centre, _ema_to_dict(r._ema), _window_to_dict(r._win), r._since]


def _rest_into(r: RestLevel | None, d: list[Any] | None) -> None:
    if r is None or d is None:
        if (r is None) != (d is None):
            raise SnapshotError("the snapshot's rest level does not match the exercise's rule")
        return
    r.sign, r.centre, r._ema, r._since = float(d[0]), bool(d[1]), _ema_from_dict(d[2]), float(d[4])
    window = _window_from_dict(d[3])
    if r.centre:  # same fields, the mode's class
        mode = _WindowMode(window.window_ms)
        mode._q = window._q
        r._win = mode
    else:
        r._win = window


def _cues_to_dict(c: ViewCues) -> dict[str, Any]:
    v = c.view
    return {
        "aspect": c.aspect,
        "min_visibility": c.min_visibility,
        "sector_hold_ms": c.sector_hold_ms,
        "hold_ms": c.hold_ms,
        "last": [list(c._last), list(c._last_t)],
        "ref": {k: [_ema_to_dict(e), *_window_to_dict(w)] for k, (e, w) in c._ref.items()},
        "dy": [_ema_to_dict(e) for e in c._dy],
        "head": [_ema_to_dict(e) for e in c._head],
        "sector": c._sector,
        "cand": c._cand,
        "cand_since": c._cand_since,
        "history": list(c._history),
        "switches": c.switches,
        "view": [v.known, v.heading_deg, v.sector, v.switches],
    }


def _cues_from_dict(d: dict[str, Any]) -> ViewCues:
    c = ViewCues(
        float(d["aspect"]),
        float(d["min_visibility"]),
        sector_hold_ms=float(d["sector_hold_ms"]),
        hold_ms=float(d["hold_ms"]),
    )
    c._last, c._last_t = [float(x) for x in d["last"][0]], [float(x) for x in d["last"][1]]
    for k, (ema, window_ms, q) in d["ref"].items():
        c._ref[k] = (_ema_from_dict(ema), _window_from_dict([window_ms, q]))
    c._dy = [_ema_from_dict(e) for e in d["dy"]]
    head = [_ema_from_dict(e) for e in d["head"]]
    c._head = (head[0], head[1])
    c._sector, c._cand, c._cand_since = int(d["sector"]), int(d["cand"]), float(d["cand_since"])
    c._history = [int(x) for x in d["history"]]
    c.switches = int(d["switches"])
    known, heading, sector, switches = d["view"]
    c.view = ViewEstimate(bool(known), float(heading), int(sector), int(switches))
    return c


_BELIEF_FIELDS = (
    "confirmation_frames",
    "confirmation_ms",
    "contradiction_ms",
    "confirmed",
    "locked_exercise",
    "quality_belief",
    "quality_variance",
    "quality_confidence",
    "last_feedback_time",
)


def _belief_to_dict(b: BeliefState) -> dict[str, Any]:
    out: dict[str, Any] = {f: getattr(b, f) for f in _BELIEF_FIELDS}
    out |= {
        "exercises": list(b.exercises),
        "probabilities": _arr(b.probabilities),
        "selected": b.selected,
        "prior": _arr(b._prior),
    }
    return out


def _belief_from_dict(d: dict[str, Any]) -> BeliefState:
    b = BeliefState(
        tuple(d["exercises"]),
        np.asarray(d["probabilities"], dtype=np.float64),
        d["selected"],
        _prior=np.asarray(d["prior"], dtype=np.float64),
    )
    for f in _BELIEF_FIELDS:
        setattr(b, f, d[f])
    return b


def session_to_dict(session: GuidanceSession) -> dict[str, Any]:
    """The full state of a started session as plain data.

    Args:
        session: a started session (any state, COMPLETED included).

    Returns:
        A dict of plain values (``version``, ``state``, ``stream``, ``selection``, ``tally``).

    Raises:
        SnapshotError: when the session has not been started.
    """
    live = session._live
    if isinstance(live, NotStarted):
        raise SnapshotError("a session that has not been started has no state to snapshot")
    st, sel, tally = live.stream, live.selection, live.tally
    window = st.window
    reps = sel.tracker._reps
    return {
        "version": SNAPSHOT_VERSION,
        "state": live.state.value,
        "was_active": live.was_active,
        "stream": {
            "aspect": st.features.aspect,
            "filter": _filter_to_dict(st.features._filter),
            "window_keep_ms": window.keep_ms,
            "window_t": window.times(),
            "window_rows": window.rows(),
            "cues": _cues_to_dict(st.cues),
            "third": st.third,
            "frames": st.frames,
            "first_ms": st.first_ms,
            "last_ms": st.last_ms,
            "visible_ms": st.visible_ms,
            "lost_ms": st.lost_ms,
        },
        "selection": {
            "exercise": sel.exercise,
            "phase": sel.tracker._phases.phase.value,
            "movement": _movement_to_dict(reps.state),
            "armed": reps._armed,
            "left_rest_ms": reps._left_rest_ms,
            "extreme": reps._extreme,
            "need_rest": reps._need_rest,
            "sides": [reps._extreme_side, reps._open_side],
            "side_switches": sel.tracker.side_switches,
            "rest_level": _rest_to_dict(sel.tracker.rest_level),
            "belief": _belief_to_dict(sel.belief),
            "committed": sel.committed,
            "pending": sel.pending,
            "ignore_contradiction": sel.ignore_contradiction,
            "last_classifier_ms": sel.last_classifier_ms,
            "last_quality_ms": sel.last_quality_ms,
            "stable_ms": sel.stable_ms,
        },
        "tally": {
            "segments": [list(s) for s in tally.segments],
            "feedback": [list(f) for f in tally.feedback],
            "uncertainty_episodes": tally.uncertainty_episodes,
            "good_since_praise": tally.good_since_praise,
            "praise_count": tally.praise_count,
        },
    }


def session_from_dict(
    data: dict[str, Any], factory: Callable[[], GuidanceSession] = GuidanceSession
) -> GuidanceSession:
    """A session that continues from a snapshot of :func:`session_to_dict`.

    Args:
        data: the snapshot.
        factory: builds a fresh, unstarted session with the models and config to use (the
            service's own factory, so a restored session scores with the same models).

    Returns:
        The restored session.

    Raises:
        SnapshotError: for another snapshot version or a missing field.
    """
    if data.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {data.get('version')!r} is not {SNAPSHOT_VERSION}; cannot restore it")
    try:
        st, sel, ta = data["stream"], data["selection"], data["tally"]
        session = factory()
        session.start(sel["exercise"], third_channel=st["third"])
        live = session._live
        assert isinstance(live, LiveSession)
        live.state = SessionState(data["state"])
        live.was_active = bool(data["was_active"])
        stream = live.stream
        stream.features.aspect = float(st["aspect"])
        stream.features._filter = _filter_from_dict(st["filter"])
        stream.window.keep_ms = float(st["window_keep_ms"])
        times = np.asarray(st["window_t"], dtype=np.float64)
        stream.window.clear()
        stream.window.extend(times, np.asarray(st["window_rows"], dtype=np.float64).reshape(len(times), -1))
        stream.cues = _cues_from_dict(st["cues"])
        stream.frames, stream.first_ms, stream.last_ms = st["frames"], st["first_ms"], st["last_ms"]
        stream.visible_ms, stream.lost_ms = st["visible_ms"], st["lost_ms"]
        selection = live.selection
        selection.tracker._phases.phase = MovementPhase(sel["phase"])
        reps = selection.tracker._reps
        reps.state = _movement_from_dict(sel["movement"])
        reps._armed, reps._left_rest_ms, reps._extreme = sel["armed"], sel["left_rest_ms"], sel["extreme"]
        reps._need_rest, selection.tracker.side_switches = bool(sel["need_rest"]), int(sel["side_switches"])
        _rest_into(selection.tracker.rest_level, sel["rest_level"])
        reps._extreme_side, reps._open_side = (int(x) for x in sel["sides"])
        selection.belief = _belief_from_dict(sel["belief"])
        selection.committed, selection.pending = sel["committed"], sel["pending"]
        selection.ignore_contradiction = sel["ignore_contradiction"]
        selection.last_classifier_ms, selection.last_quality_ms = sel["last_classifier_ms"], sel["last_quality_ms"]
        selection.stable_ms = sel["stable_ms"]
        tally = live.tally
        tally.segments = [(str(e), int(r)) for e, r in ta["segments"]]
        tally.feedback = [(float(t), str(s)) for t, s in ta["feedback"]]
        tally.uncertainty_episodes = ta["uncertainty_episodes"]
        tally.good_since_praise, tally.praise_count = ta["good_since_praise"], ta["praise_count"]
    except (KeyError, TypeError) as exc:
        raise SnapshotError(f"snapshot is missing or has a bad field: {exc!r}") from exc
    return session


# ---------------------------------------------------------------------------------------- store
@dataclass
class Claim:
    """The answer of :meth:`SnapshotStore.claim`.

    Attributes:
        outcome: ``restored`` (the caller now owns the session; ``snapshot`` is set),
            ``owned`` (a live replica ``owner`` holds it: send the request there) or
            ``missing`` (no snapshot: unknown, ended or expired).
        owner: the owning replica after the claim.
        snapshot: the session snapshot (``restored`` only).
        meta: what the owner stored beside it (e.g. the token hash and coordinate scale).
    """

    outcome: str
    owner: str | None = None
    snapshot: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


class SnapshotStore:
    """Latest snapshot per session, the owner of each, and a heartbeat per replica.

    A replica calls :meth:`sync` about once a second with the snapshots it changed since the
    last call, the sessions it dropped, and so proves it is alive. A replica that has not
    synced for ``lease_s`` is gone: any other replica may :meth:`claim` its sessions. One
    caller at a time (a Ray actor runs its methods in order), so a claim is atomic: two
    replicas never both restore the same session.

    Args:
        lease_s: a replica silent this long has lost its sessions to whoever claims them.
        ttl_s: snapshots not updated for this long are dropped (the sessions' idle TTL).
        clock: seconds (injectable for tests).

    >>> store = SnapshotStore(lease_s=3.0, ttl_s=60.0, clock=lambda: 0.0)
    >>> store.sync("a", {"a.x": ({"version": 1}, {})}, [])
    >>> store.claim("a.x", "b").outcome, store.claim("a.x", "b").owner
    ('owned', 'a')
    """

    def __init__(self, lease_s: float = 3.0, ttl_s: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not (lease_s > 0 and ttl_s > 0 and math.isfinite(lease_s) and math.isfinite(ttl_s)):
            raise ValueError(f"lease_s={lease_s} and ttl_s={ttl_s} must be positive and finite")
        self.lease_s = float(lease_s)
        self.ttl_s = float(ttl_s)
        self._clock = clock
        self._snaps: dict[str, tuple[str, dict[str, Any], dict[str, Any], float]] = {}
        self._seen: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._snaps)

    def sync(self, owner: str, puts: dict[str, tuple[dict[str, Any], dict[str, Any]]], drops: list[str]) -> None:
        """Stores ``owner``'s changed sessions (``sid -> (snapshot, meta)``), forgets ``drops``."""
        now = self._clock()
        self._seen[owner] = now
        for sid, (snap, meta) in puts.items():
            held = self._snaps.get(sid)
            if held is not None and held[0] != owner and self._alive(held[0], now):
                continue  # a stale writer (it lost the session to a claim) never overwrites the owner
            self._snaps[sid] = (owner, snap, meta, now)
        for sid in drops:
            held = self._snaps.get(sid)
            if held is not None and held[0] == owner:
                del self._snaps[sid]
        stale = [sid for sid, (_, _, _, t) in self._snaps.items() if now - t > self.ttl_s]
        for sid in stale:
            del self._snaps[sid]

    def claim(self, sid: str, claimer: str) -> Claim:
        """Hands ``sid`` to ``claimer`` when its owner is gone (or is the claimer).

        Returns:
            A :class:`Claim`.
        """
        now = self._clock()
        held = self._snaps.get(sid)
        if held is None:
            return Claim("missing")
        owner, snap, meta, _ = held
        if owner != claimer and self._alive(owner, now):
            return Claim("owned", owner)
        self._snaps[sid] = (claimer, snap, meta, now)
        return Claim("restored", claimer, snap, meta)

    def owner(self, sid: str) -> str | None:
        """The replica recorded as holding ``sid`` (None when unknown)."""
        held = self._snaps.get(sid)
        return held[0] if held is not None else None

    def _alive(self, owner: str, now: float) -> bool:
        seen = self._seen.get(owner)
        return seen is not None and now - seen <= self.lease_s
