"""The per-frame step of the guidance state machine, as functions over a :class:`LiveSession`.

:func:`advance` takes one frame whose angles and view-invariant cues are known (input already
validated) through the seed's pipeline: angle history -> phases and repetitions (from the cues,
by the same :class:`~physio_ray.guidance.exercise_rules.ExerciseTracker` as
:func:`physio_ray.guidance.offline.count_reps`) -> belief (classifier, quality) -> state
transition -> feedback gate -> :class:`~physio_ray.guidance.results.FrameResult`.
:func:`advance` is :func:`begin` (movement), the models, :func:`complete` (belief, state,
feedback); :mod:`physio_ray.guidance.batch_engine` runs the same halves for many sessions with
one model call per tick. :func:`goto` is the only place the state changes; :func:`lock`
confirms the exercise.
The transitions themselves are documented in :mod:`physio_ray.guidance.session`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

import physio_ray.guidance.feedback_library as lib
from physio_ray.guidance.belief import ExerciseClassifier
from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.feedback import GateInputs, blocking_reasons, choose_cue
from physio_ray.guidance.phases import MovementPhase
from physio_ray.guidance.reps import RepEvent
from physio_ray.guidance.results import FrameResult
from physio_ray.guidance.session_state import FEEDBACK_KEPT, LiveSession
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


@dataclass(frozen=True)
class Begun:
    """A frame after its movement step (:func:`begin`), waiting for its model outputs.

    Attributes:
        t: frame time (ms).
        dt: time since the previous frame, capped at ``max_frame_gap_ms``.
        phase: the movement phase after this frame.
        move_event: the repetition event this frame closed, if any.
        usable: the exercise's joints were visible.
        view: the frame's view label.
        classifier_window: the window the classifier reads now, or None when it is not due.
        quality_window: the window the quality model reads now, or None when it is not due.
    """

    t: float
    dt: float
    phase: MovementPhase
    move_event: RepEvent | None
    usable: bool
    view: str
    classifier_window: np.ndarray | None
    quality_window: np.ndarray | None


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
    """The state machine step for one frame: :func:`begin`, the models, :func:`complete`.

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
    begun = begin(live, t, angles, cues, switched, view, classifier, cfg)
    proba = None if begun.classifier_window is None else classifier.predict_proba(begun.classifier_window)
    quality = None if begun.quality_window is None else live.selection.quality.score(begun.quality_window)
    return complete(live, begun, proba, quality, cfg)


def begin(
    live: LiveSession,
    t: float,
    angles: np.ndarray,
    cues: np.ndarray,
    switched: bool,
    view: str,
    classifier: ExerciseClassifier,
    cfg: GuidanceConfig,
) -> Begun:
    """The first half of a frame's step: stream bookkeeping, the repetition tracker, and which
    model windows are due (the batched engine runs the models of many sessions in one call)."""
    stream, sel = live.stream, live.selection
    dt = 0.0 if not stream.frames else min(t - stream.last_ms, cfg.max_frame_gap_ms)
    if not stream.frames:
        stream.first_ms = t
    stream.frames += 1
    stream.last_ms = t

    stream.window.append(t, angles)
    phase, move_event, usable = sel.tracker.update(t, dt, angles, cues, switched)
    stream.visible_ms = stream.visible_ms + dt if usable else 0.0
    stream.lost_ms = 0.0 if usable else stream.lost_ms + dt
    clf_due = usable and t - sel.last_classifier_ms >= cfg.classifier_interval_ms
    quality_due = usable and t - sel.last_quality_ms >= cfg.quality_interval_ms
    return Begun(
        t,
        dt,
        phase,
        move_event,
        usable,
        view,
        model_window(live, classifier, cfg.window_ms) if clf_due else None,
        model_window(live, sel.quality, cfg.window_ms) if quality_due else None,
    )


def complete(
    live: LiveSession,
    begun: Begun,
    proba: np.ndarray | None,
    quality: tuple[float, float] | None,
    cfg: GuidanceConfig,
) -> FrameResult:
    """The second half of a frame's step: belief, state transition, feedback, the result.

    Args:
        live: the session (changed in place).
        begun: what :func:`begin` returned for this frame.
        proba: the classifier's output on ``begun.classifier_window`` (None when not due).
        quality: the quality model's ``(score, confidence)`` on ``begun.quality_window``.
        cfg: thresholds and durations.
    """
    sel, tally = live.selection, live.tally
    t, phase, move_event = begun.t, begun.phase, begun.move_event
    _update_belief(live, begun, proba, quality, cfg)

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
        if len(tally.feedback) > FEEDBACK_KEPT:
            del tally.feedback[0]
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
        view=begun.view,
    )


def model_window(live: LiveSession, model: object, span_ms: float) -> np.ndarray:
    """The angle window a model reads: its own fixed-rate grid when it declares one
    (``sample_hz`` and ``window_s``, the LSTMs), else the raw rows of ``span_ms``."""
    hz = getattr(model, "sample_hz", None)
    if hz:
        return live.stream.window.resampled(float(model.window_s), float(hz))  # type: ignore[attr-defined]
    return live.stream.window.last(span_ms)


def _update_belief(
    live: LiveSession,
    begun: Begun,
    proba: np.ndarray | None,
    quality: tuple[float, float] | None,
    cfg: GuidanceConfig,
) -> None:
    sel = live.selection
    belief = sel.belief
    t, dt, usable = begun.t, begun.dt, begun.usable
    if proba is not None:
        sel.last_classifier_ms = t
        proba = np.asarray(proba, dtype=np.float64)
        if len(proba) < len(belief.exercises):  # the selection was appended for an unknown class
            proba = np.append(proba, 0.0)
            proba[-1] = proba.max() if proba.size > 1 else 1.0
            proba /= proba.sum()
        belief.observe_classifier(proba, cfg)
    if quality is not None:
        sel.last_quality_ms = t
        belief.observe_quality(*quality, cfg)
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
