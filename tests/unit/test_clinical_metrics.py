"""Metrics, the image_type shortcut baseline and the markdown table, on the real scenarios."""

from __future__ import annotations

import math

import pytest

from physio_ray.clinical.baseline import (
    bag_of_words_predictions,
    compare_with_shortcut,
    report_with_shortcut,
    shortcut_predictions,
    shortcut_verdict,
)
from physio_ray.clinical.data import load_clinical_dataset
from physio_ray.clinical.metrics import compute_metrics, evaluate_folds, metrics_dict, render_markdown
from physio_ray.clinical.records import ClinicalDataset
from physio_ray.clinical.splits import Fold, grouped_kfold
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def ds() -> ClinicalDataset:
    return load_clinical_dataset(shared_path("medbilldozer-clinical"))


def _medgemma_like(ds: ClinicalDataset) -> dict[str, str]:
    """Predictions with the upstream MedGemma pattern: TP xray 3/3, histo 0/3, mri 3/3, US 2/3;
    TN xray 2/3, others 3/3 (seed: 79.17%)."""
    preds = {s.id: s.expected_determination for s in ds.select("treatment_matching")}
    for s in ds.select("treatment_matching", "histopathology"):
        if s.label == "ERROR":
            preds[s.id] = "CORRECT - Treatment matches imaging findings"
    preds["clinical_019"] = "CORRECT"  # one ultrasound error missed (moderate)
    preds["clinical_004"] = "ERROR"  # one x-ray false alarm
    return preds


