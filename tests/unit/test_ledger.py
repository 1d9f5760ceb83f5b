"""Cost ledger: per-stage sums, dollars, annotation mix and the cluster projection."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.config import ExportConfig
from physio_ray.annotate.ledger import CostLedger, annotation_mix


def _cost(calls: int, tin: int, tout: int, secs: float, rolls: int = 0) -> dict:
    return {
        S.COST_CALLS: calls,
        S.COST_TOKENS_IN: tin,
        S.COST_TOKENS_OUT: tout,
        S.COST_SECONDS: secs,
        S.COST_ROLLOUTS: rolls,
    }


def _frames() -> dict[str, pd.DataFrame]:
    return {
        "keyframes": pd.DataFrame([{S.VIDEO_ID: "v1"}]),  # no cost columns: skipped
        "solutions": pd.DataFrame([_cost(1, 100, 400, 30.0), _cost(1, 100, 300, 30.0)]),
        "judged": pd.DataFrame([_cost(1, 2000, 100, 2.0), {**_cost(1, 1000, 0, 1.0), S.ERROR: "parse"}]),
        "annotated": pd.DataFrame(
            [
                {
                    **_cost(3, 300, 120, 90.0, 12),
                    S.ANNOTATION_METHOD: ["rag", "mc_0.50", "mc_0.00"],
                    S.MC_ROLLOUTS: [0, 4, 8],
                },
                {**_cost(0, 0, 0, 0.0, 0), S.ANNOTATION_METHOD: ["solution", "rag"], S.MC_ROLLOUTS: [0, 0]},
                {**_cost(0, 0, 0, 0.0, 0), S.ANNOTATION_METHOD: None, S.MC_ROLLOUTS: None},  # an error row
            ]
        ),
    }


CFG = ExportConfig(
    price_per_mtok_in={"judged": 0.30, "annotated": 0.0},
    price_per_mtok_out={"judged": 2.50},
    price_per_gpu_hour=3.6,
    projection_solutions=40_000,
)


def test_stage_sums_and_dollars_by_hand() -> None:
    ledger = CostLedger.from_stage_frames(_frames(), CFG)
    by = {s.stage: s for s in ledger.stages}
    assert list(by) == ["solutions", "judged", "annotated"]
    assert ledger.n_solutions == 2
    j = by["judged"]
    assert (j.rows, j.calls, j.tokens_in, j.tokens_out, j.seconds, j.api_priced) == (2, 2, 3000, 100, 3.0, True)
    assert j.usd == pytest.approx(3000 / 1e6 * 0.30 + 100 / 1e6 * 2.50)  # 0.00115
    a = by["annotated"]  # 0 $/Mtok means self-hosted: priced by the GPU hour
    assert (a.calls, a.rollouts, a.seconds, a.api_priced) == (3, 12, 90.0, False)
    assert a.usd == pytest.approx(90 / 3600 * 3.6)  # 0.09
    assert by["solutions"].usd == pytest.approx(60 / 3600 * 3.6)  # 0.06
    assert ledger.total_usd == pytest.approx(0.15115)


def test_annotation_mix_by_hand() -> None:
    mix = annotation_mix(_frames()["annotated"])
    assert mix == {
        "steps": 5,
        "measurement": 0,
        "rag": 2,
        "mc": 2,
        "mc_reuse": 0,
        "solution": 1,
        "mc_share": 0.6,
        "rollouts_per_mc_step": 4.0,
    }


def test_projection_scales_per_solution_figures() -> None:
    ledger = CostLedger.from_stage_frames(_frames(), CFG)
    p = ledger.projection(gpu_speedup=10.0)
    assert (p.solutions, p.scale, p.gpu_speedup) == (40_000, 20_000.0, 10.0)
    by = {r["stage"]: r for r in p.stages}
    assert by["judged"]["tokens_in"] == 60_000_000 and by["judged"]["gpu_hours"] == 0.0
    assert by["judged"]["usd"] == pytest.approx(0.00115 * 20_000)  # 23.0
    assert by["annotated"]["rollouts"] == 240_000
    assert by["annotated"]["gpu_hours"] == pytest.approx(90 * 20_000 / 10 / 3600)  # 50 h
    assert by["annotated"]["usd"] == pytest.approx(50 * 3.6)
    assert p.total_usd == pytest.approx(23.0 + 180.0 + 120.0)
    assert any("60.0% of steps" in a for a in p.assumptions)
    assert any("/ 10 (GPU speedup)" in a for a in p.assumptions)
    with pytest.raises(ValueError, match="gpu_speedup"):
        ledger.projection(gpu_speedup=0)


def test_render_and_json(tmp_path: Path) -> None:
    ledger = CostLedger.from_stage_frames(_frames(), CFG)
    text = ledger.render(gpu_speedup=10.0)
    lines = text.splitlines()
    assert lines[0] == "Cost ledger: 2 solutions"
    row = next(line for line in lines if line.startswith("judged"))
    assert row.split() == ["judged", "2", "2", "3000", "100", "0", "3.0", "0.0011", "tokens"]
    assert "MC share 60.0%" in text and "Projection to 40000 solutions (x20000.0, GPU speedup 10)" in text
    assert text.splitlines()[-1].startswith("  - API-priced stages")
    path = ledger.to_json(tmp_path / "ledger.json", gpu_speedup=10.0)
    data = json.loads(path.read_text())
    assert data["solutions"] == 2 and data["total_usd"] == pytest.approx(0.15115)
    assert data["projection"]["total_usd"] == pytest.approx(323.0)
    assert data["annotation_mix"]["solution"] == 1


def test_explicit_solution_count_and_empty_run() -> None:
    assert CostLedger.from_stage_frames(_frames(), CFG, n_solutions=4).projection().scale == 10_000.0
    empty = CostLedger.from_stage_frames({}, CFG)
    assert empty.stages == [] and empty.total_usd == 0.0 and empty.projection().stages == []
    assert "Cost ledger: 0 solutions" in empty.render()
