"""Pure step-label rules shared by the annotation chain and the PRM (one implementation each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

L = TypeVar("L")

__all__ = ["zero_after_first_error"]


def zero_after_first_error(labels: Sequence[L]) -> list[L | int]:
    """Med-PRM's label post-processing: every labelled step after the first 0 becomes 0.

    Unlabelled steps (``None``) stay ``None`` and never count as an error; labels before the
    first 0 are kept as given (ints, floats).

    Args:
        labels: ``[S]`` hard labels, ``None`` where a step has no label.

    Returns:
        ``[S]`` labels, 0 from the first 0 onwards except where ``None``.

    >>> zero_after_first_error([1, 0, 1, 1])
    [1, 0, 0, 0]
    >>> zero_after_first_error([1, 0, 1, None, 1])
    [1, 0, 0, None, 0]
    """
    out: list[L | int] = []
    seen_zero = False
    for value in labels:
        out.append(0 if (seen_zero and value is not None) else value)
        if value is not None and value == 0:
            seen_zero = True
    return out
