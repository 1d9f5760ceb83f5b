"""PRM on a real local Ray: TorchTrainer with 2 gloo workers, resume on rerun, Best-of-N on Ray Data.

Two ``TorchTrainer.fit`` calls (a 2-step run, then the same run name continued to 4 steps)
and one Ray Data scoring pass, with a 1-layer text tower so the module stays near 2 minutes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from physio_ray import schemas as S
from physio_ray.config import load_config
from physio_ray.prm.config import TrainPRMConfig
from physio_ray.prm.eval_config import EvalBestOfNConfig
from physio_ray.prm.evaluate import run_eval_bestofn
from physio_ray.prm.medprm import load_medprm
from physio_ray.prm.ray_train import run_train_prm
from tests.conftest import shared_path

REPO = Path(__file__).resolve().parents[2]
MEDPRM = "medprm_samples_80.json"


@pytest.fixture(scope="module")
def trained(ray_local, tmp_path_factory) -> dict:
    medprm = str(shared_path("medprm-samples", MEDPRM))
    root = tmp_path_factory.mktemp("prm")
    base = [
        str(REPO / "configs" / "train_prm" / "ci.yaml"),
        f"data.medprm=[{medprm}]",
        f"run.storage_path={root / 'ray_train'}",
        "model.text.num_layers=1",
        "train.max_steps=2",
    ]
    first = run_train_prm(load_config(TrainPRMConfig, [*base, f"output_dir={root / 'first'}"]))
    second = run_train_prm(load_config(TrainPRMConfig, [*base, f"output_dir={root / 'second'}", "train.max_steps=4"]))
    return {"root": root, "first": first, "second": second, "medprm": medprm}


def test_two_workers_train_and_report_auc(trained) -> None:
    first = trained["first"]
    assert first.metrics["step"] == 2 and not first.metrics.get("stopped")
    report = json.loads((Path(first.output_dir) / "metrics.json").read_text())
    assert report["constant_predictor_step_auc"] == 0.5
    assert report["data"]["examples"] == {"train": 12, "val": 0, "test": 4}
    assert "test_step_auc" in report["metrics"] and report["metrics"]["test_labelled_steps"] > 0
    assert (Path(first.checkpoint) / "prm.pt").is_file() and (Path(first.output_dir) / "loss.png").is_file()


def test_rerun_with_same_name_resumes_from_checkpoint(trained) -> None:
    first, second = trained["first"], trained["second"]
    assert second.metrics["step"] == 4
    history = second.metrics["history"]
    assert [h[0] for h in history] == [1, 2, 3, 4]
    assert history[:2] == first.metrics["history"]  # steps 1-2 come from the checkpoint, not a new run
    ckpts = [p for p in (trained["root"] / "ray_train" / "prm-ci").glob("checkpoint_*") if p.is_dir()]
    assert 1 <= len(ckpts) <= 2  # keep_checkpoints=2


def test_bestofn_scores_candidates_on_ray_data(trained) -> None:
    examples = load_medprm(trained["medprm"])[:3]
    rows = []
    for ex in examples:  # two candidates per question: the real solution and a copy with another answer
        for k, (answer, correct) in enumerate([(ex.answer, ex.is_correct), ("A" if ex.answer != "A" else "B", False)]):
            rows.append(
                {
                    S.QUESTION_ID: ex.question_id,
                    S.SOLUTION_ID: f"{ex.question_id}-s{k}",
                    S.QUESTION: ex.question,
                    S.OPTIONS: ex.options,
                    S.STEPS: ex.steps if k == 0 else ex.steps[:-1],
                    S.PREDICTED_ANSWER: answer,
                    S.IS_CORRECT: bool(correct),
                    S.ERROR: None,
                }
            )
    cand = trained["root"] / "candidates"
    cand.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), cand / "part-0.parquet")
    out = trained["root"] / "eval"
    cfg = load_config(
        EvalBestOfNConfig,
        [
            str(REPO / "configs" / "eval_bestofn" / "local.yaml"),
            f"output_dir={out}",
            f"checkpoint={trained['second'].checkpoint}",
            f"data.medprm=[{trained['medprm']}]",
            "data.limit=16",
            "data.split={by: question, val_fraction: 0.0, test_fraction: 0.25, seed: 0}",
            f"candidates.solutions_dirs=[{cand}]",
            "candidates.annotated_dir=null",
            "candidates.sample_medprm=false",
            "ns=[1, 2]",
        ],
    )
    summary = run_eval_bestofn(cfg)
    table = summary.report["bestofn"]["candidates"]
    assert table["n"] == [1, 2] and table["questions"] == 3 and table["candidates"] == 6
    assert table["methods"]["oracle"][1] == pytest.approx(sum(ex.is_correct for ex in examples) / 3)
    assert summary.report["step_auc"]["steps"] > 0
    assert (out / "bestofn.json").is_file() and (out / "bestofn.png").is_file()


def test_grouped_crossval_as_a_ray_task(ray_local, tmp_path: Path) -> None:
    """jobs/crossval_prm.py's path on the shared Ray: folds by question, baselines beside the PRM."""
    from collections import defaultdict

    from physio_ray.prm.crossval_report import render_crossval, run_crossval_on_ray

    medprm = str(shared_path("medprm-samples", MEDPRM))
    cfg = load_config(
        TrainPRMConfig,
        [
            str(REPO / "configs" / "train_prm" / "ci.yaml"),
            f"data.medprm=[{medprm}]",
            "data.limit=24",
            "model.text.num_layers=1",
            f"output_dir={tmp_path}",
            "crossval.k=3",
            "crossval.epochs=2",
            "crossval.bootstrap=200",
            "crossval.variants=[prm,prm_text_only]",
        ],
    )
    out = run_crossval_on_ray(cfg)
    saved = json.loads((tmp_path / "prm_eval.json").read_text())
    assert out["path"] == str(tmp_path / "prm_eval.json") and "predictions" not in out
    assert list(saved["sources"]) == ["medprm"] and set(saved["sources"]["medprm"]) == {"prm", "prm_text_only"}
    labelled = sum(1 for ex in load_medprm(medprm)[:24] for v in ex.labels if v is not None)
    for summary in saved["sources"]["medprm"].values():
        assert set(summary["auc"]) >= {"constant", "position", "position_last", "untrained", "probe"}
        assert summary["auc"]["constant"] == 0.5 and summary["n_groups"] == 24
        assert summary["n_steps"] == len(saved["predictions"]) <= labelled
    folds = defaultdict(set)
    for p in saved["predictions"]:
        folds[p["group"]].add(p["fold"])
    assert len(folds) == 24 and all(len(f) == 1 for f in folds.values())  # a question never in two folds
    assert {len({g for g, f in folds.items() if k in f}) for k in range(3)} == {8}
    assert saved["diagnosis"]["with_states"] == 24 and render_crossval(out).startswith("grouped 3-fold")
