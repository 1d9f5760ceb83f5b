"""Runs the doctests of the PRM modules that load no model."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "physio_ray.prm.annotated",
    "physio_ray.prm.api",
    "physio_ray.prm.bestofn",
    "physio_ray.prm.candidates",
    "physio_ray.prm.config",
    "physio_ray.prm.data",
    "physio_ray.prm.eval_config",
    "physio_ray.prm.loop",
    "physio_ray.prm.loss",
    "physio_ray.prm.medprm",
    "physio_ray.prm.metrics",
    "physio_ray.prm.scoring",
    "physio_ray.prm.sources",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
