"""Headline spatial scores, intervals and baselines; the CNN probe on a few rendered frames."""

from __future__ import annotations

import pytest

from physio_ray.spatial.pitvqa import NO_VISIBLE
from physio_ray.spatial.scores import answer_fields, baseline_scores, headline_scores
from physio_ray.stats import wilson_interval


def _t(instrument: str, cls: int | None, point: tuple[float, float] | None) -> dict:
    return {"instrument": instrument, "position_class": cls, "point": point}


def test_wilson_interval_contains_the_proportion_and_handles_empty() -> None:
    lo, hi = wilson_interval(24, 100)
    assert lo < 0.24 < hi
    assert wilson_interval(0, 0) is None
    assert wilson_interval(10, 10)[1] == 1.0


def test_answer_fields_parses_points_none_and_prose() -> None:
    assert answer_fields("<point x='10' y='10'>ring curette</point>") == {
        "instrument": "ring_curette",
        "position_class": 1,
        "point": (10.0, 10.0),
    }
    assert answer_fields("No surgical instrument is visible in this frame.")["instrument"] == NO_VISIBLE
    assert answer_fields("I am not sure")["point"] is None


def test_headline_scores_counts_unparsed_as_wrong_and_at_the_frame_centre() -> None:
    targets = [_t("suction", 1, (10.0, 10.0)), _t("suction", 5, (90.0, 90.0)), _t(NO_VISIBLE, None, None)]
    preds = [_t("suction", 1, (12.0, 14.0)), {"instrument": "<unparsed>", "position_class": None, "point": None}]
    preds.append(_t(NO_VISIBLE, None, None))
    s = headline_scores(preds, targets)
    assert s["n"] == 3 and s["n_quadrant"] == 2 and s["n_coord"] == 2
    assert s["quadrant_accuracy"] == pytest.approx(0.5)
    assert s["coord_mae"] == pytest.approx(((2 + 4) / 2 + (40 + 40) / 2) / 2)
    lo, hi = s["coord_mae_ci"]
    assert lo <= s["coord_mae"] <= hi
    assert 0.0 < s["instrument_f1"] < 1.0


def test_baselines_fit_on_train_and_score_the_constant_answer() -> None:
    train = [_t("suction", 2, (80.0, 10.0))] * 3 + [_t("cottle", 3, (50.0, 50.0))]
    val = [_t("suction", 2, (70.0, 20.0)), _t("cottle", 4, (10.0, 90.0))]
    b = baseline_scores(train, val)
    assert b["majority_prediction"]["instrument"] == "suction"
    assert b["quadrant_accuracy"] == pytest.approx(0.5)
    assert set(b) >= {"quadrant_accuracy", "coord_mae", "instrument_f1", "majority_class"}
    assert b["coord_mae"] == b["majority_class"]["coord_mae"]


def test_probe_trains_on_rendered_frames_and_reports_beside_baselines(tmp_path) -> None:
    from physio_ray.spatial.config import RenderedConfig
    from physio_ray.spatial.dataset import rendered_records
    from physio_ray.spatial.probe import ProbeConfig, run_probe
    from physio_ray.spatial.records import write_records

    records = rendered_records(tmp_path, RenderedConfig(count=30, seed=3, val_fraction=0.3))
    for kind, rows in records.items():
        for split in ("train", "val"):
            write_records([r for r in rows if r["split"] == split], kind, tmp_path, split, ["parquet"])
    out = run_probe(tmp_path, ProbeConfig(epochs=2, batch_size=8))
    assert out["n_train"] == 21 and out["probe"]["n"] == 9
    assert set(out["baselines"]) >= {"quadrant_accuracy", "coord_mae", "instrument_f1"}
    assert out["probe"]["n_coord"] == out["probe"]["n_quadrant"]
