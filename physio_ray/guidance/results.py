"""What a guidance session returns, per frame and at the end."""

from __future__ import annotations

from dataclasses import dataclass

from physio_ray.guidance.phases import MovementPhase
from physio_ray.guidance.states import SessionState

__all__ = ["FrameResult", "SessionSummary"]


@dataclass(frozen=True)
class FrameResult:
    """What one frame produced.

    Attributes:
        timestamp_ms: the frame's time.
        state: session state after this frame.
        phase: movement phase of this frame (IDLE when the driving joints are not visible).
        reps: confirmed repetitions of the current exercise.
        feedback: one sentence to show/say now, or None (the usual case: silence).
        guidance: the neutral line that goes with the state (None while ACTIVE).
        exercise: the selected exercise.
        event: ``confirmed``, ``uncertain``, ``rep``, ``shallow``, ``rep_too_soon`` or None.
        suggestion: while UNCERTAINTY, the exercise the movement looks most like.
        view: where the camera stands after this frame: ``front``, ``profile``, ``back`` or
            ``unknown`` (too few points visible to tell: the frame is not counted).
    """

    timestamp_ms: float
    state: SessionState
    phase: MovementPhase
    reps: int
    feedback: str | None
    guidance: str | None
    exercise: str
    event: str | None = None
    suggestion: str | None = None
    view: str = "unknown"


@dataclass(frozen=True)
class SessionSummary:
    """What :meth:`GuidanceSession.end` returns.

    Attributes:
        exercise: the exercise selected last.
        reps: confirmed repetitions of ``exercise``.
        segments: ``(exercise, reps)`` for every exercise selected in the session, in order.
        unconfirmed_reps: repetitions seen but never confirmed (pending at the end).
        duration_ms: from the first to the last frame.
        frames: frames processed.
        feedback: ``(timestamp_ms, sentence)`` of every sentence said.
        uncertainty_episodes: times the session entered UNCERTAINTY.
        quality: final quality belief (NaN when never scored).
    """

    exercise: str
    reps: int
    segments: tuple[tuple[str, int], ...]
    unconfirmed_reps: int
    duration_ms: float
    frames: int
    feedback: tuple[tuple[float, str], ...]
    uncertainty_episodes: int
    quality: float
