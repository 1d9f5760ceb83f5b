"""Exercise catalogue: canonical names, display names and the angle that drives each movement.

The driving signal tells keyframe selection where the repetitions are: a combination of
:data:`~physio_ray.video.angles.ANGLE_NAMES` (their mean, or the single one with the
largest range when the working side is not known) and which extreme of it is the working
position of a repetition (``"min"``: squat bottom, leg raised; ``"max"``: arm raised;
``"auto"``: the extreme farther from the starting posture).

Example:
    >>> get_exercise("deep_squat").driving_angles
    ('left_knee', 'right_knee')
    >>> exercise_for_source("keraal", "G3-BP-CTK-P1T1-Unknown-C-0.json")
    'hiding_face'
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from physio_ray.video.angles import ANGLE_NAMES


@dataclass(frozen=True)
class Exercise:
    """One exercise of the catalogue.

    Attributes:
        name: canonical snake_case name (the ``exercise`` column).
        display_name: human-readable name for questions and feedback.
        dataset: where recordings of it come from (``uiprmd``, ``keraal``, ``tfjs``).
        code: the dataset's own id (``m01``, ``CTK``), if any.
        driving_angles: angles that make up the driving signal.
        combine: ``"mean"`` of the angles, or ``"max_range"``: the one that moves most.
        working_extreme: ``"min"``, ``"max"`` or ``"auto"`` (see the module docstring).
    """

    name: str
    display_name: str
    dataset: str
    code: str | None
    driving_angles: tuple[str, ...]
    combine: Literal["mean", "max_range"] = "mean"
    working_extreme: Literal["min", "max", "auto"] = "auto"

    def __post_init__(self) -> None:
        unknown = [a for a in self.driving_angles if a not in ANGLE_NAMES]
        if unknown or not self.driving_angles:
            raise ValueError(f"exercise {self.name}: unknown driving angles {unknown}; valid: {ANGLE_NAMES}")


_KNEES = ("left_knee", "right_knee")
_HIPS = ("left_hip", "right_hip")
_SHOULDERS = ("left_shoulder", "right_shoulder")
_ELBOWS = ("left_elbow", "right_elbow")

_ALL: tuple[Exercise, ...] = (
    Exercise("deep_squat", "deep squat (dowel overhead)", "uiprmd", "m01", _KNEES, "mean", "min"),
    Exercise("hurdle_step", "hurdle step", "uiprmd", "m02", _HIPS + _KNEES, "max_range", "min"),
    Exercise("inline_lunge", "inline lunge", "uiprmd", "m03", _KNEES, "mean", "min"),
    Exercise("side_lunge", "side lunge", "uiprmd", "m04", _KNEES, "max_range", "min"),
    Exercise("sit_to_stand", "sit to stand", "uiprmd", "m05", _HIPS, "mean", "auto"),
    Exercise(
        "standing_straight_leg_raise", "standing active straight leg raise", "uiprmd", "m06", _HIPS, "max_range", "min"
    ),
    Exercise("shoulder_abduction", "standing shoulder abduction", "uiprmd", "m07", _SHOULDERS, "max_range", "max"),
    Exercise("shoulder_extension", "standing shoulder extension", "uiprmd", "m08", _SHOULDERS, "max_range", "max"),
    Exercise(
        "shoulder_rotation",
        "standing shoulder internal-external rotation",
        "uiprmd",
        "m09",
        _SHOULDERS + _ELBOWS,
        "max_range",
        "auto",
    ),
    Exercise("shoulder_scaption", "standing shoulder scaption", "uiprmd", "m10", _SHOULDERS, "max_range", "max"),
    Exercise("hiding_face", "hiding face", "keraal", "CTK", _SHOULDERS + _ELBOWS, "max_range", "auto"),
    Exercise("flank_stretch", "flank stretch", "keraal", "ELK", _SHOULDERS + ("trunk_lean",), "max_range", "auto"),
    Exercise(
        "torso_rotation", "torso rotation", "keraal", "RTK", _SHOULDERS + _ELBOWS + ("trunk_lean",), "max_range", "auto"
    ),
    Exercise("squat", "bodyweight squat", "tfjs", None, _KNEES, "mean", "min"),
)

EXERCISES: dict[str, Exercise] = {e.name: e for e in _ALL}
UIPRMD_MOVEMENTS: dict[str, str] = {e.code: e.name for e in _ALL if e.dataset == "uiprmd" and e.code}
KERAAL_EXERCISES: dict[str, str] = {e.code: e.name for e in _ALL if e.dataset == "keraal" and e.code}

# Used when the exercise is unknown: the flexion angle (or L/R pair) that moves most.
GENERIC_CANDIDATES: tuple[str, ...] = _ELBOWS + _SHOULDERS + _HIPS + _KNEES


def get_exercise(name: str) -> Exercise:
    """Looks an exercise up by canonical name.

    Args:
        name: e.g. ``"deep_squat"``.

    Returns:
        The :class:`Exercise`.

    Raises:
        KeyError: naming the closest valid exercise.
    """
    try:
        return EXERCISES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(EXERCISES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {sorted(EXERCISES)}"
        raise KeyError(f"unknown exercise {name!r}{hint}") from None


def uiprmd_exercise(movement: str) -> str:
    """Canonical name of a UI-PRMD movement id.

    Args:
        movement: ``"m01"`` .. ``"m10"``.

    Returns:
        e.g. ``"deep_squat"``.

    Raises:
        KeyError: for an unknown id.
    """
    try:
        return UIPRMD_MOVEMENTS[movement]
    except KeyError:
        raise KeyError(f"unknown UI-PRMD movement {movement!r}; valid: {sorted(UIPRMD_MOVEMENTS)}") from None


def keraal_exercise(code: str) -> str:
    """Canonical name of a KERAAL exercise code.

    Args:
        code: ``"CTK"`` (hiding face), ``"ELK"`` (flank stretch) or ``"RTK"`` (torso rotation).

    Returns:
        e.g. ``"hiding_face"``.

    Raises:
        KeyError: for an unknown code.
    """
    try:
        return KERAAL_EXERCISES[code]
    except KeyError:
        raise KeyError(f"unknown KERAAL exercise {code!r}; valid: {sorted(KERAAL_EXERCISES)}") from None


def exercise_for_source(source_kind: str, path: str | Path) -> str | None:
    """Infers the canonical exercise from a dataset file name, when the name says it.

    Args:
        source_kind: ``"uiprmd"``, ``"keraal"``, ``"tfjs"``, ``"movenet"`` or ``"video"``.
        path: the source file.

    Returns:
        The canonical name, or None when the file name does not tell.
    """
    name = Path(path).name
    if source_kind == "uiprmd":
        m = re.match(r"(m\d{2})_", name)
        return UIPRMD_MOVEMENTS.get(m.group(1)) if m else None
    if source_kind == "keraal":
        for code, ex in KERAAL_EXERCISES.items():
            if re.search(rf"(^|[-_]){code}([-_]|$)", name):
                return ex
        return None
    if "squat" in name.lower():
        return "squat"
    return None
