"""Video decoding with OpenCV: metadata, frame iteration, frames at indices, JPEG bytes.

Frames are returned as RGB ``uint8 [H, W, 3]`` (what MediaPipe, PIL and VLM processors
expect). Frames are read sequentially rather than by seeking, because seeking is not
frame-accurate for every codec.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class VideoInfo:
    """Container metadata of a video.

    Attributes:
        fps: frames per second (``DEFAULT_FPS`` when the container reports none).
        n_frames: frame count reported by the container (may be approximate).
        width: frame width in pixels.
        height: frame height in pixels.
    """

    fps: float
    n_frames: int
    width: int
    height: int


def _open(path: str | Path) -> cv2.VideoCapture:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"video not found: {p}")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"could not open video {p} (corrupt file or unsupported codec)")
    return cap


def video_info(path: str | Path) -> VideoInfo:
    """Reads fps, frame count and frame size without decoding frames.

    Args:
        path: video file.

    Returns:
        The :class:`VideoInfo`.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when OpenCV cannot open it or it reports no frame size.
    """
    cap = _open(path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    finally:
        cap.release()
    if w <= 0 or h <= 0:
        raise ValueError(f"video {path} reports no frame size (corrupt file?)")
    if not (math.isfinite(fps) and 0 < fps < 1000):
        fps = DEFAULT_FPS
    return VideoInfo(fps=float(fps), n_frames=max(n, 0), width=w, height=h)


def iter_frames(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yields decoded frames in order as RGB ``uint8 [H, W, 3]``.

    Args:
        path: video file.
        max_frames: stop after this many frames (None: all).

    Yields:
        RGB frames.

    Raises:
        FileNotFoundError, ValueError: as :func:`video_info`.
    """
    cap = _open(path)
    try:
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def read_frames(video_path: str | Path, indices: Sequence[int]) -> list[np.ndarray]:
    """Returns the frames at ``indices`` (any order, repeats allowed) as RGB arrays.

    Args:
        video_path: video file.
        indices: 0-based frame indices.

    Returns:
        One RGB ``uint8 [H, W, 3]`` array per requested index, in the order asked.

    Raises:
        FileNotFoundError, ValueError: as :func:`video_info`.
        IndexError: when an index is negative or past the last decodable frame.
    """
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return []
    if wanted[0] < 0:
        raise IndexError(f"frame indices must be >= 0, got {wanted[0]}")
    got: dict[int, np.ndarray] = {}
    cap = _open(video_path)
    try:
        pos = 0
        for idx in wanted:
            while pos < idx:  # skip without converting
                if not cap.grab():
                    break
                pos += 1
            ok, frame = cap.read() if pos == idx else (False, None)
            if not ok or frame is None:
                raise IndexError(f"frame {idx} is past the end of {video_path} ({pos} frames decoded)")
            got[idx] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            pos += 1
    finally:
        cap.release()
    return [got[int(i)] for i in indices]


def encode_jpeg(frame_rgb: np.ndarray, quality: int = 90, max_side: int | None = None) -> bytes:
    """Encodes an RGB frame as JPEG bytes, optionally downscaled so its longer side fits.

    Args:
        frame_rgb: ``uint8 [H, W, 3]`` RGB.
        quality: JPEG quality 1..100.
        max_side: longest side in pixels after resizing (None: keep the size).

    Returns:
        The JPEG file contents.

    Raises:
        ValueError: when the frame is not ``[H, W, 3]`` or encoding fails.
    """
    frame = np.asarray(frame_rgb)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame [H, W, 3], got shape {frame.shape}")
    if max_side is not None and max(frame.shape[:2]) > max_side:
        scale = max_side / max(frame.shape[:2])
        size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def read_keyframe_jpegs(
    video_path: str | Path, indices: Sequence[int], quality: int = 90, max_side: int | None = 768
) -> list[bytes]:
    """JPEG bytes of the frames at ``indices`` (for the VLM path and the HTML review).

    Args:
        video_path: video file.
        indices: 0-based frame indices, e.g. a row's ``keyframe_indices``.
        quality: JPEG quality.
        max_side: downscale so the longer side is at most this (None: full size).

    Returns:
        One JPEG per index, in the order asked.

    Raises:
        FileNotFoundError, ValueError, IndexError: as :func:`read_frames`.
    """
    return [encode_jpeg(f, quality, max_side) for f in read_frames(video_path, indices)]
