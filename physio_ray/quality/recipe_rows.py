"""Rows of the vision-language recipes: spatial VQA (seed 001) and clinical validation (seed 002).

* spatial: ``<spatial_dir>/eval/metrics.json``, per stage (``sft``, ``grpo``) ``quadrant_accuracy``,
  ``coord_mae`` (lower is better) and ``instrument_f1``, with ``<metric>_ci`` intervals and
  ``baselines`` (same keys) where the run wrote them; the ``base`` entry (the model before
  training), when present, is the untrained baseline.
* clinical: ``<clinical_dir>/report.json``, pooled over folds: ``accuracy``, ``balanced_accuracy``
  and ``critical_recall`` per predictor (``sft``, ``sft+grpo``), beside the majority class, the
  image-type shortcut and any other baseline the report carries.

Older files lacking a key give a row with a ``missing`` reason rather than no row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from physio_ray.quality.config import ReportQualityConfig
from physio_ray.quality.inputs import dig, read_json
from physio_ray.quality.rows import make_row, missing_row
from physio_ray.stats import bootstrap, percentile_interval, wilson_interval

__all__ = ["clinical_rows", "spatial_rows"]

SPATIAL_METRICS = {  # metric -> (better, accepted keys, n keys)
    "quadrant_accuracy": ("higher", ("quadrant_accuracy",), ("n_quadrant", "n_instrument_targets", "n")),
    "coord_mae": ("lower", ("coord_mae",), ("n_coord", "n_instrument_targets", "n")),
    "instrument_f1": ("higher", ("instrument_f1", "instrument_macro_f1"), ("n",)),
}
CLINICAL_METRICS = ("accuracy", "balanced_accuracy", "critical_recall")
SHORTCUT = "shortcut"


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _first(d: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if isinstance(d, Mapping) and d.get(k) is not None:
            return d[k]
    return None


def _ci(d: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    v = _first(d, (f"{metric}_ci", f"{metric}_ci95"))
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(x) is not None for x in v):
        return (float(v[0]), float(v[1]))
    return None


def _named_baselines(block: Any, keys: tuple[str, ...], default_name: str) -> dict[str, float | None]:
    """``{"quadrant_accuracy": v}`` -> ``{default_name: v}``; ``{"name": {"quadrant_accuracy": v}}`` -> ``{name: v}``."""
    out: dict[str, float | None] = {}
    if not isinstance(block, Mapping):
        return out
    direct = _number(_first(block, keys))
    if direct is not None:
        out[default_name] = direct
    for name, sub in block.items():
        if isinstance(sub, Mapping) and _number(_first(sub, keys)) is not None:
            out.setdefault(str(name), _number(_first(sub, keys)))
    return out


def spatial_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Held-out spatial figures of the SFT and GRPO models beside their baselines."""
    folder = cfg.sources.spatial_dir
    split = "rendered hold-out (split by video)"
    metrics, why = read_json(folder, "eval/metrics.json")
    rows: list[dict[str, Any]] = []
    for stage in ("sft", "grpo"):
        figures = dig(metrics, stage)
        for metric, (better, keys, n_keys) in SPATIAL_METRICS.items():
            name = f"{stage}_{metric}"
            if not isinstance(figures, Mapping):
                reason = why or f"{folder}/eval/metrics.json: no {stage!r} stage"
                rows.append(missing_row("spatial", name, split, reason, better=better))
                continue
            value = _number(_first(figures, keys))
            if value is None:
                rows.append(
                    missing_row(
                        "spatial", name, split, f"{folder}/eval/metrics.json: {stage} has no {metric}", better=better
                    )
                )
                continue
            n = _first(figures, n_keys)
            ci = _ci(figures, metric)
            if ci is None and metric == "quadrant_accuracy" and isinstance(n, int):
                ci = wilson_interval(round(value * n), n)
            baselines = _named_baselines(figures.get("baselines") or dig(metrics, "baselines"), keys, "majority_class")
            base = _number(_first(dig(metrics, "base"), keys))
            if base is not None:
                baselines["untrained"] = base
            note = "" if baselines else "metrics.json carries no baselines for this metric (older train_spatial run)"
            rows.append(make_row("spatial", name, split, n, value, ci, baselines, better=better, note=note))
    sft_reward, grpo_reward = _number(dig(metrics, "sft", "mean_reward")), _number(dig(metrics, "grpo", "mean_reward"))
    if sft_reward is not None and grpo_reward is not None:
        n = dig(metrics, "grpo", "n")
        rows.append(
            make_row(
                "spatial",
                "grpo_mean_reward",
                split,
                n,
                grpo_reward,
                _ci(metrics["grpo"], "mean_reward"),
                {"sft": sft_reward},
            )
        )
    return rows


def _majority(pooled: Mapping[str, Any]) -> dict[str, float | None]:
    n_err, n_ok = pooled.get("n_error_cases"), pooled.get("n_correct_cases")
    if not isinstance(n_err, int) or not isinstance(n_ok, int) or n_err + n_ok == 0:
        return {}
    says_error = n_err > n_ok
    return {
        "accuracy": max(n_err, n_ok) / (n_err + n_ok),
        "balanced_accuracy": 0.5,
        "critical_recall": float(says_error),
    }


