"""Starting Ray the same way on a laptop and under ``ray job submit``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayConfig:
    """How a job connects to Ray.

    Attributes:
        address: ``None`` starts a local Ray (or joins the cluster named by ``RAY_ADDRESS``,
            which ``ray job submit`` sets); ``"auto"`` joins a running cluster.
        num_cpus: CPUs for a local Ray; ignored when joining a cluster.
        num_gpus: GPUs for a local Ray; ignored when joining a cluster.
        object_store_memory_mb: object store size for a local Ray (``None``: Ray's default).
        progress_bars: show Ray Data progress bars.
        cluster_file: the cluster-launcher YAML the job runs on (e.g. ``cluster.yaml``); when
            set, the job checks every resources block against its node types before Ray starts
            and stops with the list of what no node can run (:func:`physio_ray.cluster.check_job_cluster`).
        dashboard: a local Ray starts its dashboard (http://127.0.0.1:8265) when it can. Ray Train's
            placement-group cleaner asks the state API (served by the dashboard) whether the
            training controller lives; without it, it logs a warning every second of training.
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_memory_mb: int | None = None
    progress_bars: bool = True
    cluster_file: str | None = None
    dashboard: bool = True

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"ray.num_cpus={self.num_cpus} must be >= 1 (or null for all cores)")
        if self.num_gpus is not None and self.num_gpus < 0:
            raise ValueError(f"ray.num_gpus={self.num_gpus} must be >= 0")


@dataclass(frozen=True)
class Resources:
    """Where a Ray Data stage runs: wired with ``map_batches(..., compute=ActorPoolStrategy)``.

    Attributes:
        actors: size of the actor pool (fixed), or the max when ``min_actors`` is set.
        min_actors: autoscaling lower bound (``None``: a fixed pool of ``actors``).
        cpus_per_actor: CPUs reserved per actor.
        gpus_per_actor: GPUs reserved per actor (0 on a laptop).
        batch_size: rows per ``__call__``.
    """

    actors: int = 1
    min_actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"actors={self.actors} must be >= 1")
        if self.min_actors is not None and not 1 <= self.min_actors <= self.actors:
            raise ValueError(f"min_actors={self.min_actors} must be in 1..actors ({self.actors})")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise ValueError("cpus_per_actor and gpus_per_actor must be >= 0")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")


def init_ray(cfg: RayConfig) -> None:
    """Starts or joins Ray once per process; a no-op when Ray is already up.

    Under ``ray job submit`` the driver finds its cluster through ``RAY_ADDRESS``; locally a
    fresh Ray is started with the configured resources.
    """
    import ray

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    # The working tree travels as the job's working_dir; keep the driver quiet about it.
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address:
        logger.info("joining Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True)
    else:
        # None: Ray starts the dashboard when it can and carries on without it when it cannot
        # (True would abort the job on a dashboard that fails to start on a loaded machine)
        kwargs: dict[str, object] = {"include_dashboard": None if cfg.dashboard else False}
        if cfg.num_cpus is not None:
            kwargs["num_cpus"] = cfg.num_cpus
        if cfg.num_gpus is not None:
            kwargs["num_gpus"] = cfg.num_gpus
        if cfg.object_store_memory_mb is not None:
            kwargs["object_store_memory"] = cfg.object_store_memory_mb * 1024 * 1024
        logger.info("starting a local Ray with %s", kwargs)
        ray.init(**kwargs)  # type: ignore[arg-type]
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = cfg.progress_bars
