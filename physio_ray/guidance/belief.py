"""Belief about which exercise is being done and how well (seed 003 "BeliefState").

The user's selection is a *prior*; the classifier output is evidence. Each classifier call gives
``posterior ∝ prior × p_classifier``, smoothed into the belief with an exponential moving
average. A neutral classifier (uniform output, e.g. the rule classifier while the body is still)
leaves the selection in charge; only strong kinematic evidence can move the belief away from it.

Contradiction is the belief mass on exercises *other than the selected one* (the seed's "a
different movement", whichever it is): two look-alike alternatives (shoulder abduction and
scaption) still add up to a contradiction of a selected squat.

The models are reached through two small protocols so the trained LSTMs drop in later:

* :class:`ExerciseClassifier`: ``predict_proba(window [T, 16]) -> [n_exercises]``;
* :class:`QualityModel`: ``score(window [T, 16]) -> (quality, confidence)``, one per exercise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from physio_ray.guidance.config import GuidanceConfig


@runtime_checkable
class ExerciseClassifier(Protocol):
    """Anything that scores a window of joint angles against known exercises.

    Attributes:
        exercises: names of the output columns, in order.
    """

    exercises: tuple[str, ...]

    def predict_proba(self, window: np.ndarray) -> np.ndarray:
        """Returns ``[n_exercises]`` probabilities (sum 1) for a ``[T, 16]`` window (NaN allowed)."""
        ...


@runtime_checkable
class QualityModel(Protocol):
    """Scores the execution quality of one exercise from a window of joint angles."""

    def score(self, window: np.ndarray) -> tuple[float, float]:
        """Returns ``(quality, confidence)``, both in 0..1, for a ``[T, 16]`` window."""
        ...


def normalised_entropy(p: np.ndarray) -> float:
    """Shannon entropy of ``p`` divided by ``log(len(p))`` (0: certain, 1: uniform).

    >>> round(normalised_entropy(np.array([0.25, 0.25, 0.25, 0.25])), 6)
    1.0
    >>> normalised_entropy(np.array([1.0, 0.0]))
    0.0
    """
    p = np.asarray(p, dtype=np.float64)
    if p.size < 2:
        return 0.0
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / math.log(p.size)) + 0.0  # + 0.0: a certain p gives 0.0, not -0.0


def make_prior(exercises: Sequence[str], selected: str, weight: float) -> np.ndarray:
    """The prior of a user selection: ``weight`` on ``selected``, the rest spread evenly.

    >>> make_prior(["a", "b", "c"], "b", 0.9).round(3).tolist()
    [0.05, 0.9, 0.05]
    """
    n = len(exercises)
    if n == 1:
        return np.ones(1)
    prior = np.full(n, (1.0 - weight) / (n - 1))
    prior[list(exercises).index(selected)] = weight
    return prior


@dataclass
class BeliefState:
    """The seed's BeliefState, plus the durations and the entropy the gate needs.

    Attributes:
        exercises: exercise names, the order of ``probabilities``.
        probabilities: smoothed posterior over ``exercises`` ([n_exercises]).
        selected: the exercise the user selected (the prior).
        confirmation_frames: consecutive frames with belief in ``selected`` above the threshold.
        confirmation_ms: the same as a duration (what the engine uses).
        contradiction_ms: how long the belief in other exercises has exceeded the threshold.
        confirmed: exercise identity locked.
        locked_exercise: the locked exercise (None until confirmed).
        quality_belief: exponential moving average of quality scores (NaN until the first).
        quality_variance: exponential moving variance of quality scores.
        quality_confidence: confidence of the latest quality score.
        last_feedback_time: timestamp (ms) of the last feedback sentence (``-inf``: none yet).
    """

    exercises: tuple[str, ...]
    probabilities: np.ndarray
    selected: str
    confirmation_frames: int = 0
    confirmation_ms: float = 0.0
    contradiction_ms: float = 0.0
    confirmed: bool = False
    locked_exercise: str | None = None
    quality_belief: float = math.nan
    quality_variance: float = 0.0
    quality_confidence: float = 0.0
    last_feedback_time: float = -math.inf
    _prior: np.ndarray = field(default_factory=lambda: np.ones(1), repr=False)

    @classmethod
    def for_selection(cls, exercises: Sequence[str], selected: str, cfg: GuidanceConfig) -> BeliefState:
        """A fresh belief equal to the prior of ``selected``."""
        prior = make_prior(exercises, selected, cfg.prior_weight)
        return cls(tuple(exercises), prior.copy(), selected, _prior=prior)

    @property
    def p_selected(self) -> float:
        """Belief in the selected exercise."""
        return float(self.probabilities[self.exercises.index(self.selected)])

    @property
    def contradiction(self) -> float:
        """Belief mass on every exercise other than the selected one."""
        return 1.0 - self.p_selected

    @property
    def top(self) -> str:
        """The exercise with the highest belief."""
        return self.exercises[int(np.argmax(self.probabilities))]

    @property
    def top_alternative(self) -> str:
        """The most believed exercise other than the selected one (a suggestion for reselect)."""
        p = self.probabilities.copy()
        p[self.exercises.index(self.selected)] = -1.0
        return self.exercises[int(np.argmax(p))]

    @property
    def entropy(self) -> float:
        """Normalised entropy of the belief (0..1)."""
        return normalised_entropy(self.probabilities)

    def observe_classifier(self, proba: np.ndarray, cfg: GuidanceConfig) -> None:
        """Folds one classifier output into the belief (Bayes with the prior, then smoothing).

        Args:
            proba: ``[n_exercises]`` classifier probabilities, same order as ``exercises``.
            cfg: smoothing weight.

        Raises:
            ValueError: when ``proba`` has the wrong length or is not a finite distribution.
        """
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape != (len(self.exercises),) or not np.all(np.isfinite(proba)) or proba.min() < 0:
            raise ValueError(
                f"classifier returned {proba!r}; expected {len(self.exercises)} finite non-negative probabilities"
            )
        post = self._prior * np.maximum(proba, 1e-12)
        post /= post.sum()
        a = cfg.belief_smoothing
        self.probabilities = (1.0 - a) * self.probabilities + a * post

    def advance(self, dt_ms: float, usable: bool, cfg: GuidanceConfig) -> None:
        """Updates the confirmation and contradiction timers for one frame.

        Args:
            dt_ms: time this frame stands for.
            usable: the frame had the exercise's joints visible (invisible frames reset both).
            cfg: thresholds.
        """
        if usable and self.p_selected > cfg.confirmation_threshold:
            self.confirmation_frames += 1
            self.confirmation_ms += dt_ms
        else:
            self.confirmation_frames, self.confirmation_ms = 0, 0.0
        if usable and self.contradiction > cfg.contradiction_threshold:
            self.contradiction_ms += dt_ms
        else:
            self.contradiction_ms = 0.0

    def observe_quality(self, quality: float, confidence: float, cfg: GuidanceConfig) -> None:
        """Folds one quality score into the quality belief (moving mean and variance)."""
        self.quality_confidence = float(confidence)
        if not math.isfinite(quality):
            return
        if not math.isfinite(self.quality_belief):
            self.quality_belief, self.quality_variance = float(quality), 0.0
            return
        a = cfg.belief_smoothing
        diff = quality - self.quality_belief
        self.quality_belief += a * diff
        self.quality_variance = (1.0 - a) * (self.quality_variance + a * diff * diff)

    def reset_evidence(self) -> None:
        """Back to the prior (after a confirm or a reselect): timers and quality cleared."""
        self.probabilities = self._prior.copy()
        self.confirmation_frames, self.confirmation_ms, self.contradiction_ms = 0, 0.0, 0.0
        self.quality_belief, self.quality_variance, self.quality_confidence = math.nan, 0.0, 0.0
