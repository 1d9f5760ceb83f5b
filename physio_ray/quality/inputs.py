"""Reading the other jobs' output files, with a reason instead of an exception when one is missing.

>>> data, why = read_json(None, "summary.json")
>>> data is None, why
(True, 'summary.json: source folder not configured')
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["dig", "read_json", "read_parquet"]


def _where(folder: str | None, name: str) -> tuple[Path | None, str]:
    if not folder:
        return None, f"{name}: source folder not configured"
    path = Path(folder) / name
    return path, ""


def read_json(folder: str | None, name: str) -> tuple[Any, str]:
    """``(data, "")`` from ``folder/name``, or ``(None, reason naming the file)``."""
    path, why = _where(folder, name)
    if path is None:
        return None, why
    if not path.is_file():
        return None, f"{path}: not found"
    try:
        return json.loads(path.read_text(encoding="utf-8")), ""
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable ({type(exc).__name__}: {exc})"


def read_parquet(folder: str | None, name: str, columns: Sequence[str] | None = None) -> tuple[list[dict] | None, str]:
    """Rows of the Parquet files under ``folder/name`` (a stage folder), or ``(None, reason)``.

    Columns in ``columns`` that the files lack are left out (the caller checks what it needs).
    """
    import pyarrow.parquet as pq

    path, why = _where(folder, name)
    if path is None:
        return None, why
    files = sorted(path.glob("*.parquet")) if path.is_dir() else []
    if not files:
        return None, f"{path}: no Parquet files"
    try:
        names = set(pq.read_schema(files[0]).names)
        cols = [c for c in columns if c in names] if columns is not None else None
        return pq.read_table(path, columns=cols).to_pylist(), ""
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable ({type(exc).__name__}: {exc})"


def dig(data: Any, *keys: str | int) -> Any:
    """``data[k1][k2]...`` or ``None`` when a key is absent.

    >>> dig({"a": {"b": [1, 2]}}, "a", "b", 1), dig({"a": {}}, "a", "b")
    (2, None)
    """
    for key in keys:
        if isinstance(data, Mapping) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data
