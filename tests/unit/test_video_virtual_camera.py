"""The virtual camera: pinhole geometry, framing, resampling and the stated detector noise model."""

from __future__ import annotations

import numpy as np
import pytest

from physio_ray.video.layout import BLAZEPOSE33_NAMES
from physio_ray.video.virtual_camera import (
    LIMBS,
    NO_NOISE,
    DetectorNoise,
    VirtualCamera,
    apply_noise,
    counter_input,
    project,
    render,
    resample,
)

B = {n: i for i, n in enumerate(BLAZEPOSE33_NAMES)}


def standing_body(frames: int = 3) -> np.ndarray:
    """A symmetric stick body facing +x (left = +y, z up): 1.7 m tall, centred on the z axis."""
    p = np.zeros((33, 3))
    heights = {"nose": 1.6, "shoulder": 1.4, "elbow": 1.1, "wrist": 0.85, "hip": 0.9, "knee": 0.5, "ankle": 0.1}
    half = {"shoulder": 0.2, "elbow": 0.22, "wrist": 0.22, "hip": 0.15, "knee": 0.15, "ankle": 0.15}
    for i, name in enumerate(BLAZEPOSE33_NAMES):
        part = name.split("_", 1)[-1]
        side = 1.0 if name.startswith("left") else -1.0 if name.startswith("right") else 0.0
        part = {"pinky": "wrist", "index": "wrist", "thumb": "wrist", "heel": "ankle", "foot_index": "ankle"}.get(
            part, part
        )
        p[i] = (0.0, side * half.get(part, 0.05), heights.get(part, 1.6))
    p[B["nose"]] = (0.1, 0.0, 1.6)  # the face is in front
    p[B["left_heel"], 2] = p[B["right_heel"], 2] = 0.0
    p[B["left_foot_index"]] = (0.15, 0.15, 0.0)
    p[B["right_foot_index"]] = (0.15, -0.15, 0.0)
    p[B["left_eye"]], p[B["right_eye"]] = (0.08, 0.03, 1.7), (0.08, -0.03, 1.7)  # top of the body
    return np.repeat(p[None], frames, axis=0)


def width(kp: np.ndarray, a: str, b: str) -> float:
    return float(abs(kp[0, B[a], 0] - kp[0, B[b], 0]))


def test_frontal_view_mirrors_like_a_camera_and_centres_the_body() -> None:
    body = standing_body()
    kp, vis = project(body, VirtualCamera(), fps=30)
    assert kp.shape == (3, 33, 2) and vis.shape == (3, 33) and vis.min() == 1.0
    # Facing the camera, the subject's left is on the image right (as MediaPipe labels a video).
    assert kp[0, B["left_shoulder"], 0] > 0.5 > kp[0, B["right_shoulder"], 0]
    # The aim point (mid-height on the body's vertical axis) is the image centre; head is up.
    mid = 0.5 * (kp[0, B["left_hip"]] + kp[0, B["right_hip"]])
    assert mid[0] == pytest.approx(0.5, abs=1e-9)
    assert kp[0, B["nose"], 1] < mid[1]


def test_a_known_point_projects_where_the_pinhole_puts_it() -> None:
    body = standing_body()
    cam = VirtualCamera(body_fraction=0.5, image_size=(1000, 500))
    extra = body.copy()
    # The aim point is the horizontal mean of the rest pose at the middle of its vertical extent.
    # Two points placed symmetrically about it (0.3 m left and 0.2 m up, and the mirror image)
    # leave it where it is: with them at the aim point, the mean of the other 31 points is it.
    others = [i for i in range(33) if i not in (B["mouth_left"], B["mouth_right"])]
    aim = extra[0, others].mean(axis=0)
    aim[2] = 0.85
    extra[:, B["mouth_left"]] = aim + (0.0, 0.3, 0.2)
    extra[:, B["mouth_right"]] = aim - (0.0, 0.3, 0.2)
    kp, _ = project(extra, cam, fps=30)
    # Same depth, opposite offsets: the images are symmetric about the image centre.
    assert 0.5 * (kp[0, B["mouth_left"]] + kp[0, B["mouth_right"]]) == pytest.approx((0.5, 0.5), abs=1e-9)
    du = (kp[0, B["mouth_left"], 0] - 0.5) * 1000  # pixels right (the subject's left is the image right)
    dv = (0.5 - kp[0, B["mouth_left"], 1]) * 500  # pixels up
    assert du > 0 and dv > 0
    assert du / dv == pytest.approx(0.3 / 0.2, rel=1e-9)  # square pixels, same depth: lengths keep their ratio


def test_yaw_90_turns_a_frontal_body_into_a_side_view() -> None:
    body = standing_body()
    front, _ = project(body, VirtualCamera(yaw_deg=0), fps=30)
    side, _ = project(body, VirtualCamera(yaw_deg=90), fps=30)
    assert width(side, "left_shoulder", "right_shoulder") < 0.02 * width(front, "left_shoulder", "right_shoulder")
    assert width(side, "left_hip", "right_hip") < 0.02 * width(front, "left_hip", "right_hip")
    # From the left side, the face (in front of the body) is to one side of the shoulders.
    shoulders = 0.5 * (side[0, B["left_shoulder"], 0] + side[0, B["right_shoulder"], 0])
    assert abs(side[0, B["nose"], 0] - shoulders) > 0.01
    # Shoulder width shrinks steadily as the camera turns.
    widths = [
        width(project(body, VirtualCamera(yaw_deg=y), fps=30)[0], "left_shoulder", "right_shoulder")
        for y in (0, 30, 60, 90)
    ]
    assert widths == sorted(widths, reverse=True)


