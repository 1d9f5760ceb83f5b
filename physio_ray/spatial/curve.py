"""The held-out learning curve of a spatial SFT run: figures every N steps, and their plot.

A random-init model first learns the answer's prior (the loss falls) while its answers ignore the
image (held-out quadrant accuracy stays at the majority class); the loss alone cannot tell the
two apart. :class:`HoldoutCurve` (a ``transformers`` callback) answers a fixed set of held-out
prompts greedily every ``every`` steps on the world's rank 0 and appends
``{"step", "heldout_quadrant_accuracy", "heldout_coord_mae", "heldout_instrument_f1", "heldout_n"}``
to the trainer's ``log_history``, so the figures land in the stage's ``train_metrics.json`` and in
its checkpoints (a resumed run keeps its curve). :func:`plot_curve` draws loss and those figures
against the step.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from physio_ray.figures import save_figure
from physio_ray.spatial.evaluate import generate_answers
from physio_ray.spatial.scores import HEADLINE, answer_fields, headline_scores

logger = logging.getLogger(__name__)

__all__ = ["CURVE_KEYS", "HoldoutCurve", "curve_points", "plot_curve"]

CURVE_KEYS = tuple(f"heldout_{k}" for k in HEADLINE)
"""``heldout_`` + the headline figures (quadrant accuracy, coordinate error, instrument F1)."""


class HoldoutCurve(TrainerCallback):
    """Scores held-out prompts every ``every`` optimiser steps (and at the last step).

    Args:
        processor: the model's processor (its tokenizer is switched to left padding while scoring).
        rows: ``{"image_path", "question"}`` per held-out prompt.
        targets: ``{"instrument", "position_class", "point"}`` per row (as :func:`headline_scores` takes).
        every: steps between evaluations (``0``: never).
        max_new_tokens: generated tokens per answer.
        batch_size: prompts per generation batch.
    """

    def __init__(
        self,
        processor: Any,
        rows: Sequence[Mapping[str, Any]],
        targets: Sequence[Mapping[str, Any]],
        every: int,
        max_new_tokens: int = 40,
        batch_size: int = 16,
    ) -> None:
        from PIL import Image

        if len(rows) != len(targets):
            raise ValueError(f"{len(rows)} held-out rows but {len(targets)} targets")
        self.processor = processor
        self.images = []
        for row in rows:
            with Image.open(str(row["image_path"])) as im:
                self.images.append(im.convert("RGB"))
        self.questions = [str(r["question"]) for r in rows]
        self.targets = list(targets)
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def score(self, model: Any) -> dict[str, Any]:
        """The held-out figures of ``model`` now (train mode restored afterwards)."""
        tok = self.processor.tokenizer
        side, was_training = tok.padding_side, model.training
        tok.padding_side = "left"
        model.eval()
        try:
            answers: list[str] = []
            for i in range(0, len(self.images), self.batch_size):
                sl = slice(i, i + self.batch_size)
                answers += generate_answers(
                    model, self.processor, self.images[sl], self.questions[sl], self.max_new_tokens
                )
        finally:
            tok.padding_side = side
            model.train(was_training)
        scores = headline_scores([answer_fields(a) for a in answers], self.targets)
        return {f"heldout_{k}": scores.get(k) for k in HEADLINE} | {"heldout_n": len(answers)}

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        due = self.every and (state.global_step % self.every == 0 or state.global_step == state.max_steps)
        if not due or not state.is_world_process_zero or model is None or not self.images:
            return
        entry = {"step": state.global_step, **self.score(model)}
        state.log_history.append(entry)
        logger.info("held-out at step %d: %s", state.global_step, entry)


def curve_points(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``{"loss": [(step, value)], <CURVE_KEYS>: [...]}`` from a trainer's ``log_history``.

    >>> curve_points([{"step": 10, "loss": 2.0}, {"step": 10, "heldout_quadrant_accuracy": 0.3}])["heldout_quadrant_accuracy"]
    [(10, 0.3)]
    """
    out: dict[str, list[tuple[int, float]]] = {k: [] for k in ("loss", *CURVE_KEYS)}
    for entry in log_history:
        for key in out:
            value = entry.get(key)
            if isinstance(value, (int, float)) and "step" in entry:
                out[key].append((int(entry["step"]), float(value)))
    return out


def plot_curve(
    log_history: Sequence[Mapping[str, Any]], path: str | Path, baselines: Mapping[str, float | None] | None = None
) -> Path | None:
    """Train loss and held-out figures against the step (PNG); ``None`` when there is no curve.

    Args:
        log_history: the stage's ``train_metrics.json`` content.
        path: the PNG to write.
        baselines: ``{"quadrant_accuracy", "coord_mae", "instrument_f1"}`` of the majority-class
            baseline, drawn as dashed lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = curve_points(log_history)
    if not any(points[k] for k in CURVE_KEYS):
        return None
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    titles = {"loss": "train loss", **{k: k.replace("heldout_", "held-out ") for k in CURVE_KEYS}}
    for ax, key in zip(axes, ("loss", *CURVE_KEYS), strict=True):
        if points[key]:
            steps, values = zip(*points[key], strict=True)
            ax.plot(steps, values, marker="o" if key != "loss" else None, ms=3)
        base = (baselines or {}).get(key.replace("heldout_", ""))
        if base is not None and key != "loss":
            ax.axhline(base, ls="--", color="grey", label="majority-class baseline")
            ax.legend(fontsize=7)
        ax.set_title(titles[key])
        ax.set_xlabel("step")
    return save_figure(fig, path, dpi=90)
