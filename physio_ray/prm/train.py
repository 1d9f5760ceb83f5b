"""The PRM training loop's building blocks, in plain torch (wired into Ray Train by the job).

``train_step`` does one optimiser step on one batch; ``evaluate`` runs a loader without
gradients and reports loss, step accuracy and step-label AUC. Batches are the dicts made by
:meth:`physio_ray.prm.tokenize.PRMTokenizer.collate`, optionally with ``text_hidden``
(precomputed by :func:`cache_text_hidden` when the text tower is frozen).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from physio_ray.prm.config import OptimConfig
from physio_ray.prm.loss import check_finite, prm_loss
from physio_ray.prm.metrics import step_auc
from physio_ray.prm.model import PRMModel, model_inputs, to_device
from physio_ray.prm.tokenize import IGNORE, EncodedExample, PRMTokenizer

logger = logging.getLogger(__name__)


def make_loader(
    encoded: Sequence[EncodedExample], prm_tok: PRMTokenizer, batch_size: int, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """A DataLoader over encoded examples that yields :meth:`PRMTokenizer.collate` batches."""
    gen = torch.Generator().manual_seed(seed)
    dataset: Any = list(encoded)  # a list is a map-style dataset
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=prm_tok.collate, generator=gen)


def make_optimizer(model: PRMModel, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW with two groups: new modules at ``cfg.lr``, text-tower weights at ``cfg.text_lr``.

    Raises:
        ValueError: when nothing is trainable.
    """
    groups = [{"params": model.new_parameters(), "lr": cfg.lr}]
    text = model.text_parameters()
    if text:
        groups.append({"params": text, "lr": cfg.text_lr})
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the PRM has no trainable parameters (frozen text tower, train_head=false, no vision)")
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def train_step(
    model: PRMModel, batch: dict[str, Any], optimizer: torch.optim.Optimizer, clip: float, step: int | None = None
) -> dict[str, float]:
    """One optimiser step on one batch.

    Args:
        model: the PRM (put in training mode here).
        batch: a collated batch (moved to the model's device here).
        optimizer: e.g. from :func:`make_optimizer`.
        clip: gradient-norm clip; 0 disables clipping (the norm is still reported).
        step: training step number, used in error messages.

    Returns:
        ``{"loss", "grad_norm", "labelled_steps"}``.

    Raises:
        FloatingPointError: when the loss is NaN or infinite (names the step and batch).
    """
    model.train()
    device = next(model.parameters()).device
    batch = to_device(batch, device)
    optimizer.zero_grad(set_to_none=True)
    loss = prm_loss(model(**model_inputs(batch)), batch["labels"])
    check_finite(loss, step, batch.get("solution_ids", ()))
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else math.inf)
    optimizer.step()
    return {
        "loss": float(loss.detach()),
        "grad_norm": float(norm),
        "labelled_steps": int((batch["labels"] != IGNORE).sum()),
    }


@torch.no_grad()
def evaluate(model: PRMModel, loader: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Loss and step metrics over a loader, without gradients.

    Returns:
        ``loss`` (mean over labelled steps), ``step_accuracy`` (P(+) > 0.5 vs label >= 0.5),
        ``step_auc`` (NaN when one class is absent), ``labelled_steps``, ``mean_p_plus``.
    """
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    probs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for batch in loader:
        batch = to_device(batch, device)
        logits = model(**model_inputs(batch))
        labels = batch["labels"]
        mask = labels != IGNORE
        n = int(mask.sum())
        if n == 0:
            continue
        total += float(prm_loss(logits, labels)) * n
        count += n
        probs.append(torch.softmax(logits[mask].float(), dim=-1)[:, 0].cpu().numpy())
        targets.append(labels[mask].float().cpu().numpy())
    if count == 0:
        logger.warning("evaluate: no labelled steps in the loader")
        return {"loss": math.nan, "step_accuracy": math.nan, "step_auc": math.nan, "labelled_steps": 0}
    p = np.concatenate(probs)
    y = np.concatenate(targets)
    return {
        "loss": total / count,
        "step_accuracy": float(np.mean((p > 0.5) == (y >= 0.5))),
        "step_auc": step_auc(p, y),
        "labelled_steps": count,
        "mean_p_plus": float(p.mean()),
    }


@torch.no_grad()
def cache_text_hidden(model: PRMModel, batches: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds ``text_hidden`` to each batch so later epochs skip the frozen text tower.

    Only for ``text.mode=frozen``; memory grows with ``B * L * H`` floats per batch, so use it
    for small models or few batches.

    Raises:
        ValueError: when the text tower is trainable.
    """
    if model.text_mode != "frozen":
        raise ValueError("cache_text_hidden needs a frozen text tower (text.mode=frozen)")
    device = next(model.parameters()).device
    out = []
    for batch in batches:
        batch = to_device(batch, device)
        batch["text_hidden"] = model.encode_text(batch["input_ids"], batch["attention_mask"])
        out.append(batch)
    return out
