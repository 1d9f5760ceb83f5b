"""The adaptive pose stride: MediaPipe on the real 30 fps clip, the policy on UI-PRMD motion at 30 fps.

The policy is judged by what it is for: the keyframes from the strided poses must land within
one frame of the every-frame keyframes (same kinds), on fewer posed frames.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from physio_ray.video.mediapipe_pose import MediaPipePose, pose_from_video
from physio_ray.video.stride import ArrayFrames, FrameWindow, StrideConfig, StridedPoses, max_stride, strided_pose
from physio_ray.video.stride_eval import compare_on_stream, keyframes_agree, stream_keyframes
from physio_ray.video.view_sweep import concatenate, load_clips
from physio_ray.video.virtual_camera import VirtualCamera, render
from tests.conftest import shared_path

MATCHED, MEAN_POSED = 8, 0.337  # deterministic (noise-free render); every-frame posing is 1.0


def test_frame_window_holds_only_the_last_frames() -> None:
    win = FrameWindow(iter(range(10)), keep=3)
    assert win.get(4) == 4 and win.get(2) == 2
    with pytest.raises(LookupError, match="frame 1 is not held"):
        win.get(1)
    assert win.last_index(50) == 9
    with pytest.raises(LookupError):
        win.get(10)
    assert FrameWindow(iter([]), keep=2).last_index(0) == -1


def test_config_is_checked_and_low_frame_rates_pose_every_frame() -> None:
    with pytest.raises(ValueError, match="must all be > 0"):
        StrideConfig(max_interval_s=0)
    assert max_stride(StrideConfig(), 30.0) == 6
    assert max_stride(StrideConfig(), 5.0) == 1  # the squat clip
    assert max_stride(StrideConfig(enabled=False), 30.0) == 1
    with pytest.raises(ValueError, match="no frame"):
        strided_pose(ArrayFrames([]), 30.0, lambda f: None, lambda r: r, StrideConfig())


def test_interpolation_is_exact_on_straight_lines_and_leaves_misses_empty() -> None:
    rows = {
        0: np.array([0.0, 0.0]),
        4: np.array([4.0, 8.0]),
        8: np.array([8.0, 16.0]),
        10: None,
        12: np.array([1.0, 1.0]),
    }
    res = StridedPoses(rows, 13)
    out = res.filled(np.full(2, np.nan))
    np.testing.assert_allclose(out[:9, 0], np.arange(9.0))
    np.testing.assert_allclose(out[:9, 1], 2 * np.arange(9.0))
    assert np.isnan(out[9:12]).all() and out[12].tolist() == [1.0, 1.0]


@pytest.fixture(scope="module")
def estimator():
    est = MediaPipePose()
    yield est
    est.close()


def test_the_five_fps_squat_clip_is_posed_on_every_frame(estimator: MediaPipePose) -> None:
    video = shared_path("tfjs-pose-squats", "pose_squats.mp4")
    every, _ = pose_from_video(video, estimator)
    strided, _ = pose_from_video(video, estimator, stride=StrideConfig())
    assert "posed_frames" not in strided.meta
    np.testing.assert_array_equal(every.keypoints, strided.keypoints)


def test_real_thirty_fps_clip_keeps_its_keyframes_on_fewer_poses(estimator: MediaPipePose) -> None:
    video = shared_path("tfjs-pose-squats", "pose_1.mp4")  # 120 frames at 30 fps
    every, det_every = pose_from_video(video, estimator)
    strided, det = pose_from_video(video, estimator, stride=StrideConfig())
    assert det_every == det == 1.0
    assert strided.keypoints.shape == every.keypoints.shape
    assert strided.meta["posed_frames"] == 49  # of 120
    ref = stream_keyframes(every.keypoints, every.fps, every.coord_space, every.aspect, None)
    got = stream_keyframes(strided.keypoints, strided.fps, strided.coord_space, strided.aspect, None)
    assert ref.kinds == ["start", "transition", "end"]
    assert keyframes_agree(ref, got), (ref.indices, got.indices)


def test_held_out_uiprmd_motion_at_thirty_fps(data_dir) -> None:
    """Deep squats and shoulder abductions of the held-out subjects, 10 reps each, rendered at
    30 fps through a camera turned 30 degrees (noise-free: the reference must be stable)."""
    clips = load_clips(data_dir, exercises=["deep_squat", "shoulder_abduction"], subjects=["s07", "s08", "s09", "s10"])
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    for c in clips:
        if c.source == "uiprmd-kinect":
            groups[(c.source, c.subject, c.exercise)].append(c)
    assert len(groups) == 8
    cam = VirtualCamera(yaw_deg=30.0)
    matched, fractions = 0, []
    for (_, _, exercise), cs in sorted(groups.items()):
        stream = render(concatenate(cs, 10), cs[0].fps, cam, fps_out=30.0)
        rows = np.concatenate([stream.keypoints, stream.visibility[..., None]], axis=-1)
        agree, fraction, _, _ = compare_on_stream(rows, 30.0, "image2d", cam.aspect, exercise, StrideConfig())
        matched += agree
        fractions.append(fraction)
    print(f"within one frame {matched}/8, posed {np.round(fractions, 3).tolist()}")
    assert matched == MATCHED and round(float(np.mean(fractions)), 3) == MEAN_POSED
