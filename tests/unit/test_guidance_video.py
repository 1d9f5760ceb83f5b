"""The real squat video through MediaPipe -> engine: exactly 2 completed reps (the third is partial).

The MediaPipe landmarks of ../shared/data/tfjs-pose-squats/pose_squats.mp4 are shipped in
tests/assets/pose_squats_mediapipe33.npz (31 KB; see its SOURCE.txt); a slow test recomputes
them from the video and checks the asset still matches.
"""

from __future__ import annotations

import numpy as np
import pytest

from physio_ray.guidance import GuidanceSession, SessionState, count_reps
from physio_ray.guidance.offline import rep_count_report
from tests.conftest import ASSETS, shared_path

S = SessionState


@pytest.fixture(scope="module")
def mp33() -> tuple[np.ndarray, float, tuple[int, int]]:
    z = np.load(ASSETS / "pose_squats_mediapipe33.npz")
    return z["landmarks"].astype(np.float64), float(z["fps"]), tuple(int(v) for v in z["frame_size"])


def resample(kp: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    t_in = np.arange(len(kp)) / fps_in
    t_out = np.arange(0.0, t_in[-1] + 1e-9, 1.0 / fps_out)
    flat = kp.reshape(len(kp), -1)
    out = np.stack([np.interp(t_out, t_in, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape(len(t_out), *kp.shape[1:])


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_count_reps_on_the_mediapipe_landmarks(mp33, channels: int) -> None:
    kp, fps, size = mp33
    assert kp.shape == (65, 33, 4) and fps == 5.0
    assert count_reps(kp[..., :channels], fps, "squat") == 2
    assert count_reps(kp[..., :channels], fps, "squat", image_size=size) == 2


@pytest.mark.parametrize("fps_out", [5.0, 30.0, 60.0])
def test_live_session_on_the_video_gives_two_reps_at_any_rate(mp33, fps_out: float) -> None:
    kp, fps, size = mp33
    kp = resample(kp, fps, fps_out)
    ts = np.arange(len(kp)) * 1000.0 / fps_out
    s = GuidanceSession()
    s.start("squat", image_size=size)
    out = [r for i in range(0, len(ts), 10) for r in s.frames(ts[i : i + 10], kp[i : i + 10, :, :3])]
    assert list(dict.fromkeys(r.state for r in out)) == [S.POSITIONING, S.VERIFYING, S.READY, S.ACTIVE]
    rep_times = [r.timestamp_ms for r in out if r.event == "rep"]
    assert len(rep_times) == 2 and out[-1].reps == 2
    assert rep_times == pytest.approx([3600.0, 8400.0], abs=250.0)  # same moments whatever the rate
    assert s.end().reps == 2


def test_pose_streams_from_the_shared_readers(data_dir) -> None:
    """Pinned rep counts on a deterministic subset of every labelled dataset."""
    rep = rep_count_report(data_dir, subjects=["s01"], episodes=[1, 2], view="frontal2d", include_incorrect=False)
    tfjs = next(r for r in rep.items if r.source == "tfjs/pose_squats")
    assert (tfjs.expected, tfjs.counted) == (2, 2)
    correct = rep.metrics([r for r in rep.items if r.correct])
    assert correct["n"] == 22 and correct["obo"] == 1.0
    # Rest-anchored view-invariant cues: the angle counter's frontal misses (both hurdle steps, one
    # leg raise, both shoulder extensions) are gone; KERAAL's flank stretch (its one 2D recording
    # bends far to one side and barely to the other) counts one short, never over.
    missed = sorted(r.source for r in rep.items if r.error)
    assert missed == ["keraal/G3-BP-ELK-P1T1-Unknown-C-0"], rep.render()
    assert all(r.error <= 0 for r in rep.items)  # never counts too many


@pytest.mark.slow
def test_asset_matches_live_mediapipe(mp33) -> None:
    from physio_ray.video.decode import iter_frames
    from physio_ray.video.mediapipe_pose import MediaPipePose

    video = shared_path("tfjs-pose-squats", "pose_squats.mp4")
    est = MediaPipePose()
    try:
        rows = [est.process(f)[0] for f in iter_frames(video)]
    finally:
        est.close()
    assert all(r is not None for r in rows)
    live = np.stack(rows)
    assert np.abs(live[..., :2] - mp33[0][..., :2]).max() < 0.02
    assert count_reps(live[..., :3], 5.0, "squat", image_size=mp33[2]) == 2
