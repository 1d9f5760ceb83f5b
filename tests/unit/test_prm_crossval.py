"""Grouped folds, position baselines, cluster-bootstrap summaries and pose shuffling of the PRM's CV (no model)."""

from __future__ import annotations

import numpy as np

from physio_ray.prm.crossval import CVItem, baseline_predict, group_folds, position_features, shuffled_vision, summarise
from physio_ray.prm.data import PRMExample
from physio_ray.prm.marker_states import MarkerStates


def _items(n: int = 12) -> list[CVItem]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        steps = 3 + i % 3
        labels = [1.0] * (steps - 1) + [float(i % 2)]  # the last step carries the label: a position shortcut
        ex = PRMExample(
            f"q{i // 2}", f"s{i}", "q", [], ["x ки"] * steps, labels, video_id=f"v{i // 2}", source="annotated"
        )
        st = MarkerStates(ex.solution_id, {8: rng.normal(size=(steps, 4)).astype(np.float32)}, steps, 10, False)
        out.append(CVItem(ex, st, vision=np.full((2, 16), float(i // 2), dtype=np.float32)))
    return out


def test_folds_never_split_a_recording() -> None:
    items = _items()
    folds = group_folds(items, 3)
    for g in {it.group for it in items}:
        assert len({f for f, it in zip(folds, items, strict=True) if it.group == g}) == 1
    assert set(folds) == {0, 1, 2}


def test_position_baseline_finds_the_last_step_shortcut() -> None:
    items = _items()
    assert position_features(4, False)[:, 0].tolist() == [0.0, 0.25, 0.5, 0.75]
    preds = baseline_predict(items[:8], items[8:], layer=8)
    summary = summarise(items[8:], {**preds, "untrained": preds["constant"], "prm": preds["position_last"]}, "prm", 200)
    assert summary["auc"]["constant"] == 0.5
    assert summary["auc"]["position_last"] > 0.8
    assert summary["n_groups"] == 2 and summary["n_steps"] == sum(it.states.n_steps for it in items[8:])
    assert summary["gain_over"]["position_last"]["value"] == 0.0 and not summary["learned"]


def test_shuffled_vision_moves_every_recording() -> None:
    items = _items()
    moved = shuffled_vision(items, seed=1)
    for a, b in zip(items, moved, strict=True):
        assert a.example is b.example
        assert not np.array_equal(a.vision, b.vision)
