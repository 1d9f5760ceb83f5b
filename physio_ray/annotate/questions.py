"""Phase 1 of seed 000: validated physiotherapy MCQs from keyframe features.

Templates (:mod:`physio_ray.annotate.question_templates`) decide the options and the answer
from measured features or dataset labels; a pluggable :class:`QuestionWriter` only words the
stem (:class:`TemplateWriter` keeps the template wording, :class:`LLMWriter` asks a text
engine to rephrase it and falls back to the template stem, with the reason, when the
rephrasing fails a check). Every question is validated (:func:`validate_mcq`) and an invalid
one is dropped with its reason, never repaired silently.

:class:`QuestionGenerator` is the Ray Data stage: keyframe rows in, question rows out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from physio_ray import schemas as S
from physio_ray.annotate.config import QuestionConfig
from physio_ray.annotate.question_templates import (
    EXERCISES,
    TEMPLATES,
    Draft,
    Refused,
    canonical_exercise,
    read_measures,
)
from physio_ray.llm.engine import SamplingParams, TextEngine

logger = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D")
NO_QUESTION_SUFFIX = "noq"
ANSWER_SOURCES = ("ground_truth", "measured")
OUTPUT_COLUMNS = (
    S.QUESTION_ID,
    S.VIDEO_ID,
    S.EXERCISE,
    S.QUESTION,
    S.OPTIONS,
    S.ANSWER,
    S.ANSWER_SOURCE,
    S.TEMPLATE,
    S.FEATURES,
    S.ERROR,
)


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


def validate_mcq(q: MCQ) -> str | None:
    """Checks an MCQ; returns why it is invalid, or ``None`` when it is sound.

    Rules: non-empty stem; exactly 4 non-empty string options; no two options equal ignoring
    case and spacing; the answer is exactly one letter A-D; a known answer source.

    >>> validate_mcq(MCQ("Q?", ("a", "b", "c", "d"), "B", "measured", "t")) is None
    True
    >>> validate_mcq(MCQ("Q?", ("a", "A ", "c", "d"), "B", "measured", "t"))
    'duplicate options (case/space-insensitive)'
    """
    if not isinstance(q.stem, str) or not q.stem.strip():
        return "empty stem"
    if not isinstance(q.options, (tuple, list)) or len(q.options) != 4:
        n = len(q.options) if isinstance(q.options, (tuple, list)) else "no"
        return f"needs exactly 4 options, got {n}"
    if any(not isinstance(o, str) or not o.strip() for o in q.options):
        return "empty or non-text option"
    if len({_norm(o) for o in q.options}) != 4:
        return "duplicate options (case/space-insensitive)"
    if not isinstance(q.answer, str) or q.answer not in LETTERS:
        return f"answer must be exactly one letter A-D, got {q.answer!r}"
    if q.answer_source not in ANSWER_SOURCES:
        return f"answer_source must be one of {ANSWER_SOURCES}, got {q.answer_source!r}"
    return None


def shuffle_draft(draft: Draft, rng: random.Random) -> tuple[tuple[str, ...], str]:
    """Shuffles a draft's options; returns ``(options, answer_letter)``."""
    order = list(range(len(draft.options)))
    rng.shuffle(order)
    options = tuple(draft.options[i] for i in order)
    letter = LETTERS[order.index(draft.correct)] if len(order) <= len(LETTERS) else "?"
    return options, letter


def _rng_for(seed: int, video_id: str, template: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{video_id}|{template}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


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
    return "Measured movement data (from pose landmarks):\n" + "\n".join(lines) if lines else ""


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


# ---------------------------------------------------------------- building questions
@dataclass
class BuildResult:
    """Questions made for one recording.

    Attributes:
        kept: valid questions (at most ``max_per_recording``).
        dropped: ``(template, reason)`` for templates that applied but could not make a sound question.
    """

    kept: list[MCQ] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)


