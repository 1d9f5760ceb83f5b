"""The per-frame step of the guidance state machine, as functions over a :class:`LiveSession`.

:func:`advance` takes one frame whose angles and view-invariant cues are known (input already
validated) through the seed's pipeline: angle history -> phases and repetitions (from the cues,
by the same :class:`~physio_ray.guidance.exercise_rules.ExerciseTracker` as
:func:`physio_ray.guidance.offline.count_reps`) -> belief (classifier, quality) -> state
transition -> feedback gate -> :class:`~physio_ray.guidance.results.FrameResult`.
:func:`goto` is the only place the state changes; :func:`lock` confirms the exercise.
The transitions themselves are documented in :mod:`physio_ray.guidance.session`.
"""

from __future__ import annotations

import logging
import math

import numpy as np

import physio_ray.guidance.feedback_library as lib
from physio_ray.guidance.belief import ExerciseClassifier
from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.feedback import GateInputs, blocking_reasons, choose_cue
from physio_ray.guidance.phases import MovementPhase
from physio_ray.guidance.reps import RepEvent
from physio_ray.guidance.results import FrameResult
from physio_ray.guidance.session_state import LiveSession
from physio_ray.guidance.states import TRANSITIONS, SessionState

logger = logging.getLogger(__name__)

S = SessionState
GUIDANCE: dict[SessionState, str | None] = {
    S.POSITIONING: lib.neutral("positioning"),
    S.VERIFYING: lib.neutral("verifying"),
    S.READY: lib.neutral("ready"),
    S.ACTIVE: None,
    S.UNCERTAINTY: lib.neutral("reconfirm"),
    S.COMPLETED: lib.neutral("completed"),
}
"""The neutral line that goes with each state."""


def goto(live: LiveSession, new: SessionState) -> None:
    """Moves ``live`` to state ``new`` (a transition not in ``TRANSITIONS`` is a bug)."""
    old = live.state
    assert new in TRANSITIONS[old], f"illegal transition {old} -> {new}"
    live.state = new
    if new == S.ACTIVE:
        live.was_active = True
    if new == S.UNCERTAINTY:
        live.tally.uncertainty_episodes += 1
    logger.debug("guidance state %s -> %s", old.value, new.value)


def lock(live: LiveSession) -> None:
    """Locks the selected exercise and adds its pending repetitions."""
    sel = live.selection
    sel.belief.confirmed, sel.belief.locked_exercise = True, sel.exercise
    sel.committed += sel.pending
    sel.pending = 0


def finish(live: LiveSession) -> str | None:
    """Closes the stream at :meth:`~physio_ray.guidance.session.GuidanceSession.end`, as
    :func:`physio_ray.guidance.offline.count_reps` closes a recording: a repetition whose return
    to rest the end cut short counts (no later frame can make its phase flicker).

    Returns:
        The closing event's kind, if any (a ``rep`` is confirmed or pending as during the stream).
    """
    if not live.stream.frames:
        return None
    sel = live.selection
    event = sel.tracker.finish(live.stream.last_ms)
    if event is None:
        return None
    if live.state in (S.READY, S.ACTIVE):
        sel.committed += int(event.kind == "rep")
    else:
        sel.pending += int(event.kind == "rep")
    return event.kind


def close_segment(live: LiveSession) -> None:
    """Records the selection's confirmed repetitions as a summary segment."""
    live.tally.segments.append((live.selection.exercise, live.selection.committed))


def advance(
    live: LiveSession,
    t: float,
    angles: np.ndarray,
    cues: np.ndarray,
    switched: bool,
    view: str,
    cfg: GuidanceConfig,
    classifier: ExerciseClassifier,
) -> FrameResult:
    """The state machine step for one frame.

    Args:
        live: the session (changed in place).
        t: frame time in ms, after the previous frame's.
        angles: ``[16]`` joint angles of the frame (belief, quality, feedback; the phases of an
            exercise without a cue rule).
        cues: ``[N_CUES]`` view-invariant cues of the frame (all NaN while the view is unknown:
            nothing is counted from a guess).
        switched: the body turned round on this frame (the repetition under way is dropped).
        view: the frame's view label (``front``, ``profile``, ``back`` or ``unknown``).
        cfg: thresholds and durations.
        classifier: the exercise classifier.

    Returns:
        The frame's result.
    """
    stream, sel, tally = live.stream, live.selection, live.tally
    dt = 0.0 if not stream.frames else min(t - stream.last_ms, cfg.max_frame_gap_ms)
    if not stream.frames:
        stream.first_ms = t
    stream.frames += 1
    stream.last_ms = t

    stream.window.append(t, angles)
    phase, move_event, usable = sel.tracker.update(t, dt, angles, cues, switched)
    stream.visible_ms = stream.visible_ms + dt if usable else 0.0
    stream.lost_ms = 0.0 if usable else stream.lost_ms + dt
    _update_belief(live, t, dt, usable, cfg, classifier)

    event = _transition(live, phase, cfg)
    if move_event is not None:
        if live.state in (S.READY, S.ACTIVE):
            sel.committed += int(move_event.kind == "rep")
        else:
            sel.pending += int(move_event.kind == "rep")
        event = event or move_event.kind
    feedback = lib.neutral("reconfirm") if event == "uncertain" else None
    if feedback is None and move_event is not None and live.state == S.ACTIVE:
        feedback = _feedback(live, t, move_event, phase, cfg)
    if feedback is not None:
        sel.belief.last_feedback_time = t
        tally.feedback.append((t, feedback))
    return FrameResult(
        timestamp_ms=t,
        state=live.state,
        phase=phase,
        reps=sel.committed,
        feedback=feedback,
        guidance=GUIDANCE[live.state],
        exercise=sel.exercise,
        event=event,
        suggestion=sel.belief.top_alternative if live.state == S.UNCERTAINTY else None,
        view=view,
    )