def _critical(pooled: Mapping[str, Any]) -> tuple[float | None, int | None]:
    n_crit = _first(pooled, ("n_critical", "n_critical_cases"))
    value = _number(pooled.get("critical_recall"))
    if value is None and isinstance(n_crit, int) and n_crit and isinstance(pooled.get("missed_critical"), int):
        value = (n_crit - pooled["missed_critical"]) / n_crit
    return value, n_crit if isinstance(n_crit, int) else None


def _clinical_figures(pooled: Mapping[str, Any]) -> dict[str, float | None]:
    tp, tn = _number(pooled.get("tp_rate")), _number(pooled.get("tn_rate"))
    balanced = _number(pooled.get("balanced_accuracy"))
    if balanced is None and tp is not None and tn is not None:
        balanced = (tp + tn) / 2
    return {
        "accuracy": _number(pooled.get("accuracy")),
        "balanced_accuracy": balanced,
        "critical_recall": _critical(pooled)[0],
    }


def _balanced_ci(pooled: Mapping[str, Any], cfg: ReportQualityConfig) -> tuple[float, float] | None:
    """Stratified bootstrap of (TPR + TNR) / 2 from the per-class counts."""
    n_err, n_ok = pooled.get("n_error_cases"), pooled.get("n_correct_cases")
    tp, tn = _number(pooled.get("tp_rate")), _number(pooled.get("tn_rate"))
    if not (isinstance(n_err, int) and isinstance(n_ok, int) and n_err and n_ok and tp is not None and tn is not None):
        return None
    caught = np.array([1.0] * round(tp * n_err) + [0.0] * (n_err - round(tp * n_err)))
    kept = np.array([1.0] * round(tn * n_ok) + [0.0] * (n_ok - round(tn * n_ok)))
    b = cfg.bootstrap
    d_err = bootstrap(lambda i: [caught[i].mean()], n_err, b.samples, b.seed)[:, 0]
    d_ok = bootstrap(lambda i: [kept[i].mean()], n_ok, b.samples, b.seed + 1)[:, 0]
    return percentile_interval((d_err + d_ok) / 2)


def _predictors(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    pooled = report.get("pooled")
    if isinstance(pooled, Mapping) and "accuracy" in pooled:
        out[str(report.get("predictor", "model"))] = pooled
    elif isinstance(pooled, Mapping):
        out.update({str(k): v for k, v in pooled.items() if isinstance(v, Mapping) and str(k) != SHORTCUT})
    for r in report.get("results") or []:
        if isinstance(r, Mapping) and isinstance(r.get("pooled"), Mapping) and r.get("predictor") != SHORTCUT:
            out.setdefault(str(r.get("predictor")), r["pooled"])
    return out


def _report_baselines(report: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for r in report.get("results") or []:
        if isinstance(r, Mapping) and r.get("predictor") == SHORTCUT and isinstance(r.get("pooled"), Mapping):
            out["image_type_shortcut"] = _clinical_figures(r["pooled"])
    block = report.get("baselines")
    if isinstance(block, Mapping):
        for name, figures in block.items():
            if isinstance(figures, Mapping):
                out[str(name)] = _clinical_figures(figures.get("pooled", figures))
    return out


def clinical_rows(cfg: ReportQualityConfig) -> list[dict[str, Any]]:
    """Pooled cross-validated figures of each clinical predictor beside majority class and shortcut."""
    folder = cfg.sources.clinical_dir
    split = "pooled over image-grouped CV folds"
    report, why = read_json(folder, "report.json")
    predictors = _predictors(report) if isinstance(report, Mapping) else {}
    if not predictors:
        why = why or f"{folder}/report.json: no pooled results of a trained predictor"
        return [missing_row("clinical", m, split, why) for m in CLINICAL_METRICS]
    others = _report_baselines(report)
    rows = []
    for name, pooled in predictors.items():
        figures = _clinical_figures(pooled)
        n = pooled.get("n")
        counts = pooled.get("predicted_label_counts")
        notes = []
        if isinstance(counts, Mapping) and sum(1 for v in counts.values() if v) == 1:
            notes.append(f"collapsed: one answer for every scenario {dict(counts)}")
        elif {pooled.get("tp_rate"), pooled.get("tn_rate")} == {0.0, 1.0}:
            notes.append("collapsed: the same verdict for every scenario (TPR/TNR are 0 and 1)")
        for metric in CLINICAL_METRICS:
            value = figures[metric]
            if value is None:
                rows.append(
                    missing_row(
                        "clinical",
                        f"{name}_{metric}",
                        split,
                        f"{folder}/report.json: pooled {metric} absent and not derivable (older train_clinical run?)",
                    )
                )
                continue
            baselines = {"majority_class": _majority(pooled).get(metric)} if _majority(pooled) else {}
            baselines.update({b: figs.get(metric) for b, figs in others.items()})
            if metric == "accuracy":
                ci = wilson_interval(round(value * n), n) if isinstance(n, int) and n else None
                count = n
            elif metric == "critical_recall":
                n_crit = _critical(pooled)[1]
                ci = wilson_interval(round(value * n_crit), n_crit) if n_crit else None
                count = n_crit
            else:
                ci, count = _balanced_ci(pooled, cfg), n
            shortcut = baselines.get("image_type_shortcut")
            extra = ["the image-type shortcut fixes the label on this data, so no model beats it"]
            note = "; ".join(notes + (extra if shortcut is not None and shortcut >= 1.0 else []))
            rows.append(make_row("clinical", f"{name}_{metric}", split, count, value, ci, baselines, note=note))
    return rows
