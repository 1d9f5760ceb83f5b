"""Typed, frozen configuration of the guidance engine (seed 003).

Every constant of the seed lives here. The seed gives some of them as frame counts measured on
a ~30-40 fps stream (confirmation 30 frames, belief stability 15 frames, phase stability 8
frames). The engine is driven by timestamps instead, so the same movement behaves the same on
a 5 fps recording and on a 60 fps camera: each count is converted once, at the reference rate
``REFERENCE_FPS = 33.3`` (the middle of the seed's 30-40 fps range, one frame ~30 ms):

=========================  ===========  ===========
seed constant              frames       duration
=========================  ===========  ===========
CONFIRMATION_FRAME_COUNT   30           900 ms
BELIEF_STABILITY_FRAMES    15           450 ms
STATE_STABILITY_FRAMES     8            240 ms
classifier every           10 frames    300 ms
quality every              5 frames     150 ms
=========================  ===========  ===========

A run of frames lasts the sum of the gaps between consecutive timestamps (the gap before a frame
belongs to that frame, capped at ``max_frame_gap_ms`` so a stalled stream does not make one frame
"long"). Eight frames at 33.3 fps therefore last 240 ms, exactly the converted constant.

Example:
    >>> GuidanceConfig().phase_stability_ms
    240.0
    >>> GuidanceConfig.from_frame_counts(fps=40.0).confirmation_ms
    750.0
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_FPS = 33.3
"""Frame rate at which the seed's frame counts are turned into durations."""


def frames_to_ms(frames: float, fps: float = REFERENCE_FPS) -> float:
    """Converts a frame count at ``fps`` into milliseconds, rounded to 0.1 ms.

    >>> frames_to_ms(8)
    240.2
    """
    if fps <= 0:
        raise ValueError(f"fps={fps} must be > 0")
    return round(1000.0 * frames / fps, 1)


