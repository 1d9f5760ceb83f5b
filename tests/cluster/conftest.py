"""Cluster tests share one small local Ray per module (num_cpus=2, num_gpus=0).

The fixture leaves the process as it found it: Ray shut down and Ray Data's DataContext as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray
    from ray.data import DataContext

    if ray.is_initialized():
        ray.shutdown()
    ctx = DataContext.get_current()
    progress_bars = ctx.enable_progress_bars
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()
        ctx.enable_progress_bars = progress_bars
