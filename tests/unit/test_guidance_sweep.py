"""The sweep's pure objective (what each Ray Tune trial reports) and its best-config YAML."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from physio_ray.config import ConfigError, load_config
from physio_ray.guidance.config import GuidanceConfig, SweepGuidanceConfig
from physio_ray.guidance.sweep import evaluate_params, grid, load_best_yaml, load_sweep_sequences, write_best_yaml
from tests.conftest import REPO

BASE = {
    "rest_shift_deg": 0.0,
    "far_shift_deg": 0.0,
    "phase_stability_ms": 240.0,
    "min_rep_interval_ms": 1200.0,
    "one_euro_min_cutoff": 1.5,
    "hysteresis_deg": 5.0,
}


@pytest.fixture(scope="module")
def seqs(data_dir: Path) -> list:
    cfg = SweepGuidanceConfig(data_dir=str(data_dir), uiprmd_subjects=["s01"], uiprmd_episodes=[1, 2])
    return load_sweep_sequences(cfg)


def test_objective_on_real_sequences(seqs: list) -> None:
    assert [s.source for s in seqs][:2] == ["tfjs/pose_squats", "uiprmd/m01_s01_e01"] and len(seqs) == 5
    row = evaluate_params(BASE, seqs, 0.5)
    assert (row["mae"], row["obo"], row["false_feedback"], row["n"]) == (0.0, 1.0, 0.0, 5)
    # the seed's 1.2 s interval matters: a 10 s one merges the tfjs squats
    slow = evaluate_params({**BASE, "min_rep_interval_ms": 10000.0}, seqs, 0.5)
    assert slow["mae"] == pytest.approx(1 / 5)
    # a far threshold of 60 deg is deeper than the tfjs squats go: missed reps + "go lower" to correct squats
    deep = evaluate_params({**BASE, "far_shift_deg": -50.0}, seqs, 0.5)
    assert deep["mae"] > 0 and deep["false_feedback"] > 0
    assert deep["objective"] == pytest.approx(deep["mae"] + 0.5 * deep["false_feedback"])
    crossed = evaluate_params({**BASE, "far_shift_deg": 45.0}, seqs, 0.5)
    assert math.isinf(crossed["objective"])


def test_grid_and_best_yaml_round_trip(tmp_path: Path) -> None:
    cfg = SweepGuidanceConfig(hysteresis_deg=[2.0, 5.0], phase_stability_ms=[120.0, 240.0])
    assert cfg.n_trials == 4 == len(grid(cfg))
    best = {**BASE, "hysteresis_deg": 2.0, "mae": 0.1, "obo": 1.0, "false_feedback": 0.0, "objective": 0.1, "n": 5}
    path = write_best_yaml(tmp_path / "best.yaml", best, cfg)
    gcfg, rules = load_best_yaml(path)
    assert gcfg == GuidanceConfig(hysteresis_deg=2.0)
    assert rules["squat"] == {"rest_deg": 150.0, "far_deg": 110.0}
    assert "jobs/sweep_guidance.py" in path.read_text().splitlines()[0]


def test_sweep_config_validation() -> None:
    with pytest.raises(ConfigError, match="view"):
        load_config(SweepGuidanceConfig, [str(REPO / "configs/sweep_guidance/local.yaml"), "view=side"])
    with pytest.raises(ValueError, match="at least one value"):
        SweepGuidanceConfig(hysteresis_deg=[])
