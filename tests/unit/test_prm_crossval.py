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


def test_crossval_settings_refuse_what_cannot_run() -> None:
    import dataclasses

    import pytest

    from physio_ray.prm.config import CV_VARIANTS, CrossvalSettings, TrainPRMConfig
    from physio_ray.prm.crossval_report import render_crossval, run_crossval, variant_settings

    with pytest.raises(ValueError, match="k=1"):
        CrossvalSettings(k=1)
    with pytest.raises(ValueError, match="choose from"):
        CrossvalSettings(variants=("prm", "prm_lora"))
    with pytest.raises(ValueError, match="bootstrap"):
        CrossvalSettings(bootstrap=10)
    every = variant_settings(CrossvalSettings(variants=tuple(CV_VARIANTS)), layer=8, seed=3)
    assert {n: (c.class_balance, c.use_vision, i) for n, (c, i) in every.items()} == {
        "prm": (False, True, "real"),
        "prm_balanced": (True, True, "real"),
        "prm_shuffled_poses": (False, True, "shuffled"),
        "prm_text_only": (False, False, "real"),
    }
    assert {c.layer for c, _ in every.values()} == {8}
    cfg = TrainPRMConfig()
    lora = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, text=dataclasses.replace(cfg.model.text, mode="lora"))
    )
    with pytest.raises(ValueError, match="frozen"):
        run_crossval(lora)  # refused before any model is loaded
    # the printed table: baselines once per source, each variant with its gain and verdict
    items = _items()
    preds = {m: [np.linspace(0, 1, it.states.n_steps) for it in items] for m in ("constant", "position", "prm")}
    summary = summarise(items, preds, "prm", n_boot=200)
    text = render_crossval({"folds": 2, "sources": {"physio": {"prm": summary}}})
    assert text.splitlines()[0].startswith("grouped 2-fold") and "gain over" in text and "learned" in text


def test_job_help_and_bad_settings() -> None:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    job = [sys.executable, str(repo / "jobs" / "crossval_prm.py")]
    help_text = subprocess.run([*job, "--help"], capture_output=True, text=True, check=True).stdout
    assert "prm_eval.json" in help_text and "configs/train_prm/local.yaml" in help_text
    yaml = str(repo / "configs" / "train_prm" / "local.yaml")
    bad = subprocess.run([*job, yaml, "crossval.variants=[prm,prm_lora]"], capture_output=True, text=True)
    assert bad.returncode == 2 and "choose from" in bad.stderr  # refused before Ray starts
