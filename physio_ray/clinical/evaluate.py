"""Test-time decoding of clinical prompts, and the cross-validation report (JSON, markdown, PNG).

:func:`generate_answers` decodes greedily with the model's chat template; its raw outputs are
scored by :mod:`physio_ray.clinical.metrics` (strict parsing: an answer that is not exactly one
verdict scores as unparseable). :func:`build_report` puts every model result beside the
image_type shortcut and the majority class (:mod:`physio_ray.clinical.baseline`) on the same
folds, and states the final predictor's pooled figures at the top of ``report.json``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from physio_ray.clinical.baseline import (
    BOW_NAME,
    MAJORITY_NAME,
    SHORTCUT_NAME,
    bag_of_words_predictions,
    majority_predictions,
    shortcut_predictions,
)
from physio_ray.clinical.metrics import METRIC_COLUMNS, CVResult, evaluate_folds, metrics_dict, render_markdown
from physio_ray.clinical.splits import Fold
from physio_ray.figures import save_figure

logger = logging.getLogger(__name__)

__all__ = ["build_report", "cv_result_dict", "generate_answers", "plot_report"]


def generate_answers(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[Mapping[str, str]]], max_new_tokens: int, batch_size: int
) -> list[str]:
    """Greedy answers to chat prompts.

    Args:
        model: a causal LM (or ``PeftModel``), on any device.
        tokenizer: its tokenizer (with a chat template and a pad token).
        prompts: chat messages per prompt (``[{"role": ..., "content": ...}, ...]``).
        max_new_tokens: tokens generated per answer.
        batch_size: prompts per ``generate`` call (left padding).

    Returns:
        The decoded new text per prompt, special tokens removed, in order.
    """
    import torch

    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [
                tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True)
                for p in prompts[i : i + batch_size]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.inference_mode():
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def cv_result_dict(result: CVResult) -> dict[str, Any]:
    """A :class:`~physio_ray.clinical.metrics.CVResult` as JSON-friendly data (NaN -> null)."""
    folds = {name: {k: _clean(v) for k, v in metrics_dict(m).items()} for name, m in result.folds}
    means = {}
    for attr, _, _ in METRIC_COLUMNS:
        mean, sd = result.fold_mean(attr)
        means[attr] = {"mean": _clean(mean), "sd": _clean(sd)}
    pooled = {k: _clean(v) for k, v in metrics_dict(result.pooled).items()}
    return {"predictor": result.predictor, "folds": folds, "fold_mean": means, "pooled": pooled}


def build_report(
    predictions: Mapping[str, Mapping[str, str]],
    scenarios: Sequence[Any],
    folds: Sequence[Fold],
    notes: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Metrics of every predictor next to the shortcut baseline, on the same folds.

    Args:
        predictions: ``{predictor: {scenario_id: raw output}}`` (e.g. ``sft``, ``sft+grpo``).
        scenarios: the scenarios (typed or raw).
        folds: the folds that were trained and tested.
        notes: caveats printed above the tables (random-weight vision, partial folds, data warnings).
        extra: more JSON-friendly content for the report (config, training curves).

    Returns:
        ``(report dict, markdown)``; the dict has ``results`` (one entry per predictor, the
        shortcut last), ``folds`` (test ids), ``notes``, ``baselines`` (``{name: {"pooled",
        "folds", "fold_mean"}}`` of ``majority_class``, fitted per fold on its training labels,
        ``image_type_shortcut`` and ``text_bag_of_words``, a logistic regression on the finding
        and treatment words fitted per fold) and, when a model was scored, ``predictor`` (the last of
        ``predictions``, i.e. the final stage) with its ``pooled`` figures (``accuracy``,
        ``balanced_accuracy``, ``critical_recall``, ``false_alarm_rate``,
        ``predicted_label_counts``, ...) and ``pooled_by_predictor``.
    """
    base = evaluate_folds(shortcut_predictions(scenarios), scenarios, folds, SHORTCUT_NAME)
    majority = evaluate_folds(majority_predictions(scenarios, folds), scenarios, folds, MAJORITY_NAME)
    bow = evaluate_folds(bag_of_words_predictions(scenarios, folds), scenarios, folds, BOW_NAME)
    results = [evaluate_folds(preds, scenarios, folds, name) for name, preds in predictions.items()]
    md = ["# Clinical validation: cross-validated results", ""]
    md += [f"- {n}" for n in notes]
    md.append("")
    for r in results:
        md.append(render_markdown([r, base], title=f"{r.predictor} vs {SHORTCUT_NAME} (image_type -> label)"))
    if not results:
        md.append(render_markdown([base], title=SHORTCUT_NAME))
    md.append(render_markdown([majority], title=f"{MAJORITY_NAME} (per fold, the training folds' most common label)"))
    md.append(
        render_markdown([bow], title=f"{BOW_NAME} (per fold, logistic regression on the finding and treatment words)")
    )
    report: dict[str, Any] = {}
    if results:
        final = cv_result_dict(results[-1])
        report["predictor"] = final["predictor"]
        report["pooled"] = final["pooled"]
        report["pooled_by_predictor"] = {r.predictor: cv_result_dict(r)["pooled"] for r in results}
    report["baselines"] = {
        name: {k: v for k, v in cv_result_dict(r).items() if k != "predictor"}
        for name, r in ((MAJORITY_NAME, majority), ("image_type_shortcut", base), (BOW_NAME, bow))
    }
    report |= {
        "results": [cv_result_dict(r) for r in [*results, base]],
        "folds": [{"name": f.name, "test_ids": list(f.test_ids), "n_train": len(f.train_ids)} for f in folds],
        "notes": list(notes),
        **dict(extra or {}),
    }
    return report, "\n".join(md)


def plot_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Bar chart of pooled accuracy, TP rate, TN rate and mean reward per predictor (PNG).

    Args:
        report: from :func:`build_report`.
        path: PNG file to write.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    results = report["results"]
    names = [r["predictor"] for r in results]
    rates = ("accuracy", "tp_rate", "tn_rate")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(rates))
    width = 0.8 / max(len(names), 1)
    for i, r in enumerate(results):
        vals = [r["pooled"][k] if r["pooled"][k] is not None else np.nan for k in rates]
        ax1.bar(x + i * width, vals, width, label=r["predictor"])
    ax1.set_xticks(x + width * (len(names) - 1) / 2, ["accuracy", "TP rate", "TN rate"])
    ax1.set_ylim(0, 1.05)
    ax1.set_title("pooled over test folds")
    ax1.legend(fontsize=8)
    rewards = [r["pooled"]["mean_reward"] if r["pooled"]["mean_reward"] is not None else np.nan for r in results]
    missed = [r["pooled"]["missed_critical"] for r in results]
    bars = ax2.bar(names, rewards, color=[f"C{i}" for i in range(len(names))])
    for b, m in zip(bars, missed, strict=True):
        ax2.annotate(f"missed crit: {m}", (b.get_x() + b.get_width() / 2, 0), ha="center", va="bottom", fontsize=7)
    ax2.axhline(0, color="black", lw=0.5)
    ax2.set_title("mean clinical reward")
    ax2.tick_params(axis="x", labelrotation=20, labelsize=8)
    return save_figure(fig, path, dpi=100)


def write_json(data: Any, path: str | Path) -> Path:
    """Writes ``data`` as indented JSON (creating folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    return path
