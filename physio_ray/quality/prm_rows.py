"""Rows of the PRM (``jobs/train_prm.py`` ``metrics.json``, ``jobs/crossval_prm.py`` ``prm_eval.json``)
and of Best-of-N (``jobs/eval_bestofn.py`` ``bestofn.json``).

``prm_eval.json`` carries paired cluster-bootstrap intervals of each variant's gain over every
baseline (same held-out steps, whole recordings / questions resampled), so its rows use them.

Both files hold aggregates only (no per-step scores), so the rule is the value's interval against
the best baseline: Hanley-McNeil for an AUC when the class counts are known, Wilson over questions
for a Best-of-N accuracy (an expectation over candidate subsets, read as a proportion of questions).
A baseline a file does not carry (for instance the step-position-only AUC in older runs) is named
in the row's note instead of being invented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from physio_ray.quality.config import ReportQualityConfig
from physio_ray.quality.inputs import dig, read_json
from physio_ray.quality.rows import make_row, missing_row
from physio_ray.stats import hanley_mcneil_interval, wilson_interval

__all__ = ["bestofn_rows", "prm_crossval_rows", "prm_rows"]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _interval(v: Any) -> tuple[float, float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(x) is not None for x in v):
        return (float(v[0]), float(v[1]))
    return None


def _extra_baselines(block: Any) -> dict[str, float | None]:
    """A ``baselines`` mapping of name -> number (or -> {"step_auc": number}) that newer files carry."""
    out: dict[str, float | None] = {}
    if isinstance(block, Mapping):
        for name, v in block.items():
            out[str(name)] = _number(v.get("step_auc") if isinstance(v, Mapping) else v)
    return out


def prm_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Held-out step AUC of the trained PRM beside constant, untrained and (if written) position-only."""
    folder = cfg.sources.train_prm_dir
    split = "train_prm test split (held out by video/question)"
    report, why = read_json(folder, "metrics.json")
    metrics = dig(report, "metrics")
    if not isinstance(metrics, Mapping):
        return [missing_row("prm", "step_auc", split, why or f"{folder}/metrics.json: no 'metrics' section")]
    value = _number(metrics.get("test_step_auc"))
    if value is None:
        return [missing_row("prm", "step_auc", split, f"{folder}/metrics.json: no finite metrics.test_step_auc")]
    baselines: dict[str, float | None] = {
        "constant": _number(report.get("constant_predictor_step_auc", 0.5)),
        "untrained": _number(metrics.get("baseline_test_step_auc")),
    }
    baselines.update(_extra_baselines(report.get("baselines")))
    n = metrics.get("test_labelled_steps")
    pos = metrics.get("test_positives", dig(report, "test_positives"))
    ci = _interval(metrics.get("test_step_auc_ci95"))
    if ci is None and isinstance(n, int) and isinstance(pos, int):
        ci = hanley_mcneil_interval(value, pos, n - pos)
    notes = []
    if not any("position" in k for k in baselines):
        notes.append("no step-position-only baseline in metrics.json (older train_prm run)")
    if ci is None:
        notes.append("no interval: metrics.json has neither test_step_auc_ci95 nor test_positives")
    return [make_row("prm", "step_auc", split, n, value, ci, baselines, note="; ".join(notes))]


