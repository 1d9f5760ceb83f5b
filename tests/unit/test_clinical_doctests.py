"""The examples in the clinical modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "baseline",
    "consistency",
    "images",
    "metrics",
    "parsing",
    "prompts",
    "records",
    "reward",
    "splits",
    "features",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"physio_ray.clinical.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name != "features":
        assert result.attempted > 0
