"""The labelled recordings used to score repetition counting (read with the shared readers).

* tfjs ``pose_squats.full.json``: 2 complete squats + 1 partial (SOURCE.txt), 5 fps.
* UI-PRMD Kinect episodes: each file is ONE segmented repetition (30 Hz, world coordinates).
* KERAAL BlazePose recordings: one repetition each (30 fps, normalised image coordinates).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TFJS_SQUAT = ("tfjs-pose-squats", "pose_squats.full.json")
TFJS_SQUAT_REPS = 2


@dataclass(frozen=True)
class LabelledSequence:
    """A recording with its known repetition count.

    Attributes:
        source: dataset plus file stem.
        exercise: canonical exercise name.
        subject: subject id where known.
        correct: the dataset's execution label.
        expected: complete repetitions in the recording.
        keypoints: ``[T, 17, 4]`` COCO-17 keypoints from the shared reader.
        fps: frame rate.
        coord_space: ``world3d`` or an image space.
        aspect: frame width / height for image spaces.
    """

    source: str
    exercise: str
    subject: str | None
    correct: bool
    expected: int
    keypoints: np.ndarray
    fps: float
    coord_space: str
    aspect: float


def _uiprmd_files(root: Path, include_incorrect: bool) -> list[Path]:
    dirs = ["Segmented_Movements"] + (["Incorrect_Segmented_Movements"] if include_incorrect else [])
    files: list[Path] = []
    for d in dirs:
        files.extend(sorted((root / d / "Kinect" / "Positions").glob("m*_s*_e*_positions*.txt*")))
    return files


def iter_labelled_sequences(
    data_dir: Path,
    *,
    movements: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    episodes: Sequence[int] | None = None,
    include_incorrect: bool = True,
    include_tfjs: bool = True,
    include_keraal: bool = True,
) -> Iterator[LabelledSequence]:
    """Yields every labelled sequence found under ``data_dir`` (missing datasets are skipped).

    Args:
        data_dir: the shared data folder.
        movements: UI-PRMD movement ids (``m01``..``m10``); None for all.
        subjects: UI-PRMD subject ids; None for all.
        episodes: UI-PRMD episode numbers; None for all.
        include_incorrect: also the ``_inc`` UI-PRMD executions.
        include_tfjs: the tfjs squat clip.
        include_keraal: the KERAAL recordings.

    Yields:
        :class:`LabelledSequence` objects.
    """
    from physio_ray.video.exercises import exercise_for_source
    from physio_ray.video.landmark_files import read_keraal, read_tfjs
    from physio_ray.video.uiprmd import parse_uiprmd_name, read_uiprmd

    tfjs = data_dir.joinpath(*TFJS_SQUAT)
    if include_tfjs and tfjs.is_file():
        seq = read_tfjs(tfjs)
        yield LabelledSequence(
            "tfjs/pose_squats",
            "squat",
            None,
            True,
            TFJS_SQUAT_REPS,
            seq.keypoints,
            seq.fps,
            seq.coord_space,
            seq.aspect,
        )
    root = data_dir / "ui-prmd"
    for path in _uiprmd_files(root, include_incorrect) if root.is_dir() else []:
        meta = parse_uiprmd_name(path)
        if movements is not None and meta["movement"] not in movements:
            continue
        if subjects is not None and meta["subject"] not in subjects:
            continue
        if episodes is not None and meta["episode"] not in episodes:
            continue
        exercise = exercise_for_source("uiprmd", path)
        if exercise is None:
            continue
        seq = read_uiprmd(path)
        stem = path.name.split(".")[0].replace("_positions", "")
        yield LabelledSequence(
            f"uiprmd/{stem}",
            exercise,
            str(meta["subject"]),
            bool(meta["correct"]),
            1,
            seq.keypoints,
            seq.fps,
            seq.coord_space,
            seq.aspect,
        )
    keraal = data_dir / "keraal"
    for path in sorted(keraal.glob("G3-BP-*.json")) if include_keraal and keraal.is_dir() else []:
        exercise = exercise_for_source("keraal", path)
        if exercise is None:
            continue
        seq = read_keraal(path)
        correct = "-C-" in path.name
        yield LabelledSequence(
            f"keraal/{path.stem}", exercise, None, correct, 1, seq.keypoints, seq.fps, seq.coord_space, seq.aspect
        )
