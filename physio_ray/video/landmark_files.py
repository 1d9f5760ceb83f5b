"""Readers for ready landmark sequences: KERAAL BlazePose JSON, tfjs pose JSON, MoveNet JSON.

All return a :class:`~physio_ray.video.layout.PoseSequence` in COCO-17 with x, y normalised
to 0..1 by the frame width and height. Files carry no frame rate or frame size, so each
reader takes them as arguments; ``None`` means "look for the sibling video" (the same stem
with ``.mp4``, e.g. ``pose_squats.full.json`` -> ``pose_squats.mp4``) and fall back to the
documented defaults below when there is none. Whatever was assumed is in ``meta``.

Defaults:
    KERAAL: 30 fps (the BlazePose files have one row per Kinect v2 frame, 30 Hz) and 16:9
        frames: an aspect of 16/9 minimises the variation of limb lengths over the three
        sample recordings (the coordinates are already normalised, so only the aspect matters).
    tfjs (``pose_squats.full.json``): 5 fps, 720x1280 (its video).
    MoveNet (``pose_1.json``): 30 fps, 576x576 (its video).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.video.layout import BLAZEPOSE33_NAMES, COCO17_NAMES, PoseSequence, mark_missing, to_coco17

logger = logging.getLogger(__name__)

KERAAL_FPS = 30.0
KERAAL_ASPECT = 16.0 / 9.0
TFJS_DEFAULT = {"fps": 5.0, "width": 720, "height": 1280}
MOVENET_DEFAULT = {"fps": 30.0, "width": 576, "height": 576}


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"landmark file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def sibling_video_info(path: str | Path) -> dict[str, Any] | None:
    """fps, width and height of the video next to a landmark file, if there is one.

    Args:
        path: landmark file; its name up to the first dot plus ``.mp4`` is tried.

    Returns:
        ``{"fps", "width", "height", "video"}`` or None when no readable video exists.
    """
    from physio_ray.video.decode import video_info

    p = Path(path)
    candidate = p.with_name(p.name.split(".")[0] + ".mp4")
    if not candidate.is_file():
        return None
    try:
        info = video_info(candidate)
    except (OSError, ValueError):
        return None
    return {"fps": info.fps, "width": float(info.width), "height": float(info.height), "video": str(candidate)}


def _frame_params(
    path: Path, fps: float | None, frame_size: tuple[int, int] | None, default: dict[str, float]
) -> tuple[float, float, float, dict[str, Any]]:
    """Resolves (fps, width, height) from arguments, the sibling video, then defaults."""
    meta: dict[str, Any] = {"path": str(path)}
    info = sibling_video_info(path) if fps is None or frame_size is None else None
    if info is not None:
        meta["sibling_video"] = info["video"]
    if fps is None:
        fps = info["fps"] if info else default["fps"]
        meta["fps_from"] = "sibling video" if info else "default"
    if frame_size is None:
        frame_size = (
            (int(info["width"]), int(info["height"])) if info else (int(default["width"]), int(default["height"]))
        )
        meta["frame_size_from"] = "sibling video" if info else "default"
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ValueError(f"frame_size={frame_size} must be positive (width, height)")
    meta["frame_size"] = [int(width), int(height)]
    return float(fps), float(width), float(height), meta


def read_keraal(path: str | Path, fps: float = KERAAL_FPS, aspect: float = KERAAL_ASPECT) -> PoseSequence:
    """Reads a KERAAL BlazePose JSON (``{"positions": {"<frame>": {"Nose": [x, y, z], ...}}}``).

    Args:
        path: ``G3-BP-<exercise>-...json``.
        fps: frame rate (KERAAL: 30).
        aspect: frame width / height of the source video.

    Returns:
        ``image3d`` keypoints (x, y normalised, z BlazePose relative depth), visibility 1
        (the files carry none) or 0 for non-finite points.

    Raises:
        FileNotFoundError, ValueError: missing file, bad JSON, or frames without the 33
            named landmarks.
    """
    path = Path(path)
    data = _load_json(path)
    positions = data.get("positions") if isinstance(data, dict) else None
    if not isinstance(positions, dict) or not positions:
        raise ValueError(f"{path} has no 'positions' mapping of frames (KERAAL BlazePose format)")
    try:
        keys = sorted(positions, key=float)
    except ValueError as exc:
        raise ValueError(f"{path}: frame keys must be numbers, got {list(positions)[:3]}") from exc
    names = [n.capitalize() for n in BLAZEPOSE33_NAMES]
    frames = []
    for key in keys:
        frame = positions[key]
        if not isinstance(frame, dict) or len(frame) != 33:
            n = len(frame) if isinstance(frame, dict) else 0
            raise ValueError(f"{path}: frame {key} has {n} landmarks, expected the 33 BlazePose landmarks")
        try:
            frames.append([[float(v) for v in frame[n][:3]] for n in names])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"{path}: frame {key} is missing or has a malformed landmark ({exc})") from exc
    kp = to_coco17(np.asarray(frames, dtype=np.float32), third="z")
    meta: dict[str, Any] = {"path": str(path), "fps_from": "KERAAL default", "aspect_from": "KERAAL default (16:9)"}
    return PoseSequence(kp, fps, "image3d", aspect, meta)


def read_tfjs(path: str | Path, fps: float | None = None, frame_size: tuple[int, int] | None = None) -> PoseSequence:
    """Reads tfjs-models BlazePose JSON: frames x 33 x ``[x_px, y_px, z]`` (or 17 points).

    Args:
        path: e.g. ``pose_squats.full.json``.
        fps: frame rate; None: from the sibling video, else 5.
        frame_size: (width, height) in pixels; None: from the sibling video, else 720x1280.

    Returns:
        ``image3d`` keypoints with x, y normalised by width, height and z divided by width.

    Raises:
        FileNotFoundError, ValueError: missing file, bad JSON, or a wrong landmark layout.
    """
    path = Path(path)
    data = _load_json(path)
    try:
        arr = np.asarray(data, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: expected a frames x landmarks x channels array ({exc})") from exc
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"{path}: expected frames x landmarks x channels, got shape {arr.shape}")
    fps_v, width, height, meta = _frame_params(path, fps, frame_size, TFJS_DEFAULT)
    kp = to_coco17(arr, third="z")  # raises on a wrong landmark count
    kp[..., 0] /= width
    kp[..., 1] /= height
    kp[..., 2] /= width
    return PoseSequence(kp, fps_v, "image3d" if arr.shape[-1] >= 3 else "image2d", width / height, meta)


def read_movenet(path: str | Path, fps: float | None = None, frame_size: tuple[int, int] | None = None) -> PoseSequence:
    """Reads MoveNet JSON: a list of frames, each ``{name: {"x": px, "y": px[, "score": s]}}``.

    Args:
        path: e.g. ``pose_1.json`` (17 COCO keypoints per frame).
        fps: frame rate; None: from the sibling video, else 30.
        frame_size: (width, height) in pixels; None: from the sibling video, else 576x576.

    Returns:
        ``image2d`` keypoints; visibility is the keypoint ``score`` when present, else 1.

    Raises:
        FileNotFoundError, ValueError: missing file, bad JSON, or frames without the 17
            COCO keypoint names.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of frames")
    fps_v, width, height, meta = _frame_params(path, fps, frame_size, MOVENET_DEFAULT)
    kp = np.full((len(data), 17, 4), np.nan, dtype=np.float32)
    for t, frame in enumerate(data):
        if not isinstance(frame, dict) or len(frame) != 17:
            n = len(frame) if isinstance(frame, dict) else 0
            raise ValueError(f"{path}: frame {t} has {n} keypoints, expected the 17 COCO keypoints")
        for j, name in enumerate(COCO17_NAMES):
            point = frame.get(name)
            if not isinstance(point, dict) or "x" not in point or "y" not in point:
                raise ValueError(f"{path}: frame {t} has no keypoint {name!r} with x and y")
            kp[t, j] = (float(point["x"]) / width, float(point["y"]) / height, np.nan, float(point.get("score", 1.0)))
    return PoseSequence(mark_missing(kp), fps_v, "image2d", width / height, meta)
