"""Repetition counting on whole recordings, and its accuracy on every labelled sequence we have.

:func:`count_reps` runs the *same* per-frame path as a live session (features, One-Euro
smoothing, hysteresis phases, time-based rep counting) over a recorded keypoint sequence, with
frame ``i`` at ``i / fps`` seconds. :func:`rep_count_report` scores it against the labels we
have: the tfjs squat clip (2 complete repetitions + 1 partial), every UI-PRMD episode (one
segmented repetition each) and the three KERAAL recordings (one repetition each).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from physio_ray.guidance.config import GuidanceConfig
from physio_ray.guidance.cues import cue_stream
from physio_ray.guidance.datasets import LabelledSequence, iter_labelled_sequences
from physio_ray.guidance.exercise_rules import CUE_RULES, RULES, ExerciseTracker
from physio_ray.guidance.features import as_xyzv, frame_angles_batch
from physio_ray.guidance.states import UnknownExerciseError
from physio_ray.video.angles import joint_angles
from physio_ray.video.layout import to_coco17

logger = logging.getLogger(__name__)


class NotCountableError(ValueError):
    """The exercise's movement cannot be followed by the shared joint angles."""


def _check_countable(exercise: str) -> None:
    if exercise not in RULES:
        raise UnknownExerciseError(exercise, tuple(RULES))
    if not RULES[exercise].countable:
        raise NotCountableError(
            f"{exercise} cannot be counted: its movement (forearm rotation about the upper arm) is not followed by "
            "any of the 16 shared joint angles; choose another exercise or add a forearm-rotation angle"
        )


def _timestamps(n: int, fps: float) -> np.ndarray:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps={fps!r} must be a positive number of frames per second")
    return np.arange(n, dtype=np.float64) * (1000.0 / float(fps))


def count_reps_angles(
    angles: np.ndarray,
    fps: float,
    exercise: str = "squat",
    config: GuidanceConfig | None = None,
    cues: np.ndarray | None = None,
    switched: np.ndarray | None = None,
) -> int:
    """Counts repetitions in a sequence of joint angles.

    Args:
        angles: ``[T, 16]`` joint angles in degrees (``physio_ray.video.angles.ANGLE_NAMES``).
        fps: frame rate of the sequence.
        exercise: canonical exercise name.
        config: thresholds (default: the seed's).
        cues: ``[T, N_CUES]`` view-invariant cues (:mod:`physio_ray.guidance.cues`); given, they
            drive the phases of exercises that have a cue rule.
        switched: ``[T]`` side switches (with ``cues``).

    Returns:
        The number of complete repetitions.

    Raises:
        UnknownExerciseError: for an exercise without a rule.
        NotCountableError: for an exercise the angles cannot follow.
        ValueError: for a bad shape or fps.
    """
    _check_countable(exercise)
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 2 or angles.shape[1] != 16:
        raise ValueError(f"angles must be [frames, 16], got shape {angles.shape}")
    cfg = config or GuidanceConfig()
    times = _timestamps(angles.shape[0], fps)
    tracker = ExerciseTracker(exercise, cfg, view_invariant=cues is not None)
    for i, t in enumerate(times):
        dt = 0.0 if i == 0 else min(t - times[i - 1], cfg.max_frame_gap_ms)
        cue = None if cues is None else cues[i]
        tracker.update(float(t), float(dt), angles[i], cue, bool(switched is not None and switched[i]))
    if times.size:
        tracker.finish(float(times[-1]))
    return tracker.reps


