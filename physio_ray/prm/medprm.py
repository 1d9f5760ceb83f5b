"""Reading Med-PRM training data (Yun et al., EMNLP 2025) into :class:`PRMExample`.

Two layouts are accepted, detected per record:

* **flat** (the stratified sample in ``shared/data/medprm-samples``): one solution per
  record with ``steps`` (each ending in " ки"), ``prm_hard_label``, ``prm_soft_label``,
  ``prm_gemini_label``, ``options`` as one ``"  A. ...\\n  B. ..."`` string, ``model_answer``,
  ``correct_answer``, ``is_correct``.
* **nested** (the upstream release): one question per record with ``options`` as a list and
  ``solutions: [{prm_processed_solution, prm_hard_label, prm_soft_label,
  prm_gemini_label, orm_label, answer, score}, ...]``; steps are recovered by splitting
  ``prm_processed_solution`` at the markers.

The file may be a JSON list, a JSON object holding the list under ``data``, or JSON lines.
Records that cannot be used are skipped with a warning naming them; counts land in the
:class:`~physio_ray.prm.data.LoadReport`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from physio_ray import schemas as S
from physio_ray.prm.config import LabelConfig
from physio_ray.prm.data import LoadReport, PRMExample, normalise_steps, repair_labels

logger = logging.getLogger(__name__)

LABEL_KEYS = {"hard": "prm_hard_label", "soft": "prm_soft_label", "judge": "prm_gemini_label"}
_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Z])[.)]\s*")


def load_medprm(path: str, cfg: LabelConfig | None = None) -> list[PRMExample]:
    """Reads a Med-PRM JSON file (flat or nested schema) into examples.

    Args:
        path: JSON list, ``{"data": [...]}`` or JSON-lines file.
        cfg: which labels to train on and how to repair them (default: Gemini labels,
            zeroed after the first 0 as Med-PRM does).

    Returns:
        One example per usable solution, in file order.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is not JSON / JSON lines at all.
    """
    examples, report = load_medprm_with_report(path, cfg)
    logger.info("Med-PRM %s: %s", path, report.summary())
    return examples


def load_medprm_with_report(path: str, cfg: LabelConfig | None = None) -> tuple[list[PRMExample], LoadReport]:
    """Like :func:`load_medprm`, also returning the counts of skips and repairs."""
    cfg = cfg or LabelConfig()
    report = LoadReport()
    examples: list[PRMExample] = []
    for i, record in enumerate(read_records(path)):
        name = _record_name(record, i)
        if not isinstance(record, dict):
            report.records += 1
            report.skip(f"not a JSON object ({type(record).__name__})", name)
            continue
        if "solutions" in record:
            examples.extend(_from_nested(record, name, cfg, report))
        else:
            report.records += 1
            ex = _from_flat(record, name, cfg, report)
            if ex is not None:
                examples.append(ex)
    report.examples = len(examples)
    return examples, report


def read_records(path: str) -> list[Any]:
    """Reads the raw records of a JSON list, ``{"data": [...]}`` or JSON-lines file."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if n == 1:
                    raise ValueError(f"{path} is neither JSON nor JSON lines: {exc}") from exc
                logger.warning("%s line %d is not JSON (%s); skipped", path, n, exc)
                records.append(None)
        return records
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return data["data"]
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def parse_options(options: Any) -> list[str]:
    """Option texts without letter prefixes, from a string, a list or a letter->text dict.

    >>> parse_options("  A. Foo\\n  B. Bar baz")
    ['Foo', 'Bar baz']
    >>> parse_options(["(A) Foo", "Bar"]), parse_options({"B": "y", "A": "x"})
    (['Foo', 'Bar'], ['x', 'y'])
    """
    if options is None:
        return []
    if isinstance(options, dict):
        items = [str(options[k]) for k in sorted(options)]
    elif isinstance(options, str):
        items = [line for line in options.splitlines() if line.strip()]
    elif isinstance(options, list):
        items = [str(o) for o in options]
    else:
        return []
    return [_OPTION_PREFIX.sub("", item).strip() for item in items]


