"""The annotation-threshold sweep as a Ray Tune experiment on Med-PRM's real step labels.

Judge = Med-PRM's Gemini labels (confidence from the deterministic Gemini/Llama-agreement proxy),
reference = the 16-rollout MC hard labels. Tune must reproduce the pure objective exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from physio_ray.tune.annotation_threshold import (
    best_threshold,
    objective,
    run_threshold_sweep,
    steps_from_medprm,
    write_threshold_yaml,
)
from tests.conftest import REPO, shared_path

THRESHOLDS = [0.0, 0.5, 0.6, 0.85, 0.95]


def test_sweep_on_medprm_matches_the_pure_objective(ray_local: None, tmp_path: Path) -> None:
    records = json.loads(shared_path("medprm-samples", "medprm_samples_80.json").read_text())
    steps, skipped = steps_from_medprm(records)
    assert (len(steps), skipped) == (482, 0)
    table = run_threshold_sweep(steps, THRESHOLDS, cost_weight=0.1, storage_path=str(tmp_path / "tune"))
    assert table["threshold"].tolist() == THRESHOLDS
    for row in table.to_dict(orient="records"):
        expected = objective(row["threshold"], steps, 0.1)
        assert row == pytest.approx(expected)
    best = best_threshold(table)
    assert best["threshold"] == 0.6
    assert best["agreement"] == pytest.approx(453 / 482) and best["mc_cost_fraction"] == pytest.approx(38 / 482)

    base = REPO / "configs" / "annotate" / "local.yaml"
    if base.exists():
        out = write_threshold_yaml(tmp_path / "local-tuned.yaml", base, best["threshold"])
        assert "confidence_threshold: 0.6" in out.read_text(encoding="utf-8")