def build_questions(
    video_id: str,
    exercise: str | None,
    ground_truth: str | None,
    features: Mapping[str, Any],
    keyframe_times: Sequence[float] | None = None,
    keyframe_kinds: Sequence[str] | None = None,
    *,
    seed: int = 0,
    max_questions: int = 2,
) -> BuildResult:
    """Fills every applicable template for one recording, shuffles and validates.

    Args:
        video_id: recording id (part of the shuffling seed).
        exercise: exercise name (any alias :func:`canonical_exercise` knows).
        ground_truth: ``"correct"``, ``"incorrect"`` or ``None``.
        features: the keyframe stage's features dict.
        keyframe_times: keyframe times (s), shown in the evidence block.
        keyframe_kinds: keyframe kinds, shown beside the times.
        seed: option-shuffling seed.
        max_questions: keep at most this many valid questions.

    Returns:
        A :class:`BuildResult`; templates that do not apply are skipped silently, those that
        apply but fail are in ``dropped`` with the reason.
    """
    result = BuildResult()
    key = canonical_exercise(exercise)
    if key is None:
        result.dropped.append(("*", f"unknown exercise {exercise!r}; known: {sorted(EXERCISES)}"))
        return result
    ex = EXERCISES[key]
    measures = read_measures(features)
    gt = ground_truth if ground_truth in ("correct", "incorrect") else None
    for template in TEMPLATES:
        if len(result.kept) >= max_questions:
            break
        try:
            draft = template(key, ex, gt, measures)
        except LookupError:
            continue
        except Refused as exc:
            result.dropped.append((template.__name__, str(exc)))
            continue
        options, letter = shuffle_draft(draft, _rng_for(seed, video_id, draft.template))
        q = MCQ(
            stem=draft.stem,
            options=options,
            answer=letter,
            answer_source=draft.answer_source,
            template=draft.template,
            context=evidence_block(features, keyframe_times, draft.hide, keyframe_kinds),
        )
        reason = validate_mcq(q)
        if reason:
            result.dropped.append((draft.template, reason))
        else:
            result.kept.append(q)
    return result