def model_window(live: LiveSession, model: object, span_ms: float) -> np.ndarray:
    """The angle window a model reads: its own fixed-rate grid when it declares one
    (``sample_hz`` and ``window_s``, the LSTMs), else the raw rows of ``span_ms``."""
    hz = getattr(model, "sample_hz", None)
    if hz:
        return live.stream.window.resampled(float(model.window_s), float(hz))  # type: ignore[attr-defined]
    return live.stream.window.last(span_ms)


def _update_belief(
    live: LiveSession, t: float, dt: float, usable: bool, cfg: GuidanceConfig, classifier: ExerciseClassifier
) -> None:
    sel = live.selection
    belief = sel.belief
    if usable and t - sel.last_classifier_ms >= cfg.classifier_interval_ms:
        sel.last_classifier_ms = t
        proba = np.asarray(classifier.predict_proba(model_window(live, classifier, cfg.window_ms)), dtype=np.float64)
        if len(proba) < len(belief.exercises):  # the selection was appended for an unknown class
            proba = np.append(proba, 0.0)
            proba[-1] = proba.max() if proba.size > 1 else 1.0
            proba /= proba.sum()
        belief.observe_classifier(proba, cfg)
    if usable and t - sel.last_quality_ms >= cfg.quality_interval_ms:
        sel.last_quality_ms = t
        belief.observe_quality(*sel.quality.score(model_window(live, sel.quality, cfg.window_ms)), cfg)
    belief.advance(dt, usable, cfg)
    if sel.ignore_contradiction and belief.contradiction <= cfg.contradiction_threshold:
        sel.ignore_contradiction = False
    same = belief.top == sel.exercise
    sel.stable_ms = sel.stable_ms + dt if usable and same else 0.0


def _transition(live: LiveSession, phase: MovementPhase, cfg: GuidanceConfig) -> str | None:
    """The state change this frame causes; returns ``confirmed``, ``uncertain`` or None."""
    state, sel, stream = live.state, live.selection, live.stream
    contradicted = sel.belief.contradiction_ms >= cfg.contradiction_ms and not sel.ignore_contradiction
    if state == S.POSITIONING:
        if stream.visible_ms >= cfg.positioning_ms:
            goto(live, S.VERIFYING)
        return None
    if state in (S.VERIFYING, S.READY, S.ACTIVE) and contradicted:
        goto(live, S.UNCERTAINTY)
        return "uncertain"
    if state == S.VERIFYING:
        if stream.lost_ms >= cfg.positioning_ms:
            goto(live, S.POSITIONING)
        elif sel.belief.confirmation_ms >= cfg.confirmation_ms:
            goto(live, S.READY)
            lock(live)
            return "confirmed"
    elif state == S.READY and phase in (MovementPhase.TRANSITION, MovementPhase.ECCENTRIC):
        goto(live, S.ACTIVE)
    return None


def _feedback(live: LiveSession, t: float, event: RepEvent, phase: MovementPhase, cfg: GuidanceConfig) -> str | None:
    """The sentence to say about a movement event, or None (gated, or nothing to say)."""
    sel, tally = live.selection, live.tally
    span = event.duration_ms + 2 * cfg.phase_stability_ms + 500.0
    quality, confidence = sel.quality.score(model_window(live, sel.quality, span))
    good = event.kind == "rep" and math.isfinite(quality) and quality >= cfg.good_quality
    tally.good_since_praise += int(good)
    gate = GateInputs(
        state=live.state,
        in_transition=phase == MovementPhase.TRANSITION,
        entropy=sel.belief.entropy,
        since_feedback_ms=t - sel.belief.last_feedback_time,
        quality_confidence=confidence,
        stable_ms=sel.stable_ms,
    )
    reasons = blocking_reasons(gate, cfg)
    if reasons:
        logger.debug("feedback blocked at %.0f ms: %s", t, ", ".join(reasons))
        return None
    cue = choose_cue(event, sel.tracker.rule, quality, tally.good_since_praise, tally.praise_count, cfg)
    if cue is None:
        return None
    if cue.kind == "positive":
        tally.praise_count += 1
        tally.good_since_praise = 0
    return cue.text
