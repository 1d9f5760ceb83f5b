"""MediaPipe 0.10.21 ``solutions.pose`` on CPU, and video -> :class:`PoseSequence`.

Only the model bundled in the ``mediapipe`` wheel is used (``pose_landmark_full.tflite``,
``model_complexity=1``); complexities 0 and 2 would make MediaPipe download a model at run
time, so they are refused unless their file is already installed.

Video landmarks are stored as ``image3d`` (x, y normalised, MediaPipe relative z) by
default, so they can be drawn on the frames. ``space="world3d"`` stores MediaPipe's
metric world landmarks instead (hip-centred metres, y down). Measured on the real squat
video, knee angles from world landmarks are within 6.6 deg (mean absolute) of the BlazePose
world reference, image-plane angles within 16.3 deg (frontal squats hide knee flexion).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.video.decode import iter_frames, video_info
from physio_ray.video.exercises import Exercise
from physio_ray.video.layout import PoseSequence, to_coco17
from physio_ray.video.stride import FrameWindow, StrideConfig, angle_watcher, max_stride, strided_pose

logger = logging.getLogger(__name__)

_MODEL_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


def _model_available(model_complexity: int) -> bool:
    import mediapipe

    folder = Path(mediapipe.__file__).parent / "modules" / "pose_landmark"
    return (folder / _MODEL_FILES[model_complexity]).is_file()


class MediaPipePose:
    """One MediaPipe Pose graph in video (tracking) mode; load once, reuse per video.

    Args:
        model_complexity: 0, 1 or 2; only models present in the wheel are accepted.
        min_detection_confidence: person detection threshold.
        min_tracking_confidence: below this the detector runs again on the next frame.
        smooth_landmarks: MediaPipe's own landmark smoothing across frames (it brings the
            output closer to the tfjs reference on the squat video: 4.3 vs 7.9 px).

    Raises:
        ValueError: for an unknown complexity.
        RuntimeError: when the requested model is not bundled (no downloads at run time).
    """

    def __init__(
        self,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        smooth_landmarks: bool = True,
    ) -> None:
        if model_complexity not in _MODEL_FILES:
            raise ValueError(f"model_complexity={model_complexity} must be 0, 1 or 2")
        if not _model_available(model_complexity):
            raise RuntimeError(
                f"MediaPipe pose model {_MODEL_FILES[model_complexity]} is not bundled in the wheel and "
                "would be downloaded at run time; use pose.model_complexity=1 (the bundled full model)"
            )
        import mediapipe as mp

        self._pose = mp.solutions.pose.Pose(
            static_image_mode=False,
            model_complexity=model_complexity,
            smooth_landmarks=smooth_landmarks,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def reset(self) -> None:
        """Drops tracking state so the next frame starts a new video."""
        self._pose.reset()

    def close(self) -> None:
        """Releases the graph."""
        self._pose.close()

    def process(self, frame_rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Landmarks of the most prominent person in one RGB frame.

        Args:
            frame_rgb: ``uint8 [H, W, 3]`` RGB.

        Returns:
            ``(image [33, 4], world [33, 4])`` as (x, y, z, visibility), or ``(None, None)``
            when no person is found.
        """
        res = self._pose.process(frame_rgb)
        if res.pose_landmarks is None:
            return None, None
        img = np.array([[p.x, p.y, p.z, p.visibility] for p in res.pose_landmarks.landmark], dtype=np.float32)
        world = None
        if res.pose_world_landmarks is not None:
            world = np.array(
                [[p.x, p.y, p.z, p.visibility] for p in res.pose_world_landmarks.landmark], dtype=np.float32
            )
        return img, world


def pose_from_video(
    path: str | Path,
    estimator: MediaPipePose,
    max_frames: int | None = None,
    space: str = "image3d",
    stride: StrideConfig | None = None,
    exercise: Exercise | None = None,
) -> tuple[PoseSequence, float]:
    """Decodes a video and runs MediaPipe on every frame, or on the frames an adaptive stride picks.

    Args:
        path: video file.
        estimator: a loaded :class:`MediaPipePose` (reset here before the first frame).
        max_frames: decode at most this many frames (None: all).
        space: ``"image3d"`` (normalised image landmarks) or ``"world3d"`` (metric world
            landmarks, with the image landmarks' visibility).
        stride: the adaptive pose stride (:mod:`physio_ray.video.stride`); None or disabled,
            or a frame rate at which its longest interval is one frame: every frame is posed.
        exercise: what the stride watches (None: every flexion angle).

    Returns:
        ``(sequence, detected_fraction)``: COCO-17 keypoints (NaN, visibility 0 on frames
        without a person) and the share of posed frames where a person was detected. With a
        stride, ``sequence.meta`` has ``posed_frames`` and frames in between are interpolated.

    Raises:
        FileNotFoundError: missing file.
        ValueError: unreadable video, no decodable frame, or a bad ``space``.
    """
    if space not in ("image3d", "world3d"):
        raise ValueError(f"space={space!r} must be 'image3d' or 'world3d'")
    info = video_info(path)
    estimator.reset()
    aspect = info.width / info.height if space == "image3d" else 1.0
    meta: dict[str, Any] = {"path": str(path), "frame_size": [info.width, info.height]}

    def landmarks(frame: np.ndarray) -> np.ndarray | None:
        img, world = estimator.process(frame)
        if img is None:
            return None
        if space == "world3d" and world is not None:
            world = world.copy()
            world[:, 3] = img[:, 3]
            return world
        return img

    empty = np.full((33, 4), np.nan, dtype=np.float32)
    if stride is not None and max_stride(stride, info.fps) > 1:
        window = FrameWindow(iter_frames(path, max_frames), keep=max(2, round(stride.buffer_s * info.fps)))
        if window.last_index(0) < 0:
            raise ValueError(f"no frame could be decoded from {path} (corrupt or empty video)")
        res = strided_pose(window, info.fps, landmarks, angle_watcher(exercise, space, aspect), stride)
        meta["posed_frames"] = len(res.rows)
        kp = to_coco17(res.filled(empty).astype(np.float32))
        found = sum(r is not None for r in res.rows.values())
        return PoseSequence(kp, info.fps, space, aspect, meta), found / len(res.rows)
    rows: list[np.ndarray] = []
    detected = 0
    for frame in iter_frames(path, max_frames):
        row = landmarks(frame)
        rows.append(empty if row is None else row)
        detected += row is not None
    if not rows:
        raise ValueError(f"no frame could be decoded from {path} (corrupt or empty video)")
    return PoseSequence(to_coco17(np.stack(rows)), info.fps, space, aspect, meta), detected / len(rows)
