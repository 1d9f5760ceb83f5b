"""Spatial metrics: pinned figures on a small hand-made set, F1 checked against scikit-learn."""

from __future__ import annotations

import pytest
from sklearn.metrics import f1_score

from physio_ray.spatial.metrics import instrument_f1, render_markdown, spatial_metrics

TARGETS = [
    {"instrument": "suction", "position_class": 2},
    {"instrument": "suction", "position_class": 3},
    {"instrument": "kerrisons", "position_class": 3},
    {"instrument": "ring_curette", "position_class": 1},
    {"instrument": "no_visible_instrument", "position_class": None},
    {"instrument": "no_visible_instrument", "position_class": None},
]
PREDICTIONS = [
    "<point x='80' y='10'>suction</point>",  # class 2, inside, right
    "<point x='50' y='50'>kerrisons</point>",  # class 3, inside, wrong instrument
    "<point x='90' y='90'>kerrisons</point>",  # class 5: 15*sqrt(2) from the centre box
    "garbage",  # unparsed
    "No surgical instrument is visible in this frame.",
    "<point x='50' y='50'>suction</point>",  # point on a "none" frame
]


def test_pinned_metrics() -> None:
    m = spatial_metrics(PREDICTIONS, TARGETS)
    assert (m["n"], m["n_instrument_targets"], m["n_none_targets"]) == (6, 4, 2)
    assert m["parse_rate"] == 0.75
    assert m["quadrant_accuracy"] == 0.5
    assert m["within_region_rate"] == 0.5
    assert m["mean_distance_to_region"] == pytest.approx(15 * 2**0.5 / 3)
    # |80-79.1667|+|10-20.8333| ; 0 ; |90-50|+|90-50|  (halved: mean over x and y)
    assert m["coord_mae_to_region_centre"] == pytest.approx(((0.8333 + 10.8333) / 2 + 0 + 40) / 3, abs=1e-3)
    assert "centroid" in m["coord_mae_caveat"]
    assert m["none_accuracy"] == 0.5
    assert m["mean_reward"] == pytest.approx((1.0 + 0.7 + (0.5 * (1 - 15 * 2**0.5 / 50) + 0.3) + 0 + 1 + 0) / 6)
    assert m["per_class"]["3"] == {
        "region": "centre",
        "n": 2,
        "parse_rate": 1.0,
        "quadrant_accuracy": 0.5,
        "within_region_rate": 0.5,
        "mean_distance_to_region": pytest.approx(15 * 2**0.5 / 2),
        "coord_mae_to_region_centre": pytest.approx(20.0),
    }
    assert m["per_class"]["4"]["n"] == 0 and m["per_class"]["4"]["quadrant_accuracy"] is None
    assert m["per_instrument"]["suction"]["support"] == 2


def test_macro_f1_matches_sklearn() -> None:
    m = spatial_metrics(PREDICTIONS, TARGETS)
    y_true = ["suction", "suction", "kerrisons", "ring_curette", "no_visible_instrument", "no_visible_instrument"]
    y_pred = ["suction", "kerrisons", "kerrisons", "<unparsed>", "no_visible_instrument", "suction"]
    expected = f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0)
    assert m["instrument_macro_f1"] == pytest.approx(expected)
    assert instrument_f1(y_true, y_pred)[0] == pytest.approx(expected)


def test_perfect_answers() -> None:
    preds = ["<point x='80' y='10'>suction</point>", "<point x='50' y='60'>kerrisons</point>", "None"]
    targets = [TARGETS[0], TARGETS[2], TARGETS[4]]
    m = spatial_metrics(preds, targets)
    assert m["quadrant_accuracy"] == m["instrument_macro_f1"] == m["none_accuracy"] == m["mean_reward"] == 1.0
    assert m["mean_distance_to_region"] == 0.0


def test_markdown_tables() -> None:
    md = render_markdown(spatial_metrics(PREDICTIONS, TARGETS))
    assert "| quadrant_accuracy | 0.500 |" in md
    assert "| 3 | centre | 2 | 1.000 | 0.500 | 0.500 | 10.607 | 20.000 |" in md
    assert "| 4 | bottom-left | 0 | - |" in md
    assert "| suction | 0.500 | 0.500 | 0.500 | 2 |" in md


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        spatial_metrics(["a", "b"], TARGETS[:1])
