"""How a question's stem is worded: the evidence block and the pluggable stem writers.

:class:`TemplateWriter` keeps the template wording; :class:`LLMWriter` asks a text engine to
rephrase it and falls back to the template stem, with the reason, when the rephrasing fails
:func:`check_rephrasing`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from physio_ray.llm.engine import SamplingParams, TextEngine

logger = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D")
# Opens the measurements block of a question stem; the solution prompt then does not repeat them.
EVIDENCE_HEADER = "Measured movement data (from pose landmarks):"


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


# ---------------------------------------------------------------- evidence block
_LABELS = {
    "rep_count": "repetitions counted",
    "knee_min_deg": "smallest knee angle (deg)",
    "knee_max_deg": "largest knee angle (deg)",
    "hip_min_deg": "smallest hip angle (deg)",
    "hip_max_deg": "largest hip angle (deg)",
    "trunk_lean_bottom_deg": "trunk lean at the bottom (deg from vertical)",
    "shoulder_max_deg": "peak shoulder elevation (deg)",
    "rep_duration_s": "mean repetition duration (s)",
    "visible_fraction": "fraction of frames with the person visible",
}
_MAX_EVIDENCE_ITEMS = 14


def _fmt(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if np.isfinite(value) else None
    if isinstance(value, str) and len(value) <= 40:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        shown = ", ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in value[:8])
        return f"[{shown}{', ...' if len(value) > 8 else ''}]"
    return None


def evidence_block(
    features: Mapping[str, Any],
    keyframe_times: Sequence[float] | None = None,
    hide: Sequence[str] = (),
    keyframe_kinds: Sequence[str] | None = None,
) -> str:
    """Short text of the measured features, so a solver has evidence.

    Args:
        features: the keyframe stage's features dict.
        keyframe_times: keyframe times in seconds (shown when given).
        hide: feature keys to leave out (the ones a question asks about directly).
        keyframe_kinds: ``"start" | "bottom" | "top" | ...`` per keyframe, shown beside the times.

    Returns:
        Lines such as ``"- smallest knee angle (deg): 62.3"`` under a heading ("" if empty).
    """
    lines = []
    for key, value in features.items():
        if key in hide or key in ("exercise", "exercise_name"):
            continue
        shown = _fmt(value)
        if shown is not None:
            lines.append(f"- {_LABELS.get(key, key.replace('_', ' '))}: {shown}")
        if len(lines) >= _MAX_EVIDENCE_ITEMS:
            break
    if keyframe_times is not None and len(keyframe_times):
        times = [f"{float(t):.1f}" for t in list(keyframe_times)[:_MAX_EVIDENCE_ITEMS]]
        if keyframe_kinds is not None and len(keyframe_kinds) == len(keyframe_times):
            lines.append("- keyframes: " + ", ".join(f"{k} {t} s" for k, t in zip(keyframe_kinds, times, strict=False)))
        else:
            lines.append(f"- keyframe times (s): {', '.join(times)}")
    return EVIDENCE_HEADER + "\n" + "\n".join(lines) if lines else ""


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
    right = options[LETTERS.index(answer)] if answer in LETTERS and len(options) == 4 else ""
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
