"""The state of one started guidance session, as plain data with no optional parts.

A session that has been started is a :class:`LiveSession`; before :meth:`start` there is no
state at all (:class:`~physio_ray.guidance.session.GuidanceSession` holds :data:`NOT_STARTED`).
A live session is three parts with different lifetimes:

* :class:`Stream` - the camera stream: feature extractor (One-Euro filter), angle history,
  view-invariant cue extractor (with its view estimate), frame clock and visibility timers.
  Lives as long as the session.
* :class:`Selection` - everything that belongs to the selected exercise: tracker, quality
  model, belief, model timers, confirmed and pending repetitions. A reselect replaces it whole,
  so nothing of the old exercise leaks into the new one.
* :class:`Tally` - what the summary reports across selections: segments, sentences said,
  uncertainty episodes, praise counters.

The seed's state (:class:`~physio_ray.guidance.states.SessionState`) and the "was active" flag
sit on :class:`LiveSession`; COMPLETED is a live session that takes no more frames. Every
counter and timer is a plain number, so a batched engine can hold one column per field for
many sessions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from physio_ray.guidance.belief import BeliefState, ExerciseClassifier, QualityModel
from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.cues import ViewCues
from physio_ray.guidance.exercise_rules import ExerciseTracker
from physio_ray.guidance.features import AngleWindow, FeatureExtractor
from physio_ray.guidance.states import SessionState

logger = logging.getLogger(__name__)

BUFFER_MS = 12000.0
"""Angle history kept: the longest repetition we score, with margin."""
LIVE_EVENTS_KEPT = 64
"""A live session's repetition counter keeps this many of its latest events (the offline
counter keeps all); older ones only fed the snapshot, which then grew for as long as the
session ran."""
FEEDBACK_KEPT = 500
"""The summary lists the latest this many feedback sentences (at one per repetition at most:
the last 15+ minutes)."""


@dataclass
class Stream:
    """The camera stream of a session.

    Attributes:
        features: keypoints -> smoothed angles.
        window: the recent angle rows.
        cues: keypoints -> view-invariant cues and the view estimate (the rep counter's input,
            the same extractor :func:`physio_ray.guidance.offline.count_reps` runs).
        third: meaning of a third keypoint channel (see :func:`~physio_ray.guidance.features.as_xyzv`).
        frames: frames processed.
        first_ms: time of the first frame (NaN before it).
        last_ms: time of the latest frame (NaN before it).
        visible_ms: how long the exercise's joints have been visible without a break.
        lost_ms: how long they have been out of sight without a break.
    """

    features: FeatureExtractor
    window: AngleWindow
    cues: ViewCues
    third: str
    frames: int = 0
    first_ms: float = math.nan
    last_ms: float = math.nan
    visible_ms: float = 0.0
    lost_ms: float = 0.0


@dataclass
class Selection:
    """The selected exercise and everything measured for it.

    Attributes:
        exercise: canonical exercise name.
        tracker: phases and repetitions of the exercise.
        quality: its quality model.
        belief: the belief over exercises with this one as the prior.
        committed: confirmed repetitions.
        pending: repetitions seen before the exercise was confirmed (or while uncertain).
        ignore_contradiction: the user confirmed through the current contradiction episode.
        last_classifier_ms: time of the latest classifier call (``-inf``: none yet).
        last_quality_ms: time of the latest quality-model call (``-inf``: none yet).
        stable_ms: how long the observation has been stable (visible, belief on this exercise).
    """

    exercise: str
    tracker: ExerciseTracker
    quality: QualityModel
    belief: BeliefState
    committed: int = 0
    pending: int = 0
    ignore_contradiction: bool = False
    last_classifier_ms: float = -math.inf
    last_quality_ms: float = -math.inf
    stable_ms: float = 0.0


@dataclass
class Tally:
    """What the session summary reports across selections.

    Attributes:
        segments: ``(exercise, confirmed reps)`` of every closed selection, in order.
        feedback: ``(timestamp_ms, sentence)`` of the sentences said (the latest
            :data:`FEEDBACK_KEPT`: a session's memory stays flat however long it runs).
        uncertainty_episodes: times the session entered UNCERTAINTY.
        good_since_praise: good repetitions since the last praise.
        praise_count: praise sentences said.
    """

    segments: list[tuple[str, int]] = field(default_factory=list)
    feedback: list[tuple[float, str]] = field(default_factory=list)
    uncertainty_episodes: int = 0
    good_since_praise: int = 0
    praise_count: int = 0


@dataclass
class LiveSession:
    """A started session.

    Attributes:
        state: the seed's session state.
        stream: the camera stream.
        selection: the selected exercise.
        tally: counters for the summary.
        was_active: the selection has been ACTIVE (confirm() from UNCERTAINTY returns there).
    """

    state: SessionState
    stream: Stream
    selection: Selection
    tally: Tally = field(default_factory=Tally)
    was_active: bool = False


class NotStarted:
    """The (stateless) state of a session before :meth:`start`."""

    def __repr__(self) -> str:
        return "NOT_STARTED"


NOT_STARTED = NotStarted()


def new_selection(
    exercise: str,
    cfg: GuidanceConfig,
    classifier: ExerciseClassifier,
    quality_factory: Callable[[str], QualityModel],
) -> Selection:
    """A fresh :class:`Selection` of ``exercise`` (prior belief, no repetitions, timers at zero).

    The tracker counts from the view-invariant cues where the exercise has a cue rule (as
    :func:`physio_ray.guidance.offline.count_reps` does), from the joint angles otherwise.

    An exercise the classifier does not know is appended to the belief's classes (the selection
    alone then decides).
    """
    names = tuple(classifier.exercises)
    if exercise not in names:
        logger.warning("classifier does not know %r; the selection alone decides", exercise)
        names = (*names, exercise)
    return Selection(
        exercise=exercise,
        tracker=ExerciseTracker(exercise, cfg, view_invariant=True, max_events=LIVE_EVENTS_KEPT),
        quality=quality_factory(exercise),
        belief=BeliefState.for_selection(names, exercise, cfg),
    )
