"""The guidance sweep as a real Ray Tune experiment: every trial equals the pure objective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def test_view_sweep_renders_as_tasks_and_every_trial_equals_the_pure_objective(ray_local: None, tmp_path: Path) -> None:
    """jobs/sweep_guidance_views.py's path on a tiny grid: tuning subjects only, Ray tasks render the
    same streams as a plain loop, Tune's rows equal evaluate_view_params, the YAML names each rule."""
    import yaml

    from physio_ray.guidance.config import VIEW_SWEPT_PARAMS, SweepGuidanceViewsConfig
    from physio_ray.guidance.view_tuning import (
        evaluate_view_params,
        excursions,
        render_cues,
        render_tuning_streams,
        run_view_sweep,
        sweep_cells,
        tuning_items,
        write_view_outputs,
    )

    cfg = SweepGuidanceViewsConfig(
        data_dir=str(shared_path()),
        output_dir=str(tmp_path / "views"),
        exercises=["sit_to_stand"],
        yaws=[0.0, 60.0],
        pitches=[0.0],
        fps=[15.0],
        rest_frac=[0.4, 0.5],
        far_frac=[0.6],
        max_concurrent_trials=2,
    )
    items = tuning_items(cfg)
    assert items and {it.split for it in items} == {"tuning"} and {it.exercise for it in items} == {"sit_to_stand"}
    items = items[:8]
    streams = render_tuning_streams(cfg, items)
    plain = render_cues(items[3], sweep_cells(3, items[3].kind, cfg.yaws, cfg.pitches, cfg.fps, cfg.seed))
    assert len(streams) == 2 * len(items)  # two yaws; a single repetition gets one pitch per yaw
    same = [s for s in streams if s.item == items[3].name]
    assert len(same) == len(plain) and all(
        np.array_equal(a.cues, b.cues, equal_nan=True) for a, b in zip(same, plain, strict=True)
    )
    excursion = excursions(streams)
    assert set(excursion) == {"sit_to_stand"} and excursion["sit_to_stand"] > 20.0
    table = run_view_sweep(cfg, streams, excursion)
    assert len(table) == cfg.n_trials == 2
    for row in table.to_dict(orient="records"):
        expected = evaluate_view_params({k: row[k] for k in VIEW_SWEPT_PARAMS}, streams, excursion)
        assert row == pytest.approx(expected)
    assert table["objective"].is_monotonic_decreasing
    _, csv_path, yaml_path = write_view_outputs(cfg, table, excursion)
    best = yaml.safe_load(yaml_path.read_text())
    assert csv_path.is_file() and set(best["rules"]) == {"sit_to_stand"}
    assert best["rules"]["sit_to_stand"]["far_deg"] == pytest.approx(-round(0.6 * excursion["sit_to_stand"], 1))
