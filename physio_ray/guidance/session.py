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

import logging
import math
from collections.abc import Callable

import numpy as np

import physio_ray.guidance.feedback_library as lib
from physio_ray.guidance.belief import BeliefState, ExerciseClassifier, QualityModel
from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.exercise_rules import ExerciseTracker, default_classifier, default_quality_model, known
from physio_ray.guidance.features import THIRD_CHANNEL, AngleWindow, FeatureExtractor, as_xyzv
from physio_ray.guidance.feedback import GateInputs, blocking_reasons, choose_cue
from physio_ray.guidance.phases import MovementPhase
from physio_ray.guidance.results import FrameResult, SessionSummary, _Clock, _Tally
from physio_ray.guidance.states import TRANSITIONS, ConflictError, SessionState, UnknownExerciseError

logger = logging.getLogger(__name__)

S = SessionState
_BUFFER_MS = 12000.0  # angle history kept: the longest repetition we score, with margin
_GUIDANCE = {
    S.POSITIONING: lib.neutral("positioning"),
    S.VERIFYING: lib.neutral("verifying"),
    S.READY: lib.neutral("ready"),
    S.ACTIVE: None,
    S.UNCERTAINTY: lib.neutral("reconfirm"),
    S.COMPLETED: lib.neutral("completed"),
}


