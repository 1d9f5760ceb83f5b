"""The PRM's grouped cross-validation report: variants beside baselines, per source, as ``prm_eval.json``.

``prm_eval.json`` (written next to ``metrics.json`` in the train job's ``output_dir``):

* ``sources``: ``{"physio" | "medprm": {variant: summary}}`` where a summary is
  :func:`physio_ray.prm.crossval.summarise`'s dict (``auc``, ``ci95``, ``gain_over``,
  ``best_baseline``, ``learned``, ``n_steps``, ``n_positives``, ``n_groups``);
* ``predictions``: one row per held-out step: ``source``, ``group``, ``solution_id``, ``step``,
  ``label``, ``fold`` and one P(+) column per method and variant;
* ``baselines_missing``: baselines that could not be computed, with the reason;
* ``diagnosis``: what the text tower read (tokens, prompts shortened, steps dropped).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from physio_ray.prm.crossval import (
    CVItem,
    FitConfig,
    baseline_predict,
    fit_predict,
    group_folds,
    shuffled_vision,
    summarise,
)
from physio_ray.prm.model import PRMModel

logger = logging.getLogger(__name__)

SOURCES = {"physio": lambda ex: ex.source == "annotated", "medprm": lambda ex: ex.source.startswith("medprm")}
MEASUREMENT_MISSING = (
    "the annotated Parquet carries measurement_verdicts, but PRM examples do not read that column yet "
    "(prm does not import annotate; a measurement baseline needs it in physio_ray.prm.annotated)"
)


def cross_validate(
    model: PRMModel,
    items: Sequence[CVItem],
    variants: Mapping[str, tuple[FitConfig, str]],
    k: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Out-of-fold predictions of every variant and baseline, summarised per source.

    Args:
        model: the PRM whose trainable parts are refitted per fold (frozen text tower).
        items: solutions with cached marker states.
        variants: name -> ``(fit settings, input)`` with input ``real`` (own poses), ``shuffled``
            (another recording's poses) or ``soft`` (train on ``CVItem.targets``, own poses).
        k: folds.
        seed: fold and bootstrap seed.
        n_boot: bootstrap resamples.

    Returns:
        The ``prm_eval.json`` content without ``diagnosis``.
    """
    init = {n: v.clone() for n, v in model.trainable_state_dict().items()}
    folds = group_folds(items, k, seed)
    shuffled = shuffled_vision(items, seed)
    preds: dict[str, list[np.ndarray | None]] = {}

    def put(name: str, idx: list[int], values: Sequence[np.ndarray]) -> None:
        col = preds.setdefault(name, [None] * len(items))
        for i, v in zip(idx, values, strict=True):
            col[i] = v

    for f in range(k):
        tr = [i for i in range(len(items)) if folds[i] != f]
        te = [i for i in range(len(items)) if folds[i] == f]
        if not te:
            continue
        layer0 = next(iter(variants.values()))[0].layer
        for name, v in baseline_predict([items[i] for i in tr], [items[i] for i in te], layer0).items():
            put(name, te, v)
        put(
            "untrained",
            te,
            fit_predict(
                model, init, [], [items[i] for i in te], dataclasses.replace(next(iter(variants.values()))[0], epochs=0)
            ),
        )
        for name, (cfg, inp) in variants.items():
            pool = shuffled if inp == "shuffled" else items
            train = [pool[i] if inp == "soft" else dataclasses.replace(pool[i], targets=None) for i in tr]
            put(name, te, fit_predict(model, init, train, [pool[i] for i in te], cfg))
        logger.info("fold %d/%d done", f + 1, k)
    model.load_trainable_state_dict(init)
    out: dict[str, Any] = {
        "sources": {},
        "folds": k,
        "variants": {n: {"fit": dataclasses.asdict(c), "input": i} for n, (c, i) in variants.items()},
    }
    for src, keep in SOURCES.items():
        idx = [i for i, it in enumerate(items) if keep(it.example)]
        if not idx:
            continue
        sub = [items[i] for i in idx]
        out["sources"][src] = {
            name: summarise(
                sub,
                {**{m: _take(preds[m], idx) for m in (*_BASE_COLS,)}, name: _take(preds[name], idx)},
                name,
                n_boot,
                seed,
            )
            for name in variants
        }
    out["predictions"] = [
        {
            "source": next(s for s, keep in SOURCES.items() if keep(it.example)),
            "group": it.group,
            "solution_id": it.example.solution_id,
            "step": j,
            "label": it.example.labels[j],
            "fold": folds[i],
            **{m: float(preds[m][i][j]) for m in preds},  # type: ignore[index]
        }
        for i, it in enumerate(items)
        for j in range(it.states.n_steps)
        if it.example.labels[j] is not None
    ]
    out["baselines_missing"] = {"measurement": MEASUREMENT_MISSING}
    return out


_BASE_COLS = ("constant", "position", "position_last", "untrained", "probe")


def _take(col: list[np.ndarray | None], idx: list[int]) -> list[np.ndarray]:
    """The out-of-fold predictions of ``idx``; every held-out item has one once all folds ran."""
    out = []
    for i in idx:
        v = col[i]
        if v is None:
            raise RuntimeError(f"item {i} has no out-of-fold prediction: a fold did not run")
        out.append(v)
    return out
