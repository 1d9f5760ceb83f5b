"""Resumable stage storage: atomic parts, done keys, duplicate-free reads, list columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from physio_ray.annotate.stage_io import StageStore


def test_parts_round_trip_lists_and_nulls(tmp_path: Path) -> None:
    store = StageStore(str(tmp_path), "judged")
    batch = pd.DataFrame(
        {
            "solution_id": ["q1-s0", "q1-s1"],
            "judge_labels": [np.array([1, None, 0], dtype=object), [None, None]],
            "keypoints": [np.arange(4, dtype=np.float32), np.zeros(2, dtype=np.float32)],
            "error": [None, "unparseable answer"],
        }
    )
    assert store.write_part(batch) is not None
    out = store.read()
    assert out["solution_id"].tolist() == ["q1-s0", "q1-s1"]
    assert list(out["judge_labels"][0]) == [1, None, 0]
    assert list(out["judge_labels"][1]) == [None, None]
    np.testing.assert_allclose(out["keypoints"][0], [0, 1, 2, 3])
    assert out["error"].tolist()[1] == "unparseable answer"
    assert store.done_keys("solution_id") == {"q1-s0", "q1-s1"}


def test_rerun_never_duplicates_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = StageStore(str(tmp_path), "solutions")
    store.write_part(pd.DataFrame({"solution_id": ["a", "b"], "v": [1, 2]}))
    store.write_part(pd.DataFrame({"solution_id": ["b", "c"], "v": [20, 3]}))
    assert store.write_part(pd.DataFrame()) is None
    out = store.read(unique_by="solution_id")
    assert out.set_index("solution_id")["v"].to_dict() == {"a": 1, "b": 20, "c": 3}
    assert not [p for p in (tmp_path / "solutions").iterdir() if p.name.startswith(".tmp")]
    assert not store.is_complete()
    store.mark_complete()
    assert store.is_complete()


def test_missing_stage_reads_empty(tmp_path: Path) -> None:
    store = StageStore(str(tmp_path), "nothing")
    assert store.read().empty
    assert store.done_keys("x") == set()


def test_missing_strings_read_back_as_none_not_nan(tmp_path: Path) -> None:
    # pandas 3 infers a `str` dtype whose missing value is NaN; a one-row Ray Data batch of that
    # NaN becomes a float column that cannot merge with the string rows ("double vs string").
    store = StageStore(str(tmp_path), "sources")
    store.write_part(pd.DataFrame([{"video_id": "squat", "subject": None}, {"video_id": "m01", "subject": "s01"}]))
    out = store.read()
    assert out["subject"].dtype == object
    assert out["subject"].tolist() == [None, "s01"]
    assert out.iloc[[0]]["subject"].to_numpy().tolist() == [None]


def test_numeric_columns_stay_numeric(tmp_path: Path) -> None:
    store = StageStore(str(tmp_path), "poses")
    store.write_part(pd.DataFrame({"video_id": ["a", "b"], "fps": [30.0, float("nan")], "n_frames": [10, 0]}))
    out = store.read()
    assert out["fps"].dtype == np.float64 and out["n_frames"].dtype == np.int64
    assert out["n_frames"].tolist() == [10, 0]


def test_a_stage_folder_refuses_rows_of_other_settings(tmp_path: Path) -> None:
    import dataclasses

    import pytest

    from physio_ray.annotate.config import AnnotateConfig
    from physio_ray.annotate.pipeline import StageSettingsChanged, check_stage_settings
    from physio_ray.annotate.stages import stage
    from physio_ray.runtime import Resources

    cfg = AnnotateConfig(output_dir=str(tmp_path))
    solutions, judged = stage("solutions"), stage("judged")
    store = StageStore(str(tmp_path), "solutions")
    check_stage_settings(cfg, solutions, store)  # fresh: records the settings
    assert store.read_settings() is not None
    other = dataclasses.replace(
        cfg, sampler=dataclasses.replace(cfg.sampler, engine=dataclasses.replace(cfg.sampler.engine, adapter="a"))
    )
    check_stage_settings(other, solutions, store)  # no rows yet: the new settings replace the old
    store.write_part(pd.DataFrame({"solution_id": ["q1-s0"]}))
    with pytest.raises(
        StageSettingsChanged, match=r"\(sampler.engine.adapter: 'a' -> None\).*delete solutions, judged, annotated"
    ):
        check_stage_settings(cfg, solutions, store)
    # a downstream stage sees its upstream's settings too
    judged_store = StageStore(str(tmp_path), "judged")
    check_stage_settings(other, judged, judged_store)
    judged_store.write_part(pd.DataFrame({"solution_id": ["q1-s0"]}))
    with pytest.raises(StageSettingsChanged, match="adapter"):
        check_stage_settings(cfg, judged, judged_store)
    # what only sizes or routes the work may change on a resume: actors, batch sizes, which
    # recordings are listed (new ones are processed), the threshold that sends judged steps to MC
    resized = dataclasses.replace(
        other,
        sampler=dataclasses.replace(other.sampler, resources=Resources(actors=3)),
        sources=dataclasses.replace(other.sources, limit=3),
        judge=dataclasses.replace(other.judge, confidence_threshold=0.9),
    )
    check_stage_settings(resized, solutions, store)
    check_stage_settings(resized, judged, judged_store)
    # a single-stage run checks the folders it reads: judging with another sampler is refused
    from physio_ray.annotate.pipeline import check_resume_settings

    with pytest.raises(StageSettingsChanged, match=r"/solutions was written with other settings"):
        check_resume_settings(cfg, [stage("annotated")])
    # a setting that did not exist when the folder was written is not a change
    saved = store.read_settings()
    saved["solutions"]["sampler"].pop("temperature")
    store.write_settings(saved)
    check_stage_settings(other, solutions, store)
    assert "temperature" in store.read_settings()["solutions"]["sampler"]  # recorded now
    # rows with no record of their settings (written before settings were recorded) are refused
    legacy = StageStore(str(tmp_path), "questions")
    legacy.write_part(pd.DataFrame({"question_id": ["q1"]}))
    with pytest.raises(StageSettingsChanged, match="holds rows but no record of the settings"):
        check_stage_settings(cfg, stage("questions"), legacy)


def test_the_job_refuses_a_changed_config_before_ray_starts(tmp_path: Path) -> None:
    """jobs/annotate.py into a folder whose solutions came from another adapter: exit 1 naming it, no Ray."""
    import subprocess
    import sys

    from physio_ray.annotate.config import AnnotateConfig
    from physio_ray.annotate.pipeline import check_stage_settings
    from physio_ray.annotate.stages import stage
    from physio_ray.config import load_config
    from tests.conftest import REPO

    out = tmp_path / "out"
    earlier = load_config(
        AnnotateConfig, [str(REPO / "configs/annotate/local.yaml"), f"output_dir={out}", "sampler.engine.adapter=null"]
    )
    store = StageStore(str(out), "solutions")
    check_stage_settings(earlier, stage("solutions"), store)
    store.write_part(pd.DataFrame({"solution_id": ["q1-s0"]}))
    run = subprocess.run(
        [sys.executable, "jobs/annotate.py", "configs/annotate/local.yaml", f"output_dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr[-2000:]
    assert "(sampler.engine.adapter: None -> 'models/policy-smollm2-135m-lora')" in run.stderr
    assert "Started a local Ray instance" not in run.stderr + run.stdout
    assert not (out / "poses").exists()  # the check wrote nothing for stages that have not run