@pytest.mark.parametrize("fraction", [0.4, 0.65, 0.9])
@pytest.mark.parametrize("pitch", [-20.0, 0.0, 20.0])
def test_body_height_in_frame_matches_the_requested_fraction(fraction: float, pitch: float) -> None:
    kp, vis = project(standing_body(), VirtualCamera(pitch_deg=pitch, body_fraction=fraction), fps=30)
    assert float(kp[0, :, 1].max() - kp[0, :, 1].min()) == pytest.approx(fraction, abs=1e-6)
    assert vis.min() == 1.0 and kp.min() >= 0.0 and kp.max() <= 1.0


def test_a_camera_above_makes_the_legs_look_shorter_than_one_below() -> None:
    body = standing_body()

    def leg_over_trunk(pitch: float) -> float:
        kp = project(body, VirtualCamera(pitch_deg=pitch), fps=30)[0][0]
        return float(
            (kp[B["left_ankle"], 1] - kp[B["left_knee"], 1]) / (kp[B["left_hip"], 1] - kp[B["left_shoulder"], 1])
        )

    # Seen from above, the feet are farther from the camera than the shoulders, so they shrink.
    assert leg_over_trunk(20.0) < leg_over_trunk(0.0) < leg_over_trunk(-20.0)


def test_resample_is_linear_in_time() -> None:
    ramp = np.arange(31, dtype=np.float64)[:, None]  # 1 s at 30 fps, value = frame index
    up = resample(ramp, 30.0, 100.0)
    assert up.shape == (101, 1)
    assert up[:, 0] == pytest.approx(np.arange(101) * 0.3)
    down = resample(ramp, 30.0, 15.0)
    assert down[:, 0] == pytest.approx(np.arange(16) * 2.0)
    with pytest.raises(ValueError, match="positive"):
        resample(ramp, 0.0, 30.0)


def test_render_at_another_fps_keeps_the_duration() -> None:
    body = np.repeat(standing_body(1), 61, axis=0)  # 2 s at 30 fps
    stream = render(body, 30.0, VirtualCamera(), 100.0)
    assert stream.keypoints.shape == (201, 33, 2) and stream.fps == 100.0
    assert stream.image_size == (1280, 720)


def test_jitter_is_gaussian_and_scaled_to_body_height() -> None:
    kp = np.full((4000, 33, 2), 0.5)
    vis = np.ones((4000, 33))
    noise = DetectorNoise(jitter=0.01, drop_prob=0.0, burst_rate_hz=0.0)
    out, v = apply_noise(kp, vis, 30.0, 0.6, 16 / 9, noise, np.random.default_rng(0))
    d = out - kp
    assert d[..., 1].std() == pytest.approx(0.006, rel=0.02)  # 1% of a body 0.6 of the frame high
    assert d[..., 0].std() == pytest.approx(0.006 * 9 / 16, rel=0.02)  # same in pixels on a 16:9 frame
    assert abs(d.mean()) < 1e-4 and v.min() == 1.0


def test_dropped_points_and_bursts_follow_the_stated_rates() -> None:
    kp = np.full((30000, 33, 2), 0.5)  # 1000 s at 30 fps
    vis = np.ones((30000, 33))
    _, v = apply_noise(kp, vis, 30.0, 0.6, 1.0, DetectorNoise(0.0, 0.02, 0.0), np.random.default_rng(1))
    assert (v == 0).mean() == pytest.approx(0.02, abs=0.001)
    _, v = apply_noise(kp, vis, 30.0, 0.6, 1.0, DetectorNoise(0.0, 0.0, 0.05, (0.1, 0.5)), np.random.default_rng(1))
    limb_points = sorted({p for limb in LIMBS for p in limb})
    others = [p for p in range(33) if p not in limb_points]
    assert (v[:, others] == 1).all()  # bursts drop whole limbs only
    lost_frames = (v == 0).any(axis=1)
    # ~50 bursts of 0.3 s on average: about 15 s of 1000 s have a limb missing.
    assert 0.005 < lost_frames.mean() < 0.03
    starts = np.flatnonzero(np.diff(lost_frames.astype(int)) == 1)
    assert 25 <= len(starts) <= 80


def test_noise_is_reproducible_by_seed_and_points_outside_the_frame_are_lost() -> None:
    body = np.repeat(standing_body(1), 90, axis=0)
    a = render(body, 30.0, VirtualCamera(), noise=DetectorNoise(), seed=7)
    b = render(body, 30.0, VirtualCamera(), noise=DetectorNoise(), seed=7)
    c = render(body, 30.0, VirtualCamera(), noise=DetectorNoise(), seed=8)
    assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.visibility, b.visibility)
    assert not np.array_equal(a.keypoints, c.keypoints)
    kp = np.full((2, 33, 2), 0.5)
    kp[0, 3] = (1.2, 0.5)
    _, v = apply_noise(kp, np.ones((2, 33)), 30.0, 0.5, 1.0, NO_NOISE, np.random.default_rng(0))
    assert v[0, 3] == 0.0 and v.sum() == 65
    nan = counter_input(kp, v)
    assert np.isnan(nan[0, 3]).all() and np.isfinite(nan[1]).all()


def test_bad_arguments_are_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="body_fraction=1.5"):
        VirtualCamera(body_fraction=1.5)
    with pytest.raises(ValueError, match="pitch_deg=90"):
        VirtualCamera(pitch_deg=90)
    with pytest.raises(ValueError, match="drop_prob"):
        DetectorNoise(drop_prob=1.0)
    with pytest.raises(ValueError, match=r"\[frames, 33, 3\]"):
        project(np.zeros((5, 17, 3)), VirtualCamera())
    with pytest.raises(ValueError, match="left-right axis"):
        project(np.zeros((5, 33, 3)), VirtualCamera())
