"""The row builders of the quality report, by name: one function per learned component.

A builder takes the :class:`~physio_ray.quality.config.ReportQualityConfig` and returns its rows
(:func:`physio_ray.quality.rows.make_row` / :func:`~physio_ray.quality.rows.missing_row`); it reads
its job's output files and never trains or scores. To add a component, write its builder in a
module of this package and add one line to :data:`ROW_BUILDERS` (or call :func:`register`).

>>> list(ROW_BUILDERS)
['judge', 'measurement', 'policy', 'policy_heldout', 'prm', 'prm_crossval', 'bestofn', 'spatial', 'clinical']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from physio_ray.quality.annotate_rows import judge_rows, measurement_rows, policy_rows
from physio_ray.quality.config import ReportQualityConfig
from physio_ray.quality.policy_rows import policy_heldout_rows
from physio_ray.quality.prm_rows import bestofn_rows, prm_crossval_rows, prm_rows
from physio_ray.quality.recipe_rows import clinical_rows, spatial_rows

__all__ = ["ROW_BUILDERS", "RowBuilder", "register", "selected_builders"]

RowBuilder = Callable[[ReportQualityConfig], list[dict[str, Any]]]

ROW_BUILDERS: dict[str, RowBuilder] = {
    "judge": judge_rows,
    "measurement": measurement_rows,
    "policy": policy_rows,
    "policy_heldout": policy_heldout_rows,
    "prm": prm_rows,
    "prm_crossval": prm_crossval_rows,
    "bestofn": bestofn_rows,
    "spatial": spatial_rows,
    "clinical": clinical_rows,
}
"""Builder per component, in report order."""


def register(name: str, builder: RowBuilder) -> None:
    """Adds (or replaces) the builder of component ``name``."""
    if not name:
        raise ValueError("a row builder needs a name")
    ROW_BUILDERS[name] = builder


def selected_builders(names: list[str] | None) -> dict[str, RowBuilder]:
    """The builders named in ``names`` (``None``: all), in registry order.

    Raises:
        ValueError: naming the unknown components and the known ones.

    >>> list(selected_builders(["prm", "judge"]))
    ['judge', 'prm']
    """
    if names is None:
        return dict(ROW_BUILDERS)
    unknown = [n for n in names if n not in ROW_BUILDERS]
    if unknown:
        raise ValueError(f"components {unknown} have no row builder; known: {list(ROW_BUILDERS)}")
    return {k: v for k, v in ROW_BUILDERS.items() if k in names}
