"""Exercise guidance (seed 003): the session engine, repetition counting and its models.

Public API (pure Python, no Ray; torch is imported only when trained models are loaded):

* :class:`GuidanceSession` - one user's session: ``start(exercise)``, ``frame(t_ms, keypoints)``,
  ``frames(ts, kps)``, ``confirm()``, ``reselect(exercise)``, ``end()``, ``status()``.
* :func:`count_reps` - repetitions in a recorded keypoint sequence ``[frames, 33|17, 2|3]``.
* :class:`GuidanceConfig` - every threshold of the seed, as durations.
* :func:`known_exercises` - exercises the engine has rules for.
* :func:`physio_ray.guidance.models.load_guidance_models` - the shipped LSTMs (torch).
"""

from __future__ import annotations

from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.exercise_rules import known as known_exercises
from physio_ray.guidance.offline import NotCountableError, count_reps, count_reps_angles
from physio_ray.guidance.phases import MovementPhase
from physio_ray.guidance.session import FrameResult, GuidanceSession, SessionSummary
from physio_ray.guidance.states import ConflictError, GuidanceError, SessionState, UnknownExerciseError

__all__ = [
    "ConflictError",
    "FrameResult",
    "GuidanceConfig",
    "GuidanceError",
    "GuidanceSession",
    "MovementPhase",
    "NotCountableError",
    "SessionState",
    "SessionSummary",
    "UnknownExerciseError",
    "count_reps",
    "count_reps_angles",
    "known_exercises",
]
