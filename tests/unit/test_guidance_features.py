"""Guidance engine pieces: config durations, keypoint validation, phases, hysteresis, rep timing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from physio_ray.guidance import GuidanceConfig, NotCountableError, UnknownExerciseError, count_reps
from physio_ray.guidance.config import REFERENCE_FPS, frames_to_ms
from physio_ray.guidance.exercise_rules import RULES, ExerciseTracker
from physio_ray.guidance.features import as_xyzv, frame_angles_batch
from physio_ray.guidance.phases import MovementPhase, PhaseTracker
from physio_ray.guidance.synthetic import knee_profile, squat_frame, squat_stream
from physio_ray.video.angles import ANGLE_NAMES

KNEE = ANGLE_NAMES.index("left_knee")


def test_seed_frame_counts_become_durations_at_the_reference_rate() -> None:
    cfg = GuidanceConfig()
    assert REFERENCE_FPS == 33.3
    assert cfg.confirmation_ms == 900.0 and frames_to_ms(30) == pytest.approx(900.9, abs=0.1)
    assert cfg.belief_stability_ms == 450.0 and cfg.phase_stability_ms == 240.0
    assert (cfg.confirmation_threshold, cfg.contradiction_threshold) == (0.90, 0.85)
    assert (cfg.min_feedback_interval_ms, cfg.min_rep_interval_ms) == (2000.0, 1200.0)
    assert (cfg.quality_confidence_threshold, cfg.max_entropy) == (0.65, 0.5)
    at40 = GuidanceConfig.from_frame_counts(fps=40.0)
    assert (at40.confirmation_ms, at40.belief_stability_ms, at40.phase_stability_ms) == (750.0, 375.0, 200.0)


@pytest.mark.parametrize(
    "field,value", [("confirmation_threshold", 1.2), ("prior_weight", 0.3), ("min_rep_interval_ms", -1.0)]
)
def test_config_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        GuidanceConfig(**{field: value})


def test_as_xyzv_channel_meaning_and_errors() -> None:
    coco = np.zeros((17, 3))
    coco[:, 2] = 0.4
    assert as_xyzv(coco)[0, :, 3].tolist() == [0.4] * 17  # MoveNet: third channel is the score
    blaze = np.full((33, 3), -0.2)
    out = as_xyzv(blaze)
    assert np.all(out[0, :, 3] == 1.0) and np.all(out[0, :, 2] == -0.2)  # MediaPipe: third is z
    assert np.all(as_xyzv(np.full((33, 3), 0.7), third="score")[0, :, 3] == 0.7)
    with pytest.raises(ValueError, match="18 points"):
        as_xyzv(np.zeros((18, 3)))
    with pytest.raises(ValueError, match="5 channels"):
        as_xyzv(np.zeros((17, 5)))
    bad = coco.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(first at index \(0, 3, 1\)\)"):
        as_xyzv(bad)
    lost = coco.copy()
    lost[3, 0] = np.nan
    assert as_xyzv(lost, allow_missing=True)[0, 3, 3] == 0.0  # offline: undetected -> not visible


def test_features_measure_the_synthetic_angles_and_hide_low_scores() -> None:
    cfg = GuidanceConfig(smoothing=False)
    frames = np.stack([squat_frame(100.0), squat_frame(100.0, score=0.1)])
    angles = frame_angles_batch(frames, np.array([0.0, 33.0]), cfg)
    assert angles[0, KNEE] == pytest.approx(100.0, abs=1e-4)  # float32 angles
    assert math.isnan(angles[1, KNEE])  # score 0.1 < min_visibility 0.3


def test_phase_thresholds_follow_the_seed_for_the_squat() -> None:
    rule = RULES["squat"]
    assert (rule.rest_deg, rule.far_deg, rule.secondary_rest_deg) == (150, 110, 150)
    t = PhaseTracker(rule, hysteresis_deg=0.0)
    assert t.update(160.0, 160.0) == MovementPhase.CONCENTRIC
    assert t.update(160.0, 140.0) == MovementPhase.TRANSITION  # hip not > 150: not standing yet
    assert t.update(130.0, 170.0) == MovementPhase.TRANSITION
    assert t.update(105.0, 90.0) == MovementPhase.ECCENTRIC
    assert t.update(math.nan) == MovementPhase.IDLE


def test_every_listed_exercise_has_a_rule() -> None:
    from physio_ray.video.exercises import EXERCISES

    assert set(EXERCISES) <= set(RULES)
    with pytest.raises(NotCountableError, match="shoulder_rotation"):
        count_reps(np.zeros((10, 17, 3)), 30.0, "shoulder_rotation")
    with pytest.raises(UnknownExerciseError, match="burpee"):
        count_reps(np.zeros((10, 17, 3)), 30.0, "burpee")


def _angles_stream(knee: np.ndarray) -> np.ndarray:
    angles = np.full((knee.size, 16), np.nan)
    angles[:, ANGLE_NAMES.index("left_knee")] = angles[:, ANGLE_NAMES.index("right_knee")] = knee
    angles[:, ANGLE_NAMES.index("left_hip")] = angles[:, ANGLE_NAMES.index("right_hip")] = np.maximum(knee, 160)
    return angles


def _run(knee: np.ndarray, fps: float, cfg: GuidanceConfig | None = None) -> ExerciseTracker:
    cfg = cfg or GuidanceConfig()
    tr = ExerciseTracker("squat", cfg)
    angles = _angles_stream(knee)
    for i in range(knee.size):
        tr.update(i * 1000.0 / fps, 0.0 if i == 0 else 1000.0 / fps, angles[i])
    return tr


def test_jitter_around_both_thresholds_never_counts() -> None:
    rng = np.random.default_rng(0)
    for centre in (150.0, 110.0):
        knee = centre + rng.uniform(-4.0, 4.0, 600)  # 20 s at 30 fps, inside the 5 deg hysteresis
        assert _run(knee, 30.0).reps == 0


def test_a_dip_shorter_than_the_stability_time_is_not_a_rep() -> None:
    fps = 30.0
    knee = np.full(150, 170.0)
    knee[60:66] = 100.0  # 200 ms at the bottom < 240 ms
    assert _run(knee, fps).reps == 0
    knee[60:70] = 100.0  # 333 ms at the bottom
    assert _run(knee, fps).reps == 1


def test_two_reps_closer_than_the_minimum_interval_count_once() -> None:
    t = np.arange(0, 6.0, 1 / 30)
    fast = knee_profile(t, rep_s=0.9, n_reps=2, lead_s=1.0)  # two reps 0.9 s apart
    tr = _run(fast, 30.0)
    kinds = [e.kind for e in tr.movement.events]
    assert tr.reps == 1 and kinds == ["rep", "rep_too_soon"]
    slow = knee_profile(t, rep_s=1.5, n_reps=2, lead_s=1.0)
    assert _run(slow, 30.0).reps == 2


@pytest.mark.parametrize("fps", [5.0, 12.0, 30.0, 60.0])
def test_counting_is_the_same_at_any_frame_rate(fps: float) -> None:
    _, kp = squat_stream(fps, 14.0)
    assert count_reps(kp, fps) == 3
    _, noisy = squat_stream(fps, 14.0, noise=0.002, seed=1)  # ~1 px jitter on a 480 px picture
    assert count_reps(noisy, fps) == 3


def test_shallow_attempt_is_reported_and_not_counted() -> None:
    t = np.arange(0, 8.0, 1 / 30)
    knee = knee_profile(t, rep_s=2.5, n_reps=2, depth_deg=125.0, lead_s=1.0)
    tr = _run(knee, 30.0)
    assert tr.reps == 0 and [e.kind for e in tr.movement.events] == ["shallow", "shallow"]


def test_a_partial_rep_at_the_end_is_not_counted() -> None:
    t = np.arange(0, 8.0, 1 / 30)  # the third rep stops on its way up
    knee = knee_profile(t, rep_s=2.5, n_reps=3, lead_s=1.0)
    assert knee[-1] < 150
    assert _run(knee, 30.0).reps == 2
