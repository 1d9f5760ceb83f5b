"""Ray-Data-ready stage "poses": :class:`PoseExtractor` (landmarks + 16 angles per recording).

A plain class, no Ray import: the pipeline wires it with ``ds.map_batches(PoseExtractor,
fn_constructor_kwargs={"pose_cfg": cfg.pose}, compute=ActorPoolStrategy(...),
batch_size=cfg.pose.resources.batch_size, batch_format="numpy")``. A batch is a dict of
column -> numpy array; list-valued outputs are object arrays of Python lists so they land in
Parquet as ``list<double>``. A row that fails gets ``error`` set (and empty lists) and the
batch goes on; a row that arrives with ``error`` set passes through.

Columns read: ``video_id``, ``source_kind``, ``source_path`` (+ ``error`` if present).
Added: ``fps``, ``n_frames``, ``keypoints``, ``coord_space``, ``angles``, ``error`` and
:data:`physio_ray.schemas.ASPECT` (frame width / height, needed to measure image-space keypoints). The "keyframes" stage is :class:`physio_ray.video.keyframes.KeyframeSelector`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from physio_ray.batches import object_array
from physio_ray.schemas import (
    ANGLES,
    ASPECT,
    COORD_SPACE,
    ERROR,
    FPS,
    KEYPOINTS,
    N_FRAMES,
    SOURCE_KIND,
    SOURCE_PATH,
    VIDEO_ID,
)
from physio_ray.video.angles import ANGLE_NAMES, joint_angles
from physio_ray.video.config import PoseConfig
from physio_ray.video.exercises import exercise_for_source, get_exercise
from physio_ray.video.landmark_files import read_keraal, read_movenet, read_tfjs
from physio_ray.video.layout import SOURCE_KINDS, PoseSequence, visible_fraction
from physio_ray.video.smoothing import smooth_sequence
from physio_ray.video.uiprmd import read_uiprmd

logger = logging.getLogger(__name__)

N_ANGLES = len(ANGLE_NAMES)


def load_sequence(source_kind: str, source_path: str) -> PoseSequence:
    """Reads a ready landmark file of the given kind (everything but ``video``).

    Args:
        source_kind: ``uiprmd`` (positions file; the angles file is derived), ``keraal``,
            ``tfjs`` or ``movenet``.
        source_path: the file.

    Returns:
        The :class:`PoseSequence`.

    Raises:
        ValueError: unknown kind or malformed file.
        FileNotFoundError: missing file.
    """
    readers: dict[str, Callable[[str], PoseSequence]] = {
        "uiprmd": read_uiprmd,
        "keraal": read_keraal,
        "tfjs": read_tfjs,
        "movenet": read_movenet,
    }
    if source_kind not in readers:
        raise ValueError(f"source_kind={source_kind!r} has no landmark reader; valid kinds: {list(SOURCE_KINDS)}")
    return readers[source_kind](source_path)


object_column = object_array  # the name the video stages use


def batch_cell(batch: dict[str, np.ndarray], column: str, i: int, default: Any = None) -> Any:
    if column not in batch:
        return default
    value = batch[column][i]
    if isinstance(value, np.generic):
        value = value.item()
    return value


def row_error(batch: dict[str, np.ndarray], i: int) -> str | None:
    err = batch_cell(batch, ERROR, i)
    return str(err) if err not in (None, "") and not (isinstance(err, float) and np.isnan(err)) else None


class PoseExtractor:
    """Stage "poses": landmarks + 16 joint angles per recording.

    Args:
        pose_cfg: MediaPipe and smoothing settings (``PoseConfig``).
        video_space: keypoint space for videos: ``"image3d"`` (drawable on frames; angles
            measured in the image plane) or ``"world3d"`` (MediaPipe world landmarks; better
            3D angles, see :mod:`physio_ray.video.mediapipe_pose`).

    Raises:
        RuntimeError: when the configured MediaPipe model is not bundled.
    """

    def __init__(self, pose_cfg: PoseConfig | None = None, video_space: str | None = None) -> None:
        from physio_ray.video.mediapipe_pose import MediaPipePose

        self.cfg = pose_cfg or PoseConfig()
        video_space = video_space or self.cfg.video_space
        if video_space not in ("image3d", "world3d"):
            raise ValueError(f"video_space={video_space!r} must be 'image3d' or 'world3d'")
        self.video_space = video_space
        self._pose = MediaPipePose(self.cfg.model_complexity, self.cfg.min_detection_confidence)

    def close(self) -> None:
        """Releases the MediaPipe graph now (rather than whenever the interpreter tears it down)."""
        self._pose.close()

    def __enter__(self) -> PoseExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def extract(self, source_kind: str, source_path: str) -> PoseSequence:
        """Reads or estimates one recording, checks it and smooths it.

        Args:
            source_kind: one of ``video``, ``uiprmd``, ``keraal``, ``tfjs``, ``movenet``.
            source_path: the file.

        Returns:
            The smoothed :class:`PoseSequence`.

        Raises:
            FileNotFoundError, ValueError: unreadable input, or too few frames with a person.
        """
        from physio_ray.video.mediapipe_pose import pose_from_video

        min_vis = self.cfg.min_visible_fraction
        if source_kind == "video":
            name = exercise_for_source(source_kind, source_path)
            seq, detected = pose_from_video(
                source_path,
                self._pose,
                self.cfg.max_frames,
                self.video_space,
                stride=self.cfg.stride,
                exercise=get_exercise(name) if name else None,
            )
            if detected < min_vis:
                raise ValueError(
                    f"no person detected: a pose was found in {detected:.0%} of {seq.n_frames} frames "
                    f"(pose.min_visible_fraction={min_vis})"
                )
        else:
            seq = load_sequence(source_kind, source_path)
            if self.cfg.max_frames is not None:
                seq.keypoints = seq.keypoints[: self.cfg.max_frames]
        frac = visible_fraction(seq.keypoints)
        if frac < min_vis:
            raise ValueError(
                f"no person: shoulders and hips are visible (and finite) in {frac:.0%} of "
                f"{seq.n_frames} frames (pose.min_visible_fraction={min_vis})"
            )
        if self.cfg.smoothing and seq.n_frames > 1:
            seq.keypoints = smooth_sequence(
                seq.keypoints, seq.fps, self.cfg.one_euro_min_cutoff, self.cfg.one_euro_beta
            )
        return seq

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Adds fps, n_frames, keypoints, coord_space, angles, aspect and error.

        Args:
            batch: columns ``video_id``, ``source_kind``, ``source_path`` (+ ``error``).

        Returns:
            The batch with the added columns (keypoints ``[T*17*4]`` and angles ``[T*16]``
            flattened row-major).
        """
        n = len(batch[VIDEO_ID])
        fps: list[float] = []
        n_frames: list[int] = []
        kps: list[list[float]] = []
        spaces: list[str | None] = []
        angles: list[list[float]] = []
        aspects: list[float] = []
        errors: list[str | None] = []
        for i in range(n):
            err = row_error(batch, i)
            seq = None
            if err is None:
                kind, path = batch_cell(batch, SOURCE_KIND, i), batch_cell(batch, SOURCE_PATH, i)
                try:
                    seq = self.extract(str(kind), str(path))
                    ang = joint_angles(seq.keypoints, seq.coord_space, aspect=seq.aspect)
                except Exception as exc:  # a bad row must not kill the batch
                    err = f"{type(exc).__name__}: {exc}"
                    logger.warning("poses: %s failed: %s", batch_cell(batch, VIDEO_ID, i), err)
                    seq = None
            if seq is None:
                fps.append(float("nan"))
                n_frames.append(0)
                kps.append([])
                spaces.append(None)
                angles.append([])
                aspects.append(float("nan"))
            else:
                fps.append(float(seq.fps))
                n_frames.append(seq.n_frames)
                kps.append(seq.keypoints.astype(np.float64).ravel().tolist())
                spaces.append(seq.coord_space)
                angles.append(ang.astype(np.float64).ravel().tolist())
                aspects.append(float(seq.aspect))
            errors.append(err)
        out = dict(batch)
        out[FPS] = np.asarray(fps, dtype=np.float64)
        out[N_FRAMES] = np.asarray(n_frames, dtype=np.int64)
        out[KEYPOINTS] = object_column(kps)
        out[COORD_SPACE] = object_column(spaces)
        out[ANGLES] = object_column(angles)
        out[ASPECT] = np.asarray(aspects, dtype=np.float64)
        out[ERROR] = object_column(errors)
        return out
