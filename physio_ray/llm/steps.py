"""Reasoning steps ending in " ки": prompts, splitting, strict answer parsing, the marker token.

Med-PRM's convention: every reasoning step ends with the marker ``" ки"`` (leading space
included), and a process reward model reads its score at the marker token.

What SmolLM2's tokenizer does with the marker: ``" ки"`` is not in its vocabulary and splits
into two BPE pieces, ``" к"`` (31338) and ``"и"`` (7872); ``"ки"`` without the space splits
into ``"к"`` (13760) + ``"и"``. A PRM needs one position per step, so
:func:`register_step_marker` adds ``" ки"`` as one *added* token (``normalized=False``,
matched on the raw text before BPE, so ``"foo ки"`` becomes ``["foo", " ки"]``) and resizes the
model's embeddings. It is added as a non-special token on purpose: it is never split, and it
still survives ``decode(..., skip_special_tokens=True)``, so decoded step text keeps its
markers. The sampler does not register it: a generating model has never seen the new id, and
its text is split with :func:`split_steps` instead.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from physio_ray.schemas import LETTERS, STEP_MARKER

DEFAULT_MAX_STEPS = 8

# ---------------------------------------------------------------- the marker as one token


def marker_token_id(tokenizer: Any) -> int:
    """Returns the single token id of the step marker.

    Args:
        tokenizer: a Hugging Face tokenizer.

    Returns:
        The id that ``" ки"`` encodes to.

    Raises:
        ValueError: when the marker is not one token (call :func:`register_step_marker` first).
    """
    ids = tokenizer.encode(STEP_MARKER, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"step marker {STEP_MARKER!r} encodes to {len(ids)} tokens {ids}; "
            "call register_step_marker(tokenizer, model) first"
        )
    return int(ids[0])


def register_step_marker(tokenizer: Any, model: Any | None = None) -> int:
    """Makes the step marker one token, resizing the model's embeddings if a model is given.

    Mutates ``tokenizer`` (and ``model``) in place: never call it on the shared copy returned
    by ``load_causal_lm(..., memo=True)``; load a private one with ``memo=False``.

    Args:
        tokenizer: a Hugging Face tokenizer.
        model: optional ``PreTrainedModel`` whose input (and tied output) embeddings grow to
            ``len(tokenizer)``; new rows are initialised by transformers (mean of the others).

    Returns:
        The marker's token id.
    """
    from tokenizers import AddedToken

    ids = tokenizer.encode(STEP_MARKER, add_special_tokens=False)
    if len(ids) != 1:
        tokenizer.add_tokens([AddedToken(STEP_MARKER, normalized=False, special=False)])
    token_id = marker_token_id(tokenizer)
    if model is not None and model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    return token_id


# ---------------------------------------------------------------- prompt


def features_to_text(features: str | dict[str, Any] | None, max_chars: int = 1200) -> str:
    """Renders a features JSON dict as short ``key: value`` lines for a prompt.

    Args:
        features: a JSON object string (the ``features`` column), a dict, or ``None``.
        max_chars: the text is cut to this length.

    Returns:
        One line per (flattened) key; floats rounded to 1 decimal. Text that is not JSON is
        returned as is (cut).

    >>> features_to_text('{"reps": 3, "knee": {"min": 71.234, "max": 170.0}}')
    'reps: 3\\nknee.min: 71.2\\nknee.max: 170.0'
    """
    if features is None:
        return ""
    if isinstance(features, str):
        text = features
        try:
            features = json.loads(text)
        except ValueError:
            return text[:max_chars]
    if not isinstance(features, dict):
        return str(features)[:max_chars]

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.1f}"
        if isinstance(value, list | tuple):
            return "[" + ", ".join(fmt(v) for v in value[:12]) + (", ..." if len(value) > 12 else "") + "]"
        return str(value)

    lines: list[str] = []

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(f"{name}.", value)
            else:
                lines.append(f"{name}: {fmt(value)}")

    walk("", features)
    return "\n".join(lines)[:max_chars]


# Reference values a physiotherapist applies to the measurements (the bands of the question
# templates and the bundled corpus), so a small model can map a number onto an option.
REFERENCE_VALUES = (
    "- squat depth by the smallest knee angle: below 80 deg deep (below parallel), 80-100 deg about parallel, "
    "100-130 deg above parallel (half squat), over 130 deg quarter squat",
    "- trunk lean: under 20 deg upright, 20-45 deg moderate, over 45 deg marked",
    "- shoulder elevation: under 90 deg below shoulder height, 90-120, 120-150, over 150 deg near full",
    "- a repetition is complete when the moving joint goes down and back up; partial ones do not count",
)

# One worked example (few-shot). Its options are rotated per question so that the example's
# answer letter carries no bias towards one letter.
_EXAMPLE_DATA = "- smallest knee angle: 112.0 deg\n- largest knee angle: 171.0 deg\n- repetitions counted: 3"
_EXAMPLE_QUESTION = "How deep did the person go in this squat?"
_EXAMPLE_OPTIONS = (
    "Above parallel (a half squat)",
    "Below parallel (a deep squat)",
    "About parallel (thighs roughly horizontal)",
    "A quarter squat or less (minimal knee bend)",
)
_EXAMPLE_STEPS = (
    "Step 1: The smallest knee angle is 112.0 deg.",
    "Step 2: 112.0 deg is between 100 and 130 deg, so the squat stayed above parallel.",
)


def option_line(letter: str, text: str) -> str:
    """One option as the solution prompt shows it: its letter before the text and again after it.

    The tag at the end lets a small model answer by copying: the step that restates the chosen
    option's text (:func:`matching_step`) ends next to the letter, so ``"Answer: X"`` follows the
    way a quotation continues. Without it SmolLM2-135M trained on reference solutions quoted the
    right measurement in 48 of 48 held-out solutions and still wrote the right letter in 17: the
    text-to-letter lookup across the prompt is what it did not learn (README, "Teaching the policy").

    >>> option_line("B", " Below parallel ")
    'B) Below parallel [B]'
    """
    return f"{letter}) {str(text).strip()} [{letter}]"


def matching_step(number: int, letter: str, text: str) -> str:
    """The step that names the chosen option by its text and letter tag (ends in the step marker).

    >>> matching_step(3, "C", "Above parallel")
    'Step 3: The matching option is Above parallel [C]. ки'
    """
    return f"Step {number}: The matching option is {str(text).strip()} [{letter}].{STEP_MARKER}"


def worked_example(rotation: int = 0) -> str:
    """The worked example, options rotated by ``rotation`` (its answer letter moves with them).

    >>> worked_example(1).splitlines()[-2:]
    ['Step 3: The matching option is Above parallel (a half squat) [B]. ки', 'Answer: B']
    """
    k = rotation % len(_EXAMPLE_OPTIONS)
    options = _EXAMPLE_OPTIONS[-k:] + _EXAMPLE_OPTIONS[:-k] if k else _EXAMPLE_OPTIONS
    letter = LETTERS[options.index(_EXAMPLE_OPTIONS[0])]
    lines = [option_line(LETTERS[i], o) for i, o in enumerate(options)]
    steps = [f"{s}{STEP_MARKER}" for s in _EXAMPLE_STEPS]
    steps.append(matching_step(len(steps) + 1, letter, _EXAMPLE_OPTIONS[0]))
    return "\n".join(
        [
            "Measured movement data:",
            _EXAMPLE_DATA,
            f"Question: {_EXAMPLE_QUESTION}",
            *lines,
            *steps,
            f"Answer: {letter}",
        ]
    )


def build_solution_prompt(question: str, options: Sequence[str], features_text: str, sample: int = 0) -> str:
    """Builds the instruction that asks for short steps ending in " ки" and a final answer line.

    The prompt gives the measured data, the reference values (:data:`REFERENCE_VALUES`), one
    worked example (:func:`worked_example`) and asks that step 1 states the measurement the
    question turns on, by name and number (the measurement check can then confirm or refute it),
    and that the last step restates the chosen option with its letter tag (:func:`option_line`).

    The worked example's options are rotated by the question's text plus ``sample``, so that
    sample ``k`` of a question sees the example answered by a different letter than sample
    ``k - 1``. SmolLM2-135M copies the example's answer letter: with one rotation per question,
    9 of the 10 demo questions showed "Answer: C" and 31 of 40 solutions answered C.

    Args:
        question: the question stem (it may carry the measured-evidence block itself).
        options: exactly 4 option texts (without ``"A) "`` prefixes).
        features_text: measured movement features, e.g. from :func:`features_to_text`.
        sample: which sample of the question the prompt is for (moves the example's letter).

    Returns:
        The user prompt (the engine may wrap it in a chat template).

    Raises:
        ValueError: when there are not exactly 4 options.
    """
    if len(options) != 4:
        raise ValueError(f"a question needs exactly 4 options, got {len(options)}: {list(options)!r}")
    option_lines = "\n".join(option_line(letter, text) for letter, text in zip(LETTERS, options, strict=False))
    data = features_text.strip() or "(no measurements)"
    rotation = (sum(map(ord, question)) + sample) % 4
    return (
        "You are a physiotherapist assessing an exercise from measured movement data.\n\n"
        "Reference values:\n" + "\n".join(REFERENCE_VALUES) + "\n\n"
        f"Example:\n{worked_example(rotation)}\n\n"
        "Now the real case.\n"
        f"Movement data:\n{data}\n\n"
        f"Question: {question.strip()}\n{option_lines}\n\n"
        f"Reason in 3 short steps, each ending with '{STEP_MARKER}'. In Step 1 copy the measurement the "
        "question is about, with its name and number, from the data. In Step 2 compare it with the reference "
        "values and the options. In Step 3 write 'The matching option is' and copy that option's text and its "
        "[letter] tag. Then write one last line 'Answer: X' where X is A, B, C or D."
    )


# ---------------------------------------------------------------- splitting steps

_CYR = "А-Яа-яЁё"
_MARKER_RE = re.compile(rf"\s*(?<![{_CYR}])ки(?![{_CYR}])")
_HEADER_RE = re.compile(
    r"(?im)^[ \t]*(?:[*_#>]+[ \t]*)*"
    r"(?:step[ \t]*\d+[ \t]*[:.)\-–]|\d{1,2}[ \t]*[.)][ \t]|(?:the[ \t]+)?(?:final[ \t]+)?answer[ \t]*(?:is\b|[:=\-–]))"
)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")


def _split_headers(piece: str) -> list[str]:
    starts = [m.start() for m in _HEADER_RE.finditer(piece)]
    if not starts:
        return [piece]
    bounds = ([0] if starts[0] > 0 else []) + starts + [len(piece)]
    return [piece[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _clean(step: str) -> str:
    return re.sub(r"\s+", " ", _MARKER_RE.sub(" ", step)).strip()


def split_steps(text: str, max_steps: int = DEFAULT_MAX_STEPS) -> list[str]:
    """Splits a model's solution into steps that each end in exactly one " ки".

    Order of preference: the markers the model wrote; inside and otherwise, ``"Step k:"``,
    ``"k."`` or ``"Answer:"`` lines; with neither, non-empty lines; a single line is split into sentences.
    Whitespace inside a step collapses to single spaces; steps without any word character are
    dropped; steps past ``max_steps`` are merged into the last one (no text is lost).

    Args:
        text: raw model output.
        max_steps: the most steps returned (>= 1).

    Returns:
        Steps like ``"Step 1: knee angle reaches 80 degrees ки"``; ``[]`` for empty text.

    Raises:
        ValueError: when ``max_steps < 1``.

    >>> split_steps("Step 1: a\\nStep 2: b\\nAnswer: C")
    ['Step 1: a ки', 'Step 2: b ки', 'Answer: C ки']
    """
    if max_steps < 1:
        raise ValueError(f"max_steps={max_steps} must be >= 1")
    text = (text or "").strip()
    if not text:
        return []
    pieces = [p for p in _MARKER_RE.split(text)]
    if len(pieces) == 1:  # no markers: fall back on the model's own structure
        pieces = _split_headers(text)
        if len(pieces) == 1:
            lines = [line for line in text.splitlines() if line.strip()]
            pieces = lines if len(lines) > 1 else _SENTENCE_RE.split(text)
    else:
        pieces = [part for piece in pieces for part in _split_headers(piece.strip())]
    steps = [s for s in (_clean(p) for p in pieces) if re.search(r"\w", s)]
    if len(steps) > max_steps:
        steps = steps[: max_steps - 1] + [" ".join(steps[max_steps - 1 :])]
    return [f"{s}{STEP_MARKER}" for s in steps]


# ---------------------------------------------------------------- strict answer parsing

_CUE_RE = re.compile(
    r"\banswer\b\s*(?:(?:is|would\s+be|will\s+be|should\s+be)\b\s*[:=]?|[:=\-–])\s*"
    r"(?:(?:option|choice)\s+)?",
    re.IGNORECASE,
)
_HEDGE_RE = re.compile(r"(?:not|unclear|uncertain|none|neither|cannot|can't|unknown)\b", re.IGNORECASE)
_SEPARATOR_RE = re.compile(r"(?:\bor\b|\band\b|/|&|,)\s*(?:(?:option|choice)\s+)?", re.IGNORECASE)


class _LetterRules:
    """The option-letter patterns for questions with ``n_options`` options (A-D for 4)."""

    def __init__(self, n_options: int) -> None:
        up = f"A-{LETTERS[n_options - 1]}"
        low = up.lower()
        self.bracketed = re.compile(rf"[(\[]\s*([{up}{low}])\s*[)\]]")
        self.upper = re.compile(rf"([{up}])(?![A-Za-z0-9])")
        self.lower = re.compile(rf"([{low}])(?=\s*(?:[).,;:!?]|$))")
        self.bare_line = re.compile(rf"\(?([{up}])\)?\.?")


@functools.cache
def _letter_rules(n_options: int) -> _LetterRules:
    if not 1 <= n_options <= len(LETTERS):
        raise ValueError(f"n_options={n_options} must be in 1..{len(LETTERS)}")
    return _LetterRules(n_options)


def _letter_at(s: str, rules: _LetterRules) -> tuple[str, int] | None:
    """The option letter that ``s`` starts with, under strict rules, and where it ends.

    ``(c)``/``[C]`` in brackets; an upper-case letter followed by a non-alphanumeric character
    or the end; a lower-case letter only when punctuation or the end follows (so the article in
    "the answer is a knee valgus" is not read as option A).
    """
    m = rules.bracketed.match(s) or rules.upper.match(s) or rules.lower.match(s)
    return (m.group(1).upper(), m.end()) if m else None


def _normalise_for_answer(text: str) -> str:
    text = re.sub(r"\\(?:boxed|text|mathrm)\{\s*([A-Za-z])\s*\}", r"\1", text)
    return re.sub(r"[*`$]", "", text)


def parse_answer(text: str, n_options: int = 4) -> str | None:
    """Reads the final answer letter strictly; never guesses.

    The last explicit cue wins: ``"Answer: X"``, ``"answer is X"`` / ``"answer is (X)"``
    (also "final/correct answer", "option X", markdown bold, ``\\boxed{X}``), or a last line
    that is only ``"(X)"`` / ``"X"``. The letter must be one of the question's options (A-D
    for 4). The result is ``None`` when no cue carries a letter, or when the last one is
    ambiguous: two different letters (``"Answer: A or B"``) or a hedge (``"the answer is not
    C"``, ``"answer is unclear"``).

    Args:
        text: raw model output.
        n_options: options of the question (1..10, letters ``schemas.LETTERS``).

    Returns:
        ``"A"`` up to the ``n_options``-th letter, or ``None``.

    Raises:
        ValueError: when ``n_options`` is outside 1..10.

    >>> parse_answer("Step 1: the knee bends ки\\n**Answer: C**")
    'C'
    >>> parse_answer("Answer: A or B") is None
    True
    >>> parse_answer("The movement is INCORRECT.") is None
    True
    >>> parse_answer("the answer is (E)", n_options=5), parse_answer("the answer is (E)")
    ('E', None)
    """
    rules = _letter_rules(n_options)
    if not text:
        return None
    clean = _normalise_for_answer(text)
    verdict: tuple[int, str | None] | None = None  # (position, letter; None when ambiguous)
    for cue in _CUE_RE.finditer(clean):
        line_end = clean.find("\n", cue.end())
        rest = clean[cue.end() : line_end if line_end >= 0 else len(clean)].strip()
        if _HEDGE_RE.match(rest):
            verdict = (cue.start(), None)
            continue
        found = _letter_at(rest, rules)
        if found is None:
            continue  # "answer:" followed by prose carries no answer
        letter, end = found
        tail = rest[end:]
        others = {hit[0] for m in _SEPARATOR_RE.finditer(tail) if (hit := _letter_at(tail[m.end() :], rules))}
        verdict = (cue.start(), None if others - {letter} else letter)
    lines = [line.strip(" \t.:-") for line in _MARKER_RE.sub("", clean).splitlines() if line.strip(" \t.:-")]
    if lines and (bare := rules.bare_line.fullmatch(lines[-1])):
        return bare.group(1)  # a last line that is only "(C)" / "C" is the latest cue of all
    return verdict[1] if verdict else None
