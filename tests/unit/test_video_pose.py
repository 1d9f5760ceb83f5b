"""MediaPipe on the real squat video, the batch stages end to end, and bad inputs.

MediaPipe runs three times here (the full video for keyframe_times, 25 frames of it in the
batch, a 10-frame blank clip); the whole file takes ~15-40 s on a shared 2-core box.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from physio_ray.schemas import (
    ANGLES,
    COORD_SPACE,
    ERROR,
    FEATURES,
    FPS,
    KEYFRAME_INDICES,
    KEYFRAME_KINDS,
    KEYFRAME_TIMES,
    KEYPOINTS,
    N_FRAMES,
    SOURCE_KIND,
    SOURCE_PATH,
    VIDEO_ID,
)
from physio_ray.video.config import KeyframeConfig, PoseConfig
from physio_ray.video.decode import encode_jpeg, read_frames, read_keyframe_jpegs, video_info
from physio_ray.video.keyframes import KeyframeSelector, keyframe_times, keyframes_for_row
from physio_ray.video.pose import ASPECT, PoseExtractor
from tests.conftest import shared_path

SQUAT_BOTTOMS_S = (2.0, 6.8, 11.8)  # from SOURCE.txt


@pytest.fixture(scope="module")
def squat_times(squat_video: Path) -> list[float]:
    return keyframe_times(str(squat_video))


def test_keyframe_times_hit_the_first_two_bottoms(squat_times: list[float]) -> None:
    times = np.asarray(squat_times)
    assert times[0] == 0.0 and times[-1] == pytest.approx(12.8)
    assert list(times) == sorted(times) and len(times) <= KeyframeConfig().max_keyframes
    for bottom in SQUAT_BOTTOMS_S[:2]:
        assert np.min(np.abs(times - bottom)) <= 0.4, (bottom, squat_times)
    # not the seed's fixed quarters of the video (3.2 s, 6.4 s, 9.6 s)
    assert not {3.2, 6.4, 9.6} >= set(np.round(times[1:-1], 1))


def _blank_video(path: Path, frames: int = 10, size: int = 96) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (size, size))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(np.full((size, size, 3), 200, dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def extractor() -> Iterator[PoseExtractor]:
    with PoseExtractor(PoseConfig(max_frames=25)) as ex:
        yield ex


def _batch(rows: list[tuple[str, str, str]]) -> dict[str, np.ndarray]:
    return {
        VIDEO_ID: np.array([r[0] for r in rows], dtype=object),
        SOURCE_KIND: np.array([r[1] for r in rows], dtype=object),
        SOURCE_PATH: np.array([r[2] for r in rows], dtype=object),
    }


def test_batch_stages_end_to_end(extractor: PoseExtractor, tmp_path: Path) -> None:
    uiprmd = shared_path("ui-prmd", "Segmented_Movements", "Kinect", "Positions", "m01_s01_e01_positions.txt.gz")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01 definitely not an mp4 " * 64)
    nan_json = tmp_path / "nan.json"
    nan_json.write_text(json.dumps([[[None, None, None]] * 33] * 5).replace("null", "NaN"))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(np.zeros((4, 20, 3)).tolist()))
    rows = [
        ("squat", "video", str(shared_path("tfjs-pose-squats", "pose_squats.mp4"))),
        ("uiprmd", "uiprmd", str(uiprmd)),
        ("keraal", "keraal", str(shared_path("keraal", "G3-BP-CTK-P1T1-Unknown-C-0.json"))),
        ("tfjs", "tfjs", str(shared_path("tfjs-pose-squats", "pose_squats.full.json"))),
        ("movenet", "movenet", str(shared_path("tfjs-pose-squats", "pose_1.json"))),
        ("missing", "video", str(tmp_path / "nope.mp4")),
        ("corrupt", "video", str(corrupt)),
        ("blank", "video", str(_blank_video(tmp_path / "blank.mp4"))),
        ("wrong", "tfjs", str(wrong)),
        ("nans", "tfjs", str(nan_json)),
        ("kind", "vicon", str(uiprmd)),
    ]
    out = extractor(_batch(rows))
    err = dict(zip(out[VIDEO_ID], out[ERROR], strict=True))
    for ok in ("squat", "uiprmd", "keraal", "tfjs", "movenet"):
        assert err[ok] is None, (ok, err[ok])
    assert "FileNotFoundError" in err["missing"]
    assert "could not open video" in err["corrupt"] or "no frame" in err["corrupt"]
    assert err["blank"].startswith("ValueError: no person detected")
    assert "17 (COCO) or 33" in err["wrong"]
    assert "no person" in err["nans"]
    assert "no landmark reader" in err["kind"]

    n = out[N_FRAMES]
    assert list(n) == [25, 25, 25, 25, 25, 0, 0, 0, 0, 0, 0]  # max_frames=25 applies to every source
    for i in range(5):
        assert len(out[KEYPOINTS][i]) == n[i] * 68 and len(out[ANGLES][i]) == n[i] * 16
        assert isinstance(out[KEYPOINTS][i], list)
    assert list(out[COORD_SPACE][:5]) == ["image3d", "world3d", "image3d", "image3d", "image2d"]
    assert out[FPS][0] == 5.0 and out[FPS][1] == 30.0 and np.isnan(out[FPS][5])
    assert out[ASPECT][0] == pytest.approx(720 / 1280)

    kf = KeyframeSelector(KeyframeConfig())(out)
    assert kf[ERROR][5].startswith("FileNotFoundError")  # errors pass through untouched
    assert kf[KEYFRAME_INDICES][5] == [] and kf[FEATURES][5] == "{}"
    for i in range(5):
        assert kf[ERROR][i] is None, (rows[i][0], kf[ERROR][i])
        assert kf[KEYFRAME_KINDS][i][0] == "start" and kf[KEYFRAME_KINDS][i][-1] == "end"
        assert len(kf[KEYFRAME_TIMES][i]) == len(kf[KEYFRAME_INDICES][i])
        json.loads(kf[FEATURES][i])
    # the video row (first 5 s) has the first bottom near 2.0 s; the exercise came from the name
    video_feats = json.loads(kf[FEATURES][0])
    assert video_feats["exercise"] == "squat"
    bottoms = [t for t, k in zip(kf[KEYFRAME_TIMES][0], kf[KEYFRAME_KINDS][0], strict=True) if k == "bottom"]
    assert len(bottoms) == 1 and abs(bottoms[0] - SQUAT_BOTTOMS_S[0]) <= 0.4
    assert json.loads(kf[FEATURES][1])["exercise"] == "deep_squat"


def test_keyframes_for_row_bad_rows() -> None:
    row = {VIDEO_ID: "x", N_FRAMES: 3, FPS: 30.0, COORD_SPACE: "image2d", KEYPOINTS: [0.0] * 10, ANGLES: []}
    res = keyframes_for_row(row, KeyframeConfig())
    assert "keypoints has 10 values" in res[ERROR] and res[KEYFRAME_INDICES] == []
    res = keyframes_for_row({**row, ERROR: "upstream failed"})
    assert res[ERROR] == "upstream failed"


def test_missing_video_for_keyframe_times(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        keyframe_times(str(tmp_path / "missing.mp4"))


def test_read_frames_and_jpegs(squat_video: Path) -> None:
    info = video_info(squat_video)
    assert (info.fps, info.n_frames, info.width, info.height) == (5.0, 65, 720, 1280)
    frames = read_frames(squat_video, [10, 0, 10])
    assert [f.shape for f in frames] == [(1280, 720, 3)] * 3 and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(frames[0], frames[2])
    assert not np.array_equal(frames[0], frames[1])
    jpegs = read_keyframe_jpegs(squat_video, [0, 64], max_side=256)
    decoded = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    assert jpegs[0][:2] == b"\xff\xd8" and decoded.shape == (256, 144, 3)
    assert encode_jpeg(frames[0])[:2] == b"\xff\xd8"
    with pytest.raises(IndexError):
        read_frames(squat_video, [65])


def test_complexity_without_bundled_model_is_refused() -> None:
    from physio_ray.video.mediapipe_pose import MediaPipePose, _model_available

    if _model_available(2):
        pytest.skip("the heavy model happens to be installed")
    with pytest.raises(RuntimeError, match="bundled"):
        MediaPipePose(model_complexity=2)
