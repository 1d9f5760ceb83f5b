"""The vectorised parts of the batched engine give the numbers of their one-at-a-time forms.

* :class:`AngleWindow` (one preallocated buffer) against a plain list of rows, through growth,
  compaction and trimming;
* the rule models' ``*_many`` calls against an independent per-window computation written
  here with ``np.nanpercentile`` (windows of several lengths, with joints hidden for part of
  the window, still bodies, too-short windows);
* :func:`cue_geometry` on many frames against :meth:`ViewCues.push` one frame at a time.

Inputs are real: the MediaPipe landmarks of the squat video and UI-PRMD deep squats and
shoulder abductions rendered by the virtual camera.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from physio_ray.guidance.cue_geometry import NUMPY_FROM, cue_geometry, geometry_rows
from physio_ray.guidance.cues import ViewCues
from physio_ray.guidance.exercise_rules import (
    GROUPS,
    RULES,
    SIGNATURES,
    angle_index,
    default_classifier,
    default_quality_model,
)
from physio_ray.guidance.features import AngleWindow, as_xyzv
from physio_ray.guidance.phases import combine_angles
from physio_ray.video import view_sweep as vs
from physio_ray.video import virtual_camera as vc
from physio_ray.video.angles import N_ANGLES, joint_angles, resample_angles
from physio_ray.video.layout import to_coco17
from tests.conftest import ASSETS, shared_path


@pytest.fixture(scope="module")
def rendered() -> list[np.ndarray]:
    """COCO-17 keypoints ``[T, 17, 4]`` of two UI-PRMD movements at two yaws, with detector noise
    (dropped points included), and the squat video's."""
    clips = vs.load_clips(shared_path(), exercises=["deep_squat", "shoulder_abduction"], subjects=["s01"])
    items = [it for it in vs.sweep_items(clips, singles=False) if it.source == "uiprmd-kinect"][:2]
    out = []
    for item in items:
        for yaw in (20, 70):
            r = vc.render(item.points, item.fps, vc.VirtualCamera(yaw_deg=yaw, body_fraction=0.6), 30.0,
                          vc.DetectorNoise(), seed=yaw)  # fmt: skip
            xyzv = as_xyzv(vc.counter_input(r.keypoints, r.visibility), allow_missing=True)
            out.append(np.asarray(to_coco17(xyzv), dtype=np.float64)[:600])
    z = np.load(ASSETS / "pose_squats_mediapipe33.npz")
    lm = z["landmarks"].astype(np.float64)
    video = np.concatenate([lm[..., :2], np.zeros_like(lm[..., :1]), lm[..., 3:4]], axis=-1)
    out.append(np.asarray(to_coco17(video), dtype=np.float64))
    assert len(out) == 5, "the UI-PRMD clips of s01 are missing"
    return out