def count_reps(
    keypoints: np.ndarray,
    fps: float,
    exercise: str = "squat",
    *,
    image_size: tuple[float, float] | None = None,
    config: GuidanceConfig | None = None,
    third: str = "auto",
    view_invariant: bool = True,
) -> int:
    """Counts complete repetitions in a recorded keypoint sequence, wherever the camera stood.

    Phases come from the view-invariant cues (:mod:`physio_ray.guidance.cues`: vertical distances
    over limb lengths) for every exercise with a cue rule, from the 16 joint angles otherwise.
    Frames whose view cannot be estimated (shoulders and hips not visible) count as not seen;
    a side switch (the body turns round) drops the repetition under way.

    Args:
        keypoints: ``[frames, 33 | 17, 2 | 3 | 4]`` normalised image coordinates as MediaPipe
            or MoveNet produce them: ``(x, y)``, ``(x, y, z)`` for 33 BlazePose landmarks,
            ``(x, y, score)`` for 17 COCO keypoints, or ``(x, y, z, visibility)``.
        fps: frame rate; frame ``i`` is at ``i / fps`` seconds.
        exercise: canonical exercise name (``physio_ray.video.exercises``).
        image_size: ``(width, height)`` of the video, so normalised x and y are measured in the
            same units (``None``: a square picture).
        config: thresholds and smoothing (default: the seed's).
        third: meaning of a third channel: ``auto`` (score for 17 points, z for 33),
            ``score`` or ``z``. Points with NaN coordinates (undetected) count as not visible.
        view_invariant: False restores the angle-only counter (for comparisons).

    Returns:
        The number of complete repetitions (a repetition still under way at the end is not
        counted).

    Raises:
        UnknownExerciseError: for an exercise without a rule.
        NotCountableError: for an exercise the angles cannot follow.
        ValueError: for a bad shape, non-finite values or fps.

    Example:
        >>> import json, numpy as np  # doctest: +SKIP
        >>> kp = np.array(json.load(open("pose_squats.full.json"))) / [720, 1280, 720]  # doctest: +SKIP
        >>> count_reps(kp, fps=5.0, image_size=(720, 1280))  # doctest: +SKIP
        2
    """
    _check_countable(exercise)
    cfg = config or GuidanceConfig()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3:
        raise ValueError(f"keypoints must be [frames, 17 | 33, 2..4], got shape {kp.shape}")
    times = _timestamps(kp.shape[0], fps)
    if not view_invariant or exercise not in CUE_RULES:
        return count_reps_angles(frame_angles_batch(kp, times, cfg, image_size, third), fps, exercise, cfg)
    xyzv = as_xyzv(kp, allow_missing=True, third=third)
    aspect = 1.0
    if image_size is not None:
        w, h = (float(v) for v in image_size)
        if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
            raise ValueError(f"image_size={image_size} must be two positive numbers (width, height)")
        aspect = w / h
    cues, switched, _ = cue_stream(np.asarray(to_coco17(xyzv)), times, aspect, cfg.min_visibility)
    return count_reps_angles(np.full((kp.shape[0], 16), np.nan), fps, exercise, cfg, cues, switched)


@dataclass(frozen=True)
class RepCountItem:
    """One labelled sequence and what was counted.

    Attributes:
        source: ``tfjs``, ``uiprmd`` or ``keraal`` plus the file stem.
        exercise: canonical exercise name.
        subject: subject id where known.
        correct: the dataset's execution label (UI-PRMD ``_inc`` files are False).
        expected: labelled number of complete repetitions.
        counted: what :func:`count_reps` / :func:`count_reps_angles` returned.
    """

    source: str
    exercise: str
    subject: str | None
    correct: bool
    expected: int
    counted: int

    @property
    def error(self) -> int:
        """counted - expected."""
        return self.counted - self.expected


