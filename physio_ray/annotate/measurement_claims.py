"""Measurement claims read from one reasoning step (the parsing half of the measurement check).

A physiotherapy step such as ``"Step 1: the smallest knee angle is 60.4 degrees, below 80 ки"``
states measurements that the recording's features can confirm or refute. :func:`parse_claims`
finds them and names, for each, the *quantity* it is about (:data:`QUANTITIES`: joint +
statistic, e.g. ``knee_min`` = the smallest knee angle); :mod:`physio_ray.annotate.measurement`
then reads that quantity from the features and compares.

How a claim is read, in order:

1. Step headers (``"Step 2:"``), the ``" ки"`` marker and ``"Answer: X"`` are masked out.
2. Times of a turning point (``"bottom at 1.3 s"``) and word bands (``"below parallel"``,
   ``"upright trunk"``, ``"knee-dominant"``: the bands of the question templates) are read whole.
3. Values: a number (or number word with a unit) with its unit (degrees, seconds, repetitions,
   percent) and relation (``"below 90"``, ``"about 100"``, ``"between 60 and 90 degrees"``).
4. Heads: the phrase a value is about, a joint (knee, hip, trunk, shoulder, elbow and their
   synonyms, with a side) or a named feature (``"rep count"``, ``"descent"``, ``"depth deg"``).
   A value takes the nearest head before it in its clause, else the nearest after it, else the
   last head of the sentence (``"..., which is below 80"``). The statistic (smallest / largest /
   at the bottom / range) comes from the words around the head and the value.
5. Execution (``"performed correctly"`` / ``"incorrectly"``) and side (``"with the right arm"``)
   claims.

A number the parser sees as a measurement (it has a unit or a head) but cannot tie to one
quantity is kept as an ``unreadable`` claim with the reason; a bare number with neither
(``"Answer: 1"``) is not a claim. Claims inside a listing of answer options (``"A) 3 reps C) 2
reps"``) are marked ``quoted``: the step repeats options, it does not assert them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from physio_ray.annotate.measurement_words import (
    BANDS,
    EXEC_NEG,
    EXEC_POS,
    HEADS,
    JOINT_RE,
    NEGATION_RE,
    SIDE_CLAIM_RES,
    TIME_RES,
    Value,
    joint_of,
    read_values,
    resolve_joint,
    to_number,
    unit_of,
)

KINDS = ("angle", "duration", "time", "count", "ratio", "fraction", "side", "execution", "unreadable")

# quantity -> kind. Which feature keys each one reads is in measurement.FEATURE_SOURCES.
QUANTITIES: dict[str, str] = {
    **{f"{j}_{s}": "angle" for j in ("knee", "hip", "elbow", "shoulder") for s in ("min", "max", "rom")},
    "trunk_lean_bottom": "angle",
    "trunk_lean_max": "angle",
    "depth": "angle",
    "best_extreme": "angle",
    "range_of_motion": "angle",
    "rest": "angle",
    "rep_extreme": "angle",
    "knee_asymmetry": "angle",
    "rep_duration": "duration",
    "descent": "duration",
    "ascent": "duration",
    "recording_duration": "duration",
    "working_time": "time",
    "rep_count": "count",
    "partial_reps": "count",
    "hip_knee_ratio": "ratio",
    "knee_ankle_ratio_start": "ratio",
    "knee_ankle_ratio_working": "ratio",
    "knee_valgus_drop": "ratio",
    "visible_fraction": "fraction",
    "exercising_side": "side",
    "execution": "execution",
}


@dataclass(frozen=True)
class Claim:
    """One measurement stated by a step.

    Attributes:
        kind: one of :data:`KINDS` (the quantity's kind, or ``"unreadable"``).
        text: the words of the step the claim was read from.
        quantity: a key of :data:`QUANTITIES`; ``None`` for unreadable claims.
        relation: ``"eq"`` (also "about"), ``"lt"``, ``"gt"`` or ``"between"``.
        low: lower bound (``eq``: the value; ``lt``: ``None``).
        high: upper bound (``eq``: the value; ``gt``: ``None``).
        unit: the unit as written, normalised (``"deg"``, ``"s"``, ``"reps"``, ``"%"``) or ``None``.
        side: ``"left"``, ``"right"``, ``"both"`` or ``None``.
        phase: ``"bottom"`` / ``"top"`` for a turning-point time, else ``None``.
        correct: for execution claims, whether the step says the movement was performed correctly.
        quoted: the claim sits in a listing of answer options (not asserted by the step).
        reason: why an unreadable claim could not be read.
    """

    kind: str
    text: str
    quantity: str | None = None
    relation: str = "eq"
    low: float | None = None
    high: float | None = None
    unit: str | None = None
    side: str | None = None
    phase: str | None = None
    correct: bool | None = None
    quoted: bool = False
    reason: str = ""

    @property
    def value(self) -> float | None:
        """The single claimed value of an ``eq`` claim (else ``None``)."""
        return self.low if self.relation == "eq" else None


@dataclass(frozen=True)
class _Head:
    start: int
    end: int
    head: str  # a joint ("knee", ...) or a quantity name
    side: str | None
    clause: int


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


def _clean(step: str) -> str:
    """Lower-cased step with headers, marker and answer letters blanked (same length, same offsets)."""
    text = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in step.replace("_", " "))
    text = re.sub(r"(?<=[a-z])\.(?=[a-z])", " ", text)
    spans = [
        m.span() for m in re.finditer(r"\bstep\s*\d+\s*[:.)]?|(?<![а-яё])ки(?![а-яё])|\banswer\s*[:=]\s*[a-j]?\b", text)
    ]
    return _mask(text, spans)


def _sentences(text: str) -> list[tuple[int, int]]:
    bounds = [0]
    for m in re.finditer(r"(?<!\d)[.!?](?!\d)|[.!?](?=\s)|[;\n]|\s[-–—]\s|\s\([a-j]\)\s|(?:^|\s)[a-j]\)\s", text):
        bounds.extend([m.start(), m.end()])
    bounds.append(len(text))
    return [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds) - 1, 2) if bounds[i + 1] > bounds[i]]


def _option_listing_start(step: str) -> int | None:
    """Offset of the first option marker when the step lists two or more options."""
    marks = list(re.finditer(r"(?:^|[\s(])([A-J])\)\s", step))
    return marks[0].start() if len(marks) >= 2 else None


def _heads(text: str, start: int, end: int, clause_of: list[int]) -> list[_Head]:
    found: list[_Head] = []
    taken: list[tuple[int, int]] = []
    for pattern, quantity in HEADS:
        for m in pattern.finditer(text, start, end):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append(m.span())
            groups = m.groupdict()
            if groups.get("j"):
                quantity = f"{groups['j']}_rom"
            found.append(_Head(m.start(), m.end(), quantity, groups.get("side"), clause_of[m.start()]))
    for m in JOINT_RE.finditer(text, start, end):
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        found.append(_Head(m.start(), m.end(), joint_of(m["joint"]), m["side"], clause_of[m.start()]))
    return sorted(found, key=lambda h: h.start)


_UNIT_OK = {
    "angle": (None, "deg"),
    "duration": (None, "s"),
    "time": ("s",),
    "count": (None, "reps"),
    "ratio": (None, "%"),
    "fraction": (None, "%"),
}


def _claim_from(head: _Head | None, value: Value, text: str, window: str, step: str, quoted: bool) -> Claim:
    span = step[min(value.start, head.start if head else value.start) : value.end].strip()
    unreadable = Claim("unreadable", span, unit=value.unit, quoted=quoted)
    if value.relation == "unreadable":
        return _replace(unreadable, reason="a band or relation that could not be read")
    if value.negated or NEGATION_RE.search(text[max(0, value.start - 14) : value.start]):
        return _replace(unreadable, reason="a negated measurement")
    if value.unit == "reps":
        partial = "partial" in text[value.start : value.end]
        quantity = "partial_reps" if partial else "rep_count"
    elif head is None:
        if value.unit is None:
            raise LookupError("a bare number is not a claim")
        return _replace(unreadable, reason=f"a value in {value.unit} with no joint or feature named")
    elif head.head.startswith("?"):
        return _replace(unreadable, reason=f"ambiguous: {head.head[1:]}")
    elif head.head in QUANTITIES:
        quantity = head.head
    else:
        resolved, why = resolve_joint(head.head, window)
        if resolved is None:
            return _replace(unreadable, reason=why)
        quantity = resolved
    kind = QUANTITIES[quantity]
    if value.unit not in _UNIT_OK.get(kind, (None,)):
        return _replace(unreadable, reason=f"a value in {value.unit} cannot be the {quantity.replace('_', ' ')}")
    low, high = value.low, value.high
    if kind in ("ratio", "fraction") and value.unit == "%" or kind == "fraction" and (low or high or 0) > 1:
        low, high = (None if low is None else low / 100), (None if high is None else high / 100)
    if kind == "count" and value.relation == "eq" and low is not None and not float(low).is_integer():
        return _replace(unreadable, reason="a repetition count that is not a whole number")
    return Claim(
        kind, span, quantity, value.relation, low, high, value.unit, head.side if head else None, None, None, quoted
    )


def _replace(c: Claim, **kw: object) -> Claim:
    from dataclasses import replace

    return replace(c, **kw)  # type: ignore[arg-type]


def parse_claims(step_text: str) -> list[Claim]:
    """Reads the measurement claims of one step (see the module docstring for how).

    Args:
        step_text: one reasoning step, with or without its ``" ки"`` marker.

    Returns:
        The claims in order of appearance; unreadable ones included, with a reason.

    >>> [(c.quantity, c.relation, c.low) for c in parse_claims("Step 1: smallest knee angle 60.4 degrees ки")]
    [('knee_min', 'eq', 60.4)]
    >>> [(c.quantity, c.low) for c in parse_claims("She did three complete repetitions.")]
    [('rep_count', 3.0)]
    >>> [(c.kind, c.reason) for c in parse_claims("It reached 75 degrees.")]
    [('unreadable', 'a value in deg with no joint or feature named')]
    >>> parse_claims("Step 2: what it means for the question ки")
    []
    """
    text = _clean(step_text)
    listing = _option_listing_start(step_text)
    claims: list[tuple[int, Claim]] = []
    consumed: list[tuple[int, int]] = []

    def quoted_at(pos: int) -> bool:
        return listing is not None and pos >= listing

    for pattern in TIME_RES:
        for m in pattern.finditer(text):
            value, (unit, factor) = to_number(m["t"]), unit_of(m["u"])
            if value is None or unit != "s":
                continue
            consumed.append(m.span())
            t = value * factor
            claims.append(
                (m.start(), Claim("time", step_text[m.start() : m.end()].strip(), "working_time", "eq", t, t, "s",
                                  phase=m["phase"], quoted=quoted_at(m.start())))
            )  # fmt: skip
    for pattern, quantity, low, high in BANDS:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in consumed):
                continue
            consumed.append(m.span())
            relation = "between" if low is not None and high is not None else ("lt" if low is None else "gt")
            claim = Claim(QUANTITIES[quantity], step_text[m.start() : m.end()].strip(), quantity, relation, low, high,
                          quoted=quoted_at(m.start()))  # fmt: skip
            if NEGATION_RE.search(text[max(0, m.start() - 14) : m.start()]):
                flipped = {"lt": "gt", "gt": "lt"}.get(relation)
                claim = (
                    _replace(claim, relation=flipped, low=claim.high, high=claim.low)
                    if flipped
                    else Claim("unreadable", claim.text, reason="a negated band", quoted=claim.quoted)
                )
            claims.append((m.start(), claim))
    text = _mask(text, consumed)
    clause_of = [0] * (len(text) + 1)
    clause = 0
    boundaries = {m.start() for m in re.finditer(r",|\band\b(?!\s+[-−\d])|\bbut\b|\bwhile\b|\bwhereas\b|\bso\b", text)}
    for i in range(len(text) + 1):
        if i in boundaries:
            clause += 1
        clause_of[i] = clause
    for s_start, s_end in _sentences(text):
        values = read_values(text, s_start, s_end, clause_of)
        value_spans = [(v.start, v.end) for v in values]
        heads = [h for h in _heads(_mask(text, value_spans), s_start, s_end, clause_of)]
        for v in values:
            same = [h for h in heads if h.clause == v.clause]
            before = [h for h in same if h.end <= v.start]
            after = [h for h in same if h.start >= v.end]
            earlier = [h for h in heads if h.clause < v.clause]
            if v.unit is None:  # a bare number is read only after its head ("knee min: 61")
                after = []
            head = before[-1] if before else after[0] if after else earlier[-1] if earlier else None
            if head is None:
                window = text[v.start : v.end]
            elif head.clause == v.clause:
                nxt = [h.start for h in heads if h.start > max(head.end, v.end)]
                clause_end = max(i for i in range(v.start, s_end + 1) if clause_of[i] == v.clause) + 1
                lo = max(s_start, head.start - 24)
                window = text[lo : min([clause_end, *nxt])]
            else:
                clause_text = "".join(
                    ch for i, ch in enumerate(text[s_start:s_end], s_start) if clause_of[i] == v.clause
                )
                window = text[max(s_start, head.start - 24) : head.end] + " " + clause_text
            try:
                claim = _claim_from(head, v, text, window, step_text, quoted_at(v.start))
            except LookupError:
                continue
            claims.append((v.start, claim))
            consumed.append((min(v.start, head.start if head else v.start), v.end))
    claims.extend(_execution_and_side(text, step_text, consumed, quoted_at))
    return [c for _, c in sorted(claims, key=lambda pc: pc[0])]


def _execution_and_side(text: str, step: str, consumed: list[tuple[int, int]], quoted_at) -> list[tuple[int, Claim]]:  # type: ignore[no-untyped-def]
    out: list[tuple[int, Claim]] = []
    seen: set[tuple[int, bool]] = set()
    sentences = _sentences(text)
    for correct, patterns in ((True, EXEC_POS), (False, EXEC_NEG)):
        for pattern in patterns:
            for m in pattern.finditer(text):
                says = correct != bool(
                    m.groupdict().get("neg") or NEGATION_RE.search(text[max(0, m.start() - 14) : m.start()])
                )
                sentence = next((i for i, (a, b) in enumerate(sentences) if a <= m.start() < b), -1)
                if (sentence, says) in seen:
                    continue
                seen.add((sentence, says))
                out.append((m.start(), Claim("execution", step[m.start() : m.end()].strip(), "execution", correct=says,
                                             quoted=quoted_at(m.start()))))  # fmt: skip
    masked = _mask(text, consumed)
    sides: list[tuple[int, int]] = []
    for pattern in SIDE_CLAIM_RES:
        for m in pattern.finditer(masked):
            if any(a < m.end() and m.start() < b for a, b in sides):
                continue
            sides.append(m.span())
            side = m["side"]
            side = "both" if side in ("both", "two", "bilateral", "bilaterally", "mean") else side
            out.append((m.start(), Claim("side", step[m.start() : m.end()].strip(), "exercising_side", side=side,
                                         quoted=quoted_at(m.start()))))  # fmt: skip
    return out


__all__ = ["KINDS", "QUANTITIES", "Claim", "parse_claims"]