def split_processed_solution(text: str) -> list[str]:
    """Splits Med-PRM's ``prm_processed_solution`` ("Step 1: ... ки Step 2: ... ки") into steps.

    >>> split_processed_solution("Step 1: a ки Step 2: b ки")
    ['Step 1: a ки', 'Step 2: b ки']
    """
    parts = [p.strip() for p in text.split(S.STEP_MARKER)]
    if parts and not parts[-1]:
        parts.pop()
    return [p + S.STEP_MARKER for p in parts if p]


def _record_name(record: Any, i: int) -> str:
    if isinstance(record, dict):
        bits = [f"{k}={record[k]}" for k in ("sample_id", "question_id") if k in record]
        if bits:
            return f"record {i} ({', '.join(bits)})"
    return f"record {i}"


def _answer(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().strip("()").upper()
    return text if len(text) == 1 and text.isalpha() else None


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _from_flat(record: dict[str, Any], name: str, cfg: LabelConfig, report: LoadReport) -> PRMExample | None:
    steps = record.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        report.skip("no list of step strings under 'steps'", name)
        return None
    if record.get("question_id") is None or not isinstance(record.get("question"), str):
        report.skip("missing question_id or question", name)
        return None
    raw = record.get(LABEL_KEYS[cfg.source])
    if raw is not None and not isinstance(raw, list):
        report.skip(f"'{LABEL_KEYS[cfg.source]}' is not a list", name)
        return None
    steps = normalise_steps(steps, name)
    labels = repair_labels(raw, len(steps), cfg, name, report)
    if labels is None:
        report.skip("label length mismatch", name)
        return None
    if cfg.require_labels and all(v is None for v in labels):
        report.skip(f"no usable '{LABEL_KEYS[cfg.source]}'", name)
        return None
    qid = str(record["question_id"])
    sid = record.get("sample_id")
    correct = record.get("is_correct", record.get("orm_label"))
    return PRMExample(
        question_id=qid,
        solution_id=f"medprm-{qid}-{sid if sid is not None else 0}",
        question=record["question"],
        options=parse_options(record.get("options")),
        steps=steps,
        labels=labels,
        is_correct=_bool(correct),
        answer=_answer(record.get("model_answer")),
        correct_answer=_answer(record.get("correct_answer")),
        source="medprm-flat",
    )


def _from_nested(record: dict[str, Any], name: str, cfg: LabelConfig, report: LoadReport) -> list[PRMExample]:
    solutions = record.get("solutions")
    if not isinstance(solutions, list) or not solutions:
        report.records += 1
        report.skip("'solutions' is empty or not a list", name)
        return []
    if record.get("question_id") is None or not isinstance(record.get("question"), str):
        report.records += len(solutions)
        for k in range(len(solutions)):
            report.skip("missing question_id or question", f"{name} solution {k}")
        return []
    qid = str(record["question_id"])
    options = parse_options(record.get("options"))
    gold = _answer(record.get("correct_answer", record.get("answer_idx")))
    out = []
    for k, sol in enumerate(solutions):
        report.records += 1
        sname = f"{name} solution {k}"
        if not isinstance(sol, dict) or not isinstance(sol.get("prm_processed_solution"), str):
            report.skip("no 'prm_processed_solution' string", sname)
            continue
        steps = split_processed_solution(sol["prm_processed_solution"])
        if not steps:
            report.skip("'prm_processed_solution' has no steps", sname)
            continue
        raw = sol.get(LABEL_KEYS[cfg.source])
        if raw is not None and not isinstance(raw, list):
            report.skip(f"'{LABEL_KEYS[cfg.source]}' is not a list", sname)
            continue
        steps = normalise_steps(steps, sname)
        labels = repair_labels(raw, len(steps), cfg, sname, report)
        if labels is None:
            report.skip("label length mismatch", sname)
            continue
        if cfg.require_labels and all(v is None for v in labels):
            report.skip(f"no usable '{LABEL_KEYS[cfg.source]}'", sname)
            continue
        correct = sol.get("orm_label", sol.get("score"))
        out.append(
            PRMExample(
                question_id=qid,
                solution_id=f"medprm-{qid}-s{k}",
                question=record["question"],
                options=options,
                steps=steps,
                labels=labels,
                is_correct=_bool(correct),
                answer=_answer(sol.get("answer")),
                correct_answer=gold,
                source="medprm-nested",
            )
        )
    return out
