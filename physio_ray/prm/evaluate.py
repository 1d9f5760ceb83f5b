"""The Best-of-N evaluation job's library side: candidates -> PRM scores -> BoN table, AUC.

Wiring (Ray Data, resources from :class:`~physio_ray.prm.config.EvalBestOfNConfig`):

* candidates: Parquet solutions (an annotation run) and/or ``n`` samples per held-out
  Med-PRM question (:class:`~physio_ray.prm.candidates.MedQACandidateSampler`, the annotation
  sampler, on the actor pool of ``sampler.resources``);
* scoring: :class:`~physio_ray.prm.scoring.PRMScorer` on an actor pool over candidates and
  the held-out labelled examples (step AUC vs a constant predictor);
* report: :func:`~physio_ray.prm.bestofn.best_of_n` per candidate source, JSON + PNG.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.prm.bestofn import Candidate, best_of_n, plot_best_of_n, write_report
from physio_ray.prm.candidates import SAMPLE_ERROR, MedQACandidateSampler
from physio_ray.prm.eval_config import EvalBestOfNConfig
from physio_ray.prm.metrics import step_auc
from physio_ray.prm.scoring import PRM_SCORE, STEP_SCORES, PRMScorer
from physio_ray.prm.sources import annotated_paths, load_dataset

logger = logging.getLogger(__name__)

SOURCE = "candidate_source"  # str: where a candidate came from (report key)
STEP_LABELS = "step_labels"  # list[float]: held-out step labels (NaN = unlabelled)


@dataclass
class EvalSummary:
    """What the evaluation wrote and its headline numbers."""

    output_dir: str
    report: dict[str, Any]

    def render(self) -> str:
        """The AUC and one BoN table per candidate source, as text."""
        r = self.report
        auc = r["step_auc"]
        lines = [
            f"held-out step AUC: PRM {_fmt(auc.get('prm'))} vs constant 0.500 ({auc.get('steps', 0)} steps)",
        ]
        for source, table in r["bestofn"].items():
            lines.append(f"Best-of-N [{source}] ({table['questions']} questions, N = {table['n']}):")
            for method, accs in table["methods"].items():
                if method.startswith("weighted_"):
                    continue
                lines.append(f"  {method:<12} " + " ".join(f"{a:.3f}" for a in accs))
        lines.append(f"report: {Path(self.output_dir) / 'bestofn.json'}  plot: {Path(self.output_dir) / 'bestofn.png'}")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def _question_rows(examples: list[Any]) -> list[dict[str, Any]]:
    seen, rows = set(), []
    for ex in examples:
        if ex.question_id in seen or not ex.correct_answer or len(ex.options) < 2:
            continue
        seen.add(ex.question_id)
        rows.append(
            {S.QUESTION_ID: ex.question_id, S.QUESTION: ex.question, S.OPTIONS: ex.options, S.ANSWER: ex.correct_answer}
        )
    return rows


def _parquet_candidates(path: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    cols = [S.QUESTION_ID, S.SOLUTION_ID, S.QUESTION, S.OPTIONS, S.STEPS, S.PREDICTED_ANSWER, S.IS_CORRECT, S.ERROR]
    table = pq.read_table(path)
    rows = table.select([c for c in cols if c in table.column_names]).to_pylist()
    out = []
    for r in rows:
        if not r.get(S.STEPS):
            continue
        r[SAMPLE_ERROR] = r.pop(S.ERROR, None)
        r[S.ERROR] = None  # an unparsed answer is still a candidate the PRM may pick
        r[SOURCE] = "annotated" if Path(path).name in ("annotated", "solutions") else "candidates"
        out.append(r)
    return out


def run_eval_bestofn(cfg: EvalBestOfNConfig) -> EvalSummary:
    """Samples / reads candidates, scores them with the PRM on Ray Data, writes the report.

    Args:
        cfg: the job config. Ray must be initialised.

    Returns:
        The summary (``bestofn.json`` and ``bestofn.png`` under ``cfg.output_dir``).

    Raises:
        ValueError: when there is nothing to evaluate.
    """
    import ray

    start = time.perf_counter()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(cfg.data)
    c = cfg.candidates
    candidates: list[dict[str, Any]] = []
    for path in c.solutions_dirs:
        candidates.extend(_parquet_candidates(path))
    ann, _ = annotated_paths(c.annotated_dir)
    if ann:
        candidates.extend(_parquet_candidates(ann))
    if c.sample_medprm:
        questions = _question_rows([ex for ex in ds.test if ex.source.startswith("medprm")])
        questions = questions[: c.max_questions] if c.max_questions is not None else questions
        if questions:
            sampler = cfg.candidate_sampler
            res = sampler.resources
            pool = (
                ray.data.ActorPoolStrategy(size=res.actors)
                if res.min_actors is None
                else ray.data.ActorPoolStrategy(min_size=res.min_actors, max_size=res.actors)
            )
            sampled = ray.data.from_items(questions).map_batches(
                MedQACandidateSampler,
                fn_constructor_kwargs={"cfg": sampler},
                compute=pool,
                num_cpus=res.cpus_per_actor,
                num_gpus=res.gpus_per_actor,
                batch_size=res.batch_size,
                batch_format="numpy",
            )
            for r in sampled.take_all():
                r[SOURCE] = "medprm-sampled"
                candidates.append(r)
    labelled = [
        {
            S.QUESTION_ID: ex.question_id,
            S.SOLUTION_ID: ex.solution_id,
            S.QUESTION: ex.question,
            S.OPTIONS: ex.options,
            S.STEPS: ex.steps,
            STEP_LABELS: [np.nan if v is None else float(v) for v in ex.labels],
            SOURCE: "heldout-labelled",
            S.ERROR: None,
        }
        for ex in ds.test
    ]
    rows = [_plain_row(r) for r in candidates + labelled]
    if not rows:
        raise ValueError("nothing to evaluate: no candidates and no held-out examples")
    scored = _score(cfg, rows)
    report = build_report(cfg, scored, time.perf_counter() - start)
    write_report(report, str(out / "bestofn.json"))
    tables = report["bestofn"]
    if tables:
        name = "medprm-sampled" if "medprm-sampled" in tables else sorted(tables)[0]
        plot_best_of_n(tables[name], str(out / "bestofn.png"), title=f"Best-of-N, {name}")
    return EvalSummary(str(out), report)


def _plain_row(r: dict[str, Any]) -> dict[str, Any]:
    keep = (S.QUESTION_ID, S.SOLUTION_ID, S.QUESTION, S.OPTIONS, S.STEPS, S.PREDICTED_ANSWER, S.IS_CORRECT)
    row: dict[str, Any] = {k: r.get(k) for k in keep}
    options, steps = r.get(S.OPTIONS), r.get(S.STEPS)
    row[S.OPTIONS] = [str(o) for o in (options if options is not None else [])]
    row[S.STEPS] = [str(s) for s in (steps if steps is not None else [])]
    row[STEP_LABELS] = list(r.get(STEP_LABELS) or [])
    row[SOURCE] = r.get(SOURCE, "candidates")
    row[S.ERROR] = r.get(S.ERROR)
    row[SAMPLE_ERROR] = r.get(SAMPLE_ERROR)
    return row


def _score(cfg: EvalBestOfNConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import ray

    ckpt = cfg.checkpoint if cfg.checkpoint and Path(cfg.checkpoint).exists() else None
    if cfg.checkpoint and ckpt is None:
        logger.warning("checkpoint %s does not exist: scoring with the UNTRAINED PRM", cfg.checkpoint)
    scored = ray.data.from_items(rows).map_batches(
        PRMScorer,
        fn_constructor_kwargs={
            "model_cfg": cfg.model,
            "checkpoint": str(Path(ckpt).resolve()) if ckpt else None,
            "prompt": cfg.prompt,
            "batch_size": cfg.scorer_batch_size,
        },
        compute=ray.data.ActorPoolStrategy(size=cfg.scorer_actors),
        num_cpus=cfg.scorer_cpus,
        num_gpus=cfg.scorer_gpus,
        batch_size=cfg.scorer_batch_size * 4,
        batch_format="numpy",
    )
    return scored.take_all()


def build_report(cfg: EvalBestOfNConfig, scored: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """BoN tables per candidate source plus held-out step AUC, from scored rows."""
    probs, labels = [], []
    groups: dict[str, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    failed = 0
    for r in scored:
        scores = np.asarray(r.get(STEP_SCORES) if r.get(STEP_SCORES) is not None else [], dtype=np.float64)
        if isinstance(r.get(S.ERROR), str) and r[S.ERROR]:
            failed += 1
            continue
        if r[SOURCE] == "heldout-labelled":
            y = np.asarray(r[STEP_LABELS], dtype=np.float64)[: len(scores)]
            ok = np.isfinite(y)
            probs.extend(scores[ok].tolist())
            labels.extend(y[ok].tolist())
            continue
        answer = r.get(S.PREDICTED_ANSWER)
        answer = answer if isinstance(answer, str) and answer else None  # null -> NaN through Arrow
        groups[r[SOURCE]][str(r[S.QUESTION_ID])].append(
            Candidate(answer, scores.tolist(), r.get(S.IS_CORRECT) is True or r.get(S.IS_CORRECT) is np.True_)
        )
    tables = {}
    for source, by_q in groups.items():
        tables[source] = best_of_n(by_q, cfg.ns, cfg.aggregations, cfg.max_subsets, cfg.seed)
        tables[source]["candidates"] = sum(len(v) for v in by_q.values())
        tables[source]["parsed_answers"] = sum(c.answer is not None for v in by_q.values() for c in v)
    auc = step_auc(probs, labels) if labels else float("nan")
    return {
        "step_auc": {
            "prm": auc,
            "constant": 0.5,
            "steps": len(labels),
            "positives": int(sum(y >= 0.5 for y in labels)),
        },
        "bestofn": tables,
        "checkpoint": cfg.checkpoint,
        "unscorable_rows": failed,
        "prm_score_column": PRM_SCORE,
        "seconds": seconds,
        "note": "accuracies are expectations over ties and over subsets of N candidates per question",
    }
