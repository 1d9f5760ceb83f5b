"""joint_angles and to_coco17 on hand-made poses with exact, known angles."""

from __future__ import annotations

import numpy as np
import pytest

from physio_ray.video.angles import ANGLE_INDEX, ANGLE_NAMES, joint_angles
from physio_ray.video.layout import BLAZEPOSE_TO_COCO, COCO, to_coco17


def _standing_pose() -> np.ndarray:
    """A frontal T-less standing figure in pixel-like units, y down (17 x 4)."""
    kp = np.zeros((17, 4))
    kp[:, 3] = 1.0
    pts = {
        "nose": (0, -60),
        "left_eye": (5, -65),
        "right_eye": (-5, -65),
        "left_ear": (10, -62),
        "right_ear": (-10, -62),
        "left_shoulder": (20, -40),
        "right_shoulder": (-20, -40),
        "left_elbow": (20, -10),  # arm hanging straight down
        "right_elbow": (-50, -40),  # arm abducted to horizontal
        "left_wrist": (20, 20),
        "right_wrist": (-50, -70),  # forearm pointing up: elbow at 90
        "left_hip": (10, 20),
        "right_hip": (-10, 20),
        "left_knee": (10, 60),
        "right_knee": (-10, 60),
        "left_ankle": (10, 100),
        "right_ankle": (-10, 100),
    }
    for name, (x, y) in pts.items():
        kp[COCO[name], :2] = (x, y)
    return kp


def _get(a: np.ndarray, name: str) -> float:
    return float(a[..., ANGLE_INDEX[name]])


def test_angle_names_are_sixteen_unique() -> None:
    assert len(ANGLE_NAMES) == 16 and len(set(ANGLE_NAMES)) == 16


def test_standing_pose_exact_angles() -> None:
    a = joint_angles(_standing_pose(), "image2d")
    assert a.shape == (16,) and a.dtype == np.float32
    assert _get(a, "left_elbow") == pytest.approx(180.0)
    assert _get(a, "right_elbow") == pytest.approx(90.0)
    # left shoulder: hip (10, 20) - shoulder (20, -40) vs the arm hanging straight down
    assert _get(a, "left_shoulder") == pytest.approx(np.degrees(np.arctan2(10, 60)), abs=1e-3)
    # right shoulder: hip (-10, 20) - shoulder (-20, -40) vs elbow straight out: 90 + atan(10/60)
    assert _get(a, "right_shoulder") == pytest.approx(90.0 + np.degrees(np.arctan2(10, 60)), abs=1e-3)
    assert _get(a, "left_knee") == pytest.approx(180.0)
    assert _get(a, "left_shank_incline") == pytest.approx(0.0, abs=1e-4)
    assert _get(a, "left_hip_abduction") == pytest.approx(90.0)
    assert _get(a, "right_hip_abduction") == pytest.approx(90.0)
    assert _get(a, "trunk_lean") == pytest.approx(0.0, abs=1e-4)
    assert _get(a, "shoulder_tilt") == pytest.approx(0.0, abs=1e-4)
    assert _get(a, "pelvis_tilt") == pytest.approx(0.0, abs=1e-4)
    assert _get(a, "neck") == pytest.approx(180.0)


def test_squat_like_pose_and_signed_tilts() -> None:
    kp = _standing_pose()
    kp[COCO["left_knee"], :2] = (40, 50)  # thigh forward-out: knee at 90 deg
    kp[COCO["left_ankle"], :2] = (10, 80)
    kp[COCO["left_shoulder"], 1] = -30  # left shoulder lower (y down) than right
    a = joint_angles(kp, "image2d")
    assert _get(a, "left_knee") == pytest.approx(90.0, abs=1e-3)
    assert _get(a, "left_shank_incline") == pytest.approx(45.0, abs=1e-3)
    assert _get(a, "shoulder_tilt") == pytest.approx(np.degrees(np.arctan2(10, 40)), abs=1e-3)
    assert _get(a, "shoulder_tilt") > 0


