"""Strict ERROR / CORRECT verdict parsing: examples and hypothesis properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from physio_ray.clinical.parsing import parse_determination, parse_verdict

ERROR_WORD = re.compile(r"\berror\b", re.IGNORECASE)
CORRECT_WORD = re.compile(r"\bcorrect\b", re.IGNORECASE)

# Fragments that hit the interesting cases far more often than random text does.
FRAGMENTS = st.sampled_from(
    [
        "ERROR",
        "CORRECT",
        "INCORRECT",
        "error",
        "Correct",
        "Verdict:",
        "**Verdict:**",
        "Answer:",
        "not",
        "no",
        " ",
        " - ",
        "\n",
        "**",
        ".",
        "the treatment",
        "matches imaging",
        "ERRORS",
        "correctly",
        "is",
    ]
)
MIXED = st.lists(st.one_of(FRAGMENTS, st.text(max_size=6)), max_size=12).map("".join)
ASCII_MIXED = st.lists(
    st.one_of(FRAGMENTS, st.text(alphabet=st.characters(max_codepoint=127), max_size=6)), max_size=12
).map("".join)
FILLER = st.text(alphabet=st.characters(max_codepoint=127, blacklist_categories=("Cs",)), max_size=60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ERROR - Treatment does not match imaging", "ERROR"),
        ("CORRECT - Treatment matches imaging findings", "CORRECT"),
        ("ERROR - ICD code does not match diagnosis", "ERROR"),
        ("correct", "CORRECT"),
        ("  **ERROR**: chemotherapy on benign tissue", "ERROR"),
        ("Verdict: ERROR\nThe biopsy shows benign tissue.", "ERROR"),
        ("**Verdict:** correct. Biopsy fits BI-RADS 5.", "CORRECT"),
        ("The final answer: CORRECT", "CORRECT"),
        ('"ERROR - Treatment does not match imaging"', "ERROR"),
        ("- ERROR", "ERROR"),
        ("ERROR - the treatment is incorrect", "ERROR"),  # "incorrect" agrees with ERROR
        ("ERROR: Verdict: ERROR", "ERROR"),
        # unparseable
        ("INCORRECT", None),
        ("Incorrect - treatment does not match", None),
        ("Verdict: INCORRECT", None),
        ("CORRECT - the treatment is not correct", None),
        ("CORRECT? No, it isn't correct", None),
        ("ERROR or CORRECT", None),
        ("CORRECT, no wait, ERROR", None),
        ("ERROR: no error found", None),
        ("Verdict: CORRECT. Answer: ERROR", None),
        ("The treatment is appropriate.", None),
        ("ERRORS everywhere", None),
        ("Correctly matched", None),
        ("ERROR_CODE 7", None),
        ("", None),
        ("   \n ", None),
        ("The answer is ERROR", None),  # not anchored: no "Answer:" label
    ],
)
def test_examples(text: str, expected: str | None) -> None:
    assert parse_verdict(text) == expected


def test_substring_semantics_of_the_seed_are_rejected() -> None:
    # The seed's `'CORRECT' in prediction` is true for these; strict parsing is not fooled.
    for text in ["INCORRECT", "This is INCORRECT", "ERROR or CORRECT"]:
        assert "CORRECT" in text
        assert parse_verdict(text) != "CORRECT"


def test_non_string_is_unparseable() -> None:
    assert parse_verdict(None) is None  # type: ignore[arg-type]
    assert parse_verdict(3) is None  # type: ignore[arg-type]


def test_parse_determination() -> None:
    assert parse_determination("ERROR - Treatment does not match imaging") == "ERROR"
    with pytest.raises(ValueError, match="exactly one"):
        parse_determination("maybe")


@settings(max_examples=300, deadline=None, database=None)
@given(MIXED)
@example("ERROR CORRECT")
def test_total_and_never_both_words(text: str) -> None:
    verdict = parse_verdict(text)
    assert verdict in (None, "ERROR", "CORRECT")
    if verdict is not None:
        # A verdict is only returned when the text names exactly one of the two words.
        assert bool(ERROR_WORD.search(text)) != bool(CORRECT_WORD.search(text))
        word = ERROR_WORD if verdict == "ERROR" else CORRECT_WORD
        assert word.search(text)


@settings(max_examples=200, deadline=None, database=None)
@given(st.sampled_from(["ERROR", "CORRECT"]), st.sampled_from(["", " - ", ": ", "\n", ". "]), FILLER)
def test_leading_verdict_with_neutral_filler_is_read(verdict: str, sep: str, filler: str) -> None:
    text = verdict + sep + filler
    assume(not re.match(r"[A-Za-z0-9_]", sep + filler))  # the verdict word must end
    assume(not ERROR_WORD.search(filler) and not CORRECT_WORD.search(filler))
    assume(not re.search(r"incorrect|\b(?:not|no|never|isn't|without)\b|verdict|answer", filler, re.IGNORECASE))
    assert parse_verdict(text) == verdict


@settings(max_examples=200, deadline=None, database=None)
@given(MIXED)
def test_incorrect_at_start_is_never_read(suffix: str) -> None:
    assert parse_verdict("INCORRECT " + suffix) is None
    assert parse_verdict("Verdict: incorrect " + suffix) is None


@settings(max_examples=200, deadline=None, database=None)
@given(ASCII_MIXED)
def test_case_insensitive(text: str) -> None:
    assert parse_verdict(text.upper()) == parse_verdict(text.lower()) == parse_verdict(text)


@settings(max_examples=200, deadline=None, database=None)
@given(MIXED, MIXED)
def test_adding_the_other_word_makes_it_unparseable(a: str, b: str) -> None:
    text = f"{a} ERROR {b} CORRECT"
    assert parse_verdict(text) is None
