"""Spatial reward for pointing answers: distance to the true region, instrument, position class.

A prediction points with the seed's tag on the 0-100 scale (x right, y down)::

    <point x='67.5' y='45.2'>suction</point>

The reward (seed weights) is ``0.5 * distance + 0.3 * instrument + 0.2 * quadrant`` where

* ``distance`` = ``max(0, 1 - d / DISTANCE_SCALE)`` with ``d`` the distance from the point to the
  true *region* (:mod:`physio_ray.spatial.regions`), so any point inside it gets full credit.
  PitVQA has no true coordinate, only a region; we never score against invented points.
* ``instrument`` = 1 when the point's label names the target instrument (CSV names, spaces or
  underscores, case, plurals and a few synonyms such as "suction device"; whole names only,
  never a substring).
* ``quadrant`` = 1 when the point's position class is the target's.

Only the **first** well-formed point counts, so scattering many points earns nothing. A
prediction with no well-formed point (malformed tag, coordinates outside 0-100, plain prose)
gets 0.0. For a "no instrument" target (``instrument`` = ``"no_visible_instrument"``) the
reward is 1.0 when the answer says no instrument is visible and has no point, else 0.0.

>>> spatial_reward("<point x='20' y='10'>Ring curette</point>", {"instrument": "ring_curette", "position_class": 1})
1.0
>>> spatial_reward("No surgical instrument is visible.", {"instrument": "no_visible_instrument", "position_class": None})
1.0
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from physio_ray.spatial.pitvqa import INSTRUMENTS, NO_VISIBLE
from physio_ray.spatial.regions import distance_to_region, position_class_of

__all__ = [
    "DISTANCE_SCALE",
    "NONE_TARGETS",
    "WEIGHTS",
    "Point",
    "RewardBreakdown",
    "canonical_instrument",
    "parse_points",
    "says_no_instrument",
    "spatial_reward",
    "spatial_reward_breakdown",
    "trl_spatial_reward",
]

WEIGHTS = {"distance": 0.5, "instrument": 0.3, "quadrant": 0.2}
DISTANCE_SCALE = 50.0  # distance (0-100 units) at which distance credit reaches 0
NONE_TARGETS = frozenset({NO_VISIBLE, "none", "no_instrument"})

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "bipolar_forceps": ("bipolar", "bipolar forcep"),
    "cottle": ("cottle elevator", "cottle dissector"),
    "cup_forceps": ("cup forcep",),
    "dural_scissors": ("dura scissors", "scissors"),
    "freer_elevator": ("freer", "freer dissector"),
    "haemostatic_foam": ("hemostatic foam",),
    "irrigation_syringe": ("irrigation", "syringe"),
    "kerrisons": ("kerrison", "kerrison rongeur", "kerrison punch"),
    "micro_doppler": ("microdoppler", "doppler", "doppler probe", "micro doppler probe"),
    "nasal_cutting_forceps": ("cutting forceps",),
    "pituitary_rongeurs": ("pituitary rongeur",),
    "retractable_knife": ("knife",),
    "ring_curette": ("curette",),
    "spatula_dissector": ("spatula",),
    "stealth_pointer": ("stealth", "navigation pointer"),
    "suction": ("suction device", "sucker", "suction tube", "suction cannula", "aspirator"),
    "surgical_drill": ("drill", "high speed drill"),
    "tissue_glue": ("glue", "fibrin glue"),
}


def _norm(text: str) -> str:
    """Lower case, ``_``/``-`` as spaces, other punctuation dropped, single spaces, no article."""
    s = re.sub(r"[_\-]+", " ", text.lower())
    s = re.sub(r"[^a-z0-9 ]+", " ", s)
    s = " ".join(s.split())
    return re.sub(r"^(?:the|a|an) ", "", s)


_ALIASES: dict[str, str] = {}
for _name in INSTRUMENTS.values():
    for _alias in (_name, *_SYNONYMS.get(_name, ())):
        _ALIASES[_norm(_alias)] = _name


def canonical_instrument(text: str) -> str | None:
    """Maps a free-text instrument name to its CSV name; ``None`` when it names none exactly.

    >>> canonical_instrument("Ring-Curette"), canonical_instrument("kerrison"), canonical_instrument("suctioning")
    ('ring_curette', 'kerrisons', None)
    """
    s = _norm(text)
    if not s:
        return None
    for cand in (s, s[:-1] if s.endswith("s") else s + "s"):
        if cand in _ALIASES:
            return _ALIASES[cand]
    return None


@dataclass(frozen=True)
class Point:
    """A parsed ``<point>``: coordinates on the 0-100 scale and the raw label text."""

    x: float
    y: float
    label: str


_POINT_TAG = re.compile(r"<\s*point\b([^<>]*)>([^<>]*)<\s*/\s*point\s*>", re.IGNORECASE)
_ATTR = re.compile(r"\s*([A-Za-z_][\w\-]*)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'=<>]+)")
_NUMBER = re.compile(r"^\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?$")


def _attrs(text: str) -> dict[str, str] | None:
    """Parses ``x='1' y="2" alt=foo``; ``None`` when anything is not ``key=value`` or a key repeats."""
    out: dict[str, str] = {}
    pos = 0
    body = text.rstrip().rstrip("/")
    while pos < len(body):
        if not body[pos:].strip():
            break
        m = _ATTR.match(body, pos)
        if m is None:
            return None
        key = m.group(1).lower()
        if key in out:
            return None
        out[key] = m.group(2).strip("'\"").strip()
        pos = m.end()
    return out


def _coord(raw: str | None) -> float | None:
    if raw is None or not _NUMBER.match(raw):
        return None
    value = float(raw.rstrip("%"))
    return value if math.isfinite(value) and 0.0 <= value <= 100.0 else None


def parse_points(text: str) -> list[Point]:
    """Every well-formed ``<point x=.. y=..>label</point>`` in ``text``, in order.

    Tolerated: single, double or no quotes, spaces around ``=`` and inside quotes, attribute
    order, extra attributes, a trailing ``%``, case of tag and attribute names. Rejected
    (skipped): missing or repeated ``x``/``y``, non-numbers, values outside 0-100.

    >>> parse_points('a <POINT y = "45.2" x=67.5 >Suction</point> b')
    [Point(x=67.5, y=45.2, label='Suction')]
    """
    points = []
    for m in _POINT_TAG.finditer(text):
        attrs = _attrs(m.group(1))
        if attrs is None:
            continue
        x, y = _coord(attrs.get("x")), _coord(attrs.get("y"))
        if x is not None and y is not None:
            points.append(Point(x, y, m.group(2).strip()))
    return points


_NOUN = r"(?:visible\s+)?(?:surgical\s+)?(?:instruments?|tools?)"
_NONE_PATTERNS = (
    re.compile(rf"^\W*(?:none|nothing|no\s+{_NOUN}(?:\s+visible)?)\W*$"),
    re.compile(rf"\b(?:no|not\s+any)\s+{_NOUN}\s+(?:is\s+|are\s+)?(?:visible|present|seen|in\s+view|shown)\b"),
    re.compile(rf"\bthere\s+(?:is|are)\s+no\s+{_NOUN}\b"),
)


def says_no_instrument(text: str) -> bool:
    """True when the answer states that no instrument is visible and contains no point tag.

    >>> says_no_instrument("No surgical instrument is visible in this frame."), says_no_instrument("None")
    (True, True)
    >>> says_no_instrument("<point x='1' y='2'>none</point>"), says_no_instrument("nonetheless")
    (False, False)
    """
    if re.search(r"<\s*point\b", text, re.IGNORECASE):
        return False
    s = " ".join(text.lower().replace("_", " ").split())
    return any(p.search(s) for p in _NONE_PATTERNS)


@dataclass(frozen=True)
class RewardBreakdown:
    """The reward and its parts (credits are each in [0, 1]).

    Attributes:
        total: weighted reward in [0, 1].
        distance: distance credit (0 when no point).
        instrument: instrument credit.
        quadrant: position-class credit.
        point: the point that was scored (the first well-formed one), or ``None``.
        predicted_instrument: CSV name from the point's label, ``"no_visible_instrument"`` when
            the answer says none, else ``None``.
        distance_to_region: 0-100 units from the point to the true region (``None`` without a
            point or for a "no instrument" target).
    """

    total: float
    distance: float
    instrument: float
    quadrant: float
    point: Point | None
    predicted_instrument: str | None
    distance_to_region: float | None


def _check_target(target: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """``(csv_name, class)``; ``(None, None)`` for a "no instrument" target."""
    if not isinstance(target, Mapping) or "instrument" not in target:
        raise ValueError(f"target {target!r} must be a mapping with 'instrument' and 'position_class'")
    raw = target["instrument"]
    if not isinstance(raw, str):
        raise ValueError(f"target instrument {raw!r} must be a string such as 'suction'")
    if raw.strip().lower() in NONE_TARGETS:
        return None, None
    name = canonical_instrument(raw)
    if name is None:
        raise ValueError(f"target instrument {raw!r} is not a PitVQA instrument nor {sorted(NONE_TARGETS)}")
    cls = target.get("position_class")
    if isinstance(cls, bool) or not isinstance(cls, numbers.Real) or cls not in (1, 2, 3, 4, 5):
        raise ValueError(f"target position_class {cls!r} must be an integer 1-5 for instrument {raw!r}")
    return name, int(float(cls))


def spatial_reward_breakdown(prediction: str, target: Mapping[str, Any]) -> RewardBreakdown:
    """Scores one answer against one target and returns every part.

    Args:
        prediction: model output text (anything; never raises on it).
        target: ``{"instrument": <CSV name or "no_visible_instrument">, "position_class": 1-5 or None}``.

    Returns:
        A :class:`RewardBreakdown`.

    Raises:
        ValueError: when the *target* is invalid (unknown instrument, class outside 1-5).
    """
    name, cls = _check_target(target)
    text = prediction if isinstance(prediction, str) else ""
    points = parse_points(text)
    point = points[0] if points else None
    predicted = canonical_instrument(point.label) if point else (NO_VISIBLE if says_no_instrument(text) else None)
    if name is None:
        total = 1.0 if predicted == NO_VISIBLE else 0.0
        return RewardBreakdown(total, total, total, total, point, predicted, None)
    if point is None:
        return RewardBreakdown(0.0, 0.0, 0.0, 0.0, None, predicted, None)
    assert cls is not None
    dist = distance_to_region(point.x, point.y, cls)
    d_credit = max(0.0, 1.0 - dist / DISTANCE_SCALE)
    i_credit = 1.0 if predicted == name else 0.0
    q_credit = 1.0 if position_class_of(point.x, point.y) == cls else 0.0
    total = WEIGHTS["distance"] * d_credit + WEIGHTS["instrument"] * i_credit + WEIGHTS["quadrant"] * q_credit
    return RewardBreakdown(min(1.0, max(0.0, total)), d_credit, i_credit, q_credit, point, predicted, dist)


def spatial_reward(prediction: str, target: dict) -> float:
    """The spatial reward in [0, 1] (see the module docstring for the rule).

    Args:
        prediction: model output text.
        target: ``{"instrument": str, "position_class": int 1-5 (None for "no_visible_instrument")}``.

    Returns:
        ``0.5 * distance + 0.3 * instrument + 0.2 * quadrant`` credit; 0.0 for malformed output.

    Raises:
        ValueError: for an invalid target only.
    """
    return spatial_reward_breakdown(prediction, target).total


def _completion_text(completion: Any) -> str:
    """A TRL completion is a string or a list of chat messages; the last message's text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # multimodal content parts
            return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        return content if isinstance(content, str) else ""
    return ""


def trl_spatial_reward(
    completions: Sequence[Any], instrument: Sequence[str], position_class: Sequence[Any], **_: Any
) -> list[float]:
    """TRL ``GRPOTrainer`` reward function over the GRPO prompt set's columns.

    Args:
        completions: ``[batch]`` strings or chat-message lists.
        instrument: ``[batch]`` target instrument column.
        position_class: ``[batch]`` target class column (None / NaN for "no instrument").

    Returns:
        ``[batch]`` rewards in [0, 1].
    """
    out = []
    for comp, inst, cls in zip(completions, instrument, position_class, strict=True):
        c = None if cls is None or (isinstance(cls, float) and math.isnan(cls)) else int(cls)
        out.append(spatial_reward(_completion_text(comp), {"instrument": inst, "position_class": c}))
    return out
