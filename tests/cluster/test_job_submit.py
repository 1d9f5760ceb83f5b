"""The cluster path for real: a local head started with `ray start --head`, the smoke annotate
config submitted with `ray job submit --working-dir .`, waited for until SUCCEEDED, outputs
checked, then the head stopped with `ray stop`.

This module starts its own Ray head (not the shared `ray_local` fixture) because the point is
the job-submission path that users take against a cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from physio_ray.cluster_sim import job_status, ray_cli, submit_job
from tests.conftest import REPO, shared_path

DASHBOARD_PORT = 8299


def _ray(*args: str, timeout: float = 120, check: bool = True) -> str:
    return ray_cli(*args, cwd=REPO, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _ray("stop", "--force", check=False)
    started = _ray(
        "start",
        "--head",
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=true",
        f"--dashboard-port={DASHBOARD_PORT}",
        "--disable-usage-stats",
        timeout=180,
    )
    assert "Ray runtime started" in started
    try:
        yield f"http://127.0.0.1:{DASHBOARD_PORT}"
    finally:
        _ray("stop", "--force", timeout=120, check=False)


def test_submit_smoke_annotation_job(head: str, tmp_path: Path) -> None:
    uiprmd = shared_path("ui-prmd")
    out = tmp_path / "submitted"
    job_id = submit_job(
        head,
        [
            "python",
            "jobs/annotate.py",
            "configs/annotate/smoke.yaml",
            f"output_dir={out}",
            f"sources.uiprmd_dir={uiprmd}",
        ],
        REPO,
    )
    deadline = time.time() + 900
    status = ""
    while time.time() < deadline:
        status = job_status(head, job_id, REPO)
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(5)
    logs = _ray("job", "logs", f"--address={head}", job_id, timeout=60, check=False)
    assert status == "SUCCEEDED", f"job {job_id}: {status}; logs:\n{logs[-3000:]}"
    assert "annotated" in logs  # the driver printed its summary
    summary = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in summary["stages_run"]][-1] == "annotated"
    assert any((out / "annotated").glob("*.parquet"))
    assert (out / "cost_ledger.json").is_file() and (out / "appendix.json").is_file()
