"""Grouped cross-validation of the PRM beside its trivial baselines, with cluster-bootstrap intervals.

Every held-out figure is computed on the same steps as its baselines:

* ``constant``: one score for every step (AUC 0.5);
* ``position``: logistic regression on ``index / n_steps``, fitted on the training folds;
* ``position_last``: the same on ``(index / n_steps, is_last, index, n_steps)``: the shortcut
  the labels allow (Med-PRM zeroes every step after the first error, and a physio solution's
  last step is its answer);
* ``untrained``: the PRM before training (the text LM's own "+" vs "-" preference);
* ``probe``: logistic regression on the frozen tower's marker state (what a simple model finds
  in the input; not a baseline to beat but a check of the data);
* ``measurement``: the measurement check alone, when the annotated data carries its verdict
  (otherwise recorded as missing).

Folds group by recording (physio) or question (Med-PRM), so no recording or question is in
both training and test. Intervals resample those groups (cluster bootstrap, paired across
methods, :func:`physio_ray.stats.bootstrap`).
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from physio_ray.prm.data import PRMExample
from physio_ray.prm.marker_states import MarkerStates
from physio_ray.prm.metrics import step_auc
from physio_ray.prm.model import PRMModel
from physio_ray.stats import bootstrap, percentile_interval

logger = logging.getLogger(__name__)

BASELINES = ("constant", "position", "position_last", "untrained")


@dataclass(frozen=True, eq=False)
class CVItem:
    """One solution in the cross-validation.

    Attributes:
        example: the solution (its ``labels`` are the evaluation labels).
        states: its marker states.
        targets: training target per step (e.g. soft MC labels); ``None`` = the labels.
        vision: keyframe features ``[T, F]`` used by the pose tower (may be shuffled).
    """

    example: PRMExample
    states: MarkerStates
    targets: list[float | None] | None = None
    vision: np.ndarray | None = None

    @property
    def group(self) -> str:
        """Leakage unit: the recording for physio steps, else the question."""
        return self.example.group_id if self.example.video_id else self.example.question_id


@dataclass(frozen=True)
class FitConfig:
    """How the PRM's trainable parts are fitted on cached marker states.

    Attributes:
        layer: text-tower layer read (``text.num_layers``).
        epochs: passes over the training folds.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: solutions per step.
        class_balance: weight each class by ``n / (2 n_class)`` in the loss.
        use_vision: feed the keyframe features to the pose tower.
        seed: torch / shuffling seed.
    """

    layer: int = 8
    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 0.01
    batch_size: int = 8
    class_balance: bool = False
    use_vision: bool = True
    seed: int = 0


def group_folds(items: Sequence[CVItem], k: int, seed: int = 0) -> list[int]:
    """Fold number per item; each source's groups are dealt round-robin after a shuffle.

    >>> from physio_ray.prm.marker_states import MarkerStates
    >>> ex = [PRMExample(f"q{i % 3}", f"s{i}", "", [], ["a ки"], [1.0]) for i in range(6)]
    >>> st = MarkerStates("", {}, 1, 1, False)
    >>> group_folds([CVItem(e, st) for e in ex], 3)
    [0, 2, 1, 0, 2, 1]
    """
    fold_of: dict[tuple[str, str], int] = {}
    for source in sorted({it.example.source for it in items}):
        groups = sorted({it.group for it in items if it.example.source == source})
        random.Random(seed).shuffle(groups)
        fold_of.update({(source, g): i % k for i, g in enumerate(groups)})
    return [fold_of[(it.example.source, it.group)] for it in items]


def _batch(items: Sequence[CVItem], layer: int, use_vision: bool, train: bool) -> dict[str, torch.Tensor]:
    n, s = len(items), max(it.states.n_steps for it in items)
    hdim = next(iter(items[0].states.layers.values())).shape[1]
    hidden = torch.zeros((n, s, hdim))
    target = torch.full((n, s), -100.0)
    for i, it in enumerate(items):
        m = it.states.n_steps
        hidden[i, :m] = torch.from_numpy(it.states.layers[layer][:m])
        raw = it.targets if train and it.targets is not None else it.example.labels
        target[i, :m] = torch.tensor([-100.0 if v is None else float(v) for v in raw[:m]])
    out = {"text_hidden": hidden, "target": target}
    visions = [it.vision if use_vision else None for it in items]
    if any(v is not None for v in visions):
        t = max(len(v) for v in visions if v is not None)
        feat = next(v for v in visions if v is not None).shape[1]
        vis, mask = torch.zeros((n, t, feat)), torch.zeros((n, t), dtype=torch.bool)
        for i, v in enumerate(visions):
            if v is not None and len(v):
                vis[i, : len(v)] = torch.from_numpy(np.nan_to_num(np.asarray(v, dtype=np.float32)))
                mask[i, : len(v)] = True
        out["vision"], out["vision_mask"] = vis, mask
    return out


def _forward(model: PRMModel, b: dict[str, torch.Tensor]) -> torch.Tensor:
    dummy = torch.zeros(b["target"].shape, dtype=torch.long)
    return model(dummy, dummy, b.get("vision"), b.get("vision_mask"), text_hidden=b["text_hidden"])


def fit_predict(
    model: PRMModel, init: Mapping[str, torch.Tensor], train: Sequence[CVItem], test: Sequence[CVItem], cfg: FitConfig
) -> list[np.ndarray]:
    """Resets the PRM's trainable parts to ``init``, fits them on ``train``, scores ``test``.

    Returns:
        P(+) per step ``[n_steps]`` for each test item (``epochs=0`` gives the untrained PRM).
    """
    torch.manual_seed(cfg.seed)
    model.load_trainable_state_dict(dict(init))
    params = model.new_parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = random.Random(cfg.seed)
    order = list(range(len(train)))
    for _ in range(cfg.epochs):
        rng.shuffle(order)
        model.train()
        for s in range(0, len(order), cfg.batch_size):
            b = _batch([train[i] for i in order[s : s + cfg.batch_size]], cfg.layer, cfg.use_vision, train=True)
            mask = b["target"] != -100.0
            if not bool(mask.any()):
                continue
            logits, y = _forward(model, b)[mask], b["target"][mask]
            loss = F.cross_entropy(logits, torch.stack([y, 1 - y], -1), reduction="none")
            if cfg.class_balance:
                pos = (y >= 0.5).float()
                n_pos = float(pos.sum().clamp(min=1))
                n_neg = float((1 - pos).sum().clamp(min=1))
                loss = loss * (pos * len(y) / (2 * n_pos) + (1 - pos) * len(y) / (2 * n_neg))
            opt.zero_grad(set_to_none=True)
            loss.mean().backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(test), 16):
            chunk = list(test[s : s + 16])
            p = torch.softmax(_forward(model, _batch(chunk, cfg.layer, cfg.use_vision, train=False)), -1)[..., 0]
            out += [p[i, : it.states.n_steps].numpy().astype(np.float64) for i, it in enumerate(chunk)]
    return out


def position_features(n_steps: int, last_shortcut: bool) -> np.ndarray:
    """``[n_steps, d]`` position features: ``index / n`` (+ is_last, index, n)."""
    k = np.arange(n_steps, dtype=np.float64)
    cols = [k / n_steps]
    if last_shortcut:
        cols += [(k == n_steps - 1).astype(np.float64), k / 10.0, np.full(n_steps, n_steps / 10.0)]
    return np.stack(cols, axis=1)


def _logreg(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, c: float = 1.0) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(y_train.tolist())) < 2:
        return np.full(len(x_test), float(y_train.mean()))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    clf.fit(x_train, y_train)
    return clf.predict_proba(x_test)[:, 1]


def _steps(items: Sequence[CVItem], feats: Callable[[CVItem], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for it in items:
        m = it.states.n_steps
        lab = it.example.labels[:m]
        ok = [i for i, v in enumerate(lab) if v is not None]
        xs.append(feats(it)[ok])
        ys.append(np.array([float(v >= 0.5) for v in (lab[i] for i in ok) if v is not None]))
    return np.concatenate(xs), np.concatenate(ys)


def position_baselines(train: Sequence[PRMExample], test: Sequence[PRMExample]) -> dict[str, float]:
    """Held-out step AUC of the position shortcuts (``position``, ``position_last``), fitted on
    ``train``'s labelled steps: what a PRM that reads only where a step stands would score.

    >>> steps = ["x ки", "y ки", "z ки"]
    >>> a = PRMExample("q1", "s1", "q", ["a", "b", "c", "d"], steps, [1.0, 1.0, 0.0])
    >>> b = PRMExample("q2", "s2", "q", ["a", "b", "c", "d"], steps, [1.0, 0.0, 0.0])
    >>> round(position_baselines([a, b], [a, b])["position"], 3)  # one tie (step 2 of 3, + and -)
    0.944
    """

    def xy(examples: Sequence[PRMExample], last: bool) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for ex in examples:
            ok = [i for i, v in enumerate(ex.labels) if v is not None]
            xs.append(position_features(len(ex.steps), last)[ok])
            ys.append(np.array([float(ex.labels[i] >= 0.5) for i in ok]))  # type: ignore[operator]
        return np.concatenate(xs), np.concatenate(ys)

    out = {}
    for name, last in (("position", False), ("position_last", True)):
        x_tr, y_tr = xy(train, last)
        x_te, y_te = xy(test, last)
        out[name] = step_auc(_logreg(x_tr, y_tr, x_te), y_te)
    return out


def baseline_predict(train: Sequence[CVItem], test: Sequence[CVItem], layer: int) -> dict[str, list[np.ndarray]]:
    """Position baselines and the hidden-state probe, fitted on ``train``, per test item ``[n_steps]``."""
    out: dict[str, list[np.ndarray]] = {"constant": [np.full(it.states.n_steps, 0.5) for it in test]}
    specs: dict[str, tuple[Callable[[CVItem], np.ndarray], float]] = {
        "position": (lambda it: position_features(it.states.n_steps, False), 1.0),
        "position_last": (lambda it: position_features(it.states.n_steps, True), 1.0),
        "probe": (lambda it: it.states.layers[layer][: it.states.n_steps], 0.01),
    }
    for name, (feats, c) in specs.items():
        x, y = _steps(train, feats)
        pred = _logreg(x, y, np.concatenate([feats(it) for it in test]), c)
        sizes = np.cumsum([it.states.n_steps for it in test])[:-1]
        out[name] = list(np.split(pred, sizes))
    return out


def summarise(
    items: Sequence[CVItem], preds: Mapping[str, Sequence[np.ndarray]], main: str, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """AUC of every method on the same labelled steps, with cluster-bootstrap 95% intervals.

    Args:
        items: the evaluated solutions.
        preds: method -> P(+) per item ``[n_steps]`` (same order as ``items``).
        main: the method whose gain over each baseline is reported.
        n_boot: bootstrap resamples of the groups.
        seed: bootstrap seed.

    Returns:
        ``{"n_steps", "n_positives", "n_groups", "auc": {m: v}, "ci95": {m: [lo, hi]},
        "gain_over": {baseline: {"value", "ci95"}}, "best_baseline", "learned"}``.
    """
    groups = sorted({it.group for it in items})
    gidx = {g: i for i, g in enumerate(groups)}
    methods = list(preds)
    per_group: list[dict[str, list[float]]] = [{m: [] for m in [*methods, "y"]} for _ in groups]
    for j, it in enumerate(items):
        bucket = per_group[gidx[it.group]]
        for k, v in enumerate(it.example.labels[: it.states.n_steps]):
            if v is None:
                continue
            bucket["y"].append(float(v >= 0.5))
            for m in methods:
                bucket[m].append(float(preds[m][j][k]))

    def aucs(idx: np.ndarray) -> list[float]:
        y = [v for i in idx for v in per_group[i]["y"]]
        return [step_auc([v for i in idx for v in per_group[i][m]], y) for m in methods]

    point = dict(zip(methods, aucs(np.arange(len(groups))), strict=True))
    draws = bootstrap(aucs, len(groups), n_boot=n_boot, seed=seed)
    col = {m: draws[:, i] for i, m in enumerate(methods)}
    ci = {m: percentile_interval(col[m]) for m in methods}
    base = [b for b in BASELINES if b in point]
    gain: dict[str, dict[str, Any]] = {
        b: {"value": point[main] - point[b], "ci95": percentile_interval(col[main] - col[b])} for b in base
    }
    best = max(base, key=lambda b: point[b] if np.isfinite(point[b]) else -1.0)
    lo = gain[best]["ci95"][0] if gain[best]["ci95"] else float("nan")
    y_all = [v for g in per_group for v in g["y"]]
    return {
        "n_steps": len(y_all),
        "n_positives": int(sum(y_all)),
        "n_groups": len(groups),
        "auc": point,
        "ci95": {m: list(v) if v else None for m, v in ci.items()},
        "gain_over": {
            b: {"value": g["value"], "ci95": list(g["ci95"]) if g["ci95"] else None} for b, g in gain.items()
        },
        "best_baseline": best,
        "learned": bool(np.isfinite(lo) and lo > 0),
    }


def shuffled_vision(items: Sequence[CVItem], seed: int = 0) -> list[CVItem]:
    """The same items with each recording's keyframe features moved to another recording (a derangement)."""
    vids = sorted({it.example.video_id for it in items if it.example.video_id and it.vision is not None})
    if len(vids) < 2:
        return list(items)
    shift = random.Random(seed).randrange(1, len(vids))
    by_vid = {it.example.video_id: it.vision for it in items if it.example.video_id in vids}
    moved = {v: by_vid[vids[(i + shift) % len(vids)]] for i, v in enumerate(vids)}
    return [
        copy.copy(it)
        if it.example.video_id not in moved
        else CVItem(it.example, it.states, it.targets, moved[it.example.video_id])
        for it in items
    ]
