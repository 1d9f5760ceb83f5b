"""What a judge call sees and answers, and how a judge reply is read.

Shared by the judge stage (:mod:`physio_ray.annotate.judge`) and the backends
(:mod:`physio_ray.annotate.judge_backends`, :mod:`physio_ray.annotate.judge_api`), which
import these types from here and never from each other's modules.

:func:`parse_judgement` reads a judge reply strictly. Anything it cannot read safely becomes
an abstention (label ``None``, confidence 0) and never a guess; labels are exact tokens, so
"INCORRECT" can never read as correct.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from physio_ray import schemas as S
from physio_ray.annotate.retrieval import Passage

logger = logging.getLogger(__name__)

_PASSAGE_CHARS = 600
_LABEL_TOKENS = {"correct": 1, "true": 1, "1": 1, "incorrect": 0, "false": 0, "0": 0}
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class StepJudgement:
    """The judge's verdict on one step.

    Attributes:
        label: 1 correct, 0 incorrect, ``None`` abstain.
        confidence: 0..1; always 0 for an abstention.
    """

    label: int | None
    confidence: float

    def __post_init__(self) -> None:
        assert self.label in (0, 1, None), self.label
        assert 0.0 <= self.confidence <= 1.0, self.confidence
        assert self.label is not None or self.confidence == 0.0, "an abstention has confidence 0"


ABSTAIN = StepJudgement(None, 0.0)


def _read_label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if value in (0, 1) else None
    if isinstance(value, str):
        return _LABEL_TOKENS.get(value.strip().casefold())
    return None


def _read_confidence(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    value = float(value)
    return value if 0.0 <= value <= 1.0 else None  # 1.7 or 85 (a percentage?) is not a probability


class _Ambiguous(dict):  # type: ignore[type-arg]
    """A JSON object that repeated a key: which value the judge meant is unknown."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    return _Ambiguous(pairs) if len(set(keys)) != len(keys) else dict(pairs)


def _read_step(item: Any) -> StepJudgement:
    if not isinstance(item, Mapping) or isinstance(item, _Ambiguous):
        return ABSTAIN
    label = _read_label(item.get("label"))
    confidence = _read_confidence(item.get("confidence"))
    if label is None or confidence is None:
        return ABSTAIN
    return StepJudgement(label, confidence)


def _decode(text: str) -> Any:
    """The JSON value in ``text``: inside the first code fence if any, else the whole text,
    else the first JSON value that starts at the first ``[`` or ``{``. ``None`` if none."""
    fenced = _FENCE.search(text)
    body = (fenced.group(1) if fenced else text).strip()
    decoder = json.JSONDecoder(object_pairs_hook=_pairs)
    try:
        return decoder.decode(body)
    except (ValueError, RecursionError):
        pass
    starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
    if not starts:
        return None
    try:
        value, _ = decoder.raw_decode(body, min(starts))
        return value
    except (ValueError, RecursionError):
        return None


def parse_judgement(text: str, n_steps: int) -> list[StepJudgement]:
    """Reads a judge reply into exactly ``n_steps`` step judgements.

    Accepted shapes: a JSON list of ``{"label", "confidence"}`` objects, or an object whose
    ``"steps"`` value is such a list, optionally inside a ```json code fence or after a short
    preamble. ``label`` may be ``1``/``0``, ``true``/``false`` or the exact tokens
    ``"correct"``/``"incorrect"`` (any case, surrounding spaces ignored; ``"1"``/``"0"`` and
    ``"true"``/``"false"`` strings too); substrings never count, so ``"INCORRECT"``,
    ``"not correct"`` or ``"correct?"`` never read as correct. ``confidence`` must be a
    finite number (or a numeric string) in 0..1; anything else (``1.7``, ``85``, ``NaN``)
    is not a probability and the step abstains.

    Length rule: items are matched to steps by position. Missing items abstain; extra items
    are ignored. An item with an unreadable label or confidence, or that repeats a key
    (``{"label": "correct", "label": "incorrect"}``), abstains alone.

    Args:
        text: the raw reply.
        n_steps: number of steps of the judged solution (>= 0).

    Returns:
        ``n_steps`` :class:`StepJudgement` (abstentions have label ``None``, confidence 0).

    Raises:
        ValueError: when ``n_steps`` is negative.

    >>> [(j.label, j.confidence) for j in parse_judgement('[{"label": "INCORRECT", "confidence": 0.8}]', 2)]
    [(0, 0.8), (None, 0.0)]
    """
    if n_steps < 0:
        raise ValueError(f"n_steps={n_steps} must be >= 0")
    if not isinstance(text, str):
        return [ABSTAIN] * n_steps
    value = _decode(text)
    if isinstance(value, Mapping):
        value = value.get("steps")
    if not isinstance(value, list):
        return [ABSTAIN] * n_steps
    if len(value) != n_steps:
        logger.debug("judge returned %d items for %d steps", len(value), n_steps)
    out = [_read_step(item) for item in value[:n_steps]]
    return out + [ABSTAIN] * (n_steps - len(out))


# ---------------------------------------------------------------- requests and results
def strip_marker(step: str) -> str:
    """A step without its trailing `` ки`` marker and surrounding space."""
    text = step.strip()
    marker = S.STEP_MARKER.strip()
    return text[: -len(marker)].rstrip() if text.endswith(marker) else text


def format_options(options: Any) -> str:
    """Options as ``"A. ..."`` lines; a string (Med-PRM's format) is kept as is."""
    if isinstance(options, str):
        return options.strip()
    items = [str(o) for o in (options if options is not None else [])]
    return "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(items))


@dataclass(frozen=True)
class JudgeRequest:
    """Everything one judge call sees.

    Attributes:
        question: question text (with its evidence block, if any).
        options: option lines (see :func:`format_options`).
        answer: the reference answer letter, ``None`` to hide it from the judge.
        steps: step texts without markers.
        evidence: retrieved passages.
    """

    question: str
    options: str
    answer: str | None
    steps: tuple[str, ...]
    evidence: tuple[Passage, ...] = ()


@dataclass
class JudgeResult:
    """A backend's answer for one solution.

    Attributes:
        judgements: one per step.
        tokens_in: prompt tokens.
        tokens_out: generated tokens.
        seconds: wall time of the call (retries included).
        calls: judge calls made for this solution (1; 0 when nothing was asked).
        note: why every step abstained (API failure), else ``None``.
    """

    judgements: list[StepJudgement]
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    calls: int = 1
    note: str | None = None


@runtime_checkable
class JudgeBackend(Protocol):
    """One judge call per solution: ``judge(request) -> JudgeResult``."""

    def judge(self, request: JudgeRequest) -> JudgeResult:
        """Labels every step of ``request.steps`` in one call."""
        ...


def format_evidence(request: JudgeRequest) -> str:
    """The retrieved passages as numbered ``"[k] title: text"`` lines (text cut at 600 characters)."""
    return "\n".join(f"[{k + 1}] {p.title}: {p.text[:_PASSAGE_CHARS]}" for k, p in enumerate(request.evidence))


def request_context(request: JudgeRequest) -> list[str]:
    """The prompt blocks every judge shows before the steps: evidence, question, options, answer.

    Blocks that are empty in ``request`` are left out; join them with blank lines.
    """
    parts = []
    if request.evidence:
        parts.append(f"Reference documents:\n{format_evidence(request)}")
    parts.append(f"Question:\n{request.question}")
    if request.options:
        parts.append(f"Options:\n{request.options}")
    if request.answer:
        parts.append(f"Reference answer: {request.answer}")
    return parts
