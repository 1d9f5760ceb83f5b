"""Readers on the real data: UI-PRMD forward kinematics, KERAAL, tfjs and MoveNet JSON."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from physio_ray.video.angles import ANGLE_INDEX, joint_angles
from physio_ray.video.landmark_files import read_keraal, read_movenet, read_tfjs
from physio_ray.video.layout import COCO
from physio_ray.video.uiprmd import (
    UIPRMD_PARENT,
    angles_path_for,
    forward_kinematics,
    parse_uiprmd_name,
    read_uiprmd,
)
from tests.conftest import shared_path


def _kinect(movement: str, subject: str, episode: int, correct: bool = True) -> Path:
    folder = "Segmented_Movements" if correct else "Incorrect_Segmented_Movements"
    suffix = "" if correct else "_inc"
    name = f"{movement}_{subject}_e{episode:02d}_positions{suffix}.txt.gz"
    return shared_path("ui-prmd", folder, "Kinect", "Positions", name)


def _load_raw(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",").reshape(-1, 22, 3)


def _min_knee(path: Path) -> float:
    a = joint_angles(read_uiprmd(path).keypoints, "world3d")
    return float(np.nanmin((a[:, ANGLE_INDEX["left_knee"]] + a[:, ANGLE_INDEX["right_knee"]]) / 2))


# ----------------------------------------------------------------------------- UI-PRMD


def test_uiprmd_paths_and_names() -> None:
    p = _kinect("m01", "s01", 3, correct=False)
    assert angles_path_for(p).name == "m01_s01_e03_angles_inc.txt.gz"
    assert angles_path_for(p).parent.name == "Angles" and angles_path_for(p).is_file()
    assert parse_uiprmd_name(p) == {"movement": "m01", "subject": "s01", "episode": 3, "correct": False}
    with pytest.raises(ValueError, match="positions"):
        angles_path_for("clip.mp4")


def test_fk_bone_lengths_constant_and_equal_to_offsets() -> None:
    p = _kinect("m01", "s01", 1)
    offsets = _load_raw(p)
    joints = forward_kinematics(offsets, _load_raw(angles_path_for(p)))
    for j in range(1, 22):
        bone = np.linalg.norm(joints[:, j] - joints[:, UIPRMD_PARENT[j]], axis=-1)
        np.testing.assert_allclose(bone, np.linalg.norm(offsets[:, j], axis=-1), rtol=1e-9, atol=1e-9)
    # long bones stay within Kinect's own noise (< 10%) and have human lengths (cm)
    for child, (lo, hi) in {8: (20, 35), 9: (20, 35), 15: (30, 45), 16: (30, 45), 19: (30, 45), 20: (30, 45)}.items():
        bone = np.linalg.norm(joints[:, child] - joints[:, UIPRMD_PARENT[child]], axis=-1)
        assert bone.std() < 0.1 * bone.mean() and lo < bone.mean() < hi


def test_fk_anatomy_deep_squat() -> None:
    seq = read_uiprmd(_kinect("m01", "s01", 1))
    kp = seq.keypoints
    assert kp.shape == (73, 17, 4) and seq.fps == 30.0 and seq.coord_space == "world3d"
    y = kp[..., 1]  # world3d: y down, metres
    hips = (y[:, COCO["left_hip"]] + y[:, COCO["right_hip"]]) / 2
    ankles = (y[:, COCO["left_ankle"]] + y[:, COCO["right_ankle"]]) / 2
    assert np.all(ankles - hips > 0.15)  # feet below the hips, even at the bottom (min 0.197 m)
    assert np.all(y[:, COCO["nose"]] < y[:, COCO["left_shoulder"]])  # head above the shoulders
    assert np.all(y[:, COCO["left_wrist"]] < y[:, COCO["nose"]])  # the dowel is held overhead
    # subject faces the camera: their left appears on the viewer's right (+x)
    assert np.all(kp[:, COCO["left_hip"], 0] > kp[:, COCO["right_hip"], 0])
    # feet stay planted during the squat (the FK rotation order was chosen by this)
    for ankle in ("left_ankle", "right_ankle"):
        assert np.linalg.norm(kp[:, COCO[ankle], :3].std(axis=0)) < 0.04  # 3.1-3.6 cm; next-best convention: 14.8 cm
    # hands keep the dowel's width
    grip = np.linalg.norm(kp[:, COCO["left_wrist"], :3] - kp[:, COCO["right_wrist"], :3], axis=-1)
    assert grip.std() < 0.02 and 0.8 < grip.mean() < 1.1
    assert np.all(kp[:, COCO["left_eye"], 3] == 0) and np.all(kp[:, COCO["nose"], 3] == 1)
    assert hips.max() - hips.min() == pytest.approx(0.598, abs=0.005)  # squat depth in metres


def test_deep_squat_correct_is_deeper_than_incorrect() -> None:
    assert _min_knee(_kinect("m01", "s01", 1)) == pytest.approx(55.14, abs=0.05)
    correct = [_min_knee(_kinect("m01", "s09", e)) for e in range(1, 11)]
    incorrect = [_min_knee(_kinect("m01", "s09", e, correct=False)) for e in range(1, 11)]
    assert np.median(correct) == pytest.approx(50.54, abs=0.05)
    assert np.median(incorrect) == pytest.approx(94.21, abs=0.05)
    assert max(correct) < min(incorrect)  # every correct squat of s09 is deeper than every incorrect one


def test_shoulder_abduction_correct_raises_higher() -> None:
    def peak(path: Path) -> float:
        a = joint_angles(read_uiprmd(path).keypoints, "world3d")
        return float(np.nanmax(a[:, ANGLE_INDEX["right_shoulder"]]))

    assert peak(_kinect("m07", "s01", 1)) > 145 > 130 > peak(_kinect("m07", "s01", 1, correct=False))


def test_uiprmd_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_uiprmd(tmp_path / "m01_s01_e01_positions.txt")
    bad = tmp_path / "Positions" / "m01_s01_e01_positions.txt"
    bad.parent.mkdir()
    bad.write_text("1,2,3\n4,5,6\n")
    (tmp_path / "Angles").mkdir()
    (tmp_path / "Angles" / "m01_s01_e01_angles.txt").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="66"):
        read_uiprmd(bad)


def test_uiprmd_nan_rows_become_invisible(tmp_path: Path) -> None:
    src = _kinect("m01", "s01", 1)
    pos = np.loadtxt(src, delimiter=",")
    pos[5] = np.nan
    p = tmp_path / "Positions" / "m01_s01_e01_positions.txt.gz"
    p.parent.mkdir()
    with gzip.open(p, "wt") as fh:
        np.savetxt(fh, pos, delimiter=",")
    kp = read_uiprmd(p, angles_path_for(src)).keypoints
    assert np.all(kp[5, :, 3] == 0) and np.all(kp[4, 5:, 3] == 1)


# ----------------------------------------------------------------------------- KERAAL


@pytest.mark.parametrize(("code", "frames"), [("CTK", 196), ("ELK", 193), ("RTK", 194)])
def test_keraal_reader(code: str, frames: int) -> None:
    seq = read_keraal(shared_path("keraal", f"G3-BP-{code}-P1T1-Unknown-C-0.json"))
    assert seq.keypoints.shape == (frames, 17, 4)
    assert seq.fps == 30.0 and seq.coord_space == "image3d" and seq.aspect == pytest.approx(16 / 9)
    assert np.all(seq.keypoints[..., 3] == 1.0)
    assert np.all((seq.keypoints[..., :2] > 0) & (seq.keypoints[..., :2] < 1))


def test_keraal_first_frame_values() -> None:
    kp = read_keraal(shared_path("keraal", "G3-BP-CTK-P1T1-Unknown-C-0.json")).keypoints
    np.testing.assert_allclose(kp[0, COCO["nose"], :3], [0.58438289, 0.51302528, -0.17510796], rtol=1e-6)
    np.testing.assert_allclose(kp[0, COCO["left_hip"], :2], [0.58863163, 0.70666742], rtol=1e-6)
    # hiding face: both arms come up from the sides to the face
    a = joint_angles(kp, "image3d", aspect=16 / 9)
    assert np.nanmax(a[:, ANGLE_INDEX["left_shoulder"]]) > 150 > 30 > a[0, ANGLE_INDEX["left_shoulder"]]


def test_keraal_wrong_landmark_count(tmp_path: Path) -> None:
    frame = {f"P{i}": [0.5, 0.5, 0.0] for i in range(20)}
    p = tmp_path / "G3-BP-CTK-bad.json"
    p.write_text(json.dumps({"positions": {"1.0": frame}}))
    with pytest.raises(ValueError, match="20 landmarks"):
        read_keraal(p)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        read_keraal(p)


# ----------------------------------------------------------------------------- tfjs / MoveNet


def test_tfjs_reader_uses_the_sibling_video() -> None:
    seq = read_tfjs(shared_path("tfjs-pose-squats", "pose_squats.full.json"))
    assert seq.keypoints.shape == (65, 17, 4) and seq.fps == 5.0
    assert seq.meta["frame_size"] == [720, 1280] and seq.meta["fps_from"] == "sibling video"
    assert seq.aspect == pytest.approx(720 / 1280) and seq.coord_space == "image3d"
    np.testing.assert_allclose(seq.keypoints[0, COCO["nose"], :2], [360.10016 / 720, 238.05195 / 1280], rtol=1e-5)


def test_tfjs_wrong_landmark_count(tmp_path: Path) -> None:
    p = tmp_path / "poses.json"
    p.write_text(json.dumps(np.zeros((3, 25, 3)).tolist()))
    with pytest.raises(ValueError, match="17 \\(COCO\\) or 33"):
        read_tfjs(p, fps=5.0, frame_size=(100, 100))


def test_movenet_reader() -> None:
    seq = read_movenet(shared_path("tfjs-pose-squats", "pose_1.json"))
    assert seq.keypoints.shape == (120, 17, 4) and seq.fps == 30.0 and seq.aspect == 1.0
    assert seq.coord_space == "image2d" and np.isnan(seq.keypoints[..., 2]).all()
    np.testing.assert_allclose(seq.keypoints[0, COCO["nose"], :2], [287.77234 / 576, 203.76714 / 576], rtol=1e-5)
    # the rendered person raises both arms overhead
    a = joint_angles(seq.keypoints, seq.coord_space, aspect=seq.aspect)
    assert np.nanmax(a[:, ANGLE_INDEX["right_shoulder"]]) > 170 > 60 > a[0, ANGLE_INDEX["right_shoulder"]]


def test_movenet_missing_keypoint(tmp_path: Path) -> None:
    frame = {n: {"x": 1.0, "y": 2.0} for n in ["nose"] * 1}
    p = tmp_path / "m.json"
    p.write_text(json.dumps([frame]))
    with pytest.raises(ValueError, match="1 keypoints"):
        read_movenet(p, fps=30.0, frame_size=(10, 10))
