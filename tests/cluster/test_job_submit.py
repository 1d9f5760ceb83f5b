"""The cluster path for real: a local head started with `ray start --head`, the smoke annotate
config submitted with `ray job submit --working-dir .`, waited for until SUCCEEDED, outputs
checked, then the head stopped with `ray stop`.

This module starts its own Ray head (not the shared `ray_local` fixture) because the point is
the job-submission path that users take against a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path

BIN = Path(sys.executable).parent
DASHBOARD_PORT = 8299


def _ray(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # The job's `python` is found on the raylet's PATH, inherited from `ray start`: this venv.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # Ray 2.60's `ray start` turns token auth on; the job CLI only sends the token it wrote to
    # ~/.ray/auth_token when told the cluster uses tokens.
    env["RAY_AUTH_MODE"] = "token"
    return subprocess.run(
        [str(BIN / "ray"), *args], capture_output=True, text=True, timeout=timeout, check=check, env=env, cwd=REPO
    )


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
    assert "Ray runtime started" in started.stdout + started.stderr
    try:
        yield f"http://127.0.0.1:{DASHBOARD_PORT}"
    finally:
        _ray("stop", "--force", timeout=120, check=False)


def test_submit_smoke_annotation_job(head: str, tmp_path: Path) -> None:
    uiprmd = shared_path("ui-prmd")
    out = tmp_path / "submitted"
    submit = _ray(
        "job",
        "submit",
        f"--address={head}",
        "--working-dir",
        ".",
        "--no-wait",
        "--",
        "python",
        "jobs/annotate.py",
        "configs/annotate/smoke.yaml",
        f"output_dir={out}",
        f"sources.uiprmd_dir={uiprmd}",
        timeout=180,
    )
    text = submit.stdout + submit.stderr
    job_id = next(
        w.strip("'") for line in text.splitlines() for w in line.split() if w.strip("'").startswith("raysubmit_")
    )
    deadline = time.time() + 900
    status = ""
    while time.time() < deadline:
        done = _ray("job", "status", f"--address={head}", job_id, timeout=60)
        # the CLI logs the status on stderr, as "Job '...' succeeded" or "Status ...: SUCCEEDED"
        status = (done.stdout + done.stderr).lower()
        if any(s in status for s in ("succeeded", "failed", "stopped")):
            break
        time.sleep(5)
    got = _ray("job", "logs", f"--address={head}", job_id, timeout=60, check=False)
    logs = got.stdout + got.stderr
    assert "succeeded" in status and "failed" not in status, f"job {job_id}: {status[-500:]!r}; logs:\n{logs[-3000:]}"
    assert "annotated" in logs  # the driver printed its summary
    summary = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in summary["stages_run"]][-1] == "annotated"
    assert any((out / "annotated").glob("*.parquet"))
    assert (out / "cost_ledger.json").is_file() and (out / "appendix.json").is_file()
