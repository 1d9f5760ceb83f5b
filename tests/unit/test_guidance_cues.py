"""View-invariant cues and the view estimate (physio_ray.guidance.cues)."""

from __future__ import annotations

import numpy as np

from physio_ray.guidance import count_reps
from physio_ray.guidance.cues import CUE_NAMES, ViewCues, cue_stream
from physio_ray.guidance.synthetic import squat_stream


def _front_frame(hip_drop: float = 0.0, facing: float = 1.0) -> np.ndarray:
    """A COCO-17 frame seen from the front (``facing`` 1) or from behind (-1); hips lowered by ``hip_drop``."""
    f = np.zeros((17, 4))
    f[:, 3] = 1.0
    f[:, 2] = np.nan
    w = 0.07 * facing
    pts = {0: (0.5, 0.15), 5: (0.5 + w, 0.25), 6: (0.5 - w, 0.25), 7: (0.5 + w, 0.37), 8: (0.5 - w, 0.37),
           9: (0.5 + w, 0.49), 10: (0.5 - w, 0.49), 11: (0.5 + w, 0.45 + hip_drop), 12: (0.5 - w, 0.45 + hip_drop),
           13: (0.5 + w, 0.65), 14: (0.5 - w, 0.65), 15: (0.5 + w, 0.85), 16: (0.5 - w, 0.85)}  # fmt: skip
    for i, (x, y) in pts.items():
        f[i, :2] = (x, y)
    f[[1, 2, 3, 4], :2] = f[0, :2]
    return f


def test_leg_height_reads_the_hip_drop_and_the_view_is_front() -> None:
    vc = ViewCues()
    for i in range(10):
        cues, switched = vc.push(i * 33.0, _front_frame())
    assert abs(cues[CUE_NAMES.index("left_leg_height")] - 100.0) < 1.0 and not switched
    assert vc.view.known and vc.view.label == "front" and abs(vc.view.heading_deg) < 10
    for i in range(10, 30):
        cues, _ = vc.push(i * 33.0, _front_frame(hip_drop=0.2))
    assert 45.0 < cues[CUE_NAMES.index("left_leg_height")] < 55.0


def test_unknown_view_counts_nothing() -> None:
    frames = np.stack([_front_frame()] * 20)
    frames[:, [11, 12], 3] = 0.0  # hips not visible: no torso, no view
    cues, _, views = cue_stream(frames, np.arange(20) * 33.0)
    assert np.isnan(cues).all() and not views[-1].known and views[-1].label == "unknown"


def test_turning_round_mid_squat_is_a_side_switch_and_no_rep() -> None:
    t = np.arange(0, 6000, 33.0)
    drop = np.interp(t, [0, 1000, 2000, 4000, 5000, 6000], [0, 0, 0.25, 0.25, 0, 0])
    facing = np.where(t < 3000, 1.0, -1.0)  # turned round at the bottom of the squat
    frames = np.stack([_front_frame(d, f) for d, f in zip(drop, facing, strict=True)])
    _, switched, views = cue_stream(frames, t)
    assert switched.sum() == 1 and views[-1].label == "back"
    kp = frames[..., [0, 1, 3]]  # (x, y, score)
    assert count_reps(kp, 30.3, "squat") == 0
    same = np.stack([_front_frame(d) for d in drop])[..., [0, 1, 3]]
    assert count_reps(same, 30.3, "squat") == 1


def test_side_view_stick_figure_keeps_its_sector() -> None:
    """A pure profile with the nose above the shoulders gives no heading evidence: no switches."""
    fps = 30.0
    _, kp = squat_stream(fps, 14.0, noise=0.002, seed=1)
    xyzv = np.concatenate([kp[..., :2], np.full(kp.shape[:2] + (1,), np.nan), kp[..., 2:]], axis=-1)
    _, switched, _ = cue_stream(xyzv, np.arange(len(kp)) * 1000 / fps)
    assert not switched.any()
    assert count_reps(kp, fps) == 3 and count_reps(kp, fps, view_invariant=False) == 3
