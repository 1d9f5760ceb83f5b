"""The annotation-threshold sweep as a Ray Tune experiment on Med-PRM's real step labels.

Judge = Med-PRM's Gemini labels (confidence from the deterministic Gemini/Llama-agreement proxy),
reference = the 16-rollout MC hard labels. Tune must reproduce the pure objective exactly, and the
job's library function must write the tuned YAML, the table and the plot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from physio_ray.tune.annotation_sweep import run_annotation_sweep
from physio_ray.tune.annotation_threshold import SweepAnnotationConfig, objective, steps_from_medprm
from tests.conftest import REPO, shared_path

THRESHOLDS = [0.0, 0.5, 0.6, 0.85, 0.95]


def test_sweep_on_medprm_matches_the_pure_objective(ray_local: None, tmp_path: Path) -> None:
    path = shared_path("medprm-samples", "medprm_samples_80.json")
    base = REPO / "configs" / "annotate" / "local.yaml"
    cfg = SweepAnnotationConfig(
        output_dir=str(tmp_path / "sweep"),
        medprm_path=str(path),
        medprm_judge="gemini_proxy",
        thresholds=THRESHOLDS,
        cost_weight=0.1,
        base_yaml=str(base),
    )
    summary = run_annotation_sweep(cfg)
    steps, skipped = steps_from_medprm(json.loads(path.read_text()))
    assert (len(steps), skipped, summary["n_steps"]) == (482, 0, 482)
    assert [r["threshold"] for r in summary["table"]] == THRESHOLDS
    for row in summary["table"]:
        assert row == pytest.approx(objective(row["threshold"], steps, 0.1))
    best = summary["chosen"]
    assert best["threshold"] == 0.6
    assert best["agreement"] == pytest.approx(453 / 482) and best["mc_cost_fraction"] == pytest.approx(38 / 482)
    assert "<- chosen" in summary["text"].splitlines()[3]
    outputs = summary["outputs"]
    for key in ("csv", "json", "plot", "tuned_yaml"):
        assert Path(outputs[key]).is_file(), key
    assert yaml.safe_load(Path(outputs["tuned_yaml"]).read_text())["judge"]["confidence_threshold"] == 0.6
    assert json.loads(Path(outputs["json"]).read_text())["chosen"]["threshold"] == 0.6
