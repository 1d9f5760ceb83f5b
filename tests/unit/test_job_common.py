"""``jobs/_common.py``: a run fails only when every source of its output failed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jobs"))

from _common import fail_if_nothing_usable  # noqa: E402


def _summary(processed: int, output_rows: int, errors: int) -> dict:
    stage = {
        "name": "sources",
        "processed": processed,
        "output_rows": output_rows,
        "errors": errors,
        "first_errors": ["uiprmd-m01-s02-e01: input file not found"] if errors else [],
    }
    return {"stages_run": [stage]}


def test_every_source_failed_exits_1() -> None:
    with pytest.raises(SystemExit) as exc:
        fail_if_nothing_usable(_summary(processed=20, output_rows=20, errors=20))
    assert exc.value.code == 1
    with pytest.raises(SystemExit):  # a rerun that processed nothing new over a folder of failures
        fail_if_nothing_usable(_summary(processed=0, output_rows=20, errors=20))


def test_old_error_rows_of_a_resumed_folder_do_not_fail_a_run_whose_new_sources_worked() -> None:
    # A rerun with another subject list: 20 new sources worked, the folder keeps 20 error rows
    # (a subject that does not exist) from the first listing.
    fail_if_nothing_usable(_summary(processed=20, output_rows=60, errors=20))
    fail_if_nothing_usable(_summary(processed=0, output_rows=0, errors=0))
