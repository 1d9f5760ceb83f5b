"""View-sweep material on the real recordings: 3D -> BlazePose-33, 10-rep sequences, today's count at yaw 0."""

from __future__ import annotations

import numpy as np
import pytest

from physio_ray.video import view_sweep as vs
from physio_ray.video.layout import BLAZEPOSE33_NAMES
from physio_ray.video.virtual_camera import VirtualCamera, body_frame, counter_input, render
from tests.conftest import shared_path

B = {n: i for i, n in enumerate(BLAZEPOSE33_NAMES)}


@pytest.fixture(scope="module")
def s01_squats() -> list[vs.MotionClip]:
    return vs.load_clips(shared_path(), exercises=["deep_squat"], subjects=["s01"])


def test_every_source_gives_33_finite_points_in_metres_with_z_up(s01_squats: list[vs.MotionClip]) -> None:
    kinect = [c for c in s01_squats if c.source == "uiprmd-kinect"]
    vicon = [c for c in s01_squats if c.source == "uiprmd-vicon"]
    assert [c.episode for c in kinect] == list(range(1, 11)) and [c.episode for c in vicon] == [1, 2]
    assert {c.fps for c in kinect} == {30.0} and {c.fps for c in vicon} == {100.0}
    for clip in (kinect[0], vicon[0]):
        p = clip.points
        assert p.shape[1:] == (33, 3) and np.isfinite(p).all()
        stand = p[0]
        height = stand[:, 2].max() - stand[:, 2].min()
        assert 1.5 < height < 2.0  # an adult standing, in metres
        assert stand[B["nose"], 2] > stand[B["left_shoulder"], 2] > stand[B["left_hip"], 2] > stand[B["left_ankle"], 2]


def test_subjects_face_their_sensor(s01_squats: list[vs.MotionClip]) -> None:
    kinect = next(c for c in s01_squats if c.source == "uiprmd-kinect")
    vicon = next(c for c in s01_squats if c.source == "uiprmd-vicon")
    # UI-PRMD Kinect: toward the sensor is -y after the z-up turn; Vicon: x is forward (SOURCE.txt).
    assert body_frame(kinect.points, 10)[1] @ (0.0, -1.0, 0.0) > 0.95
    assert body_frame(vicon.points, 10)[1] @ (1.0, 0.0, 0.0) > 0.95


def test_keraal_kinect_faces_its_sensor() -> None:
    clips = vs.load_clips(shared_path("keraal").parent, subjects=["P1"])
    assert sorted(c.exercise for c in clips) == ["flank_stretch", "hiding_face", "torso_rotation"]
    for clip in clips:
        assert clip.split == "heldout" and clip.points.shape[1:] == (33, 3)
        assert body_frame(clip.points, 10)[1] @ (0.0, 1.0, 0.0) > 0.95  # Kinect v2: toward the sensor is +y


def test_sequences_join_ten_reps_with_blends(s01_squats: list[vs.MotionClip]) -> None:
    items = vs.sweep_items(s01_squats)
    seqs = {it.source: it for it in items if it.kind == "sequence"}
    assert set(seqs) == {"uiprmd-kinect", "uiprmd-vicon"} and all(it.expected == 10 for it in seqs.values())
    kinect = [c for c in s01_squats if c.source == "uiprmd-kinect"]
    assert seqs["uiprmd-kinect"].points.shape[0] == sum(c.points.shape[0] for c in kinect) + 9 * 9  # 0.3 s at 30 Hz
    vicon = [c for c in s01_squats if c.source == "uiprmd-vicon"]
    assert seqs["uiprmd-vicon"].points.shape[0] == 5 * sum(c.points.shape[0] for c in vicon) + 9 * 30
    assert sum(it.kind == "single" for it in items) == len(s01_squats)
    assert {it.split for it in items} == {"tuning"}
    with pytest.raises(ValueError, match="mixed frame rates"):
        vs.concatenate(s01_squats)


def test_todays_counter_counts_ten_deep_squats_at_yaw_0(s01_squats: list[vs.MotionClip]) -> None:
    from physio_ray.guidance import count_reps

    seqs = {it.source: it for it in vs.sweep_items(s01_squats, singles=False)}
    for source, fps in (("uiprmd-kinect", 30.0), ("uiprmd-vicon", 100.0)):
        item = seqs[source]
        stream = render(item.points, item.fps, VirtualCamera(yaw_deg=0, body_fraction=0.7), fps)
        kp = counter_input(stream.keypoints, stream.visibility)
        assert kp.ndim == 3 and kp.shape[1:] == (33, 2)
        assert np.isfinite(kp).all() and kp.min() >= 0.0 and kp.max() <= 1.0
        # Observed (deterministic, no detector noise): today's counter gets the frontal view right.
        assert count_reps(kp, fps, "deep_squat", image_size=stream.image_size) == 10, source


def test_count_metrics_and_split() -> None:
    m = vs.count_metrics([10, 10, 10, 10], [10, 9, 11, 7])
    assert m == {"n": 4, "mae": 1.25, "obo": 0.75, "exact": 0.25, "overcount": 0.25, "undercount": 0.5}
    assert vs.count_metrics([], [])["n"] == 0
    assert vs.split_of("s03") == "tuning" and vs.split_of("s07") == "heldout" and vs.split_of("P1") == "heldout"


def test_view_invariant_counter_on_held_out_ten_rep_sequences(data_dir) -> None:
    """Goal test (issue 14): held-out subject s07, detector noise, every yaw band: exactly 10,
    where the angle-only counter gets 3-10 (deep squat 3/6/8/8, sit-to-stand 2/6/10/10)."""
    from physio_ray.guidance import count_reps
    from physio_ray.video.virtual_camera import DetectorNoise

    clips = vs.load_clips(data_dir, subjects=["s07"], exercises=["deep_squat", "sit_to_stand", "shoulder_scaption"])
    items = vs.sweep_items(clips, singles=False)
    assert {it.split for it in items} == {"heldout"} and len(items) == 3
    for it in items:
        for yaw in (0, 30, 60, 90):
            r = render(it.points, it.fps, VirtualCamera(yaw_deg=yaw, body_fraction=0.6), 30.0, DetectorNoise(), 3)
            kp = counter_input(r.keypoints, r.visibility)
            assert count_reps(kp, 30.0, it.exercise, image_size=r.image_size) == 10, (it.name, yaw)
