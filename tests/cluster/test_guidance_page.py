"""The guidance page in headless Chromium against the real service on local Ray Serve.

playwright-core (npm) drives Debian's /usr/bin/chromium (``--headless --no-sandbox``); the page
gets the real tfjs squat recording through its own API instead of the camera, and the rep
counter on the page must rise 0 -> 1 -> 2. A screenshot goes to test-artifacts/.
Prerequisites: ``bash scripts/setup_browser.sh`` (the test skips with the reason otherwise).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.browser
SCRIPT = REPO / "tests" / "browser" / "guidance_page.mjs"
ARTIFACTS = REPO / "test-artifacts"


def _prerequisites() -> str | None:
    if shutil.which("node") is None:
        return "node not found (install nodejs, then bash scripts/setup_browser.sh)"
    if not Path("/usr/bin/chromium").exists() and shutil.which("chromium") is None:
        return "chromium not found (bash scripts/setup_browser.sh installs Debian's chromium)"
    if not (REPO / "node_modules" / "playwright-core" / "package.json").exists():
        return "node_modules/playwright-core missing (run bash scripts/setup_browser.sh)"
    return None


@pytest.fixture(scope="module")
def base_url(ray_local: None) -> Iterator[str]:
    reason = _prerequisites()
    if reason:
        pytest.skip(reason)
    from ray import serve

    from serve_apps.guidance import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"num_replicas": 1, "auth_token_env": ""}), name="guidance", route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


def test_page_counts_recorded_squats(base_url: str, tmp_path: Path) -> None:
    src = shared_path("tfjs-pose-squats", "pose_squats.full.json")
    frames = np.asarray(json.loads(Path(src).read_text()), dtype=np.float64)
    rec = tmp_path / "squats.json"
    rec.write_text(json.dumps({"width": 720, "height": 1280, "fps": 5.0, "frames": frames.tolist()}))
    assert httpx.get(f"{base_url}/api/health").status_code == 200
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "guidance_page.png"
    proc = subprocess.run(
        ["node", str(SCRIPT), f"{base_url}/guidance/", str(rec), str(shot)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["initial"]["reps"] == 0 and out["initial"]["state"] == "POSITIONING"
    reps = out["reps"]
    assert reps == sorted(reps) and reps[-1] == 2, reps
    assert 1 in reps  # it rose one repetition at a time
    assert out["final"]["results"] == 65 and out["final"]["state"] == "ACTIVE"
    assert out["final"]["promptShown"] is False  # the uncertainty prompt only shows in UNCERTAINTY
    assert float(out["skeletonOpacity"]) == pytest.approx(0.6)
    assert shot.stat().st_size > 10_000
