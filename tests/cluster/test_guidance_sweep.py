"""The guidance sweep as a real Ray Tune experiment: every trial equals the pure objective."""

from __future__ import annotations

from pathlib import Path

import pytest

from physio_ray.guidance.config import SWEPT_PARAMS, SweepGuidanceConfig
from physio_ray.guidance.sweep import (
    evaluate_params,
    load_best_yaml,
    load_sweep_sequences,
    render_table,
    run_guidance_sweep,
    write_best_yaml,
)
from tests.conftest import shared_path


def test_tune_grid_matches_the_pure_objective(ray_local: None, tmp_path: Path) -> None:
    cfg = SweepGuidanceConfig(
        data_dir=str(shared_path()),
        output_dir=str(tmp_path / "sweep"),
        uiprmd_subjects=["s01"],
        uiprmd_episodes=[1, 2],
        min_rep_interval_ms=[1200.0, 10000.0],
        far_shift_deg=[0.0, -50.0],
        max_concurrent_trials=2,
    )
    seqs = load_sweep_sequences(cfg)
    table = run_guidance_sweep(cfg, seqs)
    assert len(table) == cfg.n_trials == 4
    for row in table.to_dict(orient="records"):
        expected = evaluate_params({k: row[k] for k in SWEPT_PARAMS}, seqs, cfg.false_feedback_weight)
        assert row == pytest.approx(expected)
    best = table.iloc[0].to_dict()
    assert (best["min_rep_interval_ms"], best["far_shift_deg"], best["mae"]) == (1200.0, 0.0, 0.0)
    assert table["objective"].is_monotonic_increasing
    assert "objective" in render_table(table).splitlines()[0]
    gcfg, rules = load_best_yaml(write_best_yaml(tmp_path / "best.yaml", best, cfg))
    assert gcfg.min_rep_interval_ms == 1200.0 and rules["deep_squat"]["far_deg"] == 110.0
