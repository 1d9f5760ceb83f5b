"""The rest-anchored, view-invariant rep counter (issue 14): rest level, limb hold, two-sided
movements, the per-movement thresholds and the view sweep's tuning helpers. No Ray."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from physio_ray.guidance import count_reps
from physio_ray.guidance.config import GuidanceConfig, SweepGuidanceViewsConfig
from physio_ray.guidance.cues import CUE_NAMES, RestLevel, ViewCues
from physio_ray.guidance.exercise_rules import CUE_EXCURSION, CUE_RULES, VIEW_FRACTIONS, ExerciseTracker
from physio_ray.guidance.phases import PhaseRule, scaled_rule
from physio_ray.guidance.view_tuning import (
    CachedCues,
    Cell,
    best_per_exercise,
    count_cached,
    evaluate_view_params,
    score_counts,
    sweep_cells,
)
from physio_ray.video import view_sweep as vs
from physio_ray.video.virtual_camera import DetectorNoise, VirtualCamera, counter_input, render

NO_ANGLES = np.full(16, np.nan)


def _track(exercise: str, cue_rows: np.ndarray, fps: float = 30.0) -> ExerciseTracker:
    cfg = GuidanceConfig()
    tr = ExerciseTracker(exercise, cfg, view_invariant=True)
    t = np.arange(len(cue_rows)) * 1000.0 / fps
    for i, row in enumerate(cue_rows):
        tr.update(float(t[i]), 0.0 if i == 0 else 1000.0 / fps, NO_ANGLES, row)
    tr.finish(float(t[-1]))
    return tr


def _leg_rows(level: np.ndarray) -> np.ndarray:
    rows = np.full((len(level), len(CUE_NAMES)), np.nan)
    rows[:, CUE_NAMES.index("left_leg_height")] = level
    rows[:, CUE_NAMES.index("right_leg_height")] = level
    return rows


def _dips(rest: float, depth: float, n: int, fps: float = 30.0) -> np.ndarray:
    """``n`` smooth dips of ``depth`` below ``rest`` (3 s each, 2 s standing before and between)."""
    t = np.arange(0.0, 2.0 + 5.0 * n, 1.0 / fps)
    phase = np.clip((t - 2.0) % 5.0, 0.0, 3.0) / 3.0
    dip = np.where(t >= 2.0, np.sin(np.pi * phase) ** 2, 0.0)
    return rest - depth * dip


def test_rest_level_is_the_smoothed_rest_ward_extreme() -> None:
    lv = RestLevel(sign=1.0, window_ms=2000.0, tau_ms=0.0, max_gap_ms=500.0)
    assert [lv.push(t, v) for t, v in ((0, 90.0), (100, 60.0), (200, 88.0), (2150, 70.0))] == [90.0, 90.0, 90.0, 88.0]
    up = RestLevel(sign=-1.0, window_ms=2000.0, tau_ms=0.0, max_gap_ms=500.0)  # arm elevation rests low
    assert [up.push(t, v) for t, v in ((0, 30.0), (100, 90.0), (200, 25.0))] == [30.0, 30.0, 25.0]
    mid = RestLevel(sign=1.0, window_ms=5000.0, tau_ms=0.0, max_gap_ms=500.0, centre=True)
    pushed = [mid.push(t, v) for t, v in ((0, 0.0), (100, 20.0), (200, 21.0), (300, 1.0), (400, 0.5), (500, 22.0))]
    assert pushed == [0.0, 0.0, 20.5, 0.5, 0.5, 0.5]  # the most crowded 3-unit band (the lower on ties)


def test_a_noisy_first_frame_does_not_set_the_level() -> None:
    """Before the smoothing has run for tau, nothing enters the window (it used to hold a first-frame spike)."""
    lv = RestLevel(sign=1.0, window_ms=20_000.0, tau_ms=600.0, max_gap_ms=500.0)
    levels = [lv.push(t, 99.0 if t == 0 else 85.0) for t in np.arange(0.0, 3000.0, 33.0)]
    assert levels[0] == 99.0 and levels[-1] < 91.0  # the smoothing's residue only (99 with no warm-up)


@pytest.mark.parametrize("rest", [78.0, 86.0, 92.0])
def test_the_same_dips_count_from_any_rest_level(rest: float) -> None:
    """People (and views) differ in their standing leg height; the anchored rule counts the excursion."""
    assert _track("deep_squat", _leg_rows(_dips(rest, 40.0, 4))).reps == 4
    assert _track("deep_squat", _leg_rows(_dips(rest, 12.0, 4))).reps == 0  # too shallow: no rep


def test_a_recording_that_starts_mid_repetition_counts_it() -> None:
    """The level's bound: a clip that starts at the bottom of a deep repetition (UI-PRMD Vicon s01's
    first hurdle step does) counts it; without the bound its first level would be the bottom."""
    level = _dips(88.0, 55.0, 3)[105:]  # starts at the bottom of the first dip
    assert level[0] < 40.0
    assert _track("deep_squat", _leg_rows(level)).reps == 3
    unbounded = dataclasses.replace(CUE_RULES["deep_squat"], rest_bound=None)
    tr = ExerciseTracker("deep_squat", GuidanceConfig(), view_invariant=True, cue_rule=unbounded)
    for i, row in enumerate(_leg_rows(level)):
        tr.update(i * 1000.0 / 30, 0.0 if i == 0 else 1000.0 / 30, NO_ANGLES, row)
    tr.finish((len(level) - 1) * 1000.0 / 30)
    assert tr.reps == 2


def test_a_lost_hand_keeps_its_last_value() -> None:
    """A hand raised out of the top of the picture must not read as a return to rest."""
    f = np.zeros((17, 4))
    f[:, 3] = 1.0
    pts = {0: (0.5, 0.15), 5: (0.57, 0.25), 6: (0.43, 0.25), 7: (0.57, 0.37), 8: (0.43, 0.37), 9: (0.57, 0.49),
           10: (0.43, 0.49), 11: (0.55, 0.45), 12: (0.45, 0.45), 13: (0.55, 0.65), 14: (0.45, 0.65),
           15: (0.55, 0.85), 16: (0.45, 0.85)}  # fmt: skip
    for i, (x, y) in pts.items():
        f[i, :2] = (x, y)
    vc = ViewCues(hold_ms=2000.0)
    arm = CUE_NAMES.index("left_arm_elev")
    for k in range(10):
        vc.push(k * 33.0, f)
    up = f.copy()
    up[7, :2], up[9, :2] = (0.57, 0.13), (0.57, 0.01)  # left arm straight up
    for t in np.arange(400.0, 1400.0, 33.0):
        cues, _ = vc.push(float(t), up)
    assert cues[arm] > 150.0
    lost = up.copy()
    lost[9, 3] = 0.0  # the wrist leaves the picture
    assert vc.push(1433.0, lost)[0][arm] == pytest.approx(cues[arm])
    assert math.isnan(vc.push(4000.0, lost)[0][arm])  # after the hold: not seen


def _tilt_rows(tilt: np.ndarray) -> np.ndarray:
    rows = np.full((len(tilt), len(CUE_NAMES)), np.nan)
    rows[:, CUE_NAMES.index("side_tilt")] = tilt
    return rows


def test_two_sided_movement_needs_one_excursion_to_each_side() -> None:
    t = np.arange(0.0, 30.0, 1.0 / 30)
    # bend left, rest, bend right, rest ... (a flank stretch), around a rest tilt of 3 deg
    cycle = np.interp(t % 6.0, [0, 0.5, 1.5, 2.5, 3.0, 3.5, 4.5, 5.5, 6.0], [0, 0, 20, 0, 0, 0, -20, 0, 0])
    assert _track("flank_stretch", _tilt_rows(3.0 + cycle)).reps == 5
    # the same bends, always to one side: never a full repetition
    one_side = np.interp(t % 3.0, [0, 0.5, 1.5, 2.5, 3.0], [0, 0, 20, 0, 0])
    assert _track("flank_stretch", _tilt_rows(3.0 + one_side)).reps == 0


def test_a_swing_straight_through_rest_counts_both_sides() -> None:
    """A trunk rotation from one side straight to the other (no pause at rest) is one repetition."""
    t = np.arange(0.0, 24.0, 1.0 / 30)
    swing = np.interp(t % 6.0, [0, 1, 2, 3, 4, 5, 6], [0, 0, 45, 45, -45, 0, 0])
    rows = np.full((len(t), len(CUE_NAMES)), np.nan)
    rows[:, CUE_NAMES.index("torso_heading")] = -60.0 + swing  # a camera 60 deg to the side
    assert _track("torso_rotation", rows).reps == 4


def test_shipped_rules_are_the_chosen_fractions_of_the_measured_excursions() -> None:
    anchored = {ex for ex, r in CUE_RULES.items() if r.anchor == "rest"}
    assert anchored == set(CUE_EXCURSION) == set(VIEW_FRACTIONS)
    for ex in anchored:
        r = CUE_RULES[ex]
        expected = scaled_rule(r, CUE_EXCURSION[ex], *VIEW_FRACTIONS[ex])
        assert (r.rest_deg, r.far_deg, r.hysteresis) == (expected.rest_deg, expected.far_deg, expected.hysteresis)
        assert r.rest_bound is not None
    deep = CUE_RULES["deep_squat"]
    assert (deep.rest_deg, deep.far_deg, deep.hysteresis, deep.rest_bound) == (-17.9, -20.2, 2.2, 60.0)
    with pytest.raises(ValueError, match="rest_frac"):
        scaled_rule(deep, 40.0, 0.6, 0.5, 0.1)
    with pytest.raises(ValueError, match="must 'increase'"):
        PhaseRule("x", ("side_tilt",), "mean", "decrease", 5, 1, anchor="centre")


def test_sweep_cells_are_deterministic_and_rotate() -> None:
    a = sweep_cells(3, "sequence", (0, 30), (-20, 0, 20), (15.0, 30.0, 100.0), seed=1)
    assert a == sweep_cells(3, "sequence", (0, 30), (-20, 0, 20), (15.0, 30.0, 100.0), seed=1)
    assert len(a) == 6 and {c.fps for c in a} == {15.0, 30.0, 100.0}
    assert all(0.4 <= c.body_fraction <= 0.9 for c in a)
    single = sweep_cells(3, "single", (0, 30), (-20, 0, 20), (30.0,))
    assert len(single) == 2 and single[0].pitch != single[1].pitch
    assert len(sweep_cells(3, "single", (0, 30), (-20, 0, 20), (15.0, 30.0), full=True)) == 12


def _cached(exercise: str, kind: str, expected: int, rows: np.ndarray) -> CachedCues:
    t = np.arange(len(rows)) * 1000.0 / 30.0
    return CachedCues("x", exercise, kind, "s01", expected, Cell(0, 0, 30, 0.6, 0), t, rows,
                      np.zeros(len(rows), dtype=bool))  # fmt: skip


def test_view_objective_scores_each_movement() -> None:
    seq = _cached("deep_squat", "sequence", 10, _leg_rows(_dips(86.0, 40.0, 10)))
    one = _cached("deep_squat", "single", 1, _leg_rows(_dips(86.0, 40.0, 1)))
    lunge = _cached("side_lunge", "sequence", 10, _leg_rows(_dips(86.0, 3.0, 10)))  # far too shallow
    assert count_cached(seq, GuidanceConfig()) == 10 and count_cached(lunge, GuidanceConfig()) == 0
    m = score_counts([seq, one, lunge], [10, 1, 0])
    assert (m["seq_exact"], m["single_one"], m["n_seq"], m["n_single"]) == (0.5, 1.0, 2, 1)
    excursion = {"deep_squat": 40.0, "side_lunge": 12.0}
    params = {"rest_frac": 0.5, "far_frac": 0.6, "hysteresis_frac": 0.1, "phase_stability_ms": 240.0}
    res = evaluate_view_params(params, [seq, one, lunge], excursion)
    assert res["obj_deep_squat"] == 2.0 and res["obj_side_lunge"] == 0.0 and res["objective"] == 1.0
    bad = evaluate_view_params({**params, "far_frac": 0.4}, [seq], excursion)
    assert bad["objective"] == -math.inf
    import pandas as pd

    table = pd.DataFrame([res | {"rest_frac": 0.3}, res, bad])
    best = best_per_exercise(table)
    assert best["deep_squat"]["rest_frac"] == 0.3 and best["side_lunge"]["objective"] == 0.0


def test_view_sweep_config_validates() -> None:
    assert SweepGuidanceViewsConfig().n_trials == 1
    with pytest.raises(ValueError, match="rest_frac"):
        SweepGuidanceViewsConfig(rest_frac=[1.2])
    with pytest.raises(ValueError, match="yaws"):
        SweepGuidanceViewsConfig(yaws=[120.0])


def test_held_out_subject_counts_ten_from_every_side(data_dir) -> None:
    """Goal test (issue 14): held-out s08 (never used for tuning), detector noise, yaw 0-90 with the
    camera up to 20 deg below or above: ten deep squats, inline and side lunges and shoulder
    abductions count exactly 10 (observed; the angle-only counter gets 0-10 on the same streams)."""
    exercises = ["deep_squat", "inline_lunge", "side_lunge", "shoulder_abduction"]
    items = vs.sweep_items(vs.load_clips(data_dir, subjects=["s08"], exercises=exercises), singles=False)
    assert {it.split for it in items} == {"heldout"} and len(items) == 4
    for it in items:
        for yaw, pitch in ((0, 0), (15, -10), (30, -20), (45, 10), (60, 0), (75, 0), (90, 0)):
            cam = VirtualCamera(yaw_deg=yaw, pitch_deg=pitch, body_fraction=0.7)
            r = render(it.points, it.fps, cam, 30.0, DetectorNoise(), 5)
            kp = counter_input(r.keypoints, r.visibility)
            assert count_reps(kp, 30.0, it.exercise, image_size=r.image_size) == 10, (it.name, yaw, pitch)
