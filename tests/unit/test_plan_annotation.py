"""The 40K-solution plan from a measured run (issue 16 step 3): pinned figures, refusals, plan.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from physio_ray.annotate.config import AnnotateConfig
from physio_ray.annotate.plan import plan_annotation
from physio_ray.annotate.plan_config import (
    FIGURE_NOTES,
    Figures,
    LedgerError,
    PlanAnnotationConfig,
    measured_figures,
    read_run,
)
from physio_ray.cluster import load_cluster
from physio_ray.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "configs/plan_annotation/measured_run"
CONFIG = str(REPO / "configs/plan_annotation/local.yaml")
ACTORS = {"poses": 1, "keyframes": 1, "questions": 1}


def _cfg(*overrides: str) -> PlanAnnotationConfig:
    base = [
        f"run_dir={RUN}",
        f"annotate_config={REPO / 'configs/annotate/cluster.yaml'}",
        f"cluster_yaml={REPO / 'cluster.yaml'}",
    ]
    return load_config(PlanAnnotationConfig, [CONFIG, *base, *overrides])


def _plan(cfg: PlanAnnotationConfig) -> tuple[Any, list[dict[str, Any]], Figures]:
    ledger, summary = read_run(cfg.run_dir)
    fig = measured_figures(ledger, summary, ACTORS, Figures.assumed(cfg.assumptions), cfg.run_dir)
    job = load_config(AnnotateConfig, [cfg.annotate_config])
    plan, sens = plan_annotation(fig, job, cfg, load_cluster(cfg.cluster_yaml))
    return plan, sens, fig


def test_measured_figures_of_the_fixture_run() -> None:
    _, _, fig = _plan(_cfg())
    assert fig.poses_s_per_recording == pytest.approx(0.599626, rel=1e-5)
    assert fig.solutions_per_question == 4.0 and fig.questions_per_recording == 1.0
    assert fig.solution_tokens_in == pytest.approx(104.05) and fig.solution_tokens_out == pytest.approx(65.6)
    assert fig.judge_tokens_in == pytest.approx(710.05)
    assert fig.mc_rollouts_per_solution == pytest.approx(0.8)
    assert "judge_tokens_out" not in fig.measured  # the local judge wrote no tokens: the assumption stays
    assert fig.judge_tokens_out == 300.0


def test_plan_numbers_are_pinned() -> None:
    plan, _, _ = _plan(_cfg())
    assert plan.wall_hours == pytest.approx(4.857741, rel=1e-5)
    assert plan.dollars == pytest.approx(53.984426, rel=1e-5)
    assert plan.breakdown["api"] == pytest.approx(38.5206, rel=1e-6)
    p = plan.per_phase
    assert list(p) == ["poses", "keyframes", "questions", "solutions", "judged", "annotated"]
    assert [p[n]["items"] for n in p] == [10000, 10000, 10000, 10000, 40000, 32000]
    assert [p[n]["peak_nodes"] for n in p] == [2, 2, 2, 8, 1, 8]
    assert p["solutions"]["group"] == "gpu_sampling" and p["poses"]["group"] == "cpu_pose"
    assert p["judged"]["wall_hours"] == pytest.approx(3.569444, rel=1e-5)
    assert p["solutions"]["dollars"] == pytest.approx(4.749929, rel=1e-5)
    assert p["judged"]["seed_dollars"] == 2500.0
    assert all(0 < p[n]["utilisation"] <= 1 for n in p)


def test_plan_is_deterministic_and_scales() -> None:
    a, _, _ = _plan(_cfg())
    b, _, _ = _plan(_cfg())
    assert a == b
    small, _, _ = _plan(_cfg("solutions=4000"))
    assert small.wall_hours < a.wall_hours and small.dollars < a.dollars


def test_sensitivity_covers_every_figure() -> None:
    _, rows, _ = _plan(_cfg())
    by = {r["figure"]: r for r in rows}
    assert set(by) == set(FIGURE_NOTES)
    assert by["decode_tokens_per_s"]["kind"] == "assumption" and by["poses_s_per_recording"]["kind"] == "measured"
    assert by["decode_tokens_per_s"]["wall_hours_x2"] < 0 < by["decode_tokens_per_s"]["wall_hours_half"]
    assert by["api_latency_s"]["wall_hours_x2"] > 0.5  # the judge is latency-bound


def test_ledger_without_needed_figures_is_refused_naming_them(tmp_path: Path) -> None:
    ledger, summary = read_run(RUN)
    ledger["stages"] = [s for s in ledger["stages"] if s["stage"] != "annotated"]
    summary["stages_run"] = [r for r in summary["stages_run"] if r["name"] != "poses"]
    with pytest.raises(LedgerError) as err:
        measured_figures(ledger, summary, ACTORS, Figures(), str(tmp_path))
    text = str(err.value)
    assert "cost_ledger.json: stage 'annotated'" in text and "rollouts" in text
    assert "summary.json: stages_run[poses]" in text
    assert len(err.value.missing) == 2


def test_plan_config_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="solution"):
        load_config(PlanAnnotationConfig, [CONFIG, "soluti0ns=3"])


def _job(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(REPO / "jobs/plan_annotation.py"), CONFIG, f"output_dir={tmp_path}", "plot=false"]
    return subprocess.run([*cmd, *overrides], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_job_writes_plan_json(tmp_path: Path) -> None:
    res = _job(tmp_path, f"run_dir={RUN}", "solutions=40000")
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "plan.json").read_text())
    for key in ("wall_hours", "dollars", "per_phase", "assumptions"):
        assert key in data
    assert data["wall_hours"] == pytest.approx(4.857741, rel=1e-5)
    assert set(data["assumptions"]) >= {"measured", "assumed", "sensitivity"}
    assert "not measured" in data["assumptions"]["assumed"]["decode_tokens_per_s"]["source"]
    assert "3520" in res.stdout


def test_job_refuses_a_run_dir_without_a_ledger(tmp_path: Path) -> None:
    assert "does not exist" in _job(tmp_path, f"run_dir={tmp_path / 'nothing'}").stderr
    (tmp_path / "empty").mkdir()
    res = _job(tmp_path, f"run_dir={tmp_path / 'empty'}")
    assert res.returncode == 1
    assert "cost_ledger.json: stage 'solutions'" in res.stderr and "summary.json" in res.stderr
