"""How questions talk about each exercise: names, families, aliases and typical deviations.

:data:`EXERCISES` holds the noun phrase and the family (which measured templates apply) of
every movement we ship; :func:`canonical_exercise` maps dataset names and codes to its keys;
:data:`DEVIATIONS` lists per movement its most typical deviation first (the answer of an
"incorrect" ground-truth question), then alternatives used as distractors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """How questions talk about one exercise.

    Attributes:
        name: noun phrase used in stems ("deep squat").
        family: ``squat`` | ``lunge`` | ``sit_to_stand`` | ``leg_raise`` | ``shoulder_elevation`` |
            ``shoulder_other`` | ``trunk`` (decides which measured templates apply).
    """

    name: str
    family: str


EXERCISES: dict[str, Exercise] = {
    "squat": Exercise("bodyweight squat", "squat"),
    "deep_squat": Exercise("deep squat", "squat"),
    "hurdle_step": Exercise("hurdle step", "lunge"),
    "inline_lunge": Exercise("in-line lunge", "lunge"),
    "side_lunge": Exercise("side lunge", "lunge"),
    "sit_to_stand": Exercise("sit-to-stand", "sit_to_stand"),
    "standing_straight_leg_raise": Exercise("standing active straight leg raise", "leg_raise"),
    "shoulder_abduction": Exercise("standing shoulder abduction", "shoulder_elevation"),
    "shoulder_extension": Exercise("standing shoulder extension", "shoulder_other"),
    "shoulder_rotation": Exercise("standing shoulder internal-external rotation", "shoulder_other"),
    "shoulder_scaption": Exercise("standing shoulder scaption", "shoulder_elevation"),
    "hiding_face": Exercise("hiding-face exercise (CTK)", "trunk"),
    "flank_stretch": Exercise("flank-stretch exercise (ELK)", "trunk"),
    "torso_rotation": Exercise("torso-rotation exercise (RTK)", "trunk"),
}

_ALIASES_EXERCISE = {
    "m01": "deep_squat",
    "m02": "hurdle_step",
    "m03": "inline_lunge",
    "m04": "side_lunge",
    "m05": "sit_to_stand",
    "m06": "standing_straight_leg_raise",
    "m07": "shoulder_abduction",
    "m08": "shoulder_extension",
    "m09": "shoulder_rotation",
    "m10": "shoulder_scaption",
    "ctk": "hiding_face",
    "keraal_ctk": "hiding_face",
    "elk": "flank_stretch",
    "keraal_elk": "flank_stretch",
    "rtk": "torso_rotation",
    "keraal_rtk": "torso_rotation",
    "bodyweight_squat": "squat",
    "in_line_lunge": "inline_lunge",
    "standing_active_straight_leg_raise": "standing_straight_leg_raise",
    "straight_leg_raise": "standing_straight_leg_raise",
    "standing_shoulder_abduction": "shoulder_abduction",
    "standing_shoulder_extension": "shoulder_extension",
    "shoulder_internal_external_rotation": "shoulder_rotation",
    "standing_shoulder_internal_external_rotation": "shoulder_rotation",
    "standing_shoulder_scaption": "shoulder_scaption",
    "scaption": "shoulder_scaption",
}


def canonical_exercise(name: str | None) -> str | None:
    """Maps an exercise name ("Deep squat", "m01", "keraal-CTK") to a key of :data:`EXERCISES`.

    >>> canonical_exercise("Deep squat"), canonical_exercise("m07"), canonical_exercise("rowing")
    ('deep_squat', 'shoulder_abduction', None)
    """
    if not name:
        return None
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    key = _ALIASES_EXERCISE.get(key, key)
    return key if key in EXERCISES else None


# Per exercise: the most typical deviation first (the answer for a label "incorrect"), then
# alternatives used as distractors. Written from clinical knowledge (see the corpus passages).
DEVIATIONS: dict[str, tuple[str, ...]] = {
    "deep_squat": (
        "Insufficient depth: the thighs stay well above parallel",
        "Heels lift off the floor during the descent",
        "Knees collapse inward (dynamic knee valgus)",
        "The dowel drifts forward of the feet as the trunk tips forward",
    ),
    "hurdle_step": (
        "Reduced hip and knee flexion of the stepping leg, which barely clears the hurdle",
        "The stance knee bends during the step",
        "The stepping leg swings out to the side (hip abduction)",
        "The trunk leans or rotates toward the stance side",
    ),
    "inline_lunge": (
        "Insufficient lunge depth: the back knee stays far from the floor",
        "The trunk leans forward instead of staying vertical",
        "The front knee collapses inward",
        "Loss of balance with lateral sway of the trunk",
    ),
    "side_lunge": (
        "Insufficient depth: the lunging knee and hip barely bend",
        "The lunging knee collapses inward",
        "The trunk drops far forward over the thigh",
        "The heel of the lunging leg lifts off the floor",
    ),
    "sit_to_stand": (
        "Incomplete rise: hips and knees do not reach full extension when standing",
        "The arms are used to push up from the chair",
        "Weight shifts onto one leg (asymmetric rise)",
        "The person drops back into the chair without control",
    ),
    "standing_straight_leg_raise": (
        "Reduced range: the leg is raised only a little in front of the body",
        "The knee of the raised leg bends",
        "The trunk leans backwards to help lift the leg",
        "The stance knee bends during the raise",
    ),
    "shoulder_abduction": (
        "Reduced range: the arm stops below shoulder height",
        "The shoulder hikes up toward the ear (upper trapezius substitution)",
        "The trunk side-bends away from the moving arm",
        "The elbow bends to shorten the lever",
    ),
    "shoulder_extension": (
        "Reduced range: the arm barely moves behind the body",
        "The trunk flexes forward to move the arm backwards",
        "The elbow bends during the movement",
        "The shoulder shrugs and tips forward",
    ),
    "shoulder_rotation": (
        "Reduced rotation range of the forearm",
        "The elbow drifts away from the side of the trunk",
        "The trunk rotates instead of the shoulder",
        "The wrist bends instead of the shoulder rotating",
    ),
    "shoulder_scaption": (
        "Reduced range: the arm stops below shoulder height",
        "The arm moves out of the scapular plane into pure abduction",
        "The shoulder hikes up toward the ear",
        "The trunk leans backwards to lift the arm",
    ),
}
