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

import math
from dataclasses import dataclass, field

from physio_ray.runtime import RayConfig

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
        rest_window_ms: a rest-anchored rule (``PhaseRule.anchor == "rest"``) measures the rest
            level as the most rest-ward driving value over this trailing window.
        rest_tau_ms: smoothing of the driving value before that extreme is taken.
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
    rest_window_ms: float = 20_000.0
    rest_tau_ms: float = 600.0
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
            "rest_tau_ms",
        )
        for name in durations:
            if getattr(self, name) < 0:
                raise ValueError(f"guidance.{name}={getattr(self, name)} must be >= 0")
        if self.window_ms <= 0 or self.max_frame_gap_ms <= 0 or self.rest_window_ms <= 0:
            raise ValueError("guidance.window_ms, guidance.max_frame_gap_ms and guidance.rest_window_ms must be > 0")
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


@dataclass(frozen=True)
class LstmTrainConfig:
    """One LSTM family (the classifier, or the per-exercise quality models).

    Attributes:
        hidden: LSTM hidden size.
        layers: LSTM layers.
        window_s: input window (seconds) the model reads, live and in training.
        sample_hz: the window's fixed rate.
        epochs: passes over the training windows.
        batch_size: windows per step.
        lr: Adam learning rate.
        windows_per_sequence: random crops per training sequence and epoch (classifier only).
    """

    hidden: int = 48
    layers: int = 1
    window_s: float = 3.0
    sample_hz: float = 10.0
    epochs: int = 14
    batch_size: int = 128
    lr: float = 5e-3
    windows_per_sequence: int = 4

    def __post_init__(self) -> None:
        if min(self.hidden, self.layers, self.epochs, self.batch_size, self.windows_per_sequence) < 1:
            raise ValueError("hidden, layers, epochs, batch_size and windows_per_sequence must be >= 1")
        if self.window_s <= 0 or self.sample_hz <= 0 or self.lr <= 0:
            raise ValueError("window_s, sample_hz and lr must be > 0")


@dataclass(frozen=True)
class TrainGuidanceConfig:
    """``jobs/train_guidance.py``: train the exercise classifier and quality LSTMs on real keypoints.

    Data: UI-PRMD Kinect (frontal projection), KERAAL BlazePose and the tfjs squat clip, all
    turned into the 16 shared angles as a camera would see them (``image2d``).

    Attributes:
        data_dir: the shared data folder.
        output_dir: weights, report JSON and plot go here.
        cache_dir: where the per-sequence angles are cached (``None``: ``output_dir/cache``).
        heldout_subjects: UI-PRMD subjects kept out of training (s02 is absent from the data).
        uiprmd_subjects: subjects to read (``None``: every subject present).
        uiprmd_episodes: episodes to read (``None``: all ten).
        classifier: the exercise classifier.
        quality: the per-exercise quality models.
        seed: random seed (torch and numpy).
        torch_threads: CPU threads torch may use (1 on a shared box: these LSTMs are small and
            two threads on a loaded 2-core machine ran ~10x slower than one).
        ship: also copy weights + report into ``physio_ray/guidance/weights/``.
    """

    data_dir: str = "../shared/data"
    output_dir: str = "outputs/train_guidance"
    cache_dir: str | None = None
    heldout_subjects: list[str] = field(default_factory=lambda: ["s09", "s10"])
    uiprmd_subjects: list[str] | None = None
    uiprmd_episodes: list[int] | None = None
    classifier: LstmTrainConfig = field(default_factory=LstmTrainConfig)
    quality: LstmTrainConfig = field(
        default_factory=lambda: LstmTrainConfig(hidden=24, window_s=4.0, epochs=100, batch_size=32, lr=3e-3)
    )
    seed: int = 0
    torch_threads: int = 1
    ship: bool = False

    def __post_init__(self) -> None:
        if "s02" in self.heldout_subjects:
            raise ValueError("heldout_subjects: s02 is not in the shared data (kept aside upstream); use e.g. s09, s10")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads={self.torch_threads} must be >= 1")
        for ep in self.uiprmd_episodes or []:
            if not 1 <= ep <= 10:
                raise ValueError(f"uiprmd_episodes has {ep}; UI-PRMD episodes are 1..10")


