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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from physio_ray.prm.config import CrossvalSettings, TrainPRMConfig
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
    progress: Callable[[str], None] = logger.info,
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
        progress: receives a line as each fold ends.

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
        progress(f"fold {f + 1}/{k} done ({len(tr)} solutions fitted, {len(te)} held out)")
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


def variant_settings(cfg: CrossvalSettings, layer: int, seed: int) -> dict[str, tuple[FitConfig, str]]:
    """``cross_validate``'s variants for the configured names (:data:`~physio_ray.prm.config.CV_VARIANTS`)."""
    base = FitConfig(layer=layer, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed)
    menu = {
        "prm": (base, "real"),
        "prm_balanced": (dataclasses.replace(base, class_balance=True), "real"),
        "prm_shuffled_poses": (base, "shuffled"),
        "prm_text_only": (dataclasses.replace(base, use_vision=False), "real"),
    }
    return {name: menu[name] for name in cfg.variants}


def run_crossval(cfg: TrainPRMConfig, progress: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """Grouped cross-validation of the PRM on ``cfg.data`` with ``cfg.model``, written to
    ``<output_dir>/prm_eval.json`` (see the module docstring).

    The text tower is frozen in the local recipe, so its marker states are computed once per
    solution and every fold refits only the PRM's heads (and pose tower) on them.

    Args:
        cfg: the train_prm configuration (data, model, prompt, ``crossval``).
        progress: receives one line per phase.

    Returns:
        The ``prm_eval.json`` content (with ``diagnosis`` and ``path``).

    Raises:
        ValueError: when the text tower is not frozen (the cached states would be stale), or
            fewer solutions than folds have marker states.
    """
    import json
    import time
    from pathlib import Path

    import torch

    from physio_ray.prm.marker_states import marker_states
    from physio_ray.prm.model import build_prm_model
    from physio_ray.prm.sources import load_examples

    if cfg.model.text.mode != "frozen":
        raise ValueError(f"crossval needs model.text.mode: frozen (got {cfg.model.text.mode!r}): states are cached")
    cv = cfg.crossval
    started = time.perf_counter()
    torch.manual_seed(cv.seed)
    examples, reports = load_examples(cfg.data)
    model, prm_tok = build_prm_model(cfg.model, cfg.prompt)
    model.eval()
    total = int(model.text.config.num_hidden_layers)
    layer = cfg.model.text.num_layers or total
    progress(f"marker states of {len(examples)} solutions (text tower layer {layer} of {total}) ...")
    states = marker_states(model.text, prm_tok, examples, [layer])
    items = [
        CVItem(ex, st, None, ex.vision)
        for ex, st in zip(examples, states, strict=True)
        if st is not None and st.n_steps
    ]
    if len(items) < cv.k:
        raise ValueError(f"{len(items)} solutions with marker states for {cv.k} folds")
    progress(f"{len(items)} solutions, {cv.k} folds, variants {list(cv.variants)} ...")
    out = cross_validate(model, items, variant_settings(cv, layer, cv.seed), cv.k, cv.seed, cv.bootstrap, progress)
    kept = [s for s in states if s is not None]
    out["diagnosis"] = {
        "solutions": len(examples),
        "with_states": len(items),
        "prompts_shortened": sum(s.shortened for s in kept),
        "tokens_median": float(np.median([s.n_tokens for s in kept])) if kept else None,
        "steps_dropped": sum(
            len(ex.steps) - (st.n_steps if st else 0) for ex, st in zip(examples, states, strict=True)
        ),
        "sources": {name: r.summary() for name, r in reports.items()},
    }
    out["seconds"] = round(time.perf_counter() - started, 1)
    path = Path(cfg.output_dir) / "prm_eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in out.items() if k != "predictions"}
    path.write_text(json.dumps({**keep, "predictions": out["predictions"]}, indent=1, default=float) + "\n")
    out["path"] = str(path)
    return out


def render_crossval(out: Mapping[str, Any]) -> str:
    """The table ``jobs/crossval_prm.py`` prints: AUC per source and method with intervals."""
    lines = [f"grouped {out['folds']}-fold cross-validation of the PRM (step AUC, 95% cluster-bootstrap interval)"]
    for src, variants in out["sources"].items():
        first = next(iter(variants.values()))
        lines.append(
            f"  {src}: {first['n_steps']} labelled steps ({first['n_positives']} positive), {first['n_groups']} groups"
        )
        shown = dict.fromkeys(_BASE_COLS)
        for name, summary in variants.items():
            for method in (*_BASE_COLS, name):
                if method in summary["auc"] and (method == name or shown.get(method) is None):
                    ci = summary["ci95"].get(method)
                    interval = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
                    extra = ""
                    if method == name:
                        best = summary["best_baseline"]
                        gain = summary["gain_over"][best]
                        g = gain["ci95"]
                        extra = (
                            f"  gain over {best} {gain['value']:+.3f} [{g[0]:+.3f}, {g[1]:+.3f}]"
                            + ("  LEARNED" if summary["learned"] else "  not learned")
                            if g
                            else ""
                        )
                    lines.append(f"    {method:22s} {summary['auc'][method]:.3f} {interval}{extra}")
                    if method != name:
                        shown[method] = True
    return "\n".join(lines)


def run_crossval_on_ray(cfg: TrainPRMConfig, progress: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """:func:`run_crossval` as one Ray task holding ``scaling.cpus_per_worker x num_workers`` CPUs
    (torch uses that many threads); Ray must be initialised. Returns the summary without the
    per-step predictions (they are in ``prm_eval.json``). ``progress`` runs inside the task
    (a job passes ``print``: a worker's stdout reaches the driver).

    Raises:
        ValueError / FileNotFoundError: the task's own error for bad data or settings.
    """
    import ray

    cpus = max(1, int(cfg.scaling.cpus_per_worker * cfg.scaling.num_workers))
    try:
        return ray.get(ray.remote(num_cpus=cpus)(_crossval_task).remote(cfg, cpus, progress))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, (ValueError, FileNotFoundError)):
            raise exc.cause from None
        raise


def _crossval_task(cfg: TrainPRMConfig, threads: int, progress: Callable[[str], None]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    out = run_crossval(cfg, progress)
    out.pop("predictions", None)
    return out