@dataclass(frozen=True)
class GuidanceConfig:
    """Every threshold and duration of the guidance engine.

    Attributes:
        confirmation_threshold: belief in the selected exercise must exceed this (seed 0.90).
        confirmation_ms: ... for this long without interruption (seed 30 frames).
        contradiction_threshold: belief in a *different* exercise above this means contradiction
            (seed 0.85) -> UNCERTAINTY, feedback paused, the user is asked to confirm.
        contradiction_ms: the contradiction must hold this long (seed 15 frames of stable belief),
            so one odd classifier window cannot interrupt a session.
        prior_weight: belief mass given to the exercise the user selected; the rest is spread over
            the other exercises. The classifier output multiplies this prior (Bayes), so a neutral
            classifier leaves the selection in charge and only strong kinematic evidence can
            contradict it.
        belief_smoothing: weight of the newest posterior in the exponential moving average that
            forms the belief (1.0: no smoothing).
        classifier_interval_ms: the classifier runs at most this often (seed: every 10 frames).
        quality_interval_ms: the quality model runs at most this often (seed: every 5 frames).
        window_ms: length of the angle window handed to the classifier and quality model.
        min_feedback_interval_ms: cooldown between two feedback sentences (seed 2000 ms).
        belief_stability_ms: feedback needs this long of stable observation (seed 15 frames).
        quality_confidence_threshold: feedback needs quality confidence above this (seed 0.65).
        max_entropy: feedback is blocked when the normalised belief entropy exceeds this (seed
            0.5). The entropy is divided by ``log(n_exercises)`` so it lies in 0..1 whatever the
            number of exercises.
        min_rep_interval_ms: two counted repetitions are at least this far apart (seed 1200 ms).
        phase_stability_ms: a phase must hold this long before it counts (seed 8 frames).
        hysteresis_deg: once inside a phase, the driving angle must cross the phase's threshold by
            this margin to leave it, so jitter around a threshold cannot flicker the phase.
        positioning_ms: the body must be visible this long before verification starts.
        min_visibility: keypoints with a visibility/score below this are treated as missing.
        max_frame_gap_ms: a frame stands for at most this much time in duration sums.
        smoothing: apply a One-Euro filter to the landmarks of a live stream.
        one_euro_min_cutoff: One-Euro minimum cutoff (Hz).
        one_euro_beta: One-Euro speed coefficient (per normalised-image-unit per second).
        good_quality: a rep whose quality reaches this earns positive feedback (sparingly).
        praise_every_reps: at most one positive sentence per this many good reps.
    """

    confirmation_threshold: float = 0.90
    confirmation_ms: float = 900.0
    contradiction_threshold: float = 0.85
    contradiction_ms: float = 450.0
    prior_weight: float = 0.95
    belief_smoothing: float = 0.5
    classifier_interval_ms: float = 300.0
    quality_interval_ms: float = 150.0
    window_ms: float = 3000.0
    min_feedback_interval_ms: float = 2000.0
    belief_stability_ms: float = 450.0
    quality_confidence_threshold: float = 0.65
    max_entropy: float = 0.5
    min_rep_interval_ms: float = 1200.0
    phase_stability_ms: float = 240.0
    hysteresis_deg: float = 5.0
    positioning_ms: float = 450.0
    min_visibility: float = 0.3
    max_frame_gap_ms: float = 500.0
    smoothing: bool = True
    one_euro_min_cutoff: float = 1.5
    one_euro_beta: float = 0.3
    good_quality: float = 0.8
    praise_every_reps: int = 3

    def __post_init__(self) -> None:
        for name in ("confirmation_threshold", "contradiction_threshold", "quality_confidence_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"guidance.{name}={value} must be strictly between 0 and 1")
        if not 0.0 < self.prior_weight < 1.0:
            raise ValueError(f"guidance.prior_weight={self.prior_weight} must be strictly between 0 and 1")
        if self.prior_weight <= self.confirmation_threshold - 0.5:
            raise ValueError(
                f"guidance.prior_weight={self.prior_weight} is too weak to ever confirm; use > 0.5 below "
                f"confirmation_threshold ({self.confirmation_threshold})"
            )
        if not 0.0 < self.belief_smoothing <= 1.0:
            raise ValueError(f"guidance.belief_smoothing={self.belief_smoothing} must be in (0, 1]")
        if not 0.0 <= self.max_entropy <= 1.0:
            raise ValueError(f"guidance.max_entropy={self.max_entropy} must be in 0..1 (normalised entropy)")
        if not 0.0 <= self.min_visibility <= 1.0 or not 0.0 <= self.good_quality <= 1.0:
            raise ValueError("guidance.min_visibility and guidance.good_quality must be in 0..1")
        durations = (
            "confirmation_ms",
            "contradiction_ms",
            "classifier_interval_ms",
            "quality_interval_ms",
            "min_feedback_interval_ms",
            "belief_stability_ms",
            "min_rep_interval_ms",
            "phase_stability_ms",
            "positioning_ms",
            "hysteresis_deg",
        )
        for name in durations:
            if getattr(self, name) < 0:
                raise ValueError(f"guidance.{name}={getattr(self, name)} must be >= 0")
        if self.window_ms <= 0 or self.max_frame_gap_ms <= 0:
            raise ValueError("guidance.window_ms and guidance.max_frame_gap_ms must be > 0")
        if self.one_euro_min_cutoff <= 0 or self.one_euro_beta < 0:
            raise ValueError("guidance.one_euro_min_cutoff must be > 0 and one_euro_beta >= 0")
        if self.praise_every_reps < 1:
            raise ValueError(f"guidance.praise_every_reps={self.praise_every_reps} must be >= 1")

    @classmethod
    def from_frame_counts(
        cls,
        fps: float = REFERENCE_FPS,
        confirmation_frames: int = 30,
        belief_stability_frames: int = 15,
        phase_stability_frames: int = 8,
        classifier_every_frames: int = 10,
        quality_every_frames: int = 5,
        **overrides: object,
    ) -> GuidanceConfig:
        """Builds a config from the seed's frame counts at a given stream rate.

        Args:
            fps: the frame rate the counts refer to.
            confirmation_frames: seed ``CONFIRMATION_FRAME_COUNT``.
            belief_stability_frames: seed ``BELIEF_STABILITY_FRAMES``.
            phase_stability_frames: seed ``STATE_STABILITY_FRAMES``.
            classifier_every_frames: seed "classifier runs every 10 frames".
            quality_every_frames: seed "quality evaluation every 5 frames".
            **overrides: any other field.

        Returns:
            The config with the counts turned into milliseconds.
        """
        return cls(
            confirmation_ms=frames_to_ms(confirmation_frames, fps),
            contradiction_ms=frames_to_ms(belief_stability_frames, fps),
            belief_stability_ms=frames_to_ms(belief_stability_frames, fps),
            phase_stability_ms=frames_to_ms(phase_stability_frames, fps),
            classifier_interval_ms=frames_to_ms(classifier_every_frames, fps),
            quality_interval_ms=frames_to_ms(quality_every_frames, fps),
            **overrides,  # type: ignore[arg-type]
        )