def test_trunk_lean_and_hip_in_world3d() -> None:
    kp = np.zeros((17, 4))
    kp[:, 3] = 1.0
    for side, x in (("left", 0.1), ("right", -0.1)):
        kp[COCO[f"{side}_hip"], :3] = (x, 0.0, 0.0)
        kp[COCO[f"{side}_shoulder"], :3] = (x, -0.5, 0.5)  # trunk tipped 45 deg toward +z
        kp[COCO[f"{side}_knee"], :3] = (x, 0.45, 0.0)
        kp[COCO[f"{side}_ankle"], :3] = (x, 0.9, 0.0)
    a = joint_angles(kp, "world3d")
    assert _get(a, "trunk_lean") == pytest.approx(45.0, abs=1e-3)
    assert _get(a, "left_hip") == pytest.approx(135.0, abs=1e-3)
    # the same pose seen in the image plane loses the depth: trunk looks upright
    assert _get(joint_angles(kp, "image3d"), "trunk_lean") == pytest.approx(0.0, abs=1e-3)


def test_aspect_rescales_normalised_x() -> None:
    kp = np.zeros((17, 4))
    kp[:, 3] = 1.0
    # hip above the knee, ankle up and to the right: 45 deg in pixels on a 720x1280 frame
    hip, knee, ankle = np.array([360.0, 600.0]), np.array([360.0, 900.0]), np.array([660.0, 600.0])
    for name, p in (("left_hip", hip), ("left_knee", knee), ("left_ankle", ankle)):
        kp[COCO[name], :2] = p / (720.0, 1280.0)
    assert _get(joint_angles(kp, "image2d", aspect=720 / 1280), "left_knee") == pytest.approx(45.0, abs=1e-3)
    # without the aspect, normalised x is stretched 1280/720 times: atan(16/9) = 60.6 deg
    assert _get(joint_angles(kp, "image2d"), "left_knee") == pytest.approx(60.64, abs=0.01)


def test_low_visibility_and_nan_give_nan() -> None:
    kp = np.repeat(_standing_pose()[None], 3, axis=0)
    kp[1, COCO["left_wrist"], 3] = 0.2
    kp[2, COCO["left_knee"], :2] = np.nan
    a = joint_angles(kp, "image2d", min_visibility=0.5)
    assert np.isnan(_get(a[1], "left_elbow")) and np.isfinite(_get(a[1], "right_elbow"))
    assert np.isnan(_get(a[2], "left_knee")) and np.isnan(_get(a[2], "left_hip"))
    assert np.isfinite(_get(a[2], "right_knee"))
    assert np.all(np.isfinite(a[0]))


def test_blazepose33_input_matches_coco17() -> None:
    coco = _standing_pose()
    blaze = np.zeros((33, 4))
    blaze[list(BLAZEPOSE_TO_COCO)] = coco
    np.testing.assert_allclose(joint_angles(blaze, "image2d"), joint_angles(coco, "image2d"))


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_to_coco17_channels(channels: int) -> None:
    arr = np.arange(5 * 33 * channels, dtype=np.float32).reshape(5, 33, channels)
    out = to_coco17(arr)
    assert out.shape == (5, 17, 4)
    np.testing.assert_array_equal(out[:, :, :2], arr[:, list(BLAZEPOSE_TO_COCO), :2])
    if channels == 2:
        assert np.isnan(out[..., 2]).all() and (out[..., 3] == 1).all()
    if channels == 4:
        np.testing.assert_array_equal(out[..., 3], arr[:, list(BLAZEPOSE_TO_COCO), 3])


def test_to_coco17_third_channel_as_visibility() -> None:
    arr = np.zeros((17, 3))
    arr[:, 2] = 0.25
    out = to_coco17(arr, third="visibility")
    assert np.isnan(out[:, 2]).all() and np.allclose(out[:, 3], 0.25)


@pytest.mark.parametrize("shape", [(4, 20, 3), (4, 17, 5), (17,)])
def test_bad_layouts_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        joint_angles(np.zeros(shape), "image2d")


def test_bad_coord_space_is_refused() -> None:
    with pytest.raises(ValueError, match="coord_space"):
        joint_angles(_standing_pose(), "pixels")
