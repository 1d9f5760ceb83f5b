"""Movement phases from joint angles: a driving signal per exercise and a hysteresis tracker.

The seed's squat rule is the template for every exercise: CONCENTRIC when the body is in its
rest posture (squat: knee > 150 and hip > 150), ECCENTRIC at the far end of the movement (squat:
knee < 110), TRANSITION in between, IDLE when the driving joints are not visible. Phase names
follow the seed: CONCENTRIC is the start/rest posture and ECCENTRIC the far posture, whichever
muscle action gets there (for a shoulder abduction the arm is raised in ECCENTRIC).

Per-exercise rules (which angles drive, which way they move, the two thresholds) live in
:mod:`physio_ray.guidance.exercise_rules`; this module only applies them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np


class MovementPhase(StrEnum):
    """Where the body is within one repetition (seed names)."""

    IDLE = "IDLE"
    ECCENTRIC = "ECCENTRIC"
    CONCENTRIC = "CONCENTRIC"
    TRANSITION = "TRANSITION"


@dataclass(frozen=True)
class PhaseRule:
    """How one exercise is cut into phases.

    Attributes:
        exercise: canonical exercise name.
        driving: angle names (see ``physio_ray.video.angles.ANGLE_NAMES``) combined into the
            driving signal.
        combine: how the driving angles are combined per frame, NaN-aware: ``mean`` for
            movements done with both sides, ``min``/``max`` for movements done with either side
            (the moving side is the one furthest from rest).
        direction: ``decrease`` when the driving angle gets smaller away from rest (knee flexion
            in a squat), ``increase`` when it grows (shoulder abduction).
        rest_deg: CONCENTRIC when the signal is on the rest side of this value.
        far_deg: ECCENTRIC when the signal is beyond this value.
        secondary: optional angle names that must also be at rest for CONCENTRIC (squat: hips).
        secondary_rest_deg: rest threshold for ``secondary`` (same direction as the driving one).
        target_deg: a repetition that reaches this value has full range ("Good depth.").
        min_rep_ms: repetitions faster than this earn "Slow the movement.".
        excursions_per_rep: excursions (rest -> far -> rest) that make one repetition; 2 for
            exercises done once to each side (flank stretch, torso rotation).
        countable: False when the shared angles cannot follow the movement reliably; phases are
            still reported but no repetition is counted.
        anchor: ``absolute``: ``rest_deg`` / ``far_deg`` (and ``target_deg``) are values of the
            signal; ``rest``: they are offsets from the person's own rest level, measured live
            (:class:`physio_ray.guidance.cues.RestLevel`), so a decreasing rule has negative
            offsets (rest -8, far -14) and an increasing one positive offsets; ``centre``: for
            movements that leave rest to both sides, the signal is the distance from the rest
            level (the window's mode: where the body stays longest) whichever side, so the rule must ``increase``.
        hysteresis: the rule's own hysteresis margin (in the signal's units); ``None`` uses the
            config's ``hysteresis_deg``. Cue rules scale it with the movement's excursion, since
            one margin cannot suit a cue that moves 10 units and one that moves 80.
        rest_bound: for a ``rest`` anchor, the rest level is taken as at least this rest-ward
            (absolute signal units): a recording that starts mid-repetition, before any rest
            was seen, then still reads as away from rest. Set below every rest level measured.
        turns_body: the movement turns the body on purpose (a trunk rotation), so a change of
            the body's heading is no "side switch" (turning round) while it is tracked.
        note: where the numbers come from (measured ranges), for the documentation.
    """

    exercise: str
    driving: tuple[str, ...]
    combine: Literal["mean", "min", "max"]
    direction: Literal["decrease", "increase"]
    rest_deg: float
    far_deg: float
    secondary: tuple[str, ...] = ()
    secondary_rest_deg: float | None = None
    target_deg: float | None = None
    min_rep_ms: float = 1000.0
    excursions_per_rep: int = 1
    countable: bool = True
    anchor: Literal["absolute", "rest", "centre"] = "absolute"
    hysteresis: float | None = None
    rest_bound: float | None = None
    turns_body: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if not self.driving:
            raise ValueError(f"{self.exercise}: a phase rule needs at least one driving angle")
        gap = (self.rest_deg - self.far_deg) * (1.0 if self.direction == "decrease" else -1.0)
        if gap <= 0:
            raise ValueError(
                f"{self.exercise}: rest_deg={self.rest_deg} must be on the rest side of far_deg={self.far_deg} "
                f"for direction={self.direction!r}"
            )
        if bool(self.secondary) != (self.secondary_rest_deg is not None):
            raise ValueError(f"{self.exercise}: secondary and secondary_rest_deg go together")
        if self.hysteresis is not None and not self.hysteresis >= 0:
            raise ValueError(f"{self.exercise}: hysteresis={self.hysteresis} must be >= 0")
        if self.anchor not in ("absolute", "rest", "centre"):
            raise ValueError(f"{self.exercise}: anchor={self.anchor!r} must be 'absolute', 'rest' or 'centre'")
        if self.anchor == "centre" and self.direction != "increase":
            raise ValueError(f"{self.exercise}: a 'centre' rule reads a distance from rest, so it must 'increase'")
        if self.excursions_per_rep < 1:
            raise ValueError(f"{self.exercise}: excursions_per_rep={self.excursions_per_rep} must be >= 1")

    @property
    def sign(self) -> float:
        """+1 when the angle decreases away from rest, -1 when it increases."""
        return 1.0 if self.direction == "decrease" else -1.0

    def progress(self, signal: float) -> float:
        """How far ``signal`` is from rest towards the far threshold (0 at rest_deg, 1 at far_deg)."""
        return (self.rest_deg - signal) * self.sign / ((self.rest_deg - self.far_deg) * self.sign)


def scaled_rule(
    rule: PhaseRule, excursion: float, rest_frac: float, far_frac: float, hysteresis_frac: float
) -> PhaseRule:
    """A rest-anchored copy of ``rule`` whose offsets are fractions of the movement's excursion.

    Args:
        rule: the rule to scale (its driving signal, combine and direction are kept).
        excursion: how far a correct repetition moves the signal from rest (> 0, signal units).
        rest_frac: the rest threshold sits this fraction of the excursion away from rest.
        far_frac: the far threshold sits this fraction of the excursion away from rest.
        hysteresis_frac: the hysteresis margin as a fraction of the excursion.

    Raises:
        ValueError: unless ``0 < rest_frac < far_frac < 1``, ``hysteresis_frac >= 0`` and ``excursion > 0``.

    Example:
        >>> r = PhaseRule("demo", ("left_leg_height",), "mean", "decrease", 85, 75)
        >>> s = scaled_rule(r, 40.0, 0.5, 0.6, 0.1)
        >>> (s.anchor, s.rest_deg, s.far_deg, s.hysteresis)
        ('rest', -20.0, -24.0, 4.0)
    """
    if not (0.0 < rest_frac < far_frac < 1.0 and hysteresis_frac >= 0.0 and excursion > 0.0):
        raise ValueError(
            f"{rule.exercise}: need 0 < rest_frac ({rest_frac}) < far_frac ({far_frac}) < 1, "
            f"hysteresis_frac ({hysteresis_frac}) >= 0 and excursion ({excursion}) > 0"
        )
    d = -rule.sign * excursion
    return dataclasses.replace(
        rule,
        anchor="rest",
        rest_deg=round(rest_frac * d, 1),
        far_deg=round(far_frac * d, 1),
        hysteresis=round(hysteresis_frac * excursion, 1),
    )


def combine_angles(angles: np.ndarray, index: np.ndarray, how: str) -> np.ndarray:
    """Combines the selected angle columns into one signal per frame, ignoring NaNs.

    Args:
        angles: ``[T, 16]`` or ``[16]`` joint angles in degrees (NaN where not visible).
        index: column indices to combine.
        how: ``mean``, ``min`` or ``max``.

    Returns:
        ``[T]`` (or a 0-d array): NaN where every selected angle is NaN.
    """
    sel = np.asarray(angles, dtype=np.float64)[..., index]
    finite = np.isfinite(sel)
    anyf = finite.any(axis=-1)
    if how == "mean":
        total = np.where(finite, sel, 0.0).sum(axis=-1)
        out = total / np.maximum(finite.sum(axis=-1), 1)
    elif how == "min":
        out = np.where(finite, sel, np.inf).min(axis=-1)
    elif how == "max":
        out = np.where(finite, sel, -np.inf).max(axis=-1)
    else:
        raise ValueError(f"combine={how!r} must be 'mean', 'min' or 'max'")
    return np.where(anyf, out, np.nan)


class PhaseTracker:
    """Turns the driving signal of each frame into a phase, with hysteresis.

    Entering a phase uses the rule's thresholds; leaving it needs the signal to come back across
    the threshold by ``hysteresis_deg`` (or the rule's own ``hysteresis``). Jitter smaller than that margin around a threshold
    cannot make the phase flicker.

    Example:
        >>> from physio_ray.guidance.phases import PhaseRule, PhaseTracker
        >>> rule = PhaseRule("demo", ("left_knee",), "mean", "decrease", rest_deg=150, far_deg=110)
        >>> t = PhaseTracker(rule, hysteresis_deg=5)
        >>> [t.update(a).value for a in (170, 108, 112, 140, 152, 147)]
        ['CONCENTRIC', 'ECCENTRIC', 'ECCENTRIC', 'TRANSITION', 'CONCENTRIC', 'CONCENTRIC']
    """

    def __init__(self, rule: PhaseRule, hysteresis_deg: float) -> None:
        self.rule = rule
        self.hysteresis = float(rule.hysteresis if rule.hysteresis is not None else hysteresis_deg)
        self.phase = MovementPhase.IDLE

    def reset(self) -> None:
        """Forgets the current phase (the next frame is classified without hysteresis)."""
        self.phase = MovementPhase.IDLE

    def update(self, signal: float, secondary: float = math.nan) -> MovementPhase:
        """Classifies one frame.

        Args:
            signal: the driving angle (degrees); NaN when not visible.
            secondary: the secondary angle (degrees) when the rule has one; NaN when not visible
                (then only the driving angle decides).

        Returns:
            The phase of this frame; IDLE when ``signal`` is NaN (the tracker keeps its state, so
            one missing frame does not reset the hysteresis).
        """
        if not math.isfinite(signal):
            return MovementPhase.IDLE
        rule = self.rule
        rule_sign = rule.sign
        h = self.hysteresis
        cur = self.phase
        # Work in "flexion units": larger x means closer to rest, whatever the direction.
        x = signal * rule_sign
        far = rule.far_deg * rule_sign
        rest = rule.rest_deg * rule_sign
        far_exit = far + h if cur == MovementPhase.ECCENTRIC else far
        rest_enter = rest - h if cur == MovementPhase.CONCENTRIC else rest
        sec_ok = True
        if rule.secondary_rest_deg is not None and math.isfinite(secondary):
            sec_rest = rule.secondary_rest_deg * rule_sign
            if cur == MovementPhase.CONCENTRIC:
                sec_rest -= h
            sec_ok = secondary * rule_sign > sec_rest
        if x < far_exit:
            new = MovementPhase.ECCENTRIC
        elif x > rest_enter and sec_ok:
            new = MovementPhase.CONCENTRIC
        else:
            new = MovementPhase.TRANSITION
        self.phase = new
        return new
