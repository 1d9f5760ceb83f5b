"""Movement-driven keyframes and features, on synthetic signals and real landmark files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physio_ray.video.angles import ANGLE_INDEX, ANGLE_NAMES
from physio_ray.video.config import KeyframeConfig
from physio_ray.video.exercises import (
    EXERCISES,
    KERAAL_EXERCISES,
    UIPRMD_MOVEMENTS,
    exercise_for_source,
    get_exercise,
    keraal_exercise,
    uiprmd_exercise,
)
from physio_ray.video.keyframes import keyframes_for_sequence, select_keyframes
from physio_ray.video.landmark_files import read_keraal, read_tfjs
from physio_ray.video.signal import find_peaks
from physio_ray.video.uiprmd import read_uiprmd
from tests.conftest import shared_path


def _squat_angles(t: np.ndarray, knee: np.ndarray) -> np.ndarray:
    a = np.full((t.size, len(ANGLE_NAMES)), 170.0)
    a[:, ANGLE_INDEX["left_knee"]] = knee
    a[:, ANGLE_INDEX["right_knee"]] = knee
    a[:, ANGLE_INDEX["trunk_lean"]] = 5 + (170 - knee) / 4
    return a


# ----------------------------------------------------------------------------- find_peaks


def test_find_peaks_prominence_and_distance() -> None:
    x = np.array([0, 5, 0, 30, 0, 4, 0, 25, 18, 22, 0], dtype=float)  # 22 stands out by 4 only
    assert find_peaks(x, prominence=10, distance=1) == [(3, 30.0), (7, 25.0)]
    # within 5 frames only the more prominent peak survives
    assert find_peaks(x, prominence=10, distance=5) == [(3, 30.0)]
    assert find_peaks(np.array([0, 1, 1, 1, 0], dtype=float), 0.5, 1) == [(2, 1.0)]  # plateau: middle


def test_find_peaks_edge_drop() -> None:
    x = np.array([0, 80, 80, 80, 80, 10, 12, 25], dtype=float)  # ends rising out of a dip
    assert find_peaks(-x, prominence=20, distance=1) == []  # the cut side caps it at 15
    assert find_peaks(-x, prominence=20, distance=1, edge_drop=5) == [(5, 70.0)]


# ----------------------------------------------------------------------------- synthetic


def test_bottoms_follow_the_movement_not_fixed_quarters() -> None:
    fps = 30.0
    t = np.arange(0, 10, 1 / fps)
    # two squats at irregular times: bottoms at 1.5 s and 7.0 s, standing in between
    knee = 170 - 80 * np.exp(-(((t - 1.5) / 0.5) ** 2)) - 80 * np.exp(-(((t - 7.0) / 0.6) ** 2))
    res = select_keyframes(_squat_angles(t, knee), fps, exercise="squat")
    kinds = dict(zip(res.times, res.kinds, strict=True))
    bottoms = [tm for tm, k in kinds.items() if k == "bottom"]
    assert bottoms == pytest.approx([1.5, 7.0], abs=0.05)
    assert res.kinds[0] == "start" and res.kinds[-1] == "end" and res.indices[-1] == t.size - 1
    assert "top" in res.kinds and res.kinds.count("transition") == 4
    # transitions are about half-way down / up (between 90 and 170)
    for idx, kind in zip(res.indices, res.kinds, strict=True):
        if kind == "transition":
            assert 115 < knee[idx] < 145
    quarters = {round(t.size * q) for q in (0.25, 0.5, 0.75)}
    assert not quarters & set(res.indices)
    f = res.features
    assert f["rep_count"] == 2 and f["partial_reps"] == 0
    assert f["depth_deg"] == pytest.approx(90.0, abs=0.5)
    assert f["tempo_s_per_rep"] == pytest.approx(5.5, abs=0.05)
    assert f["trunk_lean_at_working_deg"] == pytest.approx(25.0, abs=0.5)
    json.dumps(f)  # JSON-safe


def test_max_keyframes_cap_keeps_start_end_and_bottoms() -> None:
    fps = 10.0
    t = np.arange(0, 30, 1 / fps)
    knee = 130 + 40 * np.cos(2 * np.pi * t / 3)  # 10 reps
    res = select_keyframes(_squat_angles(t, knee), fps, KeyframeConfig(max_keyframes=8), exercise="squat")
    assert len(res.indices) == 8 and res.indices == sorted(res.indices)
    assert res.kinds[0] == "start" and res.kinds[-1] == "end"
    assert res.kinds.count("bottom") == 6
    assert res.features["rep_count"] == 10  # features still see every rep


def test_flat_signal_gives_start_and_end_only() -> None:
    t = np.arange(0, 5, 0.1)
    res = select_keyframes(_squat_angles(t, np.full(t.size, 170.0)), 10.0, exercise="squat")
    assert res.kinds == ["start", "end"] and res.features["rep_count"] == 0


def test_arm_raise_tops_are_working_extremes() -> None:
    fps = 30.0
    t = np.arange(0, 6, 1 / fps)
    a = np.full((t.size, 16), 170.0)
    a[:, ANGLE_INDEX["right_shoulder"]] = 20 + 70 * (1 - np.cos(2 * np.pi * t / 3))  # 2 raises to 160
    a[:, ANGLE_INDEX["left_shoulder"]] = 15
    res = select_keyframes(a, fps, exercise="shoulder_abduction")
    assert res.features["driving_angle"] == "right_shoulder"
    assert res.features["working_kind"] == "top" and res.features["rep_count"] == 2
    assert [tm for tm, k in zip(res.times, res.kinds, strict=True) if k == "top"] == pytest.approx([1.5, 4.5], abs=0.05)
    assert res.features["depth_deg"] is None and res.features["best_extreme_deg"] == pytest.approx(160, abs=0.5)


def test_unmeasurable_driving_angle_raises() -> None:
    a = np.full((20, 16), np.nan)
    with pytest.raises(ValueError, match="measurable"):
        select_keyframes(a, 30.0, exercise="squat")


# ----------------------------------------------------------------------------- real landmark files


def test_tfjs_squat_landmarks_bottoms_and_features() -> None:
    seq = read_tfjs(shared_path("tfjs-pose-squats", "pose_squats.full.json"))
    for exercise in ("squat", None):  # with the catalogue entry and fully automatic
        res = keyframes_for_sequence(seq.keypoints, seq.fps, seq.coord_space, seq.aspect, exercise=exercise)
        bottoms = [tm for tm, k in zip(res.times, res.kinds, strict=True) if k == "bottom"]
        assert bottoms == pytest.approx([2.0, 6.8, 11.8], abs=0.01)
        assert res.features["rep_count"] == 2 and res.features["partial_reps"] == 1
    res = keyframes_for_sequence(seq.keypoints, seq.fps, seq.coord_space, seq.aspect, exercise="squat")
    assert res.indices == [0, 6, 10, 16, 25, 31, 34, 40, 48, 55, 59, 64]
    f = res.features
    assert f["driving_angle"] == "mean(left_knee,right_knee)"
    assert f["rep_extreme_deg"] == [99.6, 91.0, 89.4] and f["depth_deg"] == 89.4
    assert f["rest_deg"] == 170.2 and f["range_of_motion_deg"] == 87.0 and f["tempo_s_per_rep"] == 4.9
    assert f["knee_valgus_drop"] == pytest.approx(-0.231, abs=1e-3)  # knees go out, not in


def test_uiprmd_single_repetition() -> None:
    seq = read_uiprmd(
        shared_path("ui-prmd", "Segmented_Movements", "Kinect", "Positions", "m01_s01_e01_positions.txt.gz")
    )
    res = keyframes_for_sequence(seq.keypoints, seq.fps, seq.coord_space, exercise="deep_squat")
    assert list(zip(res.indices, res.kinds, strict=True)) == [
        (0, "start"),
        (21, "transition"),
        (39, "bottom"),
        (57, "transition"),
        (72, "end"),
    ]
    assert res.features["rep_count"] == 1 and res.features["depth_deg"] == pytest.approx(55.1, abs=0.05)


def test_keraal_flank_stretch_has_one_top() -> None:
    seq = read_keraal(shared_path("keraal", "G3-BP-ELK-P1T1-Unknown-C-0.json"))
    res = keyframes_for_sequence(seq.keypoints, seq.fps, seq.coord_space, seq.aspect, exercise="flank_stretch")
    assert res.kinds.count("top") == 1 and res.features["driving_angle"] == "right_shoulder"
    assert res.features["working_extreme"] == "max" and res.features["best_extreme_deg"] > 150


# ----------------------------------------------------------------------------- catalogue


def test_exercise_catalogue() -> None:
    assert sorted(UIPRMD_MOVEMENTS) == [f"m{i:02d}" for i in range(1, 11)]
    assert UIPRMD_MOVEMENTS["m01"] == "deep_squat" and UIPRMD_MOVEMENTS["m10"] == "shoulder_scaption"
    assert KERAAL_EXERCISES == {"CTK": "hiding_face", "ELK": "flank_stretch", "RTK": "torso_rotation"}
    assert "squat" in EXERCISES and get_exercise("squat").display_name == "bodyweight squat"
    assert exercise_for_source("uiprmd", "m05_s03_e01_positions_inc.txt.gz") == "sit_to_stand"
    assert exercise_for_source("keraal", "G3-BP-RTK-P1T1-Unknown-C-0.json") == "torso_rotation"
    assert exercise_for_source("video", "pose_squats.mp4") == "squat"
    assert exercise_for_source("video", "clip.mp4") is None
    assert uiprmd_exercise("m07") == "shoulder_abduction" and keraal_exercise("ELK") == "flank_stretch"
    with pytest.raises(KeyError, match="deep_squat"):
        get_exercise("deep_sqat")
    with pytest.raises(KeyError, match="m11"):
        uiprmd_exercise("m11")
