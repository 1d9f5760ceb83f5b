"""Our RAG judge against published step labels: Med-PRM's Gemini judge and its 16-rollout MC.

The Med-PRM sample (``../shared/data/medprm-samples``, flat schema, see its SOURCE.txt) carries
per step a Gemini RAG-as-a-judge label (``prm_gemini_label``) and a Monte-Carlo hard label over
16 rollouts (``prm_hard_label``). :func:`judge_medprm` runs our judge over those solutions through
the same :class:`~physio_ray.annotate.judge.RagJudge` stage the pipeline uses (one call per
solution), and :func:`medprm_agreement` reports the agreement figures the seed asks for
(target 92%): ours vs Gemini, ours vs MC, and Gemini vs MC as the reference point.

Med-PRM questions are general medicine, so the physiotherapy corpus has little to offer them;
``cfg.top_k = 0`` (no retrieval) is the honest setting for this comparison, and the default
config used here sets it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.annotate.config import JudgeConfig
from physio_ray.annotate.judge import RagJudge
from physio_ray.annotate.judge_protocol import JudgeBackend
from physio_ray.batches import object_array

logger = logging.getLogger(__name__)

__all__ = [
    "judge_vs_labels",
    "MedPRMJudged",
    "default_medprm_judge_config",
    "judge_medprm",
    "load_medprm",
    "medprm_agreement",
    "medprm_batch",
]


def judge_vs_labels(pred: Sequence[Sequence[int | None]], ref: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Compares judge labels with reference step labels.

    Solutions are paired by position and steps by index up to ``len(ref[i])``: a missing
    prediction counts as an abstention and extra predictions are ignored (trim a reference
    that is longer than the solution before calling, as Med-PRM's sample 89 needs).

    Args:
        pred: per solution, per step 1 / 0 / ``None`` (abstain).
        ref: per solution, per step 1 / 0.

    Returns:
        ``steps`` (reference steps), ``judged`` (non-abstained), ``coverage`` (judged/steps),
        ``agreement`` (matches/judged), ``recall_correct`` and ``recall_incorrect`` (share of
        judged reference-1 / reference-0 steps labelled the same), ``kappa`` (Cohen's, on
        judged steps), ``n_ref_correct``/``n_ref_incorrect``, ``solutions``. Ratios with an
        empty denominator are ``None``.

    Raises:
        ValueError: when the two lists hold different numbers of solutions.

    >>> judge_vs_labels([[1, 0, None]], [[1, 1, 0]])["agreement"]
    0.5
    """
    if len(pred) != len(ref):
        raise ValueError(f"pred has {len(pred)} solutions but ref has {len(ref)}")
    counts = np.zeros((2, 2), dtype=np.int64)  # [ref, pred] over judged steps
    steps = 0
    for p_row, r_row in zip(pred, ref, strict=True):
        for k, r in enumerate(r_row):
            steps += 1
            p = p_row[k] if k < len(p_row) else None
            if p is not None:
                counts[int(r), int(p)] += 1
    judged = int(counts.sum())

    def ratio(a: float, b: float) -> float | None:
        return float(a / b) if b else None

    agreement = ratio(counts[0, 0] + counts[1, 1], judged)
    kappa = None
    if judged:
        expected = float((counts.sum(1) @ counts.sum(0)) / judged**2)
        kappa = None if expected == 1.0 else float((agreement - expected) / (1.0 - expected))  # type: ignore[operator]
    return {
        "solutions": len(ref),
        "steps": steps,
        "judged": judged,
        "coverage": ratio(judged, steps),
        "agreement": agreement,
        "recall_correct": ratio(counts[1, 1], counts[1].sum()),
        "recall_incorrect": ratio(counts[0, 0], counts[0].sum()),
        "kappa": kappa,
        "n_ref_correct": int(counts[1].sum()),
        "n_ref_incorrect": int(counts[0].sum()),
    }


_REQUIRED = ("question", "options", "correct_answer", "steps", "prm_gemini_label", "prm_hard_label")


