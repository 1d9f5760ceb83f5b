"""1 fps frame extraction from PitVis videos, named to match the PitVQA per-second labels.

PitVQA labels one row per second (``int_time``); the dataset's ``image`` column points at
``video_XX/frame_NNNNNN.jpg`` where ``NNNNNN`` is that second. Users who have the PitVis videos
(``doi:10.5522/04/26531686``, 1280x720 H.264 at 24 fps) extract those files with
:func:`extract_frames`; nothing here downloads anything.

Frame ``NNNNNN`` is the decoded frame whose index is ``round(NNNNNN * fps)``, i.e. the first
frame of that second.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from physio_ray.schemas import ERROR

logger = logging.getLogger(__name__)

__all__ = ["FrameExtractor", "extract_frames", "frame_path"]


def frame_path(video_num: int, second: int) -> str:
    """Relative path of the frame of ``second`` in video ``video_num``.

    >>> frame_path(3, 125)
    'video_03/frame_000125.jpg'
    """
    return f"video_{video_num:02d}/frame_{second:06d}.jpg"


def _frame_index(second: int, fps: float) -> int:
    """Index of the first frame of ``second`` (round half up)."""
    return int(math.floor(second * fps + 0.5))


def extract_frames(
    video_path: str | Path,
    out_root: str | Path,
    video_num: int,
    seconds: Iterable[int] | None = None,
    jpeg_quality: int = 90,
    overwrite: bool = False,
) -> list[str]:
    """Writes one JPEG per second of a video under ``out_root/video_XX/``.

    Decodes sequentially (``grab`` every frame, ``retrieve`` only the wanted ones), which is
    the fast path for H.264.

    Args:
        video_path: the video file (anything OpenCV/FFmpeg reads).
        out_root: root folder; frames go to ``out_root/video_XX/frame_NNNNNN.jpg``.
        video_num: the PitVQA video number XX.
        seconds: which seconds to write (``None``: every whole second of the video).
        jpeg_quality: 0-100 JPEG quality.
        overwrite: rewrite frames that already exist (otherwise they are skipped, so a rerun resumes).

    Returns:
        The relative paths (``frame_path``) of the frames now present, in time order.

    Raises:
        FileNotFoundError: when the video does not exist.
        ValueError: when OpenCV cannot open it or it reports no frame rate.
    """
    import cv2

    path = Path(video_path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"OpenCV cannot open {path} (unsupported codec or not a video)")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"{path} reports no frame rate (CAP_PROP_FPS={fps}); cannot map frames to seconds")
        wanted_s = sorted({int(s) for s in seconds}) if seconds is not None else None
        if wanted_s and wanted_s[0] < 0:
            raise ValueError(f"seconds must be >= 0, got {wanted_s[0]}")
        targets = iter(wanted_s) if wanted_s is not None else itertools.count()
        out_dir = Path(out_root) / f"video_{video_num:02d}"
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[str] = []
        index = 0
        sec = next(targets, None)
        while sec is not None and cap.grab():
            frame = None
            while sec is not None and _frame_index(sec, fps) <= index:
                if _frame_index(sec, fps) == index:
                    rel = frame_path(video_num, sec)
                    target = Path(out_root) / rel
                    if overwrite or not target.exists():
                        if frame is None:
                            ok, frame = cap.retrieve()
                            if not ok:
                                raise ValueError(f"{path}: frame {index} could not be decoded")
                        cv2.imwrite(str(target), frame, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
                    written.append(rel)
                sec = next(targets, None)
            index += 1
    finally:
        cap.release()
    if wanted_s is not None and len(written) < len(wanted_s):
        logger.warning(
            "%s: %d of %d requested seconds lie past the end", path, len(wanted_s) - len(written), len(wanted_s)
        )
    return written


class FrameExtractor:
    """Ray Data batch callable: extracts 1 fps frames for each video row.

    Reads columns ``video_path`` (str) and ``video_num`` (int); adds ``n_frames`` (int) and
    ``error`` (str, None when fine). A video that fails sets ``error`` and the batch continues.

    Args:
        out_root: where ``video_XX/frame_NNNNNN.jpg`` files go.
        jpeg_quality: 0-100.
    """

    def __init__(self, out_root: str, jpeg_quality: int = 90) -> None:
        self.out_root = out_root
        self.jpeg_quality = jpeg_quality

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        counts: list[int] = []
        errors: list[str | None] = []
        for path, num in zip(batch["video_path"], batch["video_num"], strict=True):
            try:
                counts.append(len(extract_frames(str(path), self.out_root, int(num), jpeg_quality=self.jpeg_quality)))
                errors.append(None)
            except (OSError, ValueError) as exc:
                counts.append(0)
                errors.append(f"{type(exc).__name__}: {exc}")
        return {**batch, "n_frames": np.array(counts, dtype=np.int64), ERROR: np.array(errors, dtype=object)}
