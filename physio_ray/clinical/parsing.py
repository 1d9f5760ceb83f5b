"""Strict reading of an ``ERROR`` / ``CORRECT`` verdict from model output.

Seed 002 reads verdicts with ``'ERROR' in prediction`` and ``'CORRECT' in prediction``. That
is true for ``"INCORRECT"`` and for hedges that name both words, so a policy trained on it can
collect the caught-error bonus by writing ``"ERROR or CORRECT"``. Here a verdict is read only
where it is stated:

* **anchors**: the first word of the text (after markdown such as ``**``, ``#``, ``-`` or
  quotes), and the first word after each ``Verdict:`` / ``Answer:`` label (``**Verdict:**`` too);
* the word at an anchor must be exactly ``error`` or ``correct`` (any case, not a prefix of a
  longer word: ``"ERRORS"``, ``"CORRECTLY"`` do not count); ``incorrect`` at an anchor makes the
  whole text unparseable;
* every anchor that holds a verdict must hold the same one;
* the text as a whole must not name both words (``\\berror\\b`` and ``\\bcorrect\\b``), and must
  not negate its own verdict (``"not correct"``, ``"isn't correct"``, ``"incorrect"`` after a
  CORRECT verdict; ``"no error"``, ``"not an error"`` after an ERROR verdict).

Anything else (neither word, both words, a negated verdict, disagreeing anchors) is
unparseable: :func:`parse_verdict` returns ``None``, which the reward scores at its minimum.
``"ERROR - treatment is incorrect"`` stays ERROR: "incorrect" agrees with an ERROR verdict.

Examples:
    >>> parse_verdict("ERROR - Treatment does not match imaging")
    'ERROR'
    >>> parse_verdict("**Verdict:** correct. The biopsy fits the BI-RADS 5 mass.")
    'CORRECT'
    >>> parse_verdict("INCORRECT") is None
    True
    >>> parse_verdict("CORRECT, no wait, ERROR") is None
    True
    >>> parse_verdict("The treatment seems fine.") is None
    True
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "VERDICT_CORRECT",
    "VERDICT_ERROR",
    "VERDICTS",
    "Verdict",
    "parse_determination",
    "parse_verdict",
]

Verdict = Literal["ERROR", "CORRECT"]
VERDICT_ERROR: Verdict = "ERROR"
VERDICT_CORRECT: Verdict = "CORRECT"
VERDICTS: tuple[Verdict, Verdict] = (VERDICT_ERROR, VERDICT_CORRECT)

# Markdown, quotes, bullets and brackets allowed before the verdict word at an anchor.
_LEAD = r"[\s*_#>`\"'\-\[(|~]*"
_WORD_AT_ANCHOR = re.compile(_LEAD + r"([A-Za-z]+)(?!\w)")
_LABEL = re.compile(r"\b(?:verdict|answer)\b\s*[*_]*\s*:", re.IGNORECASE)
_ERROR_WORD = re.compile(r"\berror\b", re.IGNORECASE)
_CORRECT_WORD = re.compile(r"\bcorrect\b", re.IGNORECASE)
_NEGATED_CORRECT = re.compile(
    r"\b(?:incorrect|(?:not|isn't|is\s+not|never)\s+(?:the\s+|a\s+)?correct)\b", re.IGNORECASE
)
_NEGATED_ERROR = re.compile(r"\b(?:no|not\s+an?|not|isn't\s+an?|without\s+an?)\s+error\b", re.IGNORECASE)


def _word_at(text: str, pos: int) -> str | None:
    match = _WORD_AT_ANCHOR.match(text, pos)
    return match.group(1).lower() if match else None


def parse_verdict(text: str) -> Verdict | None:
    """Reads the verdict a model stated, or ``None`` when it did not state exactly one.

    Args:
        text: raw model output (any length; not stripped by the caller).

    Returns:
        ``"ERROR"`` or ``"CORRECT"``; ``None`` when the output is unparseable under the
        rules in the module docstring.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    anchors = [0, *(m.end() for m in _LABEL.finditer(text))]
    found: set[str] = set()
    for pos in anchors:
        word = _word_at(text, pos)
        if word == "incorrect":
            return None
        if word in ("error", "correct"):
            found.add(word.upper())
    if len(found) != 1:
        return None
    verdict: Verdict = VERDICT_ERROR if found == {VERDICT_ERROR} else VERDICT_CORRECT
    has_error = _ERROR_WORD.search(text) is not None
    has_correct = _CORRECT_WORD.search(text) is not None
    if has_error and has_correct:
        return None
    if verdict == VERDICT_CORRECT and _NEGATED_CORRECT.search(text):
        return None
    if verdict == VERDICT_ERROR and _NEGATED_ERROR.search(text):
        return None
    return verdict


def parse_determination(expected_determination: str) -> Verdict:
    """Reads a data set's gold ``expected_determination`` (e.g. ``"ERROR - ICD code ..."``).

    Args:
        expected_determination: the scenario's gold answer string.

    Returns:
        Its verdict.

    Raises:
        ValueError: when the gold string itself has no single verdict (a data bug).

    >>> parse_determination("CORRECT - Treatment matches imaging findings")
    'CORRECT'
    """
    verdict = parse_verdict(expected_determination)
    if verdict is None:
        raise ValueError(
            f"expected_determination {expected_determination!r} does not start with exactly one of "
            f"ERROR / CORRECT; fix the scenario file"
        )
    return verdict