@pytest.fixture(scope="module")
def windows(rendered: list[np.ndarray]) -> list[np.ndarray]:
    """Angle windows of lengths 2..90 with hidden joints, plus still and all-NaN ones."""
    rng = np.random.default_rng(3)
    angles = [joint_angles(k, "image2d", min_visibility=0.3) for k in rendered]
    out = []
    for a in angles:
        for length in (2, 3, 17, 45, 45, 90, 90, 90):
            length = min(length, len(a) - 1)
            start = int(rng.integers(0, len(a) - length))
            w = a[start : start + length].copy()
            if rng.random() < 0.5:  # a joint hidden for part of the window
                w[: length // 3, int(rng.integers(0, N_ANGLES))] = np.nan
            out.append(w)
    out.append(np.full((45, N_ANGLES), 120.0))  # a still body
    out.append(np.full((45, N_ANGLES), np.nan))  # nothing visible
    return out


def _nan_spread(w: np.ndarray, cols: np.ndarray) -> float:
    best = math.nan
    for j in cols:
        v = w[np.isfinite(w[:, j]), j]
        if v.size >= 3:
            lo, hi = np.percentile(v, (5, 95))
            best = hi - lo if math.isnan(best) else max(best, hi - lo)
    return best


def _reference_proba(w: np.ndarray) -> np.ndarray:
    """The rule classifier's definition, one window at a time."""
    names = list(SIGNATURES)
    if w.shape[0] < 3:
        return np.full(len(names), 1.0 / len(names))
    rom = {g: _nan_spread(w, angle_index(cols)) for g, cols in GROUPS.items()}
    seen = [r for r in rom.values() if math.isfinite(r)]
    ll = np.zeros(len(names))
    if seen and max(seen) >= 20.0:
        for i, name in enumerate(names):
            sig = SIGNATURES[name]
            pen = sum(
                (max(0.0, least - rom[g]) / 15.0) ** 2 for g, least in sig.movers.items() if math.isfinite(rom[g])
            )
            pen += sum((max(0.0, rom[g] - lim) / 15.0) ** 2 for g, lim in sig.still.items() if math.isfinite(rom[g]))
            ll[i] = -pen
    p = np.exp(ll - ll.max())
    return p / p.sum()


def test_rule_classifier_many_matches_one_at_a_time_and_the_definition(windows: list[np.ndarray]) -> None:
    clf = default_classifier()
    many = clf.predict_proba_many(windows)
    assert len(many) == len(windows)
    for w, p in zip(windows, many, strict=True):
        assert np.array_equal(p, clf.predict_proba(w))  # bit for bit: the tick and frame() agree
        np.testing.assert_allclose(p, _reference_proba(w), rtol=1e-9, atol=1e-12)
    spread = np.array([p.max() - p.min() for p in many])
    assert (spread > 0.05).sum() >= 5  # the windows do tell exercises apart (not all uniform)
    assert np.allclose(many[-2], 1.0 / len(SIGNATURES)) and np.allclose(many[-1], 1.0 / len(SIGNATURES))


@pytest.mark.parametrize("exercise", ["squat", "shoulder_abduction", "side_lunge"])
def test_rule_quality_many_matches_one_at_a_time_and_the_definition(windows: list[np.ndarray], exercise: str) -> None:
    model = default_quality_model(exercise)
    rule = RULES[exercise]
    many = model.score_many(windows)
    for w, (q, c) in zip(windows, many, strict=True):
        q1, c1 = model.score(w)
        assert (q, c) == (q1, c1) or (math.isnan(q) and math.isnan(q1) and c == c1)
        sig = combine_angles(w, angle_index(rule.driving), rule.combine)
        fin = sig[np.isfinite(sig)]
        if fin.size < 3:
            assert math.isnan(q) and c == 0.0
            continue
        prog = [rule.progress(float(v)) for v in np.percentile(fin, (5, 95))]
        target = rule.progress(rule.target_deg if rule.target_deg is not None else rule.far_deg)
        assert q == pytest.approx(min(1.0, max(0.0, max(prog) / target)), abs=1e-12)
        whole = min(prog) <= 0.2 and max(prog) >= 0.5
        assert c == pytest.approx(fin.size / sig.size * (1.0 if whole else 0.5), abs=1e-12)
    assert len({round(q, 3) for q, _ in many if math.isfinite(q)}) >= 3  # real variety, not one value


def test_shared_default_models_are_one_instance_each() -> None:
    assert default_classifier() is default_classifier()
    assert default_quality_model("squat") is default_quality_model("squat")
    assert default_quality_model("squat") is not default_quality_model("deep_squat")


def test_angle_window_matches_a_list_of_rows(rendered: list[np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    angles = joint_angles(rendered[0], "image2d", min_visibility=0.3)
    w = AngleWindow(keep_ms=1000.0, capacity=4)  # small: it must grow and compact many times
    ref_t: list[float] = []
    ref_rows: list[np.ndarray] = []
    t = 0.0
    for k, row in enumerate(angles):
        t += float(rng.choice([10.0, 33.4, 100.0, 200.0, 700.0]))  # sums of 100s hit keep_ms exactly
        w.append(t, row)
        ref_t.append(t)
        ref_rows.append(row)
        while ref_t and t - ref_t[0] > 1000.0:
            ref_t.pop(0)
            ref_rows.pop(0)
        assert len(w) == len(ref_t)
        if k % 7 == 0:
            span = float(rng.choice([0.0, 100.0, 200.0, 500.0, 3000.0]))
            keep = [i for i in range(len(ref_t)) if ref_t[-1] - ref_t[i] <= span]
            assert np.array_equal(w.last(span), np.stack(ref_rows)[keep], equal_nan=True)
            np.testing.assert_array_equal(
                w.resampled(0.6, 10.0), resample_angles(np.array(ref_t), np.stack(ref_rows), ref_t[-1], 0.6, 10.0)
            )
    assert np.array_equal(w.times(), np.array(ref_t))
    copy = AngleWindow(1000.0)
    copy.extend(w.times(), w.rows())
    assert np.array_equal(copy.rows(), w.rows(), equal_nan=True)
    w.clear()
    assert len(w) == 0 and w.last(100.0).shape == (0, N_ANGLES)
    assert np.isnan(w.resampled(0.5, 10.0)).all()


def test_cue_geometry_of_many_frames_advances_as_push(rendered: list[np.ndarray]) -> None:
    for coco in rendered:
        ts = np.arange(len(coco)) * 33.3
        one, many = ViewCues(aspect=0.8), ViewCues(aspect=0.8)
        rows = cue_geometry(coco, 0.8, 0.3).tolist()
        for t, frame, g in zip(ts, coco, rows, strict=True):
            a, sa = one.push(float(t), frame)
            b, sb = many.advance(float(t), g)
            assert np.array_equal(a, b, equal_nan=True) and sa == sb
            assert one.view == many.view or (math.isnan(one.view.heading_deg) and one.view.known == many.view.known)
    # a few frames take the plain-Python path, many the numpy one: the same rows, bit for bit
    coco = rendered[1][:40]
    asp, vis = np.linspace(0.5, 1.8, 40), np.linspace(0.2, 0.5, 40)
    few = [
        r
        for k in range(0, 40, NUMPY_FROM - 1)
        for r in geometry_rows(coco[k : k + NUMPY_FROM - 1], asp[k : k + NUMPY_FROM - 1], vis[k : k + NUMPY_FROM - 1])
    ]
    assert np.array_equal(np.array(few), np.array(geometry_rows(coco, asp, vis)), equal_nan=True)
    # per-frame aspect and visibility threshold broadcast like scalars
    g1 = cue_geometry(rendered[0][:5], np.full(5, 0.8), np.full(5, 0.3))
    assert np.array_equal(g1, cue_geometry(rendered[0][:5], 0.8, 0.3), equal_nan=True)
    hidden = rendered[0][:1].copy()
    hidden[0, :, 3] = 0.0  # nothing visible
    assert np.isnan(cue_geometry(hidden)).all()


def test_group_rom_matrix_equals_np_percentile_per_visible_column() -> None:
    """One sort for the whole stack gives numpy's 5th-95th spread bit for bit, NaN frames left out."""
    from physio_ray.guidance.rule_models import group_rom_matrix

    rng = np.random.default_rng(7)
    groups = [np.array([0, 1]), np.array([5]), np.array([2, 3, 4, 15]), np.array([], dtype=int)]
    for trial in range(300):
        windows = []
        for _ in range(int(rng.integers(1, 5))):
            w = rng.normal(90.0, 40.0, (int(rng.integers(2, 45)), N_ANGLES))
            if trial % 2:
                w = np.round(w, 1)  # ties between frames
            w[rng.random(w.shape) < rng.choice([0.0, 0.05, 0.5, 0.95])] = np.nan
            windows.append(w)
        got = group_rom_matrix(windows, groups)
        for b, w in enumerate(windows):
            spread = np.full(N_ANGLES, np.nan)
            for j in range(N_ANGLES):
                seen = w[np.isfinite(w[:, j]), j]
                if seen.size >= 3:
                    lo, hi = np.percentile(seen, (5, 95))
                    spread[j] = hi - lo
            for k, cols in enumerate(groups):
                want = np.nan if not len(cols) or np.isnan(spread[cols]).all() else np.nanmax(spread[cols])
                assert (math.isnan(want) and math.isnan(got[b, k])) or got[b, k] == want
