"""Best-of-N evaluation (pure numpy): PRM selection vs majority vote vs random, plot, JSON report.

Input is grouped candidates: ``question_id -> [Candidate(answer, step_scores, is_correct)]``.
For each N, every question contributes the mean accuracy over subsets of N of its
candidates (all subsets when there are at most ``max_subsets``, else that many sampled
with a fixed seed). Within one subset each method's accuracy is an exact expectation over
its ties, so results do not depend on tie-breaking luck:

* ``prm_<agg>``: the candidate with the highest aggregated PRM score (ties averaged);
* ``weighted_<agg>``: the answer with the highest sum of aggregated scores (PRM-weighted vote);
* ``majority``: the most frequent parsed answer (ties averaged; unparsed answers don't vote);
* ``random``: a uniformly random candidate, i.e. the subset's fraction correct;
* ``oracle``: any candidate correct (pass@N, an upper bound).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from physio_ray.figures import save_figure
from physio_ray.prm.metrics import AGGREGATIONS, aggregate

logger = logging.getLogger(__name__)

DEFAULT_NS = (1, 2, 4, 8, 16)


class Candidate(NamedTuple):
    """One sampled solution of a question."""

    answer: str | None
    step_scores: Sequence[float]
    is_correct: bool


def _best_expected(values: np.ndarray, correct: np.ndarray) -> float:
    """Expected correctness of picking the max of ``values`` with ties broken at random."""
    top = np.isclose(values, values.max(), rtol=0, atol=1e-12)
    return float(correct[top].mean())


def majority_expected(answers: Sequence[str | None], correct: Sequence[bool]) -> float:
    """Expected accuracy of majority voting over the parsed answers (ties at random).

    >>> majority_expected(["A", "B", "A", None], [True, False, True, False])
    1.0
    >>> majority_expected(["A", "B"], [True, False])  # tie
    0.5
    """
    votes: dict[str, list[bool]] = defaultdict(list)
    for a, c in zip(answers, correct, strict=False):
        if a is not None:
            votes[a].append(bool(c))
    if not votes:
        return 0.0
    names = sorted(votes)
    counts = np.array([len(votes[a]) for a in names], dtype=np.float64)
    right = np.array([np.mean(votes[a]) for a in names])
    return _best_expected(counts, right)


def weighted_expected(answers: Sequence[str | None], scores: Sequence[float], correct: Sequence[bool]) -> float:
    """Expected accuracy of the answer with the largest summed solution score."""
    total: dict[str, float] = defaultdict(float)
    votes: dict[str, list[bool]] = defaultdict(list)
    for a, s, c in zip(answers, scores, correct, strict=False):
        if a is not None and math.isfinite(s):
            total[a] += s
            votes[a].append(bool(c))
    if not total:
        return 0.0
    names = sorted(total)
    return _best_expected(np.array([total[a] for a in names]), np.array([np.mean(votes[a]) for a in names]))


def subset_accuracies(cands: Sequence[Candidate], aggregations: Sequence[str] = AGGREGATIONS) -> dict[str, float]:
    """Every method's expected accuracy on one set of candidates.

    >>> c = [Candidate("A", [0.9, 0.2], False), Candidate("B", [0.6, 0.7], True), Candidate("A", [0.8, 0.1], False)]
    >>> r = subset_accuracies(c, ["min", "last"])
    >>> r["prm_min"], r["prm_last"], r["majority"], r["random"], r["oracle"]
    (1.0, 1.0, 0.0, 0.3333333333333333, 1.0)
    """
    correct = np.array([bool(c.is_correct) for c in cands])
    answers = [c.answer for c in cands]
    out: dict[str, float] = {}
    for how in aggregations:
        scores = np.array([aggregate(c.step_scores, how) for c in cands])
        finite = np.where(np.isfinite(scores), scores, -np.inf)
        out[f"prm_{how}"] = _best_expected(finite, correct) if np.isfinite(finite).any() else float(correct.mean())
        out[f"weighted_{how}"] = weighted_expected(answers, scores.tolist(), correct.tolist())
    out["majority"] = majority_expected(answers, correct.tolist())
    out["random"] = float(correct.mean())
    out["oracle"] = float(correct.any())
    return out


def best_of_n(
    groups: Mapping[str, Sequence[Candidate]],
    ns: Sequence[int] = DEFAULT_NS,
    aggregations: Sequence[str] = AGGREGATIONS,
    max_subsets: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy vs N for every method.

    Args:
        groups: question id -> its candidates.
        ns: values of N; those above the smallest group size are left out (logged).
        aggregations: step-score aggregations for the PRM methods.
        max_subsets: subsets per question and N before sampling instead of enumerating.
        seed: sampling seed.

    Returns:
        ``{"n": [...], "questions": Q, "methods": {method: [accuracy per n]}, "skipped_n": [...]}``.

    Raises:
        ValueError: when ``groups`` is empty.
    """
    if not groups:
        raise ValueError("best_of_n needs at least one question with candidates")
    smallest = min(len(c) for c in groups.values())
    usable = [n for n in sorted(set(ns)) if 1 <= n <= smallest]
    skipped = [n for n in sorted(set(ns)) if n not in usable]
    if skipped:
        logger.info("best-of-N: N=%s left out (smallest question has %d candidates)", skipped, smallest)
    rng = np.random.default_rng(seed)
    methods: dict[str, list[float]] = defaultdict(list)
    for n in usable:
        sums: dict[str, float] = defaultdict(float)
        for qid in sorted(groups):
            cands = list(groups[qid])
            subsets = _subsets(len(cands), n, max_subsets, rng)
            for subset in subsets:
                for name, acc in subset_accuracies([cands[i] for i in subset], aggregations).items():
                    sums[name] += acc / len(subsets)
        for name, total in sums.items():
            methods[name].append(total / len(groups))
    return {"n": usable, "questions": len(groups), "methods": dict(methods), "skipped_n": skipped}


def _subsets(k: int, n: int, max_subsets: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    if math.comb(k, n) <= max_subsets:
        return list(itertools.combinations(range(k), n))
    return [tuple(sorted(rng.choice(k, size=n, replace=False).tolist())) for _ in range(max_subsets)]


def plot_best_of_n(report: Mapping[str, Any], path: str, title: str = "Best-of-N") -> None:
    """Writes a PNG of accuracy vs N: one line per PRM aggregation, majority, random, oracle."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ns = report["n"]
    styles = {"majority": ("k", "--"), "random": ("0.5", ":"), "oracle": ("0.7", "-.")}
    for name, acc in report["methods"].items():
        if name.startswith("weighted_"):
            continue
        color, line = styles.get(name, (None, "-"))
        ax.plot(ns, acc, marker="o", linestyle=line, color=color, label=name.replace("prm_", "PRM "))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("N (candidates per question)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} ({report['questions']} questions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120)


def write_report(report: Mapping[str, Any], path: str) -> None:
    """Writes a report as strict JSON (NaN/inf -> null, numpy values -> Python)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_jsonable(report), indent=2, sort_keys=True, allow_nan=False))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    return value


def groups_from_examples(examples: Sequence[Any], scores: Sequence[np.ndarray | None]) -> dict[str, list[Candidate]]:
    """Groups scored :class:`~physio_ray.prm.data.PRMExample` by question (unscored ones dropped)."""
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for ex, s in zip(examples, scores, strict=False):
        if s is not None and ex.is_correct is not None:
            groups[ex.question_id].append(Candidate(ex.answer, list(s), bool(ex.is_correct)))
    return dict(groups)
