"""Evaluation of a spatial model: greedy answers on held-out prompts -> metrics JSON/Markdown/PNG.

:class:`SpatialPredictor` is a Ray Data batch callable (``__init__`` loads the model, ``__call__``
answers a batch); the caller wires it with ``map_batches``. Rows come from the GRPO prompt set
(the "primary" task: point to and name the main instrument, or say none is visible), whose
``instrument`` / ``position_class`` columns are the targets of
:func:`physio_ray.spatial.metrics.spatial_metrics`. The headline figures of issue 13
(``quadrant_accuracy``, ``coord_mae``, ``instrument_f1`` with 95% intervals,
:mod:`physio_ray.spatial.scores`) join the true tip points of rendered frames by record id, and
:func:`attach_baselines` puts the baselines (majority class / centre of the most common region,
fitted on the train split; the untrained ``base`` model) beside every stage.

Every report carries ``data_origin`` (``"rendered"`` for rendered frames: such figures say
nothing about surgical video) and the coordinate-error caveat.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.figures import save_figure
from physio_ray.schemas import ERROR
from physio_ray.spatial.metrics import render_markdown, spatial_metrics
from physio_ray.spatial.rewards import spatial_reward_breakdown
from physio_ray.spatial.scores import HEADLINE, answer_fields, baseline_scores, headline_scores
from physio_ray.spatial.tiny_qwen2vl import TinyQwen2VLSpec, load_model_and_processor
from physio_ray.spatial.train_data import strip_image_tag
from physio_ray.stats import bootstrap, percentile_interval

logger = logging.getLogger(__name__)

__all__ = [
    "SpatialPredictor",
    "attach_baselines",
    "eval_rows",
    "generate_answers",
    "image_turn",
    "score_predictions",
    "write_report",
]

PREDICTION = "prediction"
RENDERED_LABEL = "rendered data (synthetic frames, not surgical video)"


def eval_rows(records: Sequence[Mapping[str, Any]], images_dir: str | Path, max_examples: int | None) -> list[dict]:
    """Flat rows for prediction: ``id``, ``image_path``, ``question``, targets, ``data_origin``.

    Args:
        records: ``grpo`` rows of one split.
        images_dir: folder the ``image`` paths are relative to.
        max_examples: keep the first this many (``None``: all).
    """
    rows = []
    for rec in records[:max_examples] if max_examples is not None else records:
        rows.append(
            {
                "id": rec["id"],
                "image_path": str(Path(images_dir) / rec["image"]),
                "question": strip_image_tag(rec["prompt"][0]["content"]),
                "instrument": rec["instrument"],
                "position_class": -1 if rec["position_class"] is None else int(rec["position_class"]),
                "data_origin": rec.get("data_origin") or "unknown",
            }
        )
    return rows


def image_turn(image: Any, question: str) -> dict[str, Any]:
    """The user turn of a chat about one frame: the image, then the question (no ``<image>`` tag)."""
    return {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}


def generate_answers(
    model: Any, processor: Any, images: list[Any], questions: list[str], max_new_tokens: int
) -> list[str]:
    """Greedy answers of ``model`` to ``questions`` about ``images`` (PIL), one batch.

    The tokenizer must pad on the left (the caller sets ``processor.tokenizer.padding_side``).
    """
    import torch

    messages = [[image_turn(img, q)] for img, q in zip(images, questions, strict=True)]
    inputs = processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True},
    ).to(model.device)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]


class SpatialPredictor:
    """Answers ``question`` about ``image_path`` with greedy decoding (Ray Data batch callable).

    Reads columns ``image_path`` and ``question``; adds ``prediction`` (str) and ``error``
    (str or None). A row whose image cannot be read gets ``error`` and an empty prediction.

    Args:
        model: model name or merged-model folder (see :func:`load_model_and_processor`).
        tiny: tiny-model sizes as a dict (for ``"tiny-qwen2vl"``).
        dtype: weights dtype.
        max_new_tokens: generated tokens per answer.
        offline: set ``HF_HUB_OFFLINE=1`` before loading.
        min_pixels, max_pixels: the processor's image pixel budget, as in training (a saved
            model keeps its own; a hub model would otherwise use the processor default).
    """

    def __init__(
        self,
        model: str,
        tiny: Mapping[str, Any] | None = None,
        dtype: str = "float32",
        max_new_tokens: int = 40,
        offline: bool = True,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        import torch

        if offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        spec = TinyQwen2VLSpec(**tiny) if tiny else None
        self.model, self.processor = load_model_and_processor(model, spec, dtype, min_pixels, max_pixels)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        self.processor.tokenizer.padding_side = "left"
        self.max_new_tokens = max_new_tokens

    def _generate(self, images: list[Any], questions: list[str]) -> list[str]:
        return generate_answers(self.model, self.processor, images, questions, self.max_new_tokens)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from PIL import Image

        n = len(batch["image_path"])
        preds: list[str] = [""] * n
        errors: list[str | None] = [None] * n
        images, questions, idx = [], [], []
        for i, (path, question) in enumerate(zip(batch["image_path"], batch["question"], strict=True)):
            try:
                with Image.open(str(path)) as im:
                    images.append(im.convert("RGB"))
                questions.append(str(question))
                idx.append(i)
            except OSError as exc:
                errors[i] = f"{type(exc).__name__}: {exc}"
        if idx:
            for i, text in zip(idx, self._generate(images, questions), strict=True):
                preds[i] = text
        return {**batch, PREDICTION: np.array(preds, dtype=object), ERROR: np.array(errors, dtype=object)}


def score_predictions(
    rows: Sequence[Mapping[str, Any]], label: str, points: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, Any]:
    """Metrics of predicted rows (errored rows count as unanswered).

    Args:
        rows: rows with ``id``, ``prediction``, ``instrument``, ``position_class`` (-1: none), ``data_origin``.
        label: what was evaluated (``"base"``, ``"sft"``, ``"grpo"``).
        points: row id -> true tip point (rendered frames; see
            :func:`physio_ray.spatial.train_data.true_points`); rows without one have no ``coord_mae``.

    Returns:
        :func:`spatial_metrics` output plus the headline figures of
        :func:`physio_ray.spatial.scores.headline_scores` (``quadrant_accuracy_ci``, ``n_quadrant``,
        ``coord_mae``, ``coord_mae_ci``, ``n_coord``, ``instrument_f1``, ``instrument_f1_ci``),
        ``mean_reward_ci``, ``label``, ``data_origin``, ``data_label``, ``n_errors`` and
        ``examples`` (the first 5 answers).
    """
    targets = [
        {
            "instrument": r["instrument"],
            "position_class": None if int(r["position_class"]) < 0 else int(r["position_class"]),
        }
        for r in rows
    ]
    preds = [str(r.get(PREDICTION) or "") for r in rows]
    metrics = spatial_metrics(preds, targets)
    pointed = [{**t, "point": (points or {}).get(str(r["id"]))} for r, t in zip(rows, targets, strict=True)]
    headline = headline_scores([answer_fields(p) for p in preds], pointed)
    rewards = [spatial_reward_breakdown(p, t).total for p, t in zip(preds, targets, strict=True)]
    origins = sorted({str(r.get("data_origin", "unknown")) for r in rows})
    origin = origins[0] if len(origins) == 1 else "mixed"
    return {
        "label": label,
        "data_origin": origin,
        "data_label": RENDERED_LABEL if origin == "rendered" else origin,
        "n_errors": sum(1 for r in rows if r.get(ERROR)),
        **metrics,
        **headline,
        "mean_reward_ci": _interval(rewards),
        "examples": [
            {"id": r["id"], "target": t, "prediction": p}
            for r, t, p in list(zip(rows, targets, preds, strict=True))[:5]
        ],
    }


def _interval(values: Sequence[float]) -> tuple[float, float] | None:
    if not values:
        return None
    x = np.asarray(values, dtype=np.float64)
    return percentile_interval(bootstrap(lambda i: [x[i].mean()], len(x), n_boot=1000)[:, 0])


def attach_baselines(
    reports: Mapping[str, Mapping[str, Any]],
    train_targets: Sequence[Mapping[str, Any]],
    eval_targets: Sequence[Mapping[str, Any]],
    untrained: str = "base",
) -> dict[str, dict[str, Any]]:
    """Every report with a ``baselines`` block (the headline keys, then named baselines).

    Args:
        reports: label -> :func:`score_predictions` output.
        train_targets: targets ``{"instrument", "position_class", "point"}`` of the train split
            (the constant baseline is fitted on them only).
        eval_targets: the evaluated rows' targets, in order.
        untrained: label of the model before training; its figures are the ``untrained``
            baseline of the other reports.

    Returns:
        label -> report plus ``baselines``: :func:`physio_ray.spatial.scores.baseline_scores`
        (``quadrant_accuracy`` / ``coord_mae`` / ``instrument_f1`` of the majority class pointing
        at the centre of the most common region, ``majority_class``, ``majority_prediction``),
        ``untrained`` (the headline figures of ``reports[untrained]``), or ``{"missing": reason}``
        when the train split has no instrument frame.
    """
    try:
        block: dict[str, Any] = baseline_scores(train_targets, eval_targets)
    except ValueError as exc:
        logger.warning("spatial baselines not computed: %s", exc)
        block = {"missing": str(exc)}
    out = {}
    for label, report in reports.items():
        extra = {}
        if untrained in reports and label != untrained and "missing" not in block:
            extra["untrained"] = {k: reports[untrained].get(k) for k in HEADLINE}
        out[label] = {**report, "baselines": {**block, **extra}}
    return out


_HEADLINE = ("quadrant_accuracy", "within_region_rate", "instrument_macro_f1", "mean_reward", "parse_rate")


def write_report(reports: Mapping[str, Mapping[str, Any]], out_dir: str | Path) -> dict[str, str]:
    """Writes ``metrics.json``, ``metrics.md`` and ``metrics.png`` (headline bars per model).

    Args:
        reports: label -> :func:`score_predictions` output.
        out_dir: folder to write into.

    Returns:
        Kind -> path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(out / "metrics.json"), "markdown": str(out / "metrics.md"), "png": str(out / "metrics.png")}
    Path(paths["json"]).write_text(json.dumps(reports, indent=2, default=str) + "\n")
    origin = {r.get("data_label", "") for r in reports.values()}
    md = [f"# Spatial evaluation ({', '.join(sorted(origin))})", ""]
    md += [
        "| model | " + " | ".join(_HEADLINE) + " | mean_distance_to_region |",
        "|---|" + "---|" * (len(_HEADLINE) + 1),
    ]
    for label, r in reports.items():
        cells = [_fmt(r.get(k)) for k in (*_HEADLINE, "mean_distance_to_region")]
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    md += ["", "| model | " + " | ".join(f"{k} (95% CI)" for k in HEADLINE) + " |", "|---|" + "---|" * len(HEADLINE)]
    for label, r in reports.items():
        md.append(f"| {label} | " + " | ".join(_with_ci(r, k) for k in HEADLINE) + " |")
    baselines = next((r["baselines"] for r in reports.values() if isinstance(r.get("baselines"), Mapping)), None)
    if baselines is not None and "missing" not in baselines:
        md.append(
            "| baseline: majority class at the most common region's centre | "
            + " | ".join(_fmt(baselines.get(k)) for k in HEADLINE)
            + " |"
        )
    for label, r in reports.items():
        md += ["", f"## {label} ({r.get('data_label', '')})", "", render_markdown(r)]
    Path(paths["markdown"]).write_text("\n".join(md) + "\n")
    _plot(reports, paths["png"], ", ".join(sorted(origin)))
    return paths


def _with_ci(report: Mapping[str, Any], key: str) -> str:
    ci = report.get(f"{key}_ci")
    return _fmt(report.get(key)) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _fmt(value: Any) -> str:
    return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def _plot(reports: Mapping[str, Mapping[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(1, len(reports))
    x = np.arange(len(_HEADLINE))
    for i, (label, r) in enumerate(reports.items()):
        ax.bar(x + i * width, [r.get(k) or 0.0 for k in _HEADLINE], width, label=label)
    ax.set_xticks(x + width * (len(reports) - 1) / 2, _HEADLINE, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"spatial eval: {title}", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=100)
