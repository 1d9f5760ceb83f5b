"""One guidance session: the seed 003 state machine over a stream of keypoint frames.

Pure Python, no Ray, no HTTP: the Serve app keeps one :class:`GuidanceSession` per session id
and maps its errors to HTTP codes (``ConflictError`` -> 409, ``ValueError`` -> 422).

States and transitions (pinned in :data:`physio_ray.guidance.states.TRANSITIONS`):

* POSITIONING -> VERIFYING once the exercise's joints are visible for ``positioning_ms``.
* VERIFYING -> READY (exercise locked) once the belief in the selected exercise exceeds 0.90 for
  ``confirmation_ms``, or on :meth:`GuidanceSession.confirm`; -> POSITIONING when the body is lost
  for ``positioning_ms``; -> UNCERTAINTY on contradiction.
* READY -> ACTIVE when the movement starts (the body leaves the rest posture).
* READY/ACTIVE/VERIFYING -> UNCERTAINTY when the belief in *other* exercises exceeds 0.85 for
  ``contradiction_ms``: feedback pauses and the user is asked "It looks like a different
  movement. Please confirm the exercise." The exercise is never switched silently.
* UNCERTAINTY -> READY/ACTIVE on :meth:`~GuidanceSession.confirm` (same exercise; that
  contradiction episode is then ignored until the evidence first drops below the threshold);
  -> VERIFYING on :meth:`~GuidanceSession.reselect`.
* any -> COMPLETED on :meth:`~GuidanceSession.end`.

Repetitions are tracked in every state; those completed before the exercise is locked (or while
uncertain) are held as *pending* and added when the exercise is confirmed, dropped on reselect.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from physio_ray.guidance.belief import BeliefState, ExerciseClassifier, QualityModel
from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.cue_geometry import geometry_rows
from physio_ray.guidance.cues import N_CUES, ViewCues
from physio_ray.guidance.exercise_rules import default_classifier, default_quality_model, known
from physio_ray.guidance.features import THIRD_CHANNEL, AngleWindow, FeatureExtractor, as_xyzv
from physio_ray.guidance.results import FrameResult, SessionSummary
from physio_ray.guidance.session_state import (
    BUFFER_MS,
    NOT_STARTED,
    LiveSession,
    NotStarted,
    Stream,
    new_selection,
)
from physio_ray.guidance.session_step import GUIDANCE, advance, close_segment, finish, goto, lock
from physio_ray.guidance.states import ConflictError, SessionState, UnknownExerciseError
from physio_ray.video.layout import to_coco17

__all__ = ["FrameResult", "GuidanceSession", "SessionSummary"]

S = SessionState
_TAKING_FRAMES = (S.POSITIONING, S.VERIFYING, S.READY, S.ACTIVE, S.UNCERTAINTY)


class GuidanceSession:
    """The guidance state machine for one user and one camera stream.

    The session is :data:`~physio_ray.guidance.session_state.NOT_STARTED` until :meth:`start`,
    then a :class:`~physio_ray.guidance.session_state.LiveSession` (whose state is COMPLETED
    after :meth:`end`); the per-frame step is :func:`physio_ray.guidance.session_step.advance`.

    Args:
        config: thresholds and durations (default: the seed's values).
        classifier: exercise classifier (default: the rule classifier over every known exercise).
        quality_factory: ``exercise -> QualityModel`` (default: the rule quality model).
    """

    def __init__(
        self,
        config: GuidanceConfig | None = None,
        classifier: ExerciseClassifier | None = None,
        quality_factory: Callable[[str], QualityModel] | None = None,
    ) -> None:
        self.config = config or GuidanceConfig()
        self.classifier = classifier if classifier is not None else default_classifier()
        self.quality_factory = quality_factory or default_quality_model
        self._live: LiveSession | NotStarted = NOT_STARTED

    @classmethod
    def from_models(cls, models: object, config: GuidanceConfig | None = None) -> GuidanceSession:
        """A session that uses trained LSTMs (load them once per process and share them).

        Args:
            models: a :class:`physio_ray.guidance.models.GuidanceModels` from
                :func:`~physio_ray.guidance.models.load_guidance_models`.
            config: thresholds (default: the seed's).

        Returns:
            A new, not yet started session.
        """
        return cls(config, classifier=models.classifier, quality_factory=models.quality_factory)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ read-only views
    @property
    def state(self) -> SessionState | None:
        """The seed's state (None before :meth:`start`)."""
        return None if isinstance(self._live, NotStarted) else self._live.state

    @property
    def exercise(self) -> str | None:
        """The selected exercise (None before :meth:`start`)."""
        return None if isinstance(self._live, NotStarted) else self._live.selection.exercise

    @property
    def belief(self) -> BeliefState | None:
        """The belief over exercises (None before :meth:`start`)."""
        return None if isinstance(self._live, NotStarted) else self._live.selection.belief

    @property
    def reps(self) -> int:
        """Confirmed repetitions of the current exercise."""
        return 0 if isinstance(self._live, NotStarted) else self._live.selection.committed

    # ------------------------------------------------------------------ actions
    def start(
        self, exercise: str, *, image_size: tuple[float, float] | None = None, third_channel: str = "auto"
    ) -> SessionState:
        """Starts the session with the user's selected exercise (the prior).

        Args:
            exercise: canonical exercise name.
            image_size: ``(width, height)`` of the camera picture; normalised x is scaled by the
                aspect ratio before angles are measured (``None``: a square picture). For
                pixel coordinates pass ``None`` (x and y are already in the same units).
            third_channel: meaning of a third keypoint channel: ``auto`` (score for 17 COCO
                points, z for 33 BlazePose landmarks), ``score`` or ``z`` (see
                :func:`physio_ray.guidance.features.as_xyzv`).

        Returns:
            The new state (POSITIONING).

        Raises:
            ConflictError: when the session was already started.
            UnknownExerciseError: for an exercise without a rule.
        """
        if isinstance(self._live, LiveSession):
            raise ConflictError("start", self._live.state, "a session is started once; end it and create a new one")
        _check_exercise(exercise)
        if third_channel not in THIRD_CHANNEL:
            raise ValueError(f"third_channel={third_channel!r} must be one of {THIRD_CHANNEL}")
        features = FeatureExtractor(self.config, image_size)
        cues = ViewCues(features.aspect, self.config.min_visibility)
        stream = Stream(features, AngleWindow(BUFFER_MS), cues, third_channel)
        selection = new_selection(exercise, self.config, self.classifier, self.quality_factory)
        self._live = LiveSession(S.POSITIONING, stream, selection)
        return self._live.state

    def frame(self, timestamp_ms: float, keypoints: np.ndarray) -> FrameResult:
        """Processes one frame of keypoints (the ``/frame`` endpoint; :meth:`step` is an alias).

        Args:
            timestamp_ms: frame time in milliseconds, strictly increasing within a session.
            keypoints: ``[17|33, 2..4]`` normalised image coordinates (see
                :func:`physio_ray.guidance.features.as_xyzv` for the channel meaning).

        Returns:
            The frame's :class:`FrameResult`.

        Raises:
            ConflictError: before :meth:`start` or after :meth:`end`.
            ValueError: non-increasing or non-finite timestamp, wrong point or channel count,
                NaN/inf values. The session is unchanged when this is raised.
        """
        live, t, xyzv = self.accept_frame(timestamp_ms, keypoints)
        angles, cues, switched, views = _measure(live.stream, np.array([t]), xyzv)
        return advance(live, t, angles[0], cues[0], bool(switched[0]), views[0], self.config, self.classifier)

    def accept_frame(self, timestamp_ms: float, keypoints: np.ndarray) -> tuple[LiveSession, float, np.ndarray]:
        """Checks one frame without changing anything (what :meth:`frame` and the batched engine
        :func:`physio_ray.guidance.batch_engine.step_frames` step).

        Returns:
            ``(live session, time in ms, xyzv [1, points, 4])``.

        Raises:
            ConflictError: before :meth:`start` or after :meth:`end`.
            ValueError: a non-increasing or non-finite time, a bad layout, NaN/inf values.
        """
        live = self._require("process a frame", *_TAKING_FRAMES)
        t = float(timestamp_ms)
        stream = live.stream
        if not math.isfinite(t):
            raise ValueError(f"timestamp_ms={timestamp_ms!r} must be a finite number of milliseconds")
        if stream.frames and t <= stream.last_ms:
            raise ValueError(
                f"timestamp_ms={t} is not after the previous frame ({stream.last_ms}); frames must arrive in order"
            )
        xyzv = as_xyzv(keypoints, third=stream.third)
        if xyzv.shape[0] != 1:
            raise ValueError(f"frame() takes one frame [points, channels], got {xyzv.shape[0]} frames; use frames()")
        return live, t, xyzv

    step = frame

    def frames(self, timestamps_ms: np.ndarray, keypoints: np.ndarray) -> list[FrameResult]:
        """Processes a batch of frames in order (what a client sends every N camera frames).

        The batch is validated as a whole first (shape, finite values, strictly increasing
        times after the last frame seen), so a bad batch leaves the session unchanged.

        Args:
            timestamps_ms: ``[N]`` frame times in milliseconds.
            keypoints: ``[N, 17|33, 2..4]``.

        Returns:
            One :class:`FrameResult` per frame.

        Raises:
            ConflictError: before :meth:`start` or after :meth:`end`.
            ValueError: bad shapes, NaN/inf, or times not strictly increasing.
        """
        live = self._require("process frames", *_TAKING_FRAMES)
        stream = live.stream
        ts = np.asarray(timestamps_ms, dtype=np.float64).reshape(-1)
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[0] != ts.shape[0]:
            raise ValueError(f"expected {ts.shape[0]} frames of keypoints [N, points, channels], got shape {kp.shape}")
        xyzv = as_xyzv(kp, third=stream.third)
        if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
            raise ValueError("timestamps_ms must be finite and strictly increasing within a batch")
        if ts.size and stream.frames and ts[0] <= stream.last_ms:
            raise ValueError(
                f"timestamp_ms={ts[0]} is not after the previous frame ({stream.last_ms}); frames must arrive in order"
            )
        if not ts.size:
            return []
        angles, cues, switched, views = _measure(stream, ts, xyzv)
        cfg, clf = self.config, self.classifier
        return [
            advance(live, float(t), angles[i], cues[i], bool(switched[i]), views[i], cfg, clf) for i, t in enumerate(ts)
        ]

    def confirm(self) -> SessionState:
        """The user confirms the selected exercise (manual confirmation).

        From VERIFYING the exercise is locked (READY); from UNCERTAINTY the session returns to
        where it was (READY or ACTIVE) and ignores the current contradiction until the evidence
        has first dropped below the threshold. Pending repetitions are added.

        Returns:
            The new state.

        Raises:
            ConflictError: in any other state.
        """
        live = self._require("confirm", S.VERIFYING, S.UNCERTAINTY)
        if live.state == S.UNCERTAINTY:
            live.selection.ignore_contradiction = True
            goto(live, S.ACTIVE if live.was_active else S.READY)
        else:
            goto(live, S.READY)
        lock(live)
        return live.state

    def reselect(self, exercise: str) -> SessionState:
        """The user picks another exercise after an UNCERTAINTY prompt.

        The new exercise becomes the prior and is verified again (VERIFYING); pending
        repetitions of the old one are dropped, confirmed ones stay in the summary.

        Returns:
            The new state (VERIFYING).

        Raises:
            ConflictError: when the session is not in UNCERTAINTY.
            UnknownExerciseError: for an exercise without a rule.
        """
        live = self._require("reselect", S.UNCERTAINTY)
        _check_exercise(exercise)
        close_segment(live)
        live.selection = new_selection(exercise, self.config, self.classifier, self.quality_factory)
        live.was_active = False
        goto(live, S.VERIFYING)
        return live.state

    def end(self) -> SessionSummary:
        """Ends the session and returns its summary.

        A repetition whose return to rest the end cut short (bottom settled, back in the rest
        posture, not yet for the stability time) is counted, as
        :func:`physio_ray.guidance.offline.count_reps` counts it at the end of a recording.

        Raises:
            ConflictError: before :meth:`start` or when already ended.
        """
        live = self._require("end", *_TAKING_FRAMES)
        finish(live)  # a repetition the end cut short counts, as in count_reps
        pending = live.selection.pending
        close_segment(live)
        goto(live, S.COMPLETED)
        stream, tally = live.stream, live.tally
        return SessionSummary(
            exercise=live.selection.exercise,
            reps=tally.segments[-1][1],
            segments=tuple(tally.segments),
            unconfirmed_reps=pending,
            duration_ms=0.0 if not stream.frames else stream.last_ms - stream.first_ms,
            frames=stream.frames,
            feedback=tuple(tally.feedback),
            uncertainty_episodes=tally.uncertainty_episodes,
            quality=live.selection.belief.quality_belief,
        )

    def status(self) -> dict[str, object]:
        """A JSON-friendly snapshot (no probabilities or scores: those are not for the user).

        Returns:
            ``state``, ``exercise``, ``reps``, ``phase``, ``frames``, ``guidance`` (the neutral
            line of the state), ``last_feedback`` (the latest sentence said, or None),
            ``suggestion`` (while UNCERTAINTY: the exercise the movement looks like),
            ``last_timestamp_ms`` and ``view`` (where the camera stands: ``front``, ``profile``,
            ``back``, or ``unknown`` while too few points are visible to tell; nothing is counted
            then, see :attr:`physio_ray.guidance.cues.ViewCues.view_label`).
        """
        live = self._live
        if isinstance(live, NotStarted):
            return {
                "state": None,
                "exercise": None,
                "reps": 0,
                "phase": None,
                "frames": 0,
                "guidance": None,
                "last_feedback": None,
                "suggestion": None,
                "last_timestamp_ms": None,
                "view": "unknown",
            }
        sel, stream = live.selection, live.stream
        return {
            "state": live.state.value,
            "exercise": sel.exercise,
            "reps": sel.committed,
            "phase": sel.tracker.phase.value,
            "frames": stream.frames,
            "guidance": GUIDANCE[live.state],
            "last_feedback": live.tally.feedback[-1][1] if live.tally.feedback else None,
            "suggestion": sel.belief.top_alternative if live.state == S.UNCERTAINTY else None,
            "last_timestamp_ms": stream.last_ms if stream.frames else None,
            "view": stream.cues.view_label,
        }

    # ------------------------------------------------------------------ internals
    def _require(self, action: str, *allowed: SessionState) -> LiveSession:
        """The live session when its state allows ``action``.

        Raises:
            ConflictError: before :meth:`start`, or in a state not in ``allowed``.
        """
        live = self._live
        if isinstance(live, NotStarted):
            raise ConflictError(action, S.POSITIONING, "the session has not been started; call start(exercise)")
        if live.state not in allowed:
            hint = {
                S.COMPLETED: "the session has ended",
                S.UNCERTAINTY: "confirm() the exercise or reselect() another one first",
            }.get(live.state, f"allowed only in {[s.value for s in allowed]}")
            raise ConflictError(action, live.state, hint)
        return live


def _measure(stream: Stream, ts: np.ndarray, xyzv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Validated frames -> smoothed joint angles (belief, feedback) and view-invariant cues (reps).

    The cues are measured on the raw keypoints with the stream's :class:`ViewCues`, the same
    extractor :func:`physio_ray.guidance.offline.count_reps` runs over a recording, so a live
    session and the offline counter count the same frames the same way.

    Returns:
        ``(angles [N, 16], cues [N, N_CUES], switched [N] bool, views)``: ``views`` is each
        frame's :attr:`~physio_ray.guidance.cues.ViewCues.view_label`.
    """
    coco = np.array(to_coco17(xyzv), dtype=np.float64)  # [N, 17, 4]; a copy, the angle path edits its own
    cues = np.empty((len(ts), N_CUES))
    switched = np.zeros(len(ts), dtype=bool)
    views = []
    n = len(ts)  # a few frames in plain Python, a batch in one numpy call (the same numbers)
    geometry = geometry_rows(coco, np.full(n, stream.cues.aspect), np.full(n, stream.cues.min_visibility))
    for i, t in enumerate(ts):
        cues[i], switched[i] = stream.cues.advance(float(t), geometry[i])
        views.append(stream.cues.view_label)
    return stream.features.push_many(ts, xyzv, coco), cues, switched, views


def _check_exercise(exercise: str) -> None:
    if exercise not in known():
        raise UnknownExerciseError(exercise, known())