class GuidanceSession:
    """The guidance state machine for one user and one camera stream.

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
        self.state: SessionState | None = None
        self.exercise: str | None = None
        self.belief: BeliefState | None = None
        self._was_active = False
        self._ignore_contradiction = False
        self._third = "auto"
        self._clock = _Clock()
        self._tally = _Tally()

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
        if self.state is not None:
            raise ConflictError("start", self.state, "a session is started once; end it and create a new one")
        self._check_exercise(exercise)
        if third_channel not in THIRD_CHANNEL:
            raise ValueError(f"third_channel={third_channel!r} must be one of {THIRD_CHANNEL}")
        self._third = third_channel
        self._features = FeatureExtractor(self.config, image_size)
        self._window = AngleWindow(_BUFFER_MS)
        self._select(exercise)
        self.state = S.POSITIONING
        return self.state

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
        state = self._require("process a frame", S.POSITIONING, S.VERIFYING, S.READY, S.ACTIVE, S.UNCERTAINTY)
        t = float(timestamp_ms)
        clock = self._clock
        if not math.isfinite(t):
            raise ValueError(f"timestamp_ms={timestamp_ms!r} must be a finite number of milliseconds")
        if clock.frames and t <= clock.last_ms:
            raise ValueError(
                f"timestamp_ms={t} is not after the previous frame ({clock.last_ms}); frames must arrive in order"
            )
        xyzv = as_xyzv(keypoints, third=self._third)  # raises before anything changes
        if xyzv.shape[0] != 1:
            raise ValueError(f"frame() takes one frame [points, channels], got {xyzv.shape[0]} frames; use frames()")
        angles = self._features.push_many(np.array([t]), xyzv)[0]
        return self._advance(state, t, angles)

    def _advance(self, state: SessionState, t: float, angles: np.ndarray) -> FrameResult:
        """The state machine step for one frame whose angles are known (input already valid)."""
        clock, cfg = self._clock, self.config
        dt = 0.0 if not clock.frames else min(t - clock.last_ms, cfg.max_frame_gap_ms)
        if not clock.frames:
            clock.first_ms = t
        clock.frames += 1
        clock.last_ms = t

        self._window.append(t, angles)
        phase, move_event, usable = self._tracker.update(t, dt, angles)
        clock.visible_ms = clock.visible_ms + dt if usable else 0.0
        clock.lost_ms = 0.0 if usable else clock.lost_ms + dt
        self._update_belief(t, dt, usable)

        event = self._transition(state, phase)
        if move_event is not None:
            if self.state in (S.READY, S.ACTIVE):
                self._tally.committed += int(move_event.kind == "rep")
            else:
                self._tally.pending += int(move_event.kind == "rep")
            event = event or move_event.kind
        feedback = lib.neutral("reconfirm") if event == "uncertain" else None
        if feedback is None and move_event is not None and self.state == S.ACTIVE:
            feedback = self._feedback(t, move_event, phase)
        if feedback is not None:
            self.belief.last_feedback_time = t  # type: ignore[union-attr]
            self._tally.feedback.append((t, feedback))
        return self._result(t, phase, feedback, event)

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
        self._require("process frames", S.POSITIONING, S.VERIFYING, S.READY, S.ACTIVE, S.UNCERTAINTY)
        ts = np.asarray(timestamps_ms, dtype=np.float64).reshape(-1)
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[0] != ts.shape[0]:
            raise ValueError(f"expected {ts.shape[0]} frames of keypoints [N, points, channels], got shape {kp.shape}")
        xyzv = as_xyzv(kp, third=self._third)
        if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
            raise ValueError("timestamps_ms must be finite and strictly increasing within a batch")
        if ts.size and self._clock.frames and ts[0] <= self._clock.last_ms:
            raise ValueError(
                f"timestamp_ms={ts[0]} is not after the previous frame ({self._clock.last_ms}); frames must arrive in order"
            )
        if not ts.size:
            return []
        angles = self._features.push_many(ts, xyzv)
        out = []
        for i, t in enumerate(ts):
            state = self.state
            assert state is not None  # checked above; end() is a separate call, so never COMPLETED here
            out.append(self._advance(state, float(t), angles[i]))
        return out

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
        state = self._require("confirm", S.VERIFYING, S.UNCERTAINTY)
        if state == S.UNCERTAINTY:
            self._ignore_contradiction = True
            self._goto(S.ACTIVE if self._was_active else S.READY)
        else:
            self._goto(S.READY)
        self._lock()
        return self.state  # type: ignore[return-value]

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
        self._require("reselect", S.UNCERTAINTY)
        self._check_exercise(exercise)
        self._close_segment()
        self._select(exercise)
        self._was_active = False
        self._goto(S.VERIFYING)
        return self.state  # type: ignore[return-value]

    def end(self) -> SessionSummary:
        """Ends the session and returns its summary.

        Raises:
            ConflictError: before :meth:`start` or when already ended.
        """
        self._require("end", S.POSITIONING, S.VERIFYING, S.READY, S.ACTIVE, S.UNCERTAINTY)
        pending = self._tally.pending
        self._close_segment()
        self._goto(S.COMPLETED)
        clock, tally = self._clock, self._tally
        duration = 0.0 if not clock.frames else clock.last_ms - clock.first_ms
        return SessionSummary(
            exercise=self.exercise or "",
            reps=tally.segments[-1][1] if tally.segments else 0,
            segments=tuple(tally.segments),
            unconfirmed_reps=pending,
            duration_ms=duration,
            frames=clock.frames,
            feedback=tuple(tally.feedback),
            uncertainty_episodes=tally.uncertainty_episodes,
            quality=self.belief.quality_belief if self.belief else math.nan,
        )

    @property
    def reps(self) -> int:
        """Confirmed repetitions of the current exercise."""
        return self._tally.committed

    def status(self) -> dict[str, object]:
        """A JSON-friendly snapshot (no probabilities or scores: those are not for the user).

        Returns:
            ``state``, ``exercise``, ``reps``, ``phase``, ``frames``, ``guidance`` (the neutral
            line of the state), ``last_feedback`` (the latest sentence said, or None),
            ``suggestion`` (while UNCERTAINTY: the exercise the movement looks like) and
            ``last_timestamp_ms``.
        """
        started = self.state is not None
        uncertain = self.state == S.UNCERTAINTY and self.belief is not None
        return {
            "state": self.state.value if started else None,
            "exercise": self.exercise,
            "reps": self._tally.committed,
            "phase": self._tracker.phase.value if started else None,
            "frames": self._clock.frames,
            "guidance": _GUIDANCE[self.state] if started else None,
            "last_feedback": self._tally.feedback[-1][1] if self._tally.feedback else None,
            "suggestion": self.belief.top_alternative if uncertain else None,
            "last_timestamp_ms": self._clock.last_ms if self._clock.frames else None,
        }

    # ------------------------------------------------------------------ internals
    def _require(self, action: str, *allowed: SessionState) -> SessionState:
        if self.state is None:
            raise ConflictError(action, S.POSITIONING, "the session has not been started; call start(exercise)")
        if self.state not in allowed:
            hint = {
                S.COMPLETED: "the session has ended",
                S.UNCERTAINTY: "confirm() the exercise or reselect() another one first",
            }.get(self.state, f"allowed only in {[s.value for s in allowed]}")
            raise ConflictError(action, self.state, hint)
        return self.state

    def _check_exercise(self, exercise: str) -> None:
        if exercise not in known():
            raise UnknownExerciseError(exercise, known())

    def _select(self, exercise: str) -> None:
        self.exercise = exercise
        self._tracker = ExerciseTracker(exercise, self.config)
        self._quality = self.quality_factory(exercise)
        names = tuple(self.classifier.exercises)
        if exercise not in names:
            logger.warning("classifier does not know %r; the selection alone decides", exercise)
            names = (*names, exercise)
        self.belief = BeliefState.for_selection(names, exercise, self.config)
        self._ignore_contradiction = False
        self._tally.committed = self._tally.pending = 0
        clock = self._clock
        clock.last_classifier_ms = clock.last_quality_ms = -math.inf
        clock.stable_ms = 0.0

    def _goto(self, new: SessionState) -> None:
        old = self.state
        assert old is not None and new in TRANSITIONS[old], f"illegal transition {old} -> {new}"
        self.state = new
        if new == S.ACTIVE:
            self._was_active = True
        if new == S.UNCERTAINTY:
            self._tally.uncertainty_episodes += 1
        logger.debug("guidance state %s -> %s", old.value, new.value)

    def _lock(self) -> None:
        belief = self.belief
        assert belief is not None
        belief.confirmed, belief.locked_exercise = True, self.exercise
        self._tally.committed += self._tally.pending
        self._tally.pending = 0

    def _close_segment(self) -> None:
        if self.exercise is not None:
            self._tally.segments.append((self.exercise, self._tally.committed))

    def _update_belief(self, t: float, dt: float, usable: bool) -> None:
        belief, cfg, clock = self.belief, self.config, self._clock
        assert belief is not None
        if usable and t - clock.last_classifier_ms >= cfg.classifier_interval_ms:
            clock.last_classifier_ms = t
            proba = np.asarray(self.classifier.predict_proba(self._model_window(self.classifier)), dtype=np.float64)
            if len(proba) < len(belief.exercises):  # the selection was appended for an unknown class
                proba = np.append(proba, 0.0)
                proba[-1] = proba.max() if proba.size > 1 else 1.0
                proba /= proba.sum()
            belief.observe_classifier(proba, cfg)
        if usable and t - clock.last_quality_ms >= cfg.quality_interval_ms:
            clock.last_quality_ms = t
            belief.observe_quality(*self._quality.score(self._model_window(self._quality)), cfg)
        belief.advance(dt, usable, cfg)
        if self._ignore_contradiction and belief.contradiction <= cfg.contradiction_threshold:
            self._ignore_contradiction = False
        same = belief.top == self.exercise
        clock.stable_ms = clock.stable_ms + dt if usable and same else 0.0

    def _model_window(self, model: object, span_ms: float | None = None) -> np.ndarray:
        """The angle window a model reads: its own fixed-rate grid when it declares one
        (``sample_hz`` and ``window_s``, the LSTMs), else the raw rows of ``span_ms``."""
        hz = getattr(model, "sample_hz", None)
        if hz:
            return self._window.resampled(float(model.window_s), float(hz))  # type: ignore[attr-defined]
        return self._window.last(self.config.window_ms if span_ms is None else span_ms)

    def _transition(self, state: SessionState, phase: MovementPhase) -> str | None:
        cfg, belief, clock = self.config, self.belief, self._clock
        assert belief is not None
        contradicted = belief.contradiction_ms >= cfg.contradiction_ms and not self._ignore_contradiction
        if state == S.POSITIONING:
            if clock.visible_ms >= cfg.positioning_ms:
                self._goto(S.VERIFYING)
            return None
        if state in (S.VERIFYING, S.READY, S.ACTIVE) and contradicted:
            self._goto(S.UNCERTAINTY)
            return "uncertain"
        if state == S.VERIFYING:
            if clock.lost_ms >= cfg.positioning_ms:
                self._goto(S.POSITIONING)
            elif belief.confirmation_ms >= cfg.confirmation_ms:
                self._goto(S.READY)
                self._lock()
                return "confirmed"
        elif state == S.READY and phase in (MovementPhase.TRANSITION, MovementPhase.ECCENTRIC):
            self._goto(S.ACTIVE)
        return None

    def _feedback(self, t: float, event, phase: MovementPhase) -> str | None:  # noqa: ANN001
        belief, cfg, tally = self.belief, self.config, self._tally
        assert belief is not None
        span = event.duration_ms + 2 * cfg.phase_stability_ms + 500.0
        quality, confidence = self._quality.score(self._model_window(self._quality, span))
        good = event.kind == "rep" and math.isfinite(quality) and quality >= cfg.good_quality
        tally.good_since_praise += int(good)
        gate = GateInputs(
            state=self.state,  # type: ignore[arg-type]
            in_transition=phase == MovementPhase.TRANSITION,
            entropy=belief.entropy,
            since_feedback_ms=t - belief.last_feedback_time,
            quality_confidence=confidence,
            stable_ms=self._clock.stable_ms,
        )
        reasons = blocking_reasons(gate, cfg)
        if reasons:
            logger.debug("feedback blocked at %.0f ms: %s", t, ", ".join(reasons))
            return None
        cue = choose_cue(event, self._tracker.rule, quality, tally.good_since_praise, tally.praise_count, cfg)
        if cue is None:
            return None
        if cue.kind == "positive":
            tally.praise_count += 1
            tally.good_since_praise = 0
        return cue.text

    def _result(self, t: float, phase: MovementPhase, feedback: str | None, event: str | None) -> FrameResult:
        state = self.state
        assert state is not None and self.exercise is not None and self.belief is not None
        return FrameResult(
            timestamp_ms=t,
            state=state,
            phase=phase,
            reps=self._tally.committed,
            feedback=feedback,
            guidance=_GUIDANCE[state],
            exercise=self.exercise,
            event=event,
            suggestion=self.belief.top_alternative if state == S.UNCERTAINTY else None,
        )
