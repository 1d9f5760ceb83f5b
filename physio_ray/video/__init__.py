"""Video and pose: decoding, MediaPipe landmarks, readers for ready landmark files, the
COCO-17 layout, 16 joint angles, One-Euro smoothing and movement-driven keyframes.

Names are re-exported lazily (PEP 562), so ``from physio_ray.video import joint_angles``
does not import OpenCV or MediaPipe.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ANGLE_NAMES": "angles",
    "joint_angles": "angles",
    "COCO17_NAMES": "layout",
    "PoseSequence": "layout",
    "to_coco17": "layout",
    "OneEuroFilter": "smoothing",
    "smooth_sequence": "smoothing",
    "EXERCISES": "exercises",
    "Exercise": "exercises",
    "exercise_for_source": "exercises",
    "get_exercise": "exercises",
    "keraal_exercise": "exercises",
    "uiprmd_exercise": "exercises",
    "read_uiprmd": "uiprmd",
    "read_keraal": "landmark_files",
    "read_movenet": "landmark_files",
    "read_tfjs": "landmark_files",
    "encode_jpeg": "decode",
    "read_frames": "decode",
    "read_keyframe_jpegs": "decode",
    "video_info": "decode",
    "MediaPipePose": "mediapipe_pose",
    "pose_from_video": "mediapipe_pose",
    "KeyframeResult": "keyframes",
    "keyframe_times": "keyframes",
    "keyframes_for_sequence": "keyframes",
    "select_keyframes": "keyframes",
    "KeyframeSelector": "keyframes",
    "PoseExtractor": "pose",
    "keyframes_for_row": "keyframes",
    "load_sequence": "pose",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