def bestofn_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """The PRM's step AUC on eval_bestofn's held-out steps, and PRM selection at the largest N per source."""
    folder = cfg.sources.eval_bestofn_dir
    report, why = read_json(folder, "bestofn.json")
    if report is None:
        return [
            missing_row("prm", "step_auc", "eval_bestofn held-out labelled steps", why),
            missing_row("bestofn", "selection_accuracy", "eval_bestofn candidates", why),
        ]
    rows = []
    auc = dig(report, "step_auc")
    split = "eval_bestofn held-out labelled steps"
    value = _number(dig(auc, "prm"))
    if value is None:
        rows.append(missing_row("prm", "step_auc", split, f"{folder}/bestofn.json: no finite step_auc.prm"))
    else:
        steps, pos = dig(auc, "steps"), dig(auc, "positives")
        ci = (
            hanley_mcneil_interval(value, pos, steps - pos) if isinstance(steps, int) and isinstance(pos, int) else None
        )
        baselines = {"constant": _number(dig(auc, "constant"))}
        baselines.update(_extra_baselines(dig(auc, "baselines")))
        rows.append(make_row("prm", "step_auc", split, steps, value, ci, baselines, note="interval: Hanley-McNeil"))
    tables = dig(report, "bestofn")
    if not isinstance(tables, Mapping) or not tables:
        rows.append(
            missing_row(
                "bestofn", "selection_accuracy", "eval_bestofn candidates", f"{folder}/bestofn.json: no bestofn tables"
            )
        )
        return rows
    for source in sorted(tables):
        rows += _table_rows(source, tables[source], f"{folder}/bestofn.json")
    return rows


def _table_rows(source: str, table: Any, where: str) -> list[dict[str, Any]]:
    ns, methods, questions = dig(table, "n"), dig(table, "methods"), dig(table, "questions")
    split = f"{source} candidates ({questions} questions)"
    if not isinstance(ns, list) or not ns or not isinstance(methods, Mapping) or not isinstance(questions, int):
        return [
            missing_row("bestofn", "selection_accuracy", split, f"{where}: table {source!r} lacks n/methods/questions")
        ]
    k = max(range(len(ns)), key=lambda i: ns[i])
    n_max = ns[k]

    def at(name: str) -> float | None:
        values = methods.get(name)
        return _number(values[k]) if isinstance(values, list) and k < len(values) else None

    baselines = {"random": at("random"), "majority": at("majority")}
    refs = {"oracle": at("oracle")}
    rows = []
    for name in sorted(m for m in methods if m.startswith("prm_")):
        value = at(name)
        ci = wilson_interval(round(value * questions), questions) if value is not None and questions else None
        note = (
            f"N={n_max}; interval: Wilson over {questions} questions; oracle = share of questions with a correct "
            f"candidate among N ({refs['oracle']})"
        )
        rows.append(
            make_row(
                "bestofn",
                f"accuracy_at_n{n_max}_{name}",
                split,
                questions,
                value,
                ci,
                baselines,
                references=refs,
                note=note,
            )
        )
    return rows or [
        missing_row("bestofn", "selection_accuracy", split, f"{where}: table {source!r} has no prm_* method")
    ]


CV_BASELINES = ("constant", "position", "position_last", "untrained")


def prm_crossval_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Grouped cross-validated step AUC of every PRM variant, per source, beside its baselines."""
    folder = cfg.sources.train_prm_dir
    report, why = read_json(folder, "prm_eval.json")
    sources = dig(report, "sources")
    if not isinstance(sources, Mapping) or not sources:
        return [
            missing_row(
                "prm",
                "crossval_step_auc",
                "grouped cross-validation",
                why or f"{folder}/prm_eval.json: no 'sources' (run jobs/crossval_prm.py)",
            )
        ]
    folds = report.get("folds")
    rows = []
    for src, variants in sources.items():
        unit = "recording" if src == "physio" else "question"
        split = f"{src} steps, {folds}-fold cross-validation grouped by {unit}"
        for name, summary in variants.items():
            auc, ci = summary.get("auc", {}), summary.get("ci95", {})
            best = summary.get("best_baseline")
            gain = _interval(dig(summary, "gain_over", best, "ci95")) if best else None
            baselines = {b: _number(auc.get(b)) for b in CV_BASELINES if b in auc}
            probe = _number(auc.get("probe"))
            rows.append(
                make_row(
                    "prm",
                    f"crossval_step_auc[{name}]",
                    split,
                    summary.get("n_steps"),
                    _number(auc.get(name)),
                    _interval(ci.get(name)),
                    baselines,
                    gain_ci95=gain,
                    note=f"{summary.get('n_groups')} groups, {summary.get('n_positives')} positive steps",
                    references={"probe_on_marker_states": probe} if probe is not None else None,
                )
            )
    return rows
