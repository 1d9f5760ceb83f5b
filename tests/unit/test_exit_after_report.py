"""``PHYSIO_EXIT_AFTER_REPORT=1`` (set by ``make test``) must hand back pytest's own status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXIT_AFTER_REPORT_VAR, REPO

CASES = """
import os

def test_pass():
    assert True

def test_maybe_fail():
    assert os.environ.get("PHYSIO_TEST_FAIL_ME") is None
"""


@pytest.mark.parametrize(
    ("fail", "select", "status"),
    [(False, [], 0), (True, [], 1), (False, ["-k", "no_such_test"], 5)],
    ids=["pass", "fail", "none-collected"],
)
def test_status_is_pytests_own(tmp_path: Path, fail: bool, select: list[str], status: int) -> None:
    case = tmp_path / "test_case.py"
    case.write_text(CASES)
    env = dict(os.environ, PYTHONPATH=str(REPO), **{EXIT_AFTER_REPORT_VAR: "1"})
    env.pop("PHYSIO_TEST_FAIL_ME", None)
    if fail:
        env["PHYSIO_TEST_FAIL_ME"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", str(case), *select],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == status, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]  # the report is written before the process leaves
    assert "passed" in summary or "failed" in summary or "deselected" in summary, summary
