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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.annotate.config import QuestionConfig
from physio_ray.annotate.question_exercises import EXERCISES, canonical_exercise
from physio_ray.annotate.question_templates import TEMPLATES, Draft, Refused, read_measures
from physio_ray.annotate.question_writers import (
    MCQ,
    LLMWriter,
    QuestionWriter,
    TemplateWriter,
    _norm,
)
from physio_ray.batches import as_columns, cell, object_array
from physio_ray.llm.evidence import evidence_block
from physio_ray.schemas import MCQ_LETTERS as LETTERS

logger = logging.getLogger(__name__)

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
            upstream = cell(batch, S.ERROR, i)
            if upstream:
                self.stats["rows_with_upstream_error"] += 1
                logger.warning("no questions for %s: upstream error %s", video_id, upstream)
                failed.append((video_id, cell(batch, S.EXERCISE, i), f"upstream error: {upstream}"))
                continue
            raw = cell(batch, S.FEATURES, i)
            try:
                features = json.loads(raw) if isinstance(raw, (str, bytes)) else dict(raw or {})
                if not isinstance(features, dict):
                    raise ValueError(f"features is a JSON {type(features).__name__}, not an object")
            except (ValueError, TypeError) as exc:
                self.stats["rows_with_bad_features"] += 1
                logger.warning("no questions for %s: features unreadable (%s)", video_id, exc)
                failed.append((video_id, cell(batch, S.EXERCISE, i), f"features unreadable: {exc}"))
                continue
            exercise = cell(batch, S.EXERCISE, i)
            times = cell(batch, S.KEYFRAME_TIMES, i)
            kinds = cell(batch, S.KEYFRAME_KINDS, i)
            built = build_questions(
                video_id,
                exercise,
                cell(batch, S.GROUND_TRUTH, i),
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
        return {c: object_array(v) for c, v in rows.items()}
