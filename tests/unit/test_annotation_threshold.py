"""The threshold objective (pure), the Med-PRM step records, and writing the winner into YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from physio_ray.annotate.config import AnnotateConfig
from physio_ray.config import load_config
from physio_ray.tune.annotation_threshold import (
    StepRecord,
    best_threshold,
    judge_confidence_proxy,
    objective,
    steps_from_medprm,
    write_threshold_yaml,
)
from tests.conftest import REPO, shared_path

ROWS = [
    StepRecord(1, 0.9, 1),  # confident and right
    StepRecord(0, 0.8, 1),  # confident and wrong
    StepRecord(1, 0.6, 0),  # unsure and wrong
    StepRecord(None, 0.0, 0),  # abstained: always MC
]


@pytest.mark.parametrize(
    ("t", "frac", "agree"),
    [(0.0, 0.25, 0.5), (0.7, 0.5, 0.75), (0.85, 0.75, 1.0), (0.95, 1.0, 1.0)],
)
def test_objective_by_hand(t: float, frac: float, agree: float) -> None:
    res = objective(t, ROWS, cost_weight=0.2)
    assert res == {
        "threshold": t,
        "mc_cost_fraction": frac,
        "agreement": agree,
        "objective": pytest.approx(agree - 0.2 * frac),
        "n_steps": 4,
    }


def test_objective_needs_rows() -> None:
    with pytest.raises(ValueError, match="no labelled steps"):
        objective(0.5, [], 0.1)


def test_best_threshold_breaks_ties_by_cost_then_threshold() -> None:
    res = [objective(t, ROWS, 0.2) for t in (0.0, 0.7, 0.85, 0.95)]
    # objectives: 0.45, 0.65, 0.85, 0.8
    assert best_threshold(res)["threshold"] == 0.85
    tied = [
        {"threshold": 0.9, "mc_cost_fraction": 0.5, "objective": 0.8},
        {"threshold": 0.6, "mc_cost_fraction": 0.5, "objective": 0.8},
        {"threshold": 0.3, "mc_cost_fraction": 0.7, "objective": 0.8},
    ]
    assert best_threshold(tied)["threshold"] == 0.6
    with pytest.raises(ValueError, match="no sweep results"):
        best_threshold([])


def test_medprm_steps_and_sweep_figures() -> None:
    records = json.loads(shared_path("medprm-samples", "medprm_samples_80.json").read_text())
    steps, skipped = steps_from_medprm(records)
    assert (len(steps), skipped) == (482, 0)
    assert judge_confidence_proxy(1, 1, 0, 5) == 0.9 and judge_confidence_proxy(0, 1, 2, 5) == 0.5
    at0 = objective(0.0, steps, 0.1)
    assert at0["mc_cost_fraction"] == 0.0 and at0["agreement"] == pytest.approx(436 / 482)  # Gemini vs MC: 90.5%
    at7 = objective(0.7, steps, 0.1)  # judge disagreements (38 steps) go to MC
    assert (round(at7["mc_cost_fraction"] * 482), round(at7["agreement"] * 482)) == (38, 453)
    assert objective(0.95, steps, 0.1)["agreement"] == 1.0
    best = best_threshold([objective(t, steps, 0.1) for t in (0.0, 0.5, 0.6, 0.7, 0.85, 0.9, 0.95)])
    assert best["threshold"] == 0.6  # ties with 0.7; the lower threshold wins
    mismatched = [dict(records[0], prm_gemini_label=records[0]["prm_gemini_label"] * 2)]
    assert steps_from_medprm(mismatched) == ([], 1)


BLOCK = """\
# Run: python jobs/annotate.py this.yaml
output_dir: outputs/x
judge:
  backend: local   # SmolLM2
  # the knob the sweep tunes:
  confidence_threshold: 0.7   # keep this comment
  top_k: 3
