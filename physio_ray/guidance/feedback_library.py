"""Every sentence the guidance engine can say (seed 003 "Feedback library").

Human-phrased, short, authoritative; no numbers, no scores, no mention of software. A unit test
checks each phrase for digits and technical words. Exercises share the neutral sentences; each
has its own praise and corrective cues. Corrective keys:

* ``go_lower``: the attempt did not reach the exercise's range (said after a shallow attempt);
  worded per exercise ("Go slightly lower.", "Raise your arm a little higher.", ...).
* ``slow_down``: the repetition was faster than the exercise's minimum duration.
* ``align_knees``: kept from the seed for the squat family; only said when a rule detects it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

NEUTRAL = MappingProxyType(
    {
        "positioning": "Position yourself in front of the camera.",
        "verifying": "Get ready to begin.",
        "ready": "Ready when you are.",
        "reconfirm": "It looks like a different movement. Please confirm the exercise.",
        "completed": "Well done. That is the end of the session.",
    }
)

_SLOW = "Slow the movement."
_GOOD = ("That was good.", "Nice form.")


def _entry(range_cue: str, praise: str, *extra: tuple[str, str]) -> dict[str, Any]:
    return {
        "positive": (praise, *_GOOD),
        "corrective": MappingProxyType({"go_lower": range_cue, "slow_down": _SLOW, **dict(extra)}),
    }


FEEDBACK_LIBRARY: MappingProxyType[str, dict[str, Any]] = MappingProxyType(
    {
        "squat": _entry("Go slightly lower.", "Good depth.", ("align_knees", "Keep knees aligned.")),
        "deep_squat": _entry("Go slightly lower.", "Good depth.", ("align_knees", "Keep knees aligned.")),
        "hurdle_step": _entry("Lift your knee a little higher.", "Good height."),
        "inline_lunge": _entry("Lower yourself a little more.", "Good depth."),
        "side_lunge": _entry("Bend the stepping knee a little more.", "Good depth."),
        "sit_to_stand": _entry("Stand all the way up.", "Good, all the way up."),
        "standing_straight_leg_raise": _entry("Lift your leg a little higher.", "Good height."),
        "shoulder_abduction": _entry("Raise your arm a little higher.", "Good height."),
        "shoulder_extension": _entry("Take your arm a little further back.", "Good reach."),
        "shoulder_rotation": _entry("Turn your forearm a little further.", "Good rotation."),
        "shoulder_scaption": _entry("Raise your arm a little higher.", "Good height."),
        "hiding_face": _entry("Bring your hands up to your face.", "Good."),
        "flank_stretch": _entry("Reach a little further over.", "Good stretch."),
        "torso_rotation": _entry("Turn a little further.", "Good rotation."),
    }
)
"""Per-exercise sentences: ``positive`` (tuple) and ``corrective`` (key -> sentence)."""


def neutral(key: str) -> str:
    """Returns a neutral sentence (``positioning``, ``verifying``, ``ready``, ``reconfirm``, ``completed``).

    Raises:
        KeyError: for an unknown key (a programming error).
    """
    return NEUTRAL[key]


def positive(exercise: str, n: int) -> str:
    """The ``n``-th praise sentence for ``exercise`` (cycles, deterministic)."""
    options = FEEDBACK_LIBRARY[exercise]["positive"]
    return str(options[n % len(options)])


def corrective(exercise: str, key: str) -> str | None:
    """The corrective sentence ``key`` for ``exercise``, or None when the exercise has none."""
    value = FEEDBACK_LIBRARY[exercise]["corrective"].get(key)
    return None if value is None else str(value)


def all_phrases() -> list[str]:
    """Every sentence the engine can produce (for tests and the UI's text review)."""
    out = list(NEUTRAL.values())
    for entry in FEEDBACK_LIBRARY.values():
        out.extend(entry["positive"])
        out.extend(entry["corrective"].values())
    return sorted(set(out))
