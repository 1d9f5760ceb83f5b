"""The whole annotation chain on the smoke config, on one shared local Ray: outputs, schema,
exports, then resume after a simulated kill (no duplicates, nothing redone)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.config import AnnotateConfig
from physio_ray.annotate.stage_io import StageStore
from physio_ray.annotate.stages import STAGE_NAMES
from physio_ray.annotate.summary import render_summary
from physio_ray.config import load_config
from tests.conftest import REPO, shared_path


@pytest.fixture(scope="module")
def smoke(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[AnnotateConfig, dict]:
    from physio_ray.annotate.pipeline import run_annotation

    uiprmd = shared_path("ui-prmd")
    out = tmp_path_factory.mktemp("annotate-smoke")
    cfg = load_config(
        AnnotateConfig,
        [str(REPO / "configs/annotate/smoke.yaml"), f"output_dir={out}", f"sources.uiprmd_dir={uiprmd}"],
    )
    return cfg, run_annotation(cfg)


def test_every_stage_writes_rows_and_exports_exist(smoke: tuple[AnnotateConfig, dict]) -> None:
    cfg, summary = smoke
    out = Path(cfg.output_dir)
    for stage in STAGE_NAMES:
        assert StageStore(cfg.output_dir, stage).is_complete(), stage
    annotated = StageStore(cfg.output_dir, "annotated").read()
    assert len(annotated) >= 1
    for name in ("appendix.json", "medprm_train.json", "cost_ledger.json", "summary.json"):
        assert (out / name).is_file(), name
    appendix = json.loads((out / "appendix.json").read_text())
    assert appendix, "appendix export is empty"
    ledger = json.loads((out / "cost_ledger.json").read_text())
    assert "solutions" in json.dumps(ledger)
    assert [r["name"] for r in summary["stages_run"]] == list(STAGE_NAMES)


def test_annotated_rows_keep_their_contract(smoke: tuple[AnnotateConfig, dict]) -> None:
    cfg, summary = smoke
    annotated = StageStore(cfg.output_dir, "annotated").read()
    solutions = StageStore(cfg.output_dir, "solutions").read()
    questions = StageStore(cfg.output_dir, "questions").read()
    # 2 recordings x 1 question x 2 solutions in the smoke config
    assert len(questions) == 2 and len(solutions) == 4
    assert solutions[S.SOLUTION_ID].is_unique
    fine = annotated[annotated[S.ERROR].isna()]
    for row in fine.itertuples():
        steps = list(row.steps)
        assert steps and all(s.endswith(S.STEP_MARKER) and s.count(S.STEP_MARKER) == 1 for s in steps)
        assert len(row.labels) == len(steps) == len(row.judge_labels) == len(row.mc_rollouts)
        assert set(row.labels) <= {0, 1}
        for conf, rollouts in zip(row.judge_confidences, row.mc_rollouts, strict=True):
            # MC runs exactly on the low-confidence steps (adaptive: at most max_rollouts)
            if conf < cfg.judge.confidence_threshold:
                assert 0 < rollouts <= cfg.montecarlo.max_rollouts
        assert row.predicted_answer in ("A", "B", "C", "D")
        assert row.is_correct == (row.predicted_answer == row.answer)
    ok = solutions[solutions[S.ERROR].isna()]
    per_q = ok.groupby(S.QUESTION_ID)[S.IS_CORRECT].agg(["sum", "size"])
    expected = {"questions": len(per_q), "mixed": int(((per_q["sum"] > 0) & (per_q["sum"] < per_q["size"])).sum())}
    assert summary["questions_mixed"] == expected
    printed = f"questions with a correct and an incorrect solution: {expected['mixed']} of {expected['questions']}"
    assert printed in render_summary(summary)


def test_resume_after_kill_redoes_only_missing_rows(smoke: tuple[AnnotateConfig, dict]) -> None:
    from physio_ray.annotate.pipeline import run_annotation

    cfg, _ = smoke
    store = StageStore(cfg.output_dir, "solutions")
    before = store.read().sort_values(S.SOLUTION_ID).reset_index(drop=True)
    # Simulate a job killed while writing "solutions": keep the first question's rows only and
    # drop the completion marker of that stage and of every later one.
    files = store.part_files()
    table = pq.read_table(files[0]).to_pandas()
    first_q = sorted(before[S.QUESTION_ID].unique())[0]
    for f in files:
        Path(f).unlink()
    store.write_part(table[table[S.QUESTION_ID] == first_q])
    for stage in ("solutions", "judged", "annotated"):
        StageStore(cfg.output_dir, stage).clear_complete()

    summary = run_annotation(
        dataclasses.replace(cfg, stages=["sources", "poses", "keyframes", "questions", "solutions"])
    )
    reports = {r["name"]: r for r in summary["stages_run"]}
    assert reports["poses"]["processed"] == 0 and reports["questions"]["processed"] == 0
    assert reports["solutions"]["skipped_done"] == 1 and reports["solutions"]["processed"] == 1
    after = store.read().sort_values(S.SOLUTION_ID).reset_index(drop=True)
    assert after[S.SOLUTION_ID].tolist() == before[S.SOLUTION_ID].tolist()  # no duplicates, none lost
    raw = sum(pq.read_metadata(f).num_rows for f in store.part_files())
    assert raw == len(after)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_recordings_without_a_subject_flow_beside_uiprmd(
    smoke: tuple[AnnotateConfig, dict], tmp_path: Path, batch_size: int
) -> None:
    # KERAAL rows carry no subject while UI-PRMD rows do: a batch holding only missing values
    # must not turn the column into floats that cannot merge with the strings downstream.
    from physio_ray.annotate.pipeline import run_annotation

    cfg, _ = smoke
    mixed = load_config(
        AnnotateConfig,
        [
            str(REPO / "configs/annotate/smoke.yaml"),
            f"output_dir={tmp_path}",
            f"sources.uiprmd_dir={cfg.sources.uiprmd_dir}",
            f"sources.keraal_dir={shared_path('keraal')}",
            f"pose.resources.batch_size={batch_size}",
            "stages=[sources,poses,keyframes]",
        ],
    )
    summary = run_annotation(mixed)
    assert {r["name"]: r["errors"] for r in summary["stages_run"]} == {"sources": 0, "poses": 0, "keyframes": 0}
    poses = StageStore(mixed.output_dir, "poses").read().set_index(S.VIDEO_ID)
    subjects = poses[S.SUBJECT].to_dict()
    assert {v for k, v in subjects.items() if k.startswith("uiprmd-")} == {"s01"}
    assert {v for k, v in subjects.items() if k.startswith("keraal-")} == {None}
    assert len(StageStore(mixed.output_dir, "keyframes").read()) == len(poses) >= 3
