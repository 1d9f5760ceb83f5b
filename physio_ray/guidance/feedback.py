"""The feedback gate (seed 003 "Feedback authority rules") and the choice of what to say.

Feedback is spoken only after a meaningful movement event (a counted repetition or a shallow
attempt), and only when *every* condition of the seed holds:

=====================================  =====================================================
blocked when                           why
=====================================  =====================================================
session not ACTIVE (POSITIONING, ...)  the user is still getting ready / exercise not locked
the latest frame is in TRANSITION      the movement is between phases
normalised belief entropy > 0.5        the belief is too uncertain
less than 2000 ms since last feedback  prevent flooding
quality confidence <= 0.65             not confident enough to correct
stable observation < 450 ms            not observed enough (seed: 15 frames)
=====================================  =====================================================

:func:`blocking_reasons` returns the names of every condition that blocks (empty: may speak),
so each rule can be tested on its own. :func:`choose_cue` decides *what* to say for an event;
it returns None when no rule clearly identifies something to say (silence beats a guess).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import physio_ray.guidance.feedback_library as lib
from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.phases import PhaseRule
from physio_ray.guidance.reps import RepEvent
from physio_ray.guidance.states import SessionState

REASONS = ("not_active", "in_transition", "high_entropy", "cooldown", "low_quality_confidence", "not_stable")


@dataclass(frozen=True)
class GateInputs:
    """What the gate looks at on one frame.

    Attributes:
        state: session state.
        in_transition: the latest frame's phase is TRANSITION.
        entropy: normalised entropy of the exercise belief (0..1).
        since_feedback_ms: time since the last feedback sentence (``inf`` when none yet).
        quality_confidence: confidence of the latest quality estimate (0..1).
        stable_ms: how long the observation has been stable (visible, same belief).
    """

    state: SessionState
    in_transition: bool
    entropy: float
    since_feedback_ms: float
    quality_confidence: float
    stable_ms: float


def blocking_reasons(inputs: GateInputs, cfg: GuidanceConfig) -> tuple[str, ...]:
    """Names every seed condition that blocks feedback on this frame (empty tuple: allowed).

    Args:
        inputs: the frame's gate inputs.
        cfg: thresholds.

    Returns:
        A subset of :data:`REASONS`, in that order.

    >>> from physio_ray.guidance.config import GuidanceConfig
    >>> ok = GateInputs(SessionState.ACTIVE, False, 0.1, 5000.0, 0.9, 1000.0)
    >>> blocking_reasons(ok, GuidanceConfig())
    ()
    """
    reasons = []
    if inputs.state != SessionState.ACTIVE:
        reasons.append("not_active")
    if inputs.in_transition:
        reasons.append("in_transition")
    if not inputs.entropy <= cfg.max_entropy:  # NaN entropy blocks too
        reasons.append("high_entropy")
    if inputs.since_feedback_ms < cfg.min_feedback_interval_ms:
        reasons.append("cooldown")
    if not inputs.quality_confidence > cfg.quality_confidence_threshold:
        reasons.append("low_quality_confidence")
    if inputs.stable_ms < cfg.belief_stability_ms:
        reasons.append("not_stable")
    return tuple(reasons)


@dataclass(frozen=True)
class Cue:
    """A decided sentence: ``kind`` is ``positive`` or ``corrective``; ``key`` the library key."""

    kind: str
    key: str
    text: str


def choose_cue(
    event: RepEvent,
    rule: PhaseRule,
    quality: float,
    good_reps_since_praise: int,
    praise_count: int,
    cfg: GuidanceConfig,
) -> Cue | None:
    """Chooses what to say about one movement event, or nothing.

    Rules, in order: a shallow attempt -> the exercise's range cue; a counted rep faster than the
    rule's ``min_rep_ms`` -> "Slow the movement."; a counted rep with quality at least
    ``cfg.good_quality`` -> praise, but only once every ``cfg.praise_every_reps`` good reps
    (silence is preferred). Anything else -> None.

    Args:
        event: the movement event of this frame.
        rule: the exercise's phase rule.
        quality: current quality belief (0..1; NaN when unknown).
        good_reps_since_praise: good reps since the last praise, this one included.
        praise_count: praise sentences said so far (picks the next wording).
        cfg: thresholds.

    Returns:
        The cue, or None for silence.
    """
    exercise = rule.exercise
    if event.kind == "shallow":
        text = lib.corrective(exercise, "go_lower")
        return Cue("corrective", "go_lower", text) if text else None
    if event.kind != "rep":
        return None
    if event.duration_ms < rule.min_rep_ms:
        return Cue("corrective", "slow_down", lib.corrective(exercise, "slow_down") or "")
    if math.isfinite(quality) and quality >= cfg.good_quality and good_reps_since_praise >= cfg.praise_every_reps:
        return Cue("positive", "praise", lib.positive(exercise, praise_count))
    return None
