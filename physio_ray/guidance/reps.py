"""Repetition counting from phases, driven by time (seed 003 "Movement phase detection").

A repetition is counted when the *settled* phase goes ECCENTRIC -> CONCENTRIC (any TRANSITION
frames in between are allowed), the new phase has held for ``phase_stability_ms`` (seed: 8
frames) and at least ``min_rep_interval_ms`` (seed: 1200 ms) have passed since the last counted
rep. A phase settles only after it has held for ``phase_stability_ms`` of *visible* frames:
frames whose driving angle is NaN add no time (they do not count towards stability) but do not
reset the run either, so one dropped frame inside a squat does not lose the rep.

Besides reps, the counter reports a *shallow* attempt: the body left the rest posture for at
least the stability time, moved at least half-way towards the far threshold, and came back
without ever settling in ECCENTRIC. That is the event behind "Go slightly lower.".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from physio_ray.guidance.phases import MovementPhase, PhaseRule

SHALLOW_MIN_PROGRESS = 0.5
"""An excursion must reach this fraction of the way from rest to the far threshold to be a
shallow attempt (smaller ones are posture adjustments, not attempts)."""


@dataclass(frozen=True)
class RepEvent:
    """Something meaningful that happened to the movement on this frame.

    Attributes:
        kind: ``rep`` (counted), ``side`` (one side of a two-sided repetition done),
            ``rep_too_soon`` (an ECCENTRIC -> CONCENTRIC cycle within ``min_rep_interval_ms`` of
            the last one: not counted), or ``shallow``.
        timestamp_ms: when the event was detected.
        duration_ms: from leaving the rest posture to settling back in it.
        extreme_deg: the driving angle furthest from rest during the attempt.
        progress: ``extreme_deg`` as a fraction of the way from rest to the far threshold
            (1.0 at ``far_deg``; above 1 for deeper).
    """

    kind: str
    timestamp_ms: float
    duration_ms: float
    extreme_deg: float
    progress: float


@dataclass
class MovementState:
    """The seed's MovementState, with durations next to the frame counts.

    Attributes:
        current_phase: phase of the latest frame (hysteresis tracker output).
        phase_frames: consecutive frames in ``current_phase``.
        phase_ms: visible time spent in ``current_phase``.
        last_phase: the phase before ``current_phase``.
        settled_phase: the last phase that held for the stability time (ECCENTRIC/CONCENTRIC).
        rep_count: repetitions counted.
        last_rep_time: timestamp (ms) of the last counted rep; ``-inf`` before the first.
        in_transition: the latest frame is between thresholds (feedback is suppressed).
        stable_state_frames: frames of stable observation (visible, same phase family).
        stable_ms: the same as a duration.
        excursions: completed rest -> far -> rest cycles (a rep is ``excursions_per_rep`` of them).
        events: every event so far (a live session keeps the last ``max_events``).
    """

    current_phase: MovementPhase = MovementPhase.IDLE
    phase_frames: int = 0
    phase_ms: float = 0.0
    last_phase: MovementPhase = MovementPhase.IDLE
    settled_phase: MovementPhase = MovementPhase.IDLE
    rep_count: int = 0
    last_rep_time: float = -math.inf
    in_transition: bool = False
    stable_state_frames: int = 0
    stable_ms: float = 0.0
    excursions: int = 0
    events: list[RepEvent] = field(default_factory=list)


class RepCounter:
    """Consumes one (time, phase, driving angle) per frame and counts repetitions.

    Args:
        rule: the exercise's phase rule (for the progress of an attempt).
        phase_stability_ms: time a phase must hold before it settles.
        min_rep_interval_ms: minimum time between two counted reps.
        max_events: keep only this many of the latest events in ``state.events`` (None: all, as
            the offline counter wants; a live session's counter runs for hours).
    """

    def __init__(
        self, rule: PhaseRule, phase_stability_ms: float, min_rep_interval_ms: float, max_events: int | None = None
    ) -> None:
        self.rule = rule
        self.max_events = max_events
        self.stability_ms = float(phase_stability_ms)
        self.min_interval_ms = float(min_rep_interval_ms)
        self.state = MovementState()
        self._armed = False  # settled ECCENTRIC since the last settled CONCENTRIC
        self._left_rest_ms: float | None = None  # when the body last left the rest posture
        self._extreme = math.nan  # driving angle furthest from rest since leaving rest
        self._need_rest = False  # after a side switch: nothing arms before the rest posture is back
        self._extreme_side = 0  # which side of rest the extreme lay (two-sided rules; 0 otherwise)
        self._open_side = 0  # side of a counted excursion still waiting for its opposite (0: none)

    def update(
        self, timestamp_ms: float, dt_ms: float, phase: MovementPhase, signal: float, side: int = 0
    ) -> RepEvent | None:
        """Advances the counter by one frame.

        Args:
            timestamp_ms: frame time.
            dt_ms: time this frame stands for (gap since the previous frame, already capped).
            phase: the tracker's phase for this frame (IDLE when not visible).
            signal: the driving angle of this frame (NaN when not visible).
            side: for a rule that leaves rest to both sides (``anchor == "centre"``), which side
                this frame is on (+1 / -1); 0 otherwise. A two-excursion repetition then needs
                one excursion to *each* side: a second one to the same side (a wobble back
                past rest) does not complete it.

        Returns:
            The event detected on this frame, if any (also appended to ``state.events``).
        """
        st = self.state
        visible = phase != MovementPhase.IDLE
        if phase == st.current_phase:
            st.phase_frames += 1
            st.phase_ms += dt_ms if visible else 0.0
        elif visible or st.current_phase == MovementPhase.IDLE:
            st.last_phase, st.current_phase = st.current_phase, phase
            st.phase_frames, st.phase_ms = 1, dt_ms if visible else 0.0
        # An IDLE frame inside a visible run neither adds time nor resets the run.
        st.in_transition = phase == MovementPhase.TRANSITION
        if visible:
            st.stable_state_frames += 1
            st.stable_ms += dt_ms
        else:
            st.stable_state_frames, st.stable_ms = 0, 0.0
        if not visible:
            return None
        flip = None
        if side and self._armed and self._extreme_side and side != self._extreme_side:
            # Straight from one side to the other without resting in between (a trunk rotation
            # swung through): the first side is done; the new side must hold the far posture anew.
            flip = self._close_attempt(timestamp_ms)
            st.settled_phase = MovementPhase.TRANSITION
            st.phase_ms = 0.0
        self._track_extreme(timestamp_ms, phase, signal, side)
        if flip is not None:
            return flip
        if st.phase_ms < self.stability_ms or phase == MovementPhase.TRANSITION:
            return None
        if phase == MovementPhase.ECCENTRIC and st.settled_phase != MovementPhase.ECCENTRIC:
            st.settled_phase = phase
            self._armed = not self._need_rest
        elif phase == MovementPhase.CONCENTRIC and (
            st.settled_phase != MovementPhase.CONCENTRIC or self._left_rest_ms is not None
        ):
            st.settled_phase = phase
            self._need_rest = False
            return self._close_attempt(timestamp_ms)
        return None

    def drop_attempt(self) -> None:
        """Forgets the repetition under way (the body turned round: its phases do not join up).

        The next repetition arms only after the rest posture has settled again.
        """
        self._armed = False
        self._need_rest = True
        self._left_rest_ms = None
        self._extreme, self._extreme_side, self._open_side = math.nan, 0, 0
        self.state.settled_phase = MovementPhase.IDLE

    def finish(self, timestamp_ms: float) -> RepEvent | None:
        """Closes a recording: a repetition whose return to rest is cut short by the end counts.

        Recorded episodes are often trimmed right at the return to the rest posture (UI-PRMD's
        segmented repetitions end within a few frames of it), so the stability time cannot
        elapse. At the end of a *recording* no later frame can make the phase flicker, so a
        bottom that settled and a last frame back in CONCENTRIC make a repetition (the minimum
        interval still applies). A rep still under way (TRANSITION, ECCENTRIC) is not counted.
        A live session calls this once, when it ends.

        Args:
            timestamp_ms: time of the last frame.

        Returns:
            The closing event, if any.
        """
        st = self.state
        if st.current_phase != MovementPhase.CONCENTRIC or not self._armed:
            return None
        st.settled_phase = MovementPhase.CONCENTRIC
        return self._close_attempt(timestamp_ms)

    def _track_extreme(self, timestamp_ms: float, phase: MovementPhase, signal: float, side: int = 0) -> None:
        if self._need_rest:  # the half repetition after a turn round is no attempt (not "shallow")
            return
        if phase == MovementPhase.CONCENTRIC and self._left_rest_ms is None:
            return
        if self._left_rest_ms is None:
            self._left_rest_ms = timestamp_ms
            self._extreme, self._extreme_side = signal, side
        elif (signal - self._extreme) * self.rule.sign < 0:
            self._extreme, self._extreme_side = signal, side

    def _completes_rep(self) -> bool:
        """Whether the excursion just counted completes a repetition."""
        if self.rule.excursions_per_rep == 2 and self._extreme_side != 0:
            if self._open_side == -self._extreme_side:  # the opposite of an open side: a pair
                self._open_side = 0
                return True
            self._open_side = self._extreme_side  # first side, or the same side again
            return False
        return self.state.excursions % self.rule.excursions_per_rep == 0

    def _close_attempt(self, timestamp_ms: float) -> RepEvent | None:
        """Back at rest for the stability time: count the rep or report a shallow attempt."""
        st = self.state
        event = None
        if self._left_rest_ms is not None and math.isfinite(self._extreme):
            duration = timestamp_ms - self._left_rest_ms
            progress = self.rule.progress(self._extreme)
            kind = ""
            if self._armed and not self.rule.countable:
                kind = ""
            elif self._armed and timestamp_ms - st.last_rep_time < self.min_interval_ms:
                kind = "rep_too_soon"
            elif self._armed:
                st.last_rep_time = timestamp_ms
                st.excursions += 1
                kind = "side"
                if self._completes_rep():
                    st.rep_count += 1
                    kind = "rep"
            elif progress >= SHALLOW_MIN_PROGRESS and duration >= 2 * self.stability_ms:
                kind = "shallow"
            if kind:
                event = RepEvent(kind, timestamp_ms, duration, self._extreme, progress)
                st.events.append(event)
                if self.max_events is not None and len(st.events) > self.max_events:
                    del st.events[: len(st.events) - self.max_events]
        self._armed = False
        self._left_rest_ms = None
        self._extreme, self._extreme_side = math.nan, 0
        return event