def as_columns(batch: Any) -> dict[str, np.ndarray]:
    """A Ray Data batch as ``{column: 1-D array}``: numpy batches pass, pandas frames convert.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(batch, Mapping):
        return dict(batch)
    if hasattr(batch, "columns") and hasattr(batch, "__getitem__"):
        return {str(c): batch[c].to_numpy() for c in batch.columns}
    raise TypeError(f"expected a numpy (dict) or pandas batch, got {type(batch).__name__}")


def _cell(batch: Mapping[str, Any], column: str, i: int) -> Any:
    if column not in batch:
        return None
    value = batch[column][i]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


class QuestionGenerator:
    """Ray Data stage: keyframe rows -> question rows (``question_id = f"{video_id}-q{k}"``).

    Reads ``video_id, exercise, ground_truth, features (JSON str), keyframe_times, error``
    (and ``keyframe_kinds`` when present);
    writes :data:`OUTPUT_COLUMNS`. A recording that yields no valid question (upstream
    ``error`` set, features that do not parse, every template refused) keeps flowing as ONE
    row ``question_id = f"{video_id}-noq"`` with ``error`` saying why (so the run reports
    it and a resumed run does not retry it); it is also counted in :attr:`stats`.

    Args:
        cfg: question settings.
        writer: stem writer (``None``: :class:`TemplateWriter`, or :class:`LLMWriter` over
            ``build_engine(cfg.engine)`` when ``cfg.writer == "llm"``).
    """

    def __init__(self, cfg: QuestionConfig, writer: QuestionWriter | None = None) -> None:
        self.cfg = cfg
        if writer is None and cfg.writer == "llm":
            from physio_ray.llm.factory import build_engine

            writer = LLMWriter(build_engine(cfg.engine))
        self.writer: QuestionWriter = writer or TemplateWriter()
        self.stats: Counter[str] = Counter()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Writes questions for every keyframe row of ``batch``.

        Args:
            batch: "keyframes" columns, ``[n]`` each (a pandas batch is accepted too).

        Returns:
            :data:`OUTPUT_COLUMNS`, ``[m]`` each (``m`` questions, 0 when none could be made).
        """
        batch = as_columns(batch)
        n = len(batch[S.VIDEO_ID]) if S.VIDEO_ID in batch else 0
        pending: list[tuple[str, str | None, str, MCQ]] = []
        failed: list[tuple[str, Any, str]] = []  # (video_id, exercise, why no question was made)
        for i in range(n):
            video_id = str(batch[S.VIDEO_ID][i])
            upstream = _cell(batch, S.ERROR, i)
            if upstream:
                self.stats["rows_with_upstream_error"] += 1
                logger.warning("no questions for %s: upstream error %s", video_id, upstream)
                failed.append((video_id, _cell(batch, S.EXERCISE, i), f"upstream error: {upstream}"))
                continue
            raw = _cell(batch, S.FEATURES, i)
            try:
                features = json.loads(raw) if isinstance(raw, (str, bytes)) else dict(raw or {})
                if not isinstance(features, dict):
                    raise ValueError(f"features is a JSON {type(features).__name__}, not an object")
            except (ValueError, TypeError) as exc:
                self.stats["rows_with_bad_features"] += 1
                logger.warning("no questions for %s: features unreadable (%s)", video_id, exc)
                failed.append((video_id, _cell(batch, S.EXERCISE, i), f"features unreadable: {exc}"))
                continue
            exercise = _cell(batch, S.EXERCISE, i)
            times = _cell(batch, S.KEYFRAME_TIMES, i)
            kinds = _cell(batch, S.KEYFRAME_KINDS, i)
            built = build_questions(
                video_id,
                exercise,
                _cell(batch, S.GROUND_TRUTH, i),
                features,
                None if times is None else [float(t) for t in times],
                None if kinds is None else [str(k) for k in kinds],
                seed=self.cfg.seed,
                max_questions=self.cfg.max_per_recording,
            )
            self.stats["questions_dropped"] += len(built.dropped)
            for template, reason in built.dropped:
                logger.info("dropped %s question for %s: %s", template, video_id, reason)
            if not built.kept:
                self.stats["rows_without_questions"] += 1
                why = "; ".join(f"{t}: {r}" for t, r in built.dropped) or "no template applies to these features"
                failed.append((video_id, exercise, f"no valid question: {why}"))
            canonical_json = raw if isinstance(raw, str) else json.dumps(features)
            pending += [(video_id, exercise, canonical_json, q) for q in built.kept]
        written = self.writer.write([q for *_, q in pending])
        rows: dict[str, list[Any]] = {c: [] for c in OUTPUT_COLUMNS}
        counters: Counter[str] = Counter()
        for (video_id, exercise, features_json, q), stem in zip(pending, written, strict=True):
            self.stats[f"stem_{stem.source}"] += 1
            if stem.note:
                self.stats["stem_fallbacks"] += 1
                logger.info("kept template stem for %s/%s: %s", video_id, q.template, stem.note)
            k = counters[video_id]
            counters[video_id] += 1
            final = MCQ(stem.stem, q.options, q.answer, q.answer_source, q.template, q.context, stem.source, stem.note)
            rows[S.QUESTION_ID].append(f"{video_id}-q{k}")
            rows[S.VIDEO_ID].append(video_id)
            rows[S.EXERCISE].append(exercise)
            rows[S.QUESTION].append(final.text)
            rows[S.OPTIONS].append(list(final.options))
            rows[S.ANSWER].append(final.answer)
            rows[S.ANSWER_SOURCE].append(final.answer_source)
            rows[S.TEMPLATE].append(final.template)
            rows[S.FEATURES].append(features_json)
            rows[S.ERROR].append(None)
        for video_id, exercise, reason in failed:
            rows[S.QUESTION_ID].append(f"{video_id}-{NO_QUESTION_SUFFIX}")
            rows[S.VIDEO_ID].append(video_id)
            rows[S.EXERCISE].append(exercise)
            rows[S.QUESTION].append("")
            rows[S.OPTIONS].append([])
            rows[S.ANSWER].append(None)
            rows[S.ANSWER_SOURCE].append(None)
            rows[S.TEMPLATE].append(None)
            rows[S.FEATURES].append(None)
            rows[S.ERROR].append(reason)
        self.stats["questions"] += len(pending)
        logger.info("questions: %d kept from %d recordings (%s)", len(pending), n, dict(self.stats))
        return {c: _object_array(v) for c, v in rows.items()}


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out