def test_reproduces_the_seed_baseline(ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching")
    preds = _medgemma_like(ds)
    m = compute_metrics([preds[s.id] for s in tm], tm)
    assert m.accuracy == pytest.approx(19 / 24)  # 79.17 %
    assert m.tp_rate == pytest.approx(8 / 12)
    assert m.tn_rate == pytest.approx(11 / 12)
    assert m.missed_critical == 3  # the three histopathology criticals
    assert (m.missed_errors, m.false_alarms, m.unparseable) == (4, 1, 0)
    # caught 6.5 + 8.5 + 5.5, missed -9 - 1.5, validated 16.5, false alarm -2
    assert m.mean_reward == pytest.approx(24.5 / 24)
    assert metrics_dict(m)["n"] == 24


def test_unparseable_counts_as_wrong_and_missed(ds: ClinicalDataset) -> None:
    s = ds.by_id()["clinical_007"]  # critical error case
    m = compute_metrics(["INCORRECT"], [s])
    assert (m.accuracy, m.tp_rate, m.missed_critical, m.unparseable, m.mean_reward) == (0.0, 0.0, 1, 1, -3.0)
    assert math.isnan(m.tn_rate)
    with pytest.raises(ValueError, match="predictions"):
        compute_metrics(["ERROR"], [])


def test_shortcut_is_perfect_on_treatment_and_not_on_icd(ds: ClinicalDataset) -> None:
    tm, icd = ds.select("treatment_matching"), ds.select("icd_coding")
    sp = shortcut_predictions(ds.scenarios)
    m_tm = compute_metrics([sp[s.id] for s in tm], tm)
    m_icd = compute_metrics([sp[s.id] for s in icd], icd)
    assert (m_tm.accuracy, m_tm.missed_critical, m_tm.mean_reward) == (1.0, 0, pytest.approx(49.5 / 24))
    assert m_icd.accuracy == pytest.approx(21 / 24)
    assert shortcut_verdict(ds.by_id()["icd_006"]) == "ERROR"  # negative image, correct code
    assert shortcut_verdict({"image_type": "positive"}) == "CORRECT"
    with pytest.raises(ValueError, match="image_type"):
        shortcut_verdict({"image_type": "unknown"})


def test_folds_and_pooled(ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching")
    folds = grouped_kfold(tm, 3, images=ds.images)
    model, base = compare_with_shortcut(_medgemma_like(ds), tm, folds, predictor="medgemma-like")
    assert [n for n, _ in model.folds] == ["fold0", "fold1", "fold2"]
    assert sum(m.n for _, m in model.folds) == model.pooled.n == 24
    assert model.pooled.accuracy == pytest.approx(19 / 24)
    assert sum(m.missed_critical for _, m in model.folds) == model.pooled.missed_critical == 3
    assert base.pooled.accuracy == 1.0 and base.predictor == "shortcut"
    mean, sd = model.fold_mean("accuracy")
    assert mean == pytest.approx(19 / 24) and sd >= 0
    with pytest.raises(ValueError, match="no prediction"):
        evaluate_folds({}, tm, folds)


def test_markdown_table(ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching")
    folds = grouped_kfold(tm, 3, images=ds.images)
    text = report_with_shortcut(_medgemma_like(ds), tm, folds, predictor="medgemma-like", title="treatment matching")
    lines = text.splitlines()
    assert lines[0] == "### treatment matching"
    assert "Cells: medgemma-like / shortcut." in text
    assert "| fold | n | accuracy | TP rate | TN rate | mean reward | missed critical | unparseable |" in text
    pooled = next(line for line in lines if line.startswith("| **pooled**"))
    assert "| 24 | 0.792 / 1.000 | 0.667 / 1.000 | 0.917 / 1.000 | +1.021 / +2.062 | 3 / 0 | 0 / 0 |" in pooled
    assert sum(line.startswith("| fold") for line in lines) == 5  # header, 3 folds, mean±sd


def test_render_refuses_mismatched_folds(ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching")
    sp = shortcut_predictions(tm)
    a = evaluate_folds(sp, tm, grouped_kfold(tm, 3, images=ds.images))
    ids = tuple(s.id for s in tm)
    b = evaluate_folds(sp, tm, [Fold(0, "all", (), ids)])
    with pytest.raises(ValueError, match="same folds"):
        render_markdown([a, b])
    single = render_markdown([b])
    assert "mean±sd" not in single and "n/a" not in single


def test_pooled_figures_and_report_baselines(ds: ClinicalDataset) -> None:
    from physio_ray.clinical.evaluate import build_report

    tm = ds.select("treatment_matching")
    preds = _medgemma_like(ds)
    m = compute_metrics([preds[s.id] for s in tm], tm)
    assert m.balanced_accuracy == pytest.approx((8 / 12 + 11 / 12) / 2)
    assert m.n_critical > 0 and m.critical_recall == pytest.approx(1 - 3 / m.n_critical)
    assert m.false_alarm_rate == pytest.approx(1 / 12)
    assert m.predicted_label_counts == {"ERROR": 8 + 1, "CORRECT": 24 - 9, "unparseable": 0}
    folds = grouped_kfold(tm, 3, images=ds.images)
    collapsed = {s.id: "CORRECT" for s in tm}
    report, md = build_report({"sft": collapsed, "sft+grpo": preds}, tm, folds)
    assert report["predictor"] == "sft+grpo"
    pooled = report["pooled"]
    assert {"accuracy", "balanced_accuracy", "critical_recall", "predicted_label_counts"} <= set(pooled)
    assert pooled["accuracy"] == pytest.approx(19 / 24) and pooled["critical_recall"] == m.critical_recall
    assert report["pooled_by_predictor"]["sft"]["predicted_label_counts"] == {
        "ERROR": 0,
        "CORRECT": 24,
        "unparseable": 0,
    }
    assert report["pooled_by_predictor"]["sft"]["balanced_accuracy"] == 0.5
    baselines = report["baselines"]
    assert baselines["image_type_shortcut"]["pooled"]["accuracy"] == 1.0
    majority = baselines["majority_class"]["pooled"]
    assert majority["balanced_accuracy"] == 0.5 and sum(majority["predicted_label_counts"].values()) == 24
    assert [r["predictor"] for r in report["results"]] == ["sft", "sft+grpo", "shortcut"]
    assert "majority_class" in md and "text_bag_of_words" in md
    assert baselines["text_bag_of_words"]["pooled"]["n"] == 24


def test_bag_of_words_baseline_reads_the_finding(ds: ClinicalDataset) -> None:
    """The text-only baseline on the job's folds (3 image-grouped, seed 0), pinned (deterministic).

    It is fitted per fold on 16 training scenarios and misses one of 24 test scenarios: the words
    "normal", "no", "benign" carry the label; the image type is never read.
    """
    tm = ds.select("treatment_matching")
    folds = grouped_kfold(tm, 3, seed=0, images=ds.images)
    preds = bag_of_words_predictions(tm, folds)
    assert sorted(preds) == sorted(s.id for s in tm)
    m = compute_metrics([preds[s.id] for s in tm], tm)
    assert (m.accuracy, m.critical_recall, m.false_alarm_rate) == (pytest.approx(23 / 24), 1.0, 0.0)
    # with the finding words removed the text says nothing about the label
    blind = [{**s.raw, "clinical_finding": "", "id": s.id} for s in tm]
    m_blind = compute_metrics([bag_of_words_predictions(blind, folds)[s.id] for s in tm], tm)
    assert m_blind.accuracy < m.accuracy