SWEPT_PARAMS = (
    "rest_shift_deg",
    "far_shift_deg",
    "phase_stability_ms",
    "min_rep_interval_ms",
    "one_euro_min_cutoff",
    "hysteresis_deg",
)
"""The parameters ``sweep_guidance`` grids over: list fields of :class:`SweepGuidanceConfig`."""


@dataclass(frozen=True)
class SweepGuidanceConfig:
    """``jobs/sweep_guidance.py``: Ray Tune grid over rep thresholds, stability and smoothing.

    Objective (minimised): repetition-count MAE over the labelled sequences plus
    ``false_feedback_weight`` x the share of *correct* executions on which the engine would
    say "go lower" (a shallow-attempt event): wrong feedback is worse than none.

    Attributes:
        data_dir: the shared data folder.
        output_dir: Tune results, the table (CSV) and the best config YAML go here.
        exercise: the exercise whose rule thresholds are swept.
        uiprmd_movements: UI-PRMD movements scored (their rules are shifted the same way).
        uiprmd_subjects: subjects scored.
        uiprmd_episodes: episodes scored.
        include_incorrect: also score the incorrect UI-PRMD executions as one rep each (off by
            default: a deliberately shallow squat is *not* a repetition by the seed's rule, the
            engine says "Go slightly lower." instead).
        view: ``frontal2d`` (what a camera sees) or ``world3d``.
        rest_shift_deg: grid of shifts added to the rule's rest (concentric) threshold.
        far_shift_deg: grid of shifts added to the rule's far (eccentric) threshold.
        phase_stability_ms: grid of phase stability durations (seed 8 frames = 240 ms).
        min_rep_interval_ms: grid of minimum rep intervals (seed 1200 ms).
        one_euro_min_cutoff: grid of One-Euro cutoffs (Hz).
        hysteresis_deg: grid of hysteresis margins.
        false_feedback_weight: weight of the false-feedback share in the objective.
        cpus_per_trial: CPUs reserved per trial.
        max_concurrent_trials: trials at once (``None``: as many as CPUs allow).
        ray: how the job connects to Ray.
    """

    data_dir: str = "../shared/data"
    output_dir: str = "outputs/sweep_guidance"
    exercise: str = "squat"
    uiprmd_movements: list[str] = field(default_factory=lambda: ["m01", "m05"])
    uiprmd_subjects: list[str] = field(default_factory=lambda: ["s01", "s03"])
    uiprmd_episodes: list[int] = field(default_factory=lambda: [1, 2, 3])
    include_incorrect: bool = False
    view: str = "frontal2d"
    rest_shift_deg: list[float] = field(default_factory=lambda: [0.0])
    far_shift_deg: list[float] = field(default_factory=lambda: [0.0])
    phase_stability_ms: list[float] = field(default_factory=lambda: [240.0])
    min_rep_interval_ms: list[float] = field(default_factory=lambda: [1200.0])
    one_euro_min_cutoff: list[float] = field(default_factory=lambda: [1.5])
    hysteresis_deg: list[float] = field(default_factory=lambda: [5.0])
    false_feedback_weight: float = 0.5
    cpus_per_trial: float = 1.0
    max_concurrent_trials: int | None = None
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if self.view not in ("frontal2d", "world3d"):
            raise ValueError(f"view={self.view!r} must be 'frontal2d' or 'world3d'")
        for name in SWEPT_PARAMS:
            if not getattr(self, name):
                raise ValueError(f"{name} needs at least one value")
        if any(v < 0 for v in self.phase_stability_ms + self.min_rep_interval_ms + self.hysteresis_deg):
            raise ValueError("phase_stability_ms, min_rep_interval_ms and hysteresis_deg values must be >= 0")
        if any(v <= 0 for v in self.one_euro_min_cutoff):
            raise ValueError("one_euro_min_cutoff values must be > 0")
        if self.false_feedback_weight < 0 or self.cpus_per_trial <= 0:
            raise ValueError("false_feedback_weight must be >= 0 and cpus_per_trial > 0")

    @property
    def n_trials(self) -> int:
        """Size of the grid."""
        return math.prod(len(getattr(self, name)) for name in SWEPT_PARAMS)


