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
from physio_ray.video.angles import N_ANGLES


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
    rom = group_rom_matrix([np.asarray(window, dtype=np.float64)], list(groups.values()))[0]
    return {g: float(r) for g, r in zip(groups, rom, strict=True)}


def group_rom_matrix(windows: Sequence[np.ndarray], groups: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`group_roms` of many ``[T, 16]`` windows as a ``[B, G]`` matrix (columns in the
    order of ``groups``), one percentile call per window length: each column's percentile is
    computed as for one window alone, so the numbers are the same."""
    spread = np.empty((len(windows), N_ANGLES))
    for rows, stack in _by_length(windows):
        spread[rows] = _spreads(stack)
    out = np.empty((len(windows), len(groups)))
    with np.errstate(invalid="ignore"):
        for k, cols in enumerate(groups):  # fmax ignores NaN; all-NaN gives NaN
            out[:, k] = np.fmax.reduce(spread[:, cols], axis=1) if len(cols) else np.nan
    return out


def _by_length(windows: Sequence[np.ndarray]) -> list[tuple[list[int], np.ndarray]]:
    """Windows grouped by length: ``(indices, [B, T, ...] stack)`` per length."""
    groups: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        groups.setdefault(len(w), []).append(i)
    return [(idx, np.stack([np.asarray(windows[i], dtype=np.float64) for i in idx])) for idx in groups.values()]


def _spreads(stack: np.ndarray) -> np.ndarray:
    """``[B, 16]`` 5th-95th percentile spread of every column of ``[B, T, 16]`` windows, over
    its visible frames (NaN below three).

    One sort of the whole stack (hidden frames sort last) and numpy's "linear" percentile
    read off each column's own count of visible frames: the same numbers as
    ``np.percentile`` on each column's visible values (a per-column call cost up to 0.8 ms
    per window when the detector dropped a joint now and then).
    """
    finite = np.isfinite(stack)
    counts = finite.sum(axis=1)
    ordered = np.sort(np.where(finite, stack, np.nan), axis=1)
    lo = _linear_percentile(ordered, counts, 0.05)
    hi = _linear_percentile(ordered, counts, 0.95)
    return np.where(counts >= 3, hi - lo, np.nan)


def _linear_percentile(ordered: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Percentile ``q`` (a fraction) of each ``[B, :count, j]`` column of sorted windows, by
    numpy's default method: the virtual index ``(count - 1) * q`` and its interpolation
    (including numpy's form of it for weights >= 0.5, so results are bit-identical)."""
    top = np.maximum(counts - 1, 0)
    index = top * q
    below = np.floor(index)
    gamma = index - below
    first = below.astype(np.intp)
    a = np.take_along_axis(ordered, first[:, None, :], axis=1)[:, 0]
    b = np.take_along_axis(ordered, np.minimum(first + 1, top)[:, None, :], axis=1)[:, 0]
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


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
        return self.log_likelihoods_many([window])[0]

    def log_likelihoods_many(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`log_likelihoods` of many windows as ``[B, n_exercises]``: the ranges of motion
        of every window of one length in one percentile call, the penalties of every window in
        one elementwise step per (exercise, group) term, added in the same order for each."""
        arrays = [np.asarray(w, dtype=np.float64) for w in windows]
        out = np.zeros((len(arrays), len(self.exercises)))
        usable = [i for i, w in enumerate(arrays) if w.ndim == 2 and w.shape[0] >= 3]
        if not usable:
            return out
        names = list(self._groups)
        rom = group_rom_matrix([arrays[i] for i in usable], list(self._groups.values()))
        col = {g: rom[:, k] for k, g in enumerate(names)}
        seen = np.isfinite(rom)
        moving = np.where(seen, rom, -np.inf).max(axis=1) >= self.movement_deg  # still bodies: zeros
        for e, name in enumerate(self.exercises):
            sig = self._signatures[name]
            penalty = np.zeros(len(usable))
            for g, least in sig.movers.items():
                penalty += np.where(seen[:, names.index(g)], (np.maximum(0.0, least - col[g]) / self.sigma) ** 2, 0.0)
            for g, limit in sig.still.items():
                penalty += np.where(seen[:, names.index(g)], (np.maximum(0.0, col[g] - limit) / self.sigma) ** 2, 0.0)
            out[usable, e] = np.where(moving, -penalty, 0.0)
        return out

    def predict_proba(self, window: np.ndarray) -> np.ndarray:
        """Softmax of :meth:`log_likelihoods` (uniform while the body is still).

        Args:
            window: ``[T, 16]`` joint angles in degrees (NaN where not visible).

        Returns:
            ``[n_exercises]`` probabilities summing to 1.
        """
        return self.predict_proba_many([window])[0]

    def predict_proba_many(self, windows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`predict_proba` of many windows (the batched engine's one call per tick)."""
        return list(_softmax(self.log_likelihoods_many(windows)))


def _softmax(ll: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``[B, n]``."""
    p = np.exp(ll - ll.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


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
        return self._score_signal(combine_angles(np.asarray(window, dtype=np.float64), self._index, self.rule.combine))

    def _score_signal(self, signal: np.ndarray) -> tuple[float, float]:
        finite = signal[np.isfinite(signal)]
        if finite.size < 3:
            return float("nan"), 0.0
        return self._from_percentiles(np.percentile(finite, (5, 95)), finite.size / signal.size)

    def score_many(self, windows: Sequence[np.ndarray]) -> list[tuple[float, float]]:
        """:meth:`score` of many windows: the percentiles of every fully visible window of one
        length in one call (the same numbers as one window at a time)."""
        signals = [combine_angles(np.asarray(w, dtype=np.float64), self._index, self.rule.combine) for w in windows]
        out: list[tuple[float, float]] = [(float("nan"), 0.0)] * len(signals)
        whole = [i for i, sig in enumerate(signals) if sig.size >= 3 and np.isfinite(sig).all()]
        for idx, stack in _by_length([signals[i] for i in whole]):
            for k, q in zip(idx, np.percentile(stack, (5, 95), axis=1).T, strict=True):
                out[whole[k]] = self._from_percentiles(q, 1.0)
        for i in set(range(len(signals))) - set(whole):  # partly hidden: its signal, one at a time
            out[i] = self._score_signal(signals[i])
        return out

    def _from_percentiles(self, q: np.ndarray, visible: float) -> tuple[float, float]:
        rule = self.rule
        progress = np.array([rule.progress(float(v)) for v in q])
        reached, rest_seen = float(progress.max()), float(progress.min())
        target_progress = rule.progress(self._target)
        quality = float(np.clip(reached / target_progress, 0.0, 1.0))
        whole = rest_seen <= 0.2 and reached >= 0.5
        confidence = visible * (1.0 if whole else 0.5)
        return quality, float(confidence)
