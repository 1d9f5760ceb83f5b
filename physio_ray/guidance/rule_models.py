"""Deterministic stand-ins for the LSTMs, used until trained weights exist.

* :class:`RuleExerciseClassifier` scores how *kinematically plausible* a window of joint angles
  is for each exercise: which joint groups move (range of motion over the window) and which stay
  still. It is deliberately coarse (squat, deep squat and sit-to-stand look alike), returns a
  uniform distribution while the body is still, and is combined with the user's selection as a
  prior by :class:`~physio_ray.guidance.belief.BeliefState`; together they form the seed's
  "prior-dominated" classifier. It can still contradict: an arm raised sideways while "squat"
  is selected moves joints a squat needs still and leaves still the joints a squat moves.
* :class:`RuleQualityModel` scores one exercise from the range its driving angle reaches,
  relative to the rule's target; confidence is the share of visible frames times how complete
  the observed excursion is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from physio_ray.guidance.phases import PhaseRule, combine_angles


@dataclass(frozen=True)
class KinematicSignature:
    """Which joint groups an exercise moves and which it keeps still.

    Attributes:
        movers: group -> smallest range of motion (degrees) a repetition moves it through.
        still: group -> largest range of motion (degrees) still consistent with the exercise.
    """

    movers: Mapping[str, float]
    still: Mapping[str, float]


def group_roms(window: np.ndarray, groups: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Range of motion (5th-95th percentile spread, degrees) of each joint group over a window
    ``[T, 16]``, with one percentile call.

    A group's range is the largest over its angles (either side may do the movement); NaN when
    fewer than three frames of the group are visible.
    """
    finite = np.isfinite(window)
    counts = finite.sum(axis=0)
    full = counts == window.shape[0]
    lo, hi = np.full(window.shape[1], np.nan), np.full(window.shape[1], np.nan)
    if full.any():  # columns without a gap: one vectorised percentile (nanpercentile loops per column)
        lo[full], hi[full] = np.percentile(window[:, full], (5, 95), axis=0)
    for j in np.flatnonzero(~full & (counts >= 3)):
        lo[j], hi[j] = np.percentile(window[finite[:, j], j], (5, 95))
    spread = np.where(counts >= 3, hi - lo, np.nan)
    out = {}
    for g, idx in groups.items():
        vals = spread[idx]
        vals = vals[np.isfinite(vals)]
        out[g] = float(vals.max()) if vals.size else float("nan")
    return out


class RuleExerciseClassifier:
    """Kinematic plausibility of each exercise for a window of joint angles.

    Args:
        signatures: exercise -> signature; the output order follows this mapping.
        groups: group name -> angle column indices.
        movement_deg: below this range of motion in every group the body counts as still and
            the output is uniform (no evidence either way).
        sigma_deg: softness of the penalties (degrees of mismatch per unit of log-likelihood).
    """

    def __init__(
        self,
        signatures: Mapping[str, KinematicSignature],
        groups: Mapping[str, Sequence[int] | np.ndarray],
        movement_deg: float = 20.0,
        sigma_deg: float = 15.0,
    ) -> None:
        self.exercises: tuple[str, ...] = tuple(signatures)
        self._signatures = dict(signatures)
        self._groups = {g: np.asarray(idx, dtype=np.int64) for g, idx in groups.items()}
        for name, sig in self._signatures.items():
            unknown = [g for g in (*sig.movers, *sig.still) if g not in self._groups]
            if unknown:
                raise ValueError(f"signature of {name!r} uses unknown joint groups {unknown}; known: {list(groups)}")
        self.movement_deg = movement_deg
        self.sigma = sigma_deg

    def log_likelihoods(self, window: np.ndarray) -> np.ndarray:
        """Per-exercise log plausibility (0 = fully consistent); all zeros when the body is still.

        Args:
            window: ``[T, 16]`` joint angles in degrees.

        Returns:
            ``[n_exercises]`` log-likelihoods (<= 0).
        """
        window = np.asarray(window, dtype=np.float64)
        if window.ndim != 2 or window.shape[0] < 3:
            return np.zeros(len(self.exercises))
        rom = group_roms(window, self._groups)
        seen = [r for r in rom.values() if np.isfinite(r)]
        if not seen or max(seen) < self.movement_deg:
            return np.zeros(len(self.exercises))
        out = np.zeros(len(self.exercises))
        for i, name in enumerate(self.exercises):
            sig = self._signatures[name]
            penalty = 0.0
            for g, least in sig.movers.items():
                if np.isfinite(rom[g]):
                    penalty += (max(0.0, least - rom[g]) / self.sigma) ** 2
            for g, limit in sig.still.items():
                if np.isfinite(rom[g]):
                    penalty += (max(0.0, rom[g] - limit) / self.sigma) ** 2
            out[i] = -penalty
        return out

    def predict_proba(self, window: np.ndarray) -> np.ndarray:
        """Softmax of :meth:`log_likelihoods` (uniform while the body is still).

        Args:
            window: ``[T, 16]`` joint angles in degrees (NaN where not visible).

        Returns:
            ``[n_exercises]`` probabilities summing to 1.
        """
        ll = self.log_likelihoods(window)
        p = np.exp(ll - ll.max())
        return p / p.sum()


class RuleQualityModel:
    """Quality of one exercise from the range its driving angle reaches in the window.

    ``quality`` is the progress of the window's extreme (5th/95th percentile of the driving
    signal) towards the rule's ``target_deg`` (1.0 at or beyond it, 0.0 at rest).
    ``confidence`` is the visible share of frames, halved when the window does not contain a
    whole excursion (rest posture seen *and* the far side approached).

    Args:
        rule: the exercise's phase rule.
        driving_index: angle columns of ``rule.driving``.
    """

    def __init__(self, rule: PhaseRule, driving_index: Sequence[int] | np.ndarray) -> None:
        self.rule = rule
        self._index = np.asarray(driving_index, dtype=np.int64)
        self._target = rule.target_deg if rule.target_deg is not None else rule.far_deg

    def score(self, window: np.ndarray) -> tuple[float, float]:
        """Scores a window.

        Args:
            window: ``[T, 16]`` joint angles in degrees.

        Returns:
            ``(quality, confidence)`` in 0..1; ``(nan, 0.0)`` when nothing is visible.
        """
        signal = combine_angles(np.asarray(window, dtype=np.float64), self._index, self.rule.combine)
        finite = signal[np.isfinite(signal)]
        if finite.size < 3:
            return float("nan"), 0.0
        rule = self.rule
        progress = np.array([rule.progress(float(v)) for v in np.percentile(finite, (5, 95))])
        reached, rest_seen = float(progress.max()), float(progress.min())
        target_progress = rule.progress(self._target)
        quality = float(np.clip(reached / target_progress, 0.0, 1.0))
        whole = rest_seen <= 0.2 and reached >= 0.5
        confidence = (finite.size / signal.size) * (1.0 if whole else 0.5)
        return quality, float(confidence)
