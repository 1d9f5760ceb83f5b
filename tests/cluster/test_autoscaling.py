"""The annotation job on a simulated autoscaling cluster with cluster.yaml's node types.

`python scripts/cluster_sim.py --kill-after questions` (the README's command) starts a fake
multi-node head (0 CPUs, as cluster.yaml's head), submits configs/annotate/autoscale.yaml with
`ray job submit`, kills the gpu_sampling node while the sampler runs on it, and writes the node
timeline. Checked here: each worker group is launched when its stage needs it (cpu_pose for
the poses, gpu_sampling for the sampler), the killed node is replaced and the job still
succeeds, every worker is removed after the idle timeout, and the output equals a single-node
run of the same config (same ids, same steps and labels: nothing lost or duplicated).

This module starts its own Ray (the fake cluster, then the single-node job), as
test_job_submit.py does: the point is the path users take.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from physio_ray import schemas as S
from physio_ray.annotate.stage_io import StageStore
from tests.conftest import REPO, shared_path

CONFIG = "configs/annotate/autoscale.yaml"


def _python(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import ray

    shared_path("ui-prmd")  # fails (CI) or skips (laptop) without the data
    if ray.is_initialized():
        ray.shutdown()
    out = tmp_path_factory.mktemp("cluster_sim")
    run = _python("scripts/cluster_sim.py", "--out", str(out), "--kill-after", "questions", timeout=1500)
    assert (out / "timeline.json").is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    record = json.loads((out / "timeline.json").read_text())
    record["stdout"], record["rc"] = run.stdout, run.returncode
    return record


def _first(record: dict, event: str, node_type: str) -> float:
    return min(e["t_s"] for e in record["events"] if e["event"] == event and e["node_type"] == node_type)


def _mark(record: dict, text: str) -> float:
    return min(t for t, what in record["marks"] if text in what)


def test_autoscaling_launches_each_group_when_its_stage_needs_it_and_removes_it_idle(sim: dict) -> None:
    assert sim["job_status"] == "SUCCEEDED" and sim["rc"] == 0, sim["stdout"][-3000:]
    launched = [e["node_type"] for e in sim["events"] if e["event"] == "launched"]
    assert launched[0] == "head" and "gpu_training" not in launched  # no stage asks for a training node
    submitted = _mark(sim, "job submitted")
    pose, gpu = _first(sim, "launched", "cpu_pose"), _first(sim, "launched", "gpu_sampling")
    assert submitted < pose < _mark(sim, "poses stage writing")  # the head has no CPU: a pose node is needed
    assert pose < gpu and _mark(sim, "keyframes stage writing") <= gpu + 5.0  # GPU nodes only for the sampler on
    assert _first(sim, "removed", "cpu_pose") < _mark(sim, "job SUCCEEDED")  # idle CPU node gone mid-job
    assert sim["workers_left"] == []  # every worker removed after the idle timeout
    assert "+ cpu_pose" in sim["stdout"] and "- gpu_sampling" in sim["stdout"]  # the printed timeline


def test_autoscaling_replaces_a_lost_node_and_the_job_finishes(sim: dict) -> None:
    killed = sim["killed_node"]
    assert killed, "the gpu_sampling node was never killed"
    t_kill = _mark(sim, "killed gpu_sampling")
    assert t_kill < _mark(sim, "solutions stage writing")  # killed while the sampler ran on it
    gone = [e["t_s"] for e in sim["events"] if e["event"] == "removed" and e["node_id"] == killed]
    replacement = [
        e for e in sim["events"] if e["event"] == "launched" and e["node_type"] == "gpu_sampling" and e["t_s"] > t_kill
    ]
    assert gone and replacement and replacement[0]["node_id"] != killed
    assert sim["job_status"] == "SUCCEEDED"


def test_autoscaling_output_equals_a_single_node_run(sim: dict, tmp_path: Path) -> None:
    single = tmp_path / "single"
    run = _python(
        "jobs/annotate.py", CONFIG, f"output_dir={single}", f"sources.uiprmd_dir={shared_path('ui-prmd')}",
        "ray.num_cpus=2", "ray.num_gpus=1", "ray.cluster_file=null", timeout=1200,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for stage in ("questions", "solutions", "annotated"):
        a = StageStore(sim["output_dir"], stage).read()
        b = StageStore(str(single), stage).read()
        key = {"questions": S.QUESTION_ID, "solutions": S.SOLUTION_ID, "annotated": S.SOLUTION_ID}[stage]
        assert a[key].is_unique and sorted(a[key]) == sorted(b[key]), stage  # nothing lost or duplicated
    a = StageStore(sim["output_dir"], "annotated").read().set_index(S.SOLUTION_ID).sort_index()
    b = StageStore(str(single), "annotated").read().set_index(S.SOLUTION_ID).sort_index()
    assert len(a) == 4
    for col in (S.STEPS, S.LABELS, S.ANNOTATION_METHOD, S.JUDGE_LABELS, S.PREDICTED_ANSWER):
        assert [list(v) if not isinstance(v, str | None) else v for v in a[col]] == [
            list(v) if not isinstance(v, str | None) else v for v in b[col]
        ], col
