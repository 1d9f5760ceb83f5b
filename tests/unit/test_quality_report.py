"""The quality report: rows from each job's files, the learned rule, missing data, and the job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from physio_ray.config import load_config
from physio_ray.quality.annotate_rows import agreement_rows, pairs_from_counts
from physio_ray.quality.config import BootstrapConfig, ReportQualityConfig, SourcesConfig
from physio_ray.quality.prm_rows import prm_crossval_rows
from physio_ray.quality.registry import ROW_BUILDERS, selected_builders
from physio_ray.quality.report import build_rows, run_report_quality
from physio_ray.quality.rows import ROW_KEYS, RULES, decide, make_row
from physio_ray.registry import config_class
from physio_ray.stats import bootstrap, hanley_mcneil_interval, percentile_interval, wilson_interval

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "tests" / "assets" / "quality"
YAML = REPO / "configs" / "report_quality" / "local.yaml"


def fixture_config(tmp_path: Path, **sources: str | None) -> ReportQualityConfig:
    paths = {
        "annotate_dir": str(ASSETS / "annotate"),
        "train_prm_dir": str(ASSETS / "train_prm"),
        "eval_bestofn_dir": str(ASSETS / "eval_bestofn"),
        "spatial_dir": str(ASSETS / "spatial"),
        "clinical_dir": str(ASSETS / "clinical"),
        "policy_dir": str(ASSETS / "policy"),
        **sources,
    }
    return ReportQualityConfig(output_dir=str(tmp_path / "q"), sources=SourcesConfig(**paths), plot=False)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], dict]:
    out = build_rows(fixture_config(tmp_path_factory.mktemp("rows")))
    return {(r["component"], r["metric"], r["split"]): r for r in out}


def find(rows: dict, component: str, metric: str, split_part: str = "") -> dict:
    hits = [r for (c, m, s), r in rows.items() if c == component and m == metric and split_part in s]
    assert len(hits) == 1, (component, metric, split_part, [k for k in rows if k[0] == component])
    return hits[0]


def test_every_row_has_the_schema(rows: dict) -> None:
    for r in rows.values():
        assert set(ROW_KEYS) <= set(r), r
        assert isinstance(r["learned"], bool)
        assert r["rule"] in set(RULES)
        if r["value"] is None:
            assert r["learned"] is False and r["missing"]
        if r["ci95"] is not None:
            assert r["ci95"][0] <= r["value"] <= r["ci95"][1] or r["rule"] == "paired_bootstrap"
    assert {k[0] for k in rows} == {"judge", "measurement", "policy", "prm", "bestofn", "spatial", "clinical"}


def test_judge_rows_pin_the_demo_figures(rows: dict) -> None:
    agree = find(rows, "judge", "agreement_vs_gemini")
    assert (agree["n"], round(agree["value"], 4)) == (118, 0.9407)  # summary.json: 0.940677...
    assert agree["baselines"] == {"always_correct": pytest.approx(108 / 118)}
    assert agree["rule"] == "paired_bootstrap" and agree["learned"] is False  # gain interval touches 0
    kappa = find(rows, "judge", "kappa_vs_medprm_mc")
    assert round(kappa["value"], 4) == 0.3038 and kappa["references"] == {
        "gemini_vs_mc_hard": pytest.approx(0.6883, abs=1e-4)
    }
    recall = find(rows, "judge", "incorrect_recall_vs_gemini")
    assert recall["value"] == pytest.approx(0.3)
    assert recall["baselines"] == {"always_correct": 0.0, "random_same_flag_rate": pytest.approx(3 / 118)}
    own = find(rows, "judge", "agreement_vs_own_mc")
    assert (own["n"], round(own["value"], 4), own["learned"]) == (3, 0.3333, False)
    assert own["rule"] == "too_few_items"  # 3 steps: a bootstrap over them bounds nothing


def test_policy_rows_pin_the_fixture(rows: dict) -> None:
    acc = find(rows, "policy", "solution_accuracy")
    assert (acc["n"], acc["value"]) == (20, 0.25)
    assert acc["baselines"] == {"chance": 0.25, "majority_letter": pytest.approx(0.4)}
    assert acc["learned"] is False
    mixed = find(rows, "policy", "questions_with_correct_and_incorrect")
    assert (mixed["n"], mixed["value"]) == (5, pytest.approx(0.6))
    assert mixed["baselines"]["random_guess"] == pytest.approx(1 - 0.25**4 - 0.75**4)


def test_measurement_rows_count_the_steps(rows: dict) -> None:
    from physio_ray.annotate.measurement import NOT_CHECKABLE, check_step
    from physio_ray.quality.inputs import read_parquet

    data, _ = read_parquet(str(ASSETS / "annotate"), "annotated")
    truth = {r["video_id"]: r["ground_truth"] for r in read_parquet(str(ASSETS / "annotate"), "keyframes")[0]}
    verdicts = [
        check_step(s, r["features"], ground_truth=truth.get(r["video_id"])).verdict for r in data for s in r["steps"]
    ]
    decided = sum(v != NOT_CHECKABLE for v in verdicts)
    row = find(rows, "measurement", "checkable_steps")
    assert (row["n"], row["value"], row["rule"], row["learned"]) == (95, decided / 95, "no_baseline", False)
    judge = find(rows, "judge", "kappa_vs_measurement")
    assert judge["n"] == decided or judge["missing"]


def test_prm_crossval_rows_take_the_paired_gain_from_prm_eval(rows: dict, tmp_path: Path) -> None:
    """tests/assets/quality/train_prm/prm_eval.json is a trimmed real crossval_prm run."""
    saved = json.loads((ASSETS / "train_prm" / "prm_eval.json").read_text())
    for src, n_steps in (("physio", 151), ("medprm", 482)):
        for variant, summary in saved["sources"][src].items():
            row = find(rows, "prm", f"crossval_step_auc[{variant}]", f"{src} steps")
            assert (row["value"], row["n"], row["rule"]) == (summary["auc"][variant], n_steps, "paired_bootstrap")
            assert row["baselines"] == {
                b: summary["auc"][b] for b in ("constant", "position", "position_last", "untrained")
            }
            assert row["gain_vs"] == summary["best_baseline"]
            assert row["gain_ci95"] == summary["gain_over"][summary["best_baseline"]]["ci95"]
            assert row["learned"] is False and row["gain_ci95"][1] < 0  # the PRM loses to step position
            assert row["references"] == {"probe_on_marker_states": summary["auc"]["probe"]}
    physio = find(rows, "prm", "crossval_step_auc[prm]", "physio steps")
    assert physio["gain_vs"] == "position_last" and physio["baselines"]["position_last"] == pytest.approx(
        0.916, abs=5e-4
    )
    (gone,) = prm_crossval_rows(fixture_config(tmp_path, train_prm_dir=str(tmp_path / "nothing")))
    assert gone["value"] is None and gone["rule"] == "missing" and "prm_eval.json" in gone["missing"]


def test_prm_bestofn_spatial_clinical_rows(rows: dict) -> None:
    prm = find(rows, "prm", "step_auc", "train_prm")
    assert (prm["value"], prm["baselines"]["untrained"], prm["rule"], prm["learned"]) == (
        0.717,
        0.667,
        "no_interval",
        False,
    )
    assert "position" in prm["note"]
    bon_auc = find(rows, "prm", "step_auc", "eval_bestofn")
    assert bon_auc["learned"] is True and bon_auc["ci95"] == pytest.approx(list(hanley_mcneil_interval(0.7, 150, 50)))
    bon = find(rows, "bestofn", "accuracy_at_n4_prm_min")
    assert (bon["value"], bon["n"], bon["baselines"], bon["learned"]) == (
        0.375,
        8,
        {"random": 0.25, "majority": 0.25},
        False,
    )
    assert bon["references"] == {"oracle": 0.5}
    sft = find(rows, "spatial", "sft_quadrant_accuracy")
    assert (sft["learned"], sft["baselines"]) == (True, {"majority_class": 0.25, "untrained": 0.0})
    mae = find(rows, "spatial", "sft_coord_mae")
    assert (mae["better"], mae["learned"]) == ("lower", True)
    grpo = find(rows, "spatial", "grpo_quadrant_accuracy")
    assert grpo["value"] > grpo["baselines"]["majority_class"] and grpo["learned"] is False  # within noise
    assert find(rows, "spatial", "grpo_instrument_f1")["value"] == 0.9  # older key instrument_macro_f1
    clin = find(rows, "clinical", "sft_balanced_accuracy")
    assert (clin["value"], clin["baselines"]) == (0.5, {"majority_class": 0.5, "image_type_shortcut": 1.0})
    assert "collapsed" in clin["note"] and clin["learned"] is False
    crit = find(rows, "clinical", "sft_critical_recall")
    assert crit["value"] is None and "report.json" in crit["missing"]


def test_learned_rule_needs_the_interval_to_clear_the_best_baseline() -> None:
    within = make_row("x", "acc", "t", 30, 0.33, wilson_interval(10, 30), {"chance": 0.25, "majority": 0.30})
    assert within["value"] > 0.30 and within["learned"] is False
    clear = make_row("x", "acc", "t", 100, 0.80, wilson_interval(80, 100), {"chance": 0.25, "majority": 0.30})
    assert clear["learned"] is True
    assert decide(0.8, (0.7, 0.9), {}) == (False, "no_baseline")
    assert decide(None, None, {"c": 0.5}) == (False, "missing")
    assert decide(0.8, None, {"c": 0.5}) == (False, "no_interval")


def test_paired_rule_on_per_step_data() -> None:
    cfg = ReportQualityConfig(bootstrap=BootstrapConfig(samples=500))
    ref = np.array([1] * 60 + [0] * 40)
    good = agreement_rows("judge", "ref", "t", ref, ref.copy(), cfg)  # the judge matches the reference
    assert [r["learned"] for r in good] == [True, True, True]
    noisy = np.ones_like(ref)
    noisy[[0, 99]] = 0  # ... vs a judge that calls all but two steps correct
    weak = agreement_rows("judge", "ref", "t", ref, noisy, cfg)
    assert weak[0]["value"] == pytest.approx(0.6) and weak[0]["learned"] is False
    assert all(r["rule"] == "paired_bootstrap" for r in good + weak)


def test_pairs_from_counts_rebuild_the_table() -> None:
    summary = json.loads((ASSETS / "annotate" / "summary.json").read_text())["judge_vs_medprm"]["vs_gemini"]
    ref, pred = pairs_from_counts(summary)
    assert ref.size == 118 and ref.sum() == 108 and ((ref == 0) & (pred == 0)).sum() == 3
    assert pairs_from_counts({"n_ref_correct": 0, "n_ref_incorrect": 0}) is None


def test_missing_sources_give_rows_not_gaps(tmp_path: Path) -> None:
    empty = str(tmp_path / "nothing")
    cfg = fixture_config(tmp_path, **{k: empty for k in SourcesConfig.__dataclass_fields__})
    out = build_rows(cfg)
    assert all(builder(cfg) for builder in ROW_BUILDERS.values())  # every builder says what is missing
    assert {r["component"] for r in out} == set(ROW_BUILDERS) - {"prm_crossval", "policy_heldout"}  # PRM, policy rows
    for r in out:
        assert r["value"] is None and r["learned"] is False and r["rule"] == "missing"
        assert empty in r["missing"], r["missing"]
    unset = build_rows(fixture_config(tmp_path, clinical_dir=None))
    assert [r["missing"] for r in unset if r["component"] == "clinical"] == [
        "report.json: source folder not configured"
    ] * 3


def test_stats_helpers_are_deterministic() -> None:
    x = np.array([1.0] * 7 + [0.0] * 3)
    a = bootstrap(lambda i: [x[i].mean()], 10, 300, seed=3)
    b = bootstrap(lambda i: [x[i].mean()], 10, 300, seed=3)
    assert np.array_equal(a, b) and percentile_interval(a[:, 0])[0] < 0.7 < percentile_interval(a[:, 0])[1]
    assert hanley_mcneil_interval(0.7, 0, 5) is None


def test_unknown_component_is_an_actionable_error() -> None:
    with pytest.raises(ValueError, match="known"):
        selected_builders(["judge", "jugde"])


def test_shipped_yaml_loads_through_the_registry() -> None:
    cfg = load_config(config_class("report_quality"), [str(YAML)])
    assert cfg.sources.train_prm_dir == "outputs/train_prm-local" and cfg.components is None
    for job, key in (("annotate", "annotate_dir"), ("train_prm", "train_prm_dir"), ("eval_bestofn", "eval_bestofn_dir"),
                     ("train_spatial", "spatial_dir"), ("train_clinical", "clinical_dir")):  # fmt: skip
        assert load_config(config_class(job), [str(REPO / "configs" / job / "local.yaml")]).output_dir == getattr(
            cfg.sources, key
        )


def test_report_files(tmp_path: Path) -> None:
    cfg = fixture_config(tmp_path)
    report = run_report_quality(ReportQualityConfig(output_dir=cfg.output_dir, sources=cfg.sources, plot=True))
    data = json.loads(Path(report.paths["json"]).read_text())
    assert list(data) == ["rows"] and len(data["rows"]) == len(report.rows)
    md = Path(report.paths["markdown"]).read_text()
    assert "| spatial | sft_quadrant_accuracy |" in md and "missing:" in md
    assert Path(report.paths["png"]).stat().st_size > 1000
    again = run_report_quality(ReportQualityConfig(output_dir=str(tmp_path / "again"), sources=cfg.sources, plot=False))
    assert again.rows == report.rows  # same files, same seed, same rows


def test_job_help_and_bad_component(tmp_path: Path) -> None:
    job = str(REPO / "jobs" / "report_quality.py")
    help_text = subprocess.run([sys.executable, job, "--help"], capture_output=True, text=True, check=True).stdout
    assert "quality.json" in help_text and "configs/report_quality/local.yaml" in help_text
    bad = subprocess.run(
        [sys.executable, job, str(YAML), f"output_dir={tmp_path}", "components=[nope]"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "no row builder" in bad.stderr


def test_policy_heldout_rows_pair_the_policy_with_its_baselines(tmp_path: Path) -> None:
    """tests/assets/quality/policy/policy_eval.json is the shipped adapter's evaluation (history trimmed)."""
    from physio_ray.quality.policy_rows import policy_heldout_rows

    saved = json.loads((ASSETS / "policy" / "policy_eval.json").read_text())
    acc, mixed = policy_heldout_rows(fixture_config(tmp_path, policy_dir=str(ASSETS / "policy")))
    table = saved["per_question"]
    assert acc["n"] == sum(len(q["trained"]) for q in table.values()) == saved["policy"]["n_solutions"]
    assert acc["value"] == pytest.approx(saved["policy"]["accuracy"], abs=1e-4)
    assert acc["baselines"]["untrained"] == pytest.approx(saved["baselines"]["untrained"]["accuracy"], abs=1e-4)
    for name in ("majority_letter", "template_prior"):
        assert acc["baselines"][name] == pytest.approx(saved["baselines"][name]["accuracy"], abs=1e-4)
    assert acc["rule"] == "paired_bootstrap" and "uiprmd-s09" in acc["split"]
    assert mixed["n"] == len(table) and mixed["value"] == pytest.approx(saved["policy"]["mixed"], abs=1e-4)
    gone = policy_heldout_rows(fixture_config(tmp_path, policy_dir=str(tmp_path / "nothing")))
    assert all(r["rule"] == "missing" and "policy_eval.json" in r["missing"] for r in gone)
