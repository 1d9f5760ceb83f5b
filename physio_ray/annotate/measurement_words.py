"""The vocabulary of measurement claims (numbers, units, relations, heads, statistics, word bands) and value reading.

Every pattern runs on the step lower-cased with ``_`` turned into spaces (so a copied feature key
``angle_min.left_knee`` reads as ``"angle min left knee"``). Which quantity a head or band names
is stated here, next to its words; :mod:`physio_ray.annotate.measurement` says which feature
keys each quantity reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER_WORDS: dict[str, int] = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"a single": 1, "single": 1, "no": 0}

_WORDS = "|".join(sorted((re.escape(w) for w in NUMBER_WORDS if w != "no"), key=len, reverse=True))
NUM = rf"(?:(?<![\w.])[-−]?\d+(?:\.\d+)?|\b(?:{_WORDS})\b)"
_REPS = r"(?:(?:complete|full|partial|total|whole)\s+)?(?:repetitions?|reps?)\b"
UNIT = (
    r"(?:°(?!\s*[cf]\b)|degrees?\b(?!\s*(?:c\b|f\b|celsius|fahrenheit))|degs?\b"
    r"|milliseconds?\b|ms\b|seconds?\b|secs?\b|s\b|minutes?\b|%|percent\b|per\s*cent\b|" + _REPS + ")"
)
UNIT_RE = re.compile(UNIT)
REL = (
    r"between|from|no\s+more\s+than|not\s+more\s+than|no\s+less\s+than|not\s+less\s+than|below|under|less\s+than"
    r"|lower\s+than|smaller\s+than|fewer\s+than|at\s+most|up\s+to|above|over|more\s+than|greater\s+than"
    r"|higher\s+than|larger\s+than|exceeding|exceeds|at\s+least|beyond|about|around|approximately|approx\.?"
    r"|roughly|nearly|almost|close\s+to|circa|~|≈|<=|>=|<|>|≤|≥"
)
VALUE_RE = re.compile(
    rf"(?P<neg>\bnot\s+)?(?:(?P<rel>{REL})\s*)?(?P<a>{NUM})\s*(?P<ua>{UNIT})?"
    rf"(?:\s*(?P<join>and|to|-|–)\s*(?P<b>{NUM})\s*(?P<ub>{UNIT})?)?(?![a-z0-9]|\.\d|-[a-z])"
)
# A bare number followed by one of these is about something else ("3 weeks", "120 mg").
FOREIGN_UNIT_RE = re.compile(
    r"\s*(?:°\s*[cf]\b|degrees?\s+(?:c|f|celsius|fahrenheit)\b|weeks?|days?|months?|years?|hours?|hrs?|mg|g|kg|ml|l|cm|mm|m|km|mmhg|bpm|beats|times|x|fps|frames?)\b"
)
NEGATION_RE = re.compile(r"(?:\bnot\b|n't\b|\bnever\b|\bno\s+longer\b)")

_SEC = r"(?P<u>seconds?|secs?|s|ms)\b"
_T = r"(?:about\s+|around\s+|approximately\s+|t\s*=\s*)?(?P<t>\d+(?:\.\d+)?)\s*"
# The time of a turning point ("bottom at 1.3 s"): checked against the times of the working extremes.
TIME_RES = (
    re.compile(
        rf"\b(?:reached|reaches|hit|hits|got\s+to|gets\s+to)\s+(?:the\s+|its\s+)?(?P<phase>bottom|top)\b"
        rf"[^.,;]{{0,25}}?\bat\s+{_T}{_SEC}"
    ),
    re.compile(
        r"\b(?P<phase>bottom|top)\b(?:\s+(?:position|point))?\s*(?:(?:was|is)\s+)?"
        rf"(?:(?:reached|occurs|occurred|came|comes|happens|happened)\s+)?(?:at\s+)?{_T}{_SEC}"
    ),
)


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# Word bands: the bands of physio_ray.annotate.question_templates, by their option wording.
# (pattern, quantity, low, high); None = open.
BANDS: tuple[tuple[re.Pattern[str], str, float | None, float | None], ...] = (
    (_c(r"\b(?:below|under|beneath|past)\s+parallel\b"), "knee_min", None, 80.0),
    (
        _c(r"\b(?:about|at|roughly|approximately|around|near|to)\s+parallel\b|\bthighs?\s+(?:\w+\s+)?horizontal\b"),
        "knee_min",
        80.0,
        100.0,
    ),
    (_c(r"\babove\s+parallel\b|\bhalf[-\s]squat\b"), "knee_min", 100.0, 130.0),
    (_c(r"\bquarter[-\s]squat\b|\bminimal\s+knee\s+bend\b"), "knee_min", 130.0, None),
    (
        _c(r"\bupright\s+trunk\b|\btrunk\s+(?:stayed|remained|was|is|stays|remains)\s+upright\b"),
        "trunk_lean_bottom",
        None,
        20.0,
    ),  # fmt: skip
    (_c(r"\bmoderate\s+forward\s+lean\b"), "trunk_lean_bottom", 20.0, 45.0),
    (_c(r"\bmarked\s+forward\s+lean\b"), "trunk_lean_bottom", 45.0, None),
    (_c(r"\bjust\s+above\s+shoulder\s+height\b"), "shoulder_max", 90.0, 120.0),
    (_c(r"\bbelow\s+shoulder\s+height\b"), "shoulder_max", None, 90.0),
    (_c(r"\babove\s+shoulder\s+height\b"), "shoulder_max", 90.0, None),
    (_c(r"\b(?:near\s+)?full\s+(?:arm\s+)?elevation\b"), "shoulder_max", 150.0, None),
    (_c(r"\bknee[-\s]dominant\b"), "hip_knee_ratio", None, 0.77),
    (_c(r"\bhip[-\s]dominant\b"), "hip_knee_ratio", 1.3, None),
    (_c(r"\b(?:similar|equal|the\s+same)\s+proportion\b"), "hip_knee_ratio", 0.87, 1.15),
)

# Heads that name a quantity by themselves (tried in this order; a longer phrase wins its span).
# A quantity starting with "?" is a known but ambiguous head: its values become unreadable claims.
HEADS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        _c(
            r"\bknee\s+asymmetry(?:\s+at\s+(?:the\s+)?(?:working|bottom))?(?:\s+deg)?\b|\basymmetry\s+between\s+the\s+knees\b"
        ),
        "knee_asymmetry",
    ),  # fmt: skip
    (
        _c(r"\bknee[-\s/]+(?:to[-\s]+)?ankle\s+(?:separation\s+)?ratio\s+(?:at\s+(?:the\s+)?)?start\b"),
        "knee_ankle_ratio_start",
    ),  # fmt: skip
    (
        _c(r"\bknee[-\s/]+(?:to[-\s]+)?ankle\s+(?:separation\s+)?ratio\s+(?:at\s+(?:the\s+)?)?(?:working|bottom)\b"),
        "knee_ankle_ratio_working",
    ),  # fmt: skip
    (
        _c(r"\bknee[-\s/]+(?:to[-\s]+)?ankle\s+(?:separation\s+)?ratio\b"),
        "?knee-ankle ratio at the start or at the bottom?",
    ),
    (_c(r"\b(?:knee\s+)?valgus\s+drop\b"), "knee_valgus_drop"),
    (
        _c(
            r"\bhip[-\s/]+(?:to[-\s]+)?knee\s+(?:flexion\s+)?ratio\b|\bflexion\s+ratio\b|\bratio\s+of\s+hip\s+(?:to|and)\s+knee"
            r"(?:\s+flexion)?\b"
        ),
        "hip_knee_ratio",
    ),  # fmt: skip
    (
        _c(r"\bfraction\s+of\s+frames\s+with\s+the\s+person\s+visible\b|\bvisible\s+fraction\b|\bvisib(?:le|ility)\b"),
        "visible_fraction",
    ),  # fmt: skip
    (_c(r"\bpartial\s+(?:reps?|repetitions?)\b"), "partial_reps"),
    (
        _c(
            r"\b(?:mean\s+|average\s+)?(?:repetition|rep)\s+(?:duration|time|length)\b|\btempo(?:\s+s\s+per\s+rep)?\b"
            r"|\b(?:per|each|every|one)\s+(?:repetition|rep)\b"
        ),
        "rep_duration",
    ),  # fmt: skip
    (
        _c(
            r"\b(?:repetitions?\s+counted|reps?\s+count(?:ed)?|repetition\s+count|number\s+of\s+(?:complete\s+|full\s+)?"
            r"(?:repetitions?|reps?)|n\s+reps|reps|repetitions)\b"
        ),
        "rep_count",
    ),  # fmt: skip
    (
        _c(
            r"\b(?:descent|descending|lowering|going\s+down|eccentric|down(?:ward)?\s+phase)(?:\s+(?:phase|duration|time|s))?"
            r"\b"
        ),
        "descent",
    ),  # fmt: skip
    (
        _c(
            r"\b(?:ascent|ascending|rising|coming\s+up|concentric|up(?:ward)?\s+phase)(?:\s+(?:phase|duration|time|s))?\b"
        ),
        "ascent",
    ),  # fmt: skip
    (
        _c(r"\b(?:recording|video|clip)\s+(?:duration|length|lasted|lasts)\b|\b(?:total\s+)?duration(?:\s+s)?\b"),
        "recording_duration",
    ),  # fmt: skip
    (_c(r"\brest\s+deg\b|\brest(?:ing)?\s+angle\b|\bat\s+rest\b|\bstarting\s+angle\b"), "rest"),
    (
        _c(r"\b(?:(?P<side>left|right)\s+)?(?P<j>knee|hip|elbow|shoulder)?\s*(?:range\s+of\s+motion|rom)\b(?:\s+deg)?"),
        "range_of_motion",
    ),  # fmt: skip
    (_c(r"\bbest\s+extreme(?:\s+deg)?\b"), "best_extreme"),
    (_c(r"\brep(?:etition)?\s+extremes?(?:\s+deg)?\b"), "rep_extreme"),
    (_c(r"\bdepth(?:\s+deg)?\b"), "depth"),
)

JOINT_RE = re.compile(
    r"\b(?:(?P<side>left|right|both)\s+)?(?P<joint>knees?|hips?|elbows?|shoulders?|arms?|trunk(?:\s+lean(?:ing)?)?"
    r"|torso(?:\s+lean(?:ing)?)?|upper\s+body|forward\s+lean(?:ing)?|lean(?:ing|ed|s)?)\b"
)

# Statistic words looked for around a joint head and its value.
STAT_WORDS: dict[str, re.Pattern[str]] = {
    "min": _c(r"\b(?:smallest|minimum|min|minimal|lowest|least|most\s+bent)\b"),
    "max": _c(r"\b(?:largest|maximum|max|highest|greatest|peak|biggest|maximal|maximally)\b"),
    "flexion": _c(r"\b(?:flexion|flexed|flexes|flex|bent|bend|bending|bends)\b"),
    "extension": _c(r"\b(?:extension|extended|extends|straight|straightened)\b"),
    "elevation": _c(r"\b(?:elevation|elevated|raised|raises|raise|lifted|lifts|lift|abduction|abducted|height)\b"),
    "bottom": _c(r"\b(?:bottom|deepest|depth|lowest\s+point|working|turning\s+point)\b"),
    "top": _c(r"\b(?:top|standing)\b"),
    # "flexed through 117 deg" names the arc travelled (the range), not the angle reached
    "range": _c(
        r"\b(?:range|rom|excursion"
        r"|(?:flexed|flexes|flex|bent|bends|bend|moved|moves|move|went|goes|go|travell?ed|rotated)"
        r"\s+through\s+(?:about\s+|roughly\s+|approximately\s+|some\s+)?\d)"
    ),
}

_DONE = r"\b(?:performed|executed|done|carried\s+out|completed|performs|executes|did\s+it)\s+(?:\w+\s+){0,2}?"
EXEC_POS = (
    _c(_DONE + r"(?:correctly|properly|well|with\s+(?:good|correct|proper)\s+(?:form|technique))\b"),
    _c(r"\b(?:correct|proper|good)\s+(?:form|technique|execution)\b"),
    _c(r"\bno\s+(?:clear\s+|obvious\s+|visible\s+|major\s+|significant\s+)?deviations?\b"),
    _c(r"\bwithout\s+(?:any\s+)?(?:clear\s+|obvious\s+)?deviations?\b"),
)
EXEC_NEG = (
    _c(_DONE + r"(?:incorrectly|improperly|poorly|wrongly|badly)\b"),
    _c(r"\b(?:incorrect|improper|poor|faulty|bad)\s+(?:form|technique|execution)\b"),
    _c(r"\bdeviations?\s+(?:is|are|was|were)\s+(?:present|visible|seen|observed|detected)\b"),
)

_LIMB = r"(?:arm|leg|side|shoulder|hand|foot)"
SIDE_CLAIM_RES = (
    _c(rf"\b(?:with|using|on|by|to|of)\s+(?:the\s+|his\s+|her\s+|their\s+|its\s+)?(?P<side>left|right)\s+{_LIMB}\b"),
    _c(
        r"\b(?:targets?|targeting|raised|raises|raising|lifted|lifts|lifting|moved|moves|moving|uses|used|working"
        rf"|exercising|exercised)\s+(?:the\s+|his\s+|her\s+|their\s+)?(?P<side>left|right|both)\s+{_LIMB}s?\b"
    ),
    _c(r"\b(?P<side>left|right)[-\s]sided\b"),
    _c(rf"\b(?:with|using|on)\s+(?P<side>both|two)\s+{_LIMB}s\b"),
    _c(r"\bdriving\s+angle\W+(?:is\s+)?(?:the\s+)?(?P<side>left|right|mean)\b"),
)


def joint_of(word: str) -> str:
    """The joint a joint word names (``"arms"`` -> ``"shoulder"``, ``"forward lean"`` -> ``"trunk"``)."""
    w = word.strip().lower()
    for joint, pattern in (
        ("knee", r"knee"),
        ("hip", r"hip|thigh"),
        ("elbow", r"elbow"),
        ("shoulder", r"shoulder|arm"),
        ("trunk", r"trunk|torso|upper body|back|lean"),
    ):
        if re.match(pattern, w):
            return joint
    return w


def stat_words(window: str) -> set[str]:
    """The statistic words (keys of :data:`STAT_WORDS`) found in ``window``."""
    return {name for name, pattern in STAT_WORDS.items() if pattern.search(window)}


def resolve_joint(joint: str, window: str) -> tuple[str | None, str]:
    """The quantity a joint head + the words around it and its value mean, or ``(None, reason)``.

    >>> resolve_joint("knee", "maximum knee flexion was"), resolve_joint("shoulder", "peak shoulder elevation")
    (('knee_min', ''), ('shoulder_max', ''))
    >>> resolve_joint("trunk", "trunk lean of")[0] is None
    True
    """
    words = stat_words(window)
    direction = words & {"min", "max"}
    if joint == "trunk":
        if words & {"bottom"}:
            return "trunk_lean_bottom", ""
        if direction == {"max"}:
            return "trunk_lean_max", ""
        return None, "trunk lean without a statistic (at the bottom, or the largest?)"
    if "range" in words:
        return f"{joint}_rom", ""
    if len(direction) == 2 and not words & {"flexion", "extension", "elevation"}:
        return None, f"{joint} angle with both a smallest and a largest statistic"
    if joint == "shoulder":
        if "elevation" in words or "flexion" in words:
            return ("shoulder_min" if direction == {"min"} else "shoulder_max"), ""
        if direction or words & {"bottom", "top"}:
            return ("shoulder_min" if direction == {"min"} or "bottom" in words else "shoulder_max"), ""
        return None, "shoulder angle without a statistic (peak elevation?)"
    # knee / hip / elbow: an included angle, smaller when flexed
    if "flexion" in words:
        return (f"{joint}_max" if direction == {"min"} else f"{joint}_min"), ""
    if "extension" in words:
        return (f"{joint}_min" if direction == {"min"} else f"{joint}_max"), ""
    if direction:
        return f"{joint}_{direction.pop()}", ""
    if "bottom" in words:
        return f"{joint}_min", ""
    if "top" in words:
        return f"{joint}_max", ""
    return None, f"{joint} angle without a statistic (smallest, largest, at the bottom?)"


@dataclass(frozen=True)
class Value:
    """A number read from a step: its relation, bounds (canonical units), unit and clause."""

    start: int
    end: int
    relation: str
    low: float | None
    high: float | None
    unit: str | None
    clause: int
    negated: bool


def to_number(token: str) -> float | None:
    """A number from digits or an English number word.

    >>> to_number("12.5"), to_number("three"), to_number("a single"), to_number("−4")
    (12.5, 3.0, 1.0, -4.0)
    >>> to_number("many") is None
    True
    """
    t = token.strip().lower().replace("−", "-")
    if t in NUMBER_WORDS:
        return float(NUMBER_WORDS[t])
    try:
        return float(t)
    except ValueError:
        return None


def unit_of(raw: str | None) -> tuple[str | None, float]:
    """Normalised unit and the factor to the canonical unit (seconds, degrees, reps, percent)."""
    if not raw:
        return None, 1.0
    u = raw.strip().lower()
    if u.startswith(("ms", "milli")):
        return "s", 0.001
    if u.startswith("min"):
        return "s", 60.0
    if u in ("s", "sec", "secs") or u.startswith("second"):
        return "s", 1.0
    if u.startswith(("°", "deg")):
        return "deg", 1.0
    if u.startswith(("%", "per")):
        return "%", 1.0
    return "reps", 1.0


def _relation(rel: str | None, negated: bool) -> str | None:
    if rel is None:
        return "eq"
    r = rel.strip().lower()
    if r in ("between", "from"):
        kind = "between"
    elif re.fullmatch(r"below|under|less than|lower than|smaller than|fewer than|at most|no more than|up to|<=?|≤", r):
        kind = "lt"
    elif re.fullmatch(r"above|over|more than|greater than|higher than|larger than|exceeding|at least|beyond|>=?|≥", r):
        kind = "gt"
    else:
        kind = "eq"  # about, around, approximately, ...
    if negated:
        return {"lt": "gt", "gt": "lt"}.get(kind)
    return kind


def read_values(text: str, start: int, end: int, clause_of: list[int]) -> list[Value]:
    """The values in ``text[start:end]`` (see :data:`VALUE_RE`); ``clause_of[i]`` is the clause of offset ``i``."""
    out = []
    for m in VALUE_RE.finditer(text, start, end):
        a, b = to_number(m["a"]), to_number(m["b"]) if m["b"] else None
        unit_raw = m["ua"] or m["ub"]
        is_word = not re.match(r"[-−\d]", m["a"])
        if a is None or (is_word and not unit_raw) or (not unit_raw and FOREIGN_UNIT_RE.match(text, m.end())):
            continue
        unit, factor = unit_of(unit_raw)
        rel = _relation(m["rel"], bool(m["neg"]))
        stop = m.end()
        if b is not None and not (m["join"] != "and" or rel == "between"):
            b, stop = None, m.end("ua") if m["ua"] else m.end("a")
        lo: float | None
        hi: float | None
        if b is not None and rel in ("eq", "between"):
            lo, hi, rel = min(a, b) * factor, max(a, b) * factor, "between"
        elif rel == "between" or rel is None:
            out.append(Value(m.start(), stop, "unreadable", None, None, unit, clause_of[m.start()], True))
            continue
        else:
            lo = a * factor if rel in ("eq", "gt") else None
            hi = a * factor if rel in ("eq", "lt") else None
        out.append(Value(m.start(), stop, rel, lo, hi, unit, clause_of[m.start()], False))
    return out