def load_medprm(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Reads Med-PRM flat-schema records.

    Args:
        path: JSON list of records (``question``, ``options``, ``correct_answer``, ``steps``,
            ``prm_gemini_label``, ``prm_hard_label``, ...).
        limit: keep the first ``limit`` records (``None``: all).

    Returns:
        The records.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is not a JSON list or a record lacks a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Med-PRM sample {str(path)!r} does not exist")
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of Med-PRM records, got {type(records).__name__}")
    for k, rec in enumerate(records):
        missing = [key for key in _REQUIRED if not isinstance(rec, Mapping) or key not in rec]
        if missing:
            raise ValueError(f"{path}: record {k} lacks {missing} (flat Med-PRM schema expected, see SOURCE.txt)")
    return records[:limit] if limit is not None else records


def medprm_batch(records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Med-PRM records as a "solutions" stage batch (the columns :class:`RagJudge` reads).

    Args:
        records: flat-schema records.

    Returns:
        ``solution_id``, ``question``, ``options`` (Med-PRM's option string), ``answer``,
        ``steps`` (with their `` ки`` markers) and ``error`` (all ``None``), ``[n]`` each.
    """
    return {
        S.SOLUTION_ID: object_array([f"medprm-{r.get('sample_id', k)}" for k, r in enumerate(records)]),
        S.QUESTION: object_array([str(r["question"]) for r in records]),
        S.OPTIONS: object_array([str(r["options"]) for r in records]),
        S.ANSWER: object_array([str(r["correct_answer"]) for r in records]),
        S.STEPS: object_array([list(r["steps"]) for r in records]),
        S.ERROR: object_array([None] * len(records)),
    }


@dataclass
class MedPRMJudged:
    """Our judge's verdicts on Med-PRM solutions, beside the published labels.

    Attributes:
        labels: per solution, per step 1 / 0 / ``None``.
        confidences: per solution, per step 0..1.
        gemini: Med-PRM's Gemini labels, trimmed to the number of steps.
        mc_hard: Med-PRM's 16-rollout MC hard labels, trimmed to the number of steps.
        calls: judge calls made (one per solution).
        seconds: wall time of the judging.
    """

    labels: list[list[int | None]]
    confidences: list[list[float]]
    gemini: list[list[int]]
    mc_hard: list[list[int]]
    calls: int
    seconds: float


def default_medprm_judge_config() -> JudgeConfig:
    """The local SmolLM2 judge without retrieval (the physio corpus does not cover Med-PRM's topics)."""
    return JudgeConfig(backend="local", top_k=0)


def judge_medprm(
    records: Sequence[Mapping[str, Any]],
    cfg: JudgeConfig | None = None,
    backend: JudgeBackend | None = None,
    batch_size: int = 8,
) -> MedPRMJudged:
    """Runs our judge over Med-PRM solutions, in-process, through :class:`RagJudge`.

    Args:
        records: flat-schema records (:func:`load_medprm`).
        cfg: judge settings (``None``: :func:`default_medprm_judge_config`).
        backend: a ready backend (``None``: built from ``cfg``; pass one to reuse a loaded model).
        batch_size: solutions per :class:`RagJudge` call.

    Returns:
        A :class:`MedPRMJudged`.

    Raises:
        RuntimeError: when a row came back with ``error`` set (a bug, not an abstention).
    """
    cfg = cfg or default_medprm_judge_config()
    stage = RagJudge(cfg, backend=backend)
    labels: list[list[int | None]] = []
    confs: list[list[float]] = []
    calls = 0
    start = time.perf_counter()
    for lo in range(0, len(records), batch_size):
        out = stage(medprm_batch(records[lo : lo + batch_size]))
        bad = [e for e in out[S.ERROR] if e]
        if bad:
            raise RuntimeError(f"judge failed on Med-PRM rows: {bad[0]}")
        labels += [[None if v is None else int(v) for v in row] for row in out[S.JUDGE_LABELS]]
        confs += [[float(c) for c in row] for row in out[S.JUDGE_CONFIDENCES]]
        calls += int(np.sum(out[S.COST_CALLS]))
    seconds = time.perf_counter() - start
    n_steps = [len(r["steps"]) for r in records]
    return MedPRMJudged(
        labels=labels,
        confidences=confs,
        gemini=[[int(v) for v in r["prm_gemini_label"][:n]] for r, n in zip(records, n_steps, strict=True)],
        mc_hard=[[int(v) for v in r["prm_hard_label"][:n]] for r, n in zip(records, n_steps, strict=True)],
        calls=calls,
        seconds=seconds,
    )


def medprm_agreement(
    path: str | Path,
    cfg: JudgeConfig | None = None,
    *,
    limit: int | None = None,
    backend: JudgeBackend | None = None,
) -> dict[str, Any]:
    """Agreement of our judge with Med-PRM's Gemini labels and 16-rollout MC labels.

    Args:
        path: Med-PRM flat-schema JSON (e.g. ``../shared/data/medprm-samples/medprm_samples_80.json``).
        cfg: judge settings (``None``: local SmolLM2, no retrieval).
        limit: judge only the first ``limit`` solutions (the local judge takes ~0.5 s each on a CPU).
        backend: a ready backend to reuse (``None``: built from ``cfg``).

    Returns:
        ``{"solutions", "judge", "calls_per_solution", "seconds", "vs_gemini", "vs_mc_hard",
        "gemini_vs_mc_hard"}``; each ``vs_*`` entry is a :func:`judge_vs_labels` dict
        (``agreement`` on the steps the judge did not abstain on, ``coverage``, ``kappa``,
        per-class recall).

    Raises:
        FileNotFoundError, ValueError: see :func:`load_medprm`.
    """
    cfg = cfg or default_medprm_judge_config()
    records = load_medprm(path, limit)
    judged = judge_medprm(records, cfg, backend)
    n = len(records)
    result: dict[str, Any] = {
        "solutions": n,
        "judge": {"backend": cfg.backend, "model": cfg.engine.model if cfg.backend == "local" else cfg.model},
        "calls_per_solution": judged.calls / n if n else None,
        "seconds": round(judged.seconds, 2),
        "vs_gemini": judge_vs_labels(judged.labels, judged.gemini),
        "vs_mc_hard": judge_vs_labels(judged.labels, judged.mc_hard),
        "gemini_vs_mc_hard": judge_vs_labels(judged.gemini, judged.mc_hard),
    }
    logger.info(
        "Med-PRM on %d solutions (agreement / kappa / incorrect-step recall): ours vs Gemini %s, ours vs MC %s, "
        "Gemini vs MC %s",
        n,
        *(
            tuple(result[k].get(m) for m in ("agreement", "kappa", "recall_incorrect"))
            for k in ("vs_gemini", "vs_mc_hard", "gemini_vs_mc_hard")
        ),
    )
    return result
