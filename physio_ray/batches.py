"""Reading Ray Data batches in the stage classes: one place for the small conversions.

A stage class receives a batch as ``{column: 1-D numpy array}`` (``batch_format="numpy"``)
or, in tests and notebooks, as a pandas frame. List cells arrive as numpy arrays or lists,
missing values as ``None`` or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def as_columns(batch: Any) -> dict[str, np.ndarray]:
    """A Ray Data batch as ``{column: 1-D array}``: numpy batches pass, pandas frames convert.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(batch, Mapping):
        return dict(batch)
    if hasattr(batch, "columns") and hasattr(batch, "__getitem__"):
        return {str(c): batch[c].to_numpy() for c in batch.columns}
    raise TypeError(f"expected a numpy (dict) or pandas batch, got {type(batch).__name__}")


def cell(batch: Mapping[str, Any], column: str, i: int) -> Any:
    """Row ``i`` of ``column``; ``None`` when the column is absent or the value is None / NaN."""
    if column not in batch:
        return None
    value = batch[column][i]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def as_list(value: Any) -> list[Any]:
    """A list cell (numpy array, list, tuple or ``None``) as a Python list."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return value.tolist()
    return list(value)


def object_array(values: list[Any]) -> np.ndarray:
    """A 1-D object array holding each value as is (lists stay lists, not a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out