montecarlo: {max_rollouts: 8, batch: 4}
"""


def test_write_threshold_yaml_block_keeps_comments(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BLOCK, encoding="utf-8")
    out = write_threshold_yaml(tmp_path / "tuned" / "t.yaml", base, 0.55)
    assert out.read_text(encoding="utf-8") == BLOCK.replace("threshold: 0.7   #", "threshold: 0.55   #")
    assert base.read_text(encoding="utf-8") == BLOCK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "judge: {backend: local, confidence_threshold: 0.7}  # c\n",
            "judge: {backend: local, confidence_threshold: 0.6}  # c\n",
        ),
        ("judge: {backend: local}\n", "judge: {confidence_threshold: 0.6, backend: local}\n"),
        (
            "# top\njudge:\n    backend: local\nx: 1\n",
            "# top\njudge:\n    confidence_threshold: 0.6\n    backend: local\nx: 1\n",
        ),
        ("output_dir: o  # c\n", "output_dir: o  # c\njudge:\n  confidence_threshold: 0.6\n"),
    ],
)
def test_write_threshold_yaml_other_layouts(tmp_path: Path, text: str, expected: str) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(text, encoding="utf-8")
    assert write_threshold_yaml(tmp_path / "t.yaml", base, 0.6).read_text(encoding="utf-8") == expected


def test_write_threshold_yaml_falls_back_to_reserialising(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text('{"judge": {"confidence_threshold": 0.7}, "x": 1}\n', encoding="utf-8")  # JSON-style YAML
    out = write_threshold_yaml(tmp_path / "t.yaml", base, 0.6)
    assert yaml.safe_load(out.read_text()) == {"judge": {"confidence_threshold": 0.6}, "x": 1}
    with pytest.raises(ValueError, match="must be in"):
        write_threshold_yaml(tmp_path / "t.yaml", base, 1.5)


def test_write_threshold_yaml_on_the_real_local_config(tmp_path: Path) -> None:
    base = REPO / "configs" / "annotate" / "local.yaml"
    if not base.exists():
        pytest.skip("configs/annotate/local.yaml not written yet")
    out = write_threshold_yaml(tmp_path / "local-tuned.yaml", base, 0.6)
    old, new = base.read_text(encoding="utf-8").splitlines(), out.read_text(encoding="utf-8").splitlines()
    assert len(old) == len(new) and sum(a != b for a, b in zip(old, new, strict=True)) == 1
    cfg = load_config(AnnotateConfig, [str(out)])
    assert cfg.judge.confidence_threshold == 0.6


def test_sweep_config_validation_and_shipped_yaml() -> None:
    from physio_ray.tune.annotation_threshold import SweepAnnotationConfig

    cfg = load_config(SweepAnnotationConfig, [str(REPO / "configs" / "sweep_annotation" / "local.yaml"), "limit=5"])
    assert cfg.limit == 5 and cfg.judge.top_k == 0 and cfg.medprm_judge == "local"
    with pytest.raises(ValueError, match="thresholds"):
        SweepAnnotationConfig(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="annotated_dir"):
        SweepAnnotationConfig(source="annotated")


def test_steps_from_judged_and_from_an_annotated_run(tmp_path: Path) -> None:
    import pandas as pd

    from physio_ray import schemas as S
    from physio_ray.annotate.stage_io import StageStore
    from physio_ray.tune.annotation_sweep import steps_from_annotated, steps_from_judged

    assert steps_from_judged([[1, None, 0]], [[0.9, 0.0, 0.6]], [[1, 0]]) == [
        StepRecord(1, 0.9, 1),
        StepRecord(None, 0.0, 0),
    ]
    frame = pd.DataFrame(
        {
            S.SOLUTION_ID: ["a", "b", "c"],
            S.JUDGE_LABELS: [[1, 0, None], [1], [1]],
            S.JUDGE_CONFIDENCES: [[0.9, 0.6, 0.0], [0.8], [0.9]],
            S.MC_SCORES: [[None, 0.25, 0.0], [None], [0.5]],
            S.ERROR: [None, None, "boom"],
        }
    )
    StageStore(str(tmp_path), "annotated").write_part(frame)
    assert steps_from_annotated(str(tmp_path)) == [StepRecord(0, 0.6, 1), StepRecord(None, 0.0, 0)]
    with pytest.raises(FileNotFoundError, match="annotated"):
        steps_from_annotated(str(tmp_path / "empty"))
