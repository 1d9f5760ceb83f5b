"""The examples in every physio_ray module's docstrings run and hold (one test per module).

Modules are found from the files under physio_ray/, so a new module is covered without a list.
A module whose source shows a ``>>>`` example must yield at least one example (``+SKIP`` ones
count), so an example doctest cannot find (outside a docstring) fails instead of never running.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "physio_ray"
OPTIONS = doctest.ELLIPSIS


def library_modules() -> list[str]:
    names = []
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def module_source(name: str) -> str:
    path = PKG.parent.joinpath(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return path.read_text(encoding="utf-8")


def test_every_module_is_found() -> None:
    modules = library_modules()
    assert "physio_ray.layers" in modules and "physio_ray.video" in modules and len(modules) > 50


@pytest.mark.parametrize("name", library_modules())
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    tests = [t for t in finder.find(module, name) if t.examples]
    for test in sorted(tests, key=lambda t: t.name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples in {name} failed (see above)"
    if ">>> " in module_source(name):
        found = sum(len(t.examples) for t in tests)
        assert found > 0, f"{name} shows `>>>` examples but doctest found none in its docstrings"