@dataclass
class RepCountReport:
    """Accuracy of repetition counting over labelled sequences.

    Attributes:
        items: one row per sequence.
        unsupported: exercises skipped because they are not countable.
        view: ``world3d`` (UI-PRMD in 3D) or ``frontal2d`` (UI-PRMD projected onto the camera plane).
    """

    items: list[RepCountItem] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    view: str = "world3d"

    def metrics(self, rows: Iterable[RepCountItem] | None = None) -> dict[str, float]:
        """MAE, exact accuracy and off-by-one accuracy of ``rows`` (default: every item)."""
        rows = list(self.items if rows is None else rows)
        if not rows:
            return {"n": 0, "mae": math.nan, "exact": math.nan, "obo": math.nan}
        err = np.array([abs(r.error) for r in rows], dtype=np.float64)
        return {
            "n": len(rows),
            "mae": float(err.mean()),
            "exact": float((err == 0).mean()),
            "obo": float((err <= 1).mean()),
        }

    def by_exercise(self, correct: bool | None = True) -> dict[str, dict[str, float]]:
        """Metrics per exercise (``correct=None``: correct and incorrect executions together)."""
        out = {}
        for ex in dict.fromkeys(r.exercise for r in self.items):
            rows = [r for r in self.items if r.exercise == ex and (correct is None or r.correct == correct)]
            if rows:
                out[ex] = self.metrics(rows)
        return out

    def render(self) -> str:
        """A plain-text table for benchmarks and reports."""
        lines = [f"rep counting ({self.view}): exercise, n, MAE, exact, off-by-one (correct executions)"]
        for ex, m in self.by_exercise(True).items():
            lines.append(f"  {ex:28s} n={m['n']:4d} MAE={m['mae']:.3f} exact={m['exact']:.3f} obo={m['obo']:.3f}")
        inc = self.by_exercise(False)
        if inc:
            lines.append("  deliberately incorrect executions (UI-PRMD _inc; expected 1):")
            for ex, m in inc.items():
                lines.append(f"  {ex:28s} n={m['n']:4d} MAE={m['mae']:.3f} exact={m['exact']:.3f} obo={m['obo']:.3f}")
        ok = self.metrics([r for r in self.items if r.correct])
        lines.append(f"  ALL correct n={ok['n']} MAE={ok['mae']:.3f} exact={ok['exact']:.3f} obo={ok['obo']:.3f}")
        if self.unsupported:
            lines.append(f"  not countable (skipped): {', '.join(self.unsupported)}")
        return "\n".join(lines)


VIEWS = ("world3d", "frontal2d")
"""How a world-coordinate sequence is measured: in 3D, or seen from the front (depth dropped)."""


def count_sequence(seq: LabelledSequence, view: str, cfg: GuidanceConfig) -> int:
    """Counts repetitions in one labelled sequence.

    Args:
        seq: the recording.
        view: ``world3d`` or ``frontal2d`` (only changes world-coordinate sequences).
        cfg: thresholds.

    Returns:
        The count.
    """
    if seq.coord_space == "world3d" and view == "world3d":
        angles = joint_angles(seq.keypoints, "world3d", min_visibility=cfg.min_visibility)
        return count_reps_angles(angles, seq.fps, seq.exercise, cfg)
    # Image sequences, or world ones seen from the front (x right, y down: drop depth).
    return count_reps(seq.keypoints, seq.fps, seq.exercise, image_size=(seq.aspect, 1.0), config=cfg)


def rep_count_report(
    data_dir: str | Path,
    *,
    movements: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    episodes: Sequence[int] | None = None,
    include_incorrect: bool = True,
    view: str = "world3d",
    config: GuidanceConfig | None = None,
) -> RepCountReport:
    """Counts repetitions on every labelled sequence under ``data_dir`` and scores the counts.

    Args:
        data_dir: the shared data folder (with ``tfjs-pose-squats/``, ``ui-prmd/``, ``keraal/``).
        movements: UI-PRMD movement ids to include (default: all ten).
        subjects: UI-PRMD subject ids (default: every subject present).
        episodes: UI-PRMD episode numbers (default: all).
        include_incorrect: also score the deliberately incorrect UI-PRMD executions.
        view: ``world3d`` measures UI-PRMD angles in 3D; ``frontal2d`` drops depth (what a
            camera in front of the person sees, as the Kinect was).
        config: thresholds.

    Returns:
        The :class:`RepCountReport`.

    Raises:
        ValueError: for an unknown view.
    """
    if view not in VIEWS:
        raise ValueError(f"view={view!r} must be 'world3d' or 'frontal2d'")
    cfg = config or GuidanceConfig()
    report = RepCountReport(view=view)
    for seq in iter_labelled_sequences(
        Path(data_dir), movements=movements, subjects=subjects, episodes=episodes, include_incorrect=include_incorrect
    ):
        if not RULES.get(seq.exercise) or not RULES[seq.exercise].countable:
            if seq.exercise not in report.unsupported:
                report.unsupported.append(seq.exercise)
            continue
        counted = count_sequence(seq, view, cfg)
        report.items.append(RepCountItem(seq.source, seq.exercise, seq.subject, seq.correct, seq.expected, counted))
    return report
