"""The shipped LSTMs: they load, are small, classify held-in recordings and drop into a session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physio_ray.guidance import GuidanceSession, SessionState
from physio_ray.guidance.config import LstmTrainConfig, TrainGuidanceConfig
from physio_ray.guidance.models import REPORT_FILE, WEIGHTS_FILE, load_guidance_models, weights_dir
from physio_ray.guidance.training import auc, mirror
from physio_ray.video.angles import ANGLE_NAMES, joint_angles, resample_angles
from tests.conftest import ASSETS, shared_path


@pytest.fixture(scope="module")
def models():  # noqa: ANN201
    return load_guidance_models()


def _angles(path: Path, reader) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    seq = reader(path)
    aspect = 1.0 if seq.coord_space == "world3d" else seq.aspect
    angles = joint_angles(seq.keypoints, "image2d", aspect=aspect, min_visibility=0.3)
    return np.arange(len(angles)) * 1000.0 / seq.fps, angles


def _classify(models, times: np.ndarray, angles: np.ndarray) -> str:  # noqa: ANN001
    spec = models.classifier.spec
    ends = np.arange(times[-1], 0.0, -500.0)[:8]
    logp = [
        np.log(models.classifier.predict_proba(resample_angles(times, angles, e, spec.window_s, spec.sample_hz)))
        for e in ends
    ]
    return models.classifier.exercises[int(np.argmax(np.mean(logp, axis=0)))]


def test_shipped_weights_and_report(models) -> None:  # noqa: ANN001
    assert (weights_dir() / WEIGHTS_FILE).stat().st_size < 3_000_000
    report = json.loads((weights_dir() / REPORT_FILE).read_text())
    assert report["heldout_subjects"] == ["s09", "s10"]
    assert len(models.classifier.exercises) == 14 and "squat" in models.classifier.exercises
    assert report["classifier"]["heldout_rep_accuracy"] > 0.6
    assert report["quality"]["heldout_auc_mean"] > 0.6
    assert set(models.quality) == {e for e in report["quality"]["by_exercise"]}


def test_classifies_held_in_recordings(models) -> None:  # noqa: ANN001
    from physio_ray.video.landmark_files import read_keraal, read_tfjs
    from physio_ray.video.uiprmd import read_uiprmd

    pos = "ui-prmd/Segmented_Movements/Kinect/Positions"
    cases = {
        "squat": (shared_path("tfjs-pose-squats", "pose_squats.full.json"), read_tfjs),
        "hiding_face": (shared_path("keraal", "G3-BP-CTK-P1T1-Unknown-C-0.json"), read_keraal),
        "deep_squat": (shared_path(*pos.split("/"), "m01_s01_e01_positions.txt.gz"), read_uiprmd),
        "shoulder_abduction": (shared_path(*pos.split("/"), "m07_s01_e01_positions.txt.gz"), read_uiprmd),
    }
    got = {ex: _classify(models, *_angles(path, reader)) for ex, (path, reader) in cases.items()}
    assert got == {ex: ex for ex in cases}


def test_still_body_is_no_evidence(models) -> None:  # noqa: ANN001
    still = np.full((30, 16), 170.0)
    p = models.classifier.predict_proba(still)
    assert np.allclose(p, 1.0 / len(p))


def test_trained_models_in_a_session_on_the_real_video(models) -> None:  # noqa: ANN001
    z = np.load(ASSETS / "pose_squats_mediapipe33.npz")
    kp = z["landmarks"].astype(np.float64)
    s = GuidanceSession(classifier=models.classifier, quality_factory=models.quality_factory)
    s.start("squat", image_size=(720, 1280))
    out = s.frames(np.arange(len(kp)) * 200.0, kp[..., :3])
    assert SessionState.UNCERTAINTY not in {r.state for r in out}  # a squat never contradicts "squat"
    assert out[-1].reps == 2


def test_mirror_and_auc_helpers() -> None:
    a = np.arange(16.0)
    m = mirror(a)
    assert m[ANGLE_NAMES.index("left_knee")] == a[ANGLE_NAMES.index("right_knee")]
    assert m[ANGLE_NAMES.index("shoulder_tilt")] == -a[ANGLE_NAMES.index("shoulder_tilt")]
    assert np.array_equal(mirror(m), a)
    assert auc(np.array([0.2, 0.4, 0.4]), np.array([0, 1, 0])) == 0.75


def test_training_job_end_to_end_on_a_small_split(tmp_path: Path) -> None:
    data = shared_path()
    cfg = TrainGuidanceConfig(
        data_dir=str(data),
        output_dir=str(tmp_path),
        uiprmd_subjects=["s01", "s09"],
        uiprmd_episodes=[1, 2],
        heldout_subjects=["s09"],
        classifier=LstmTrainConfig(hidden=8, epochs=1, windows_per_sequence=1),
        quality=LstmTrainConfig(hidden=4, epochs=1, window_s=4.0),
    )
    from physio_ray.guidance.training import train_guidance

    report = train_guidance(cfg)
    assert report["n_recordings"] == {"train": 44, "heldout": 40}
    assert (tmp_path / WEIGHTS_FILE).is_file() and (tmp_path / "training_report.png").is_file()
    loaded = load_guidance_models(tmp_path / WEIGHTS_FILE)
    assert loaded.classifier.exercises == tuple(report["classes"])
    assert loaded.report["heldout_subjects"] == ["s09"]