VIEW_SWEPT_PARAMS = ("rest_frac", "far_frac", "hysteresis_frac", "phase_stability_ms")
"""The parameters ``sweep_guidance_views`` grids over: list fields of :class:`SweepGuidanceViewsConfig`."""


@dataclass(frozen=True)
class SweepGuidanceViewsConfig:
    """``jobs/sweep_guidance_views.py``: Ray Tune grid over the view-invariant counter's thresholds.

    The material is the view sweep's *tuning* subjects only (UI-PRMD s01, s03-s06: every correct
    single repetition and a 10-rep sequence per subject and movement), rendered through virtual
    cameras with detector noise (``physio_ray.video.virtual_camera``), exactly as the benchmark
    renders them; held-out subjects are never read. Every rest-anchored cue rule takes its offsets
    as fractions of its movement's excursion (``physio_ray.guidance.view_tuning.scaled_rules``).

    Objective (maximised): exact count on 10-rep sequences + single repetitions counted 1 -
    3 x over-count rate, averaged over the movements (each movement weighs the same).

    Attributes:
        data_dir: the shared data folder.
        output_dir: Tune results, ``sweep_table.csv``, ``best_view_rules.yaml``.
        exercises: movements scored (default: every rest-anchored cue rule).
        yaws: camera yaws (degrees).
        pitches: camera pitches (degrees); single repetitions take one pitch per yaw in rotation.
        fps: frame rates, one per camera cell in rotation.
        seed: seed of the body sizes and the detector noise.
        rest_frac: grid of the rest threshold as a fraction of the excursion.
        far_frac: grid of the far threshold as a fraction of the excursion.
        hysteresis_frac: grid of the hysteresis margin as a fraction of the excursion.
        phase_stability_ms: grid of phase stability durations.
        cpus_per_trial: CPUs reserved per trial.
        max_concurrent_trials: trials at once (``None``: as many as CPUs allow).
        ray: how the job connects to Ray.
    """

    data_dir: str = "../shared/data"
    output_dir: str = "outputs/sweep_guidance_views"
    exercises: list[str] = field(default_factory=list)
    yaws: list[float] = field(default_factory=lambda: [0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0])
    pitches: list[float] = field(default_factory=lambda: [-20.0, -10.0, 0.0, 10.0, 20.0])
    fps: list[float] = field(default_factory=lambda: [15.0, 30.0, 100.0])
    seed: int = 0
    rest_frac: list[float] = field(default_factory=lambda: [0.4])
    far_frac: list[float] = field(default_factory=lambda: [0.55])
    hysteresis_frac: list[float] = field(default_factory=lambda: [0.1])
    phase_stability_ms: list[float] = field(default_factory=lambda: [240.0])
    cpus_per_trial: float = 1.0
    max_concurrent_trials: int | None = None
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        for name in (*VIEW_SWEPT_PARAMS, "yaws", "pitches", "fps"):
            if not getattr(self, name):
                raise ValueError(f"{name} needs at least one value")
        if any(not 0.0 < v < 1.0 for v in self.rest_frac + self.far_frac):
            raise ValueError("rest_frac and far_frac values must be strictly between 0 and 1")
        if any(v < 0 for v in self.hysteresis_frac + self.phase_stability_ms):
            raise ValueError("hysteresis_frac and phase_stability_ms values must be >= 0")
        if any(not 0.0 <= y <= 90.0 for y in self.yaws) or any(abs(p) > 45.0 for p in self.pitches):
            raise ValueError("yaws must lie in 0..90 and pitches in -45..45 degrees")
        if any(f <= 0 for f in self.fps) or self.cpus_per_trial <= 0:
            raise ValueError("fps values and cpus_per_trial must be > 0")

    @property
    def n_trials(self) -> int:
        """Size of the grid."""
        return math.prod(len(getattr(self, name)) for name in VIEW_SWEPT_PARAMS)
