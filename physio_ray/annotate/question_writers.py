"""How a question's stem is worded: the evidence block and the pluggable stem writers.

:class:`TemplateWriter` keeps the template wording; :class:`LLMWriter` asks a text engine to
rephrase it and falls back to the template stem, with the reason, when the rephrasing fails
:func:`check_rephrasing`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from physio_ray.llm.engine import SamplingParams, TextEngine
from physio_ray.schemas import MCQ_LETTERS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MCQ:
    """One multiple-choice question.

    Attributes:
        stem: the question sentence.
        options: option texts (4 when valid), without letter prefixes.
        answer: letter of the right option.
        answer_source: ``"ground_truth"`` or ``"measured"``.
        template: template id.
        context: measured-evidence block shown before the stem.
        stem_source: ``"template"`` or ``"llm"`` (who worded the stem).
        writer_note: why an LLM rephrasing was not used (``None`` when it was, or not asked).
    """

    stem: str
    options: tuple[str, ...]
    answer: str
    answer_source: str
    template: str
    context: str = ""
    stem_source: str = "template"
    writer_note: str | None = None

    @property
    def text(self) -> str:
        """The full question shown to a solver: evidence block, then the stem."""
        return f"{self.context}\n\n{self.stem}" if self.context else self.stem


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


# ---------------------------------------------------------------- writers
@dataclass(frozen=True)
class WrittenStem:
    """A stem as worded by a writer.

    Attributes:
        stem: the wording to use.
        source: ``"template"`` or ``"llm"``.
        note: why the LLM wording was rejected (``None`` if accepted or not asked).
    """

    stem: str
    source: str = "template"
    note: str | None = None


@runtime_checkable
class QuestionWriter(Protocol):
    """Words the stems of template drafts; never touches options or answers."""

    def write(self, drafts: Sequence[MCQ]) -> list[WrittenStem]:
        """Returns one :class:`WrittenStem` per draft, in order."""
        ...


class TemplateWriter:
    """Keeps the template stem as is (the default writer)."""

    def write(self, drafts: Sequence[MCQ]) -> list[WrittenStem]:
        return [WrittenStem(d.stem) for d in drafts]


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def check_rephrasing(original: str, candidate: str, options: Sequence[str], answer: str) -> str | None:
    """Why an LLM rephrasing of a stem cannot be used, or ``None`` when it can.

    The rephrasing must be one question (ending in "?", 15-300 characters, one line), keep
    every number of the original, not list options, and not contain the right option's text.

    >>> check_rephrasing("How many reps of a squat?", "Count the squat reps: how many?", ["3", "4", "5", "6"], "A")
    >>> check_rephrasing("How deep was a squat?", "Answer: A", ["x", "y", "z", "w"], "A")
    'not a question (must end with "?")'
    """
    text = candidate.strip()
    if not text:
        return "empty rephrasing"
    if "\n" in text:
        return "more than one line"
    if not text.endswith("?"):
        return 'not a question (must end with "?")'
    if not 15 <= len(text) <= 300:
        return f"length {len(text)} outside 15..300 characters"
    missing = set(_NUMBER.findall(original)) - set(_NUMBER.findall(text))
    if missing:
        return f"dropped numbers {sorted(missing)}"
    if re.search(r"(^|\s)[A-D][).:]\s", text):
        return "lists lettered options"
    right = options[MCQ_LETTERS.index(answer)] if answer in MCQ_LETTERS and len(options) == 4 else ""
    if right and _norm(right) in _norm(text):
        return "gives away the right option"
    return None


class LLMWriter:
    """Asks a text engine to rephrase each stem; keeps the template stem when that fails.

    Args:
        engine: any :class:`~physio_ray.llm.engine.TextEngine`.
        params: sampling settings (default: greedy, 64 new tokens, stop at a newline).
    """

    PROMPT = (
        "Rephrase this physiotherapy exam question in one clear sentence. Keep every number "
        "and the exercise name. Do not answer it and do not list options.\n"
        "Question: {stem}\nRephrased question:"
    )

    def __init__(self, engine: TextEngine, params: SamplingParams | None = None) -> None:
        self.engine = engine
        self.params = params or SamplingParams(n=1, temperature=0.0, max_new_tokens=64, stop=("\n",))

    def write(self, drafts: Sequence[MCQ]) -> list[WrittenStem]:
        if not drafts:
            return []
        try:
            gens = self.engine.generate([self.PROMPT.format(stem=d.stem) for d in drafts], self.params)
        except Exception as exc:  # an engine failure must not lose the questions
            logger.warning("question writer engine failed (%s); keeping template stems", exc)
            return [WrittenStem(d.stem, note=f"engine error: {exc}") for d in drafts]
        out = []
        for d, gen in zip(drafts, gens, strict=True):
            if gen.error or not gen.texts:
                out.append(WrittenStem(d.stem, note=f"engine error: {gen.error or 'no text'}"))
                continue
            candidate = gen.texts[0].strip().strip('"').strip()
            reason = check_rephrasing(d.stem, candidate, d.options, d.answer)
            out.append(WrittenStem(d.stem, note=reason) if reason else WrittenStem(candidate, source="llm"))
        return out
