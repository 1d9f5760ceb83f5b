"""Where guidance sessions outlive their replica: a detached named Ray actor holding snapshots.

Why an actor and not a file or a KV service. The store must (1) outlive any ingress replica,
(2) make a claim atomic, so that two replicas never both restore one session (a double
count), and (3) work the same on a laptop and on a multi-node cluster. A detached named actor
(:class:`physio_ray.guidance.snapshot.SnapshotStore` wrapped with ``ray.remote``) gives all
three with public, stable Ray Core APIs (``ray.remote``, ``.options(name=..., namespace=...,
lifetime="detached", get_if_exists=True)``): it lives until the Ray cluster does, runs its
methods one at a time (claims are atomic without locks), and any node reaches it. A file store
would need a shared disk and file locks across nodes; an external KV (Redis) is one more
service to run. The price: snapshots are in memory on one node (a head-node loss ends the
cluster anyway, controller included), and the actor is one process (``num_cpus=0``).

Off the hot path: a replica never waits for the store while stepping frames. A background task
(:class:`SnapshotSync`) wakes every 100 ms; it sends the sessions whose state or rep count
changed at once, every other changed session once a second, and a heartbeat (the owner lease)
with every send, as one fire-and-forget actor call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from physio_ray.guidance.snapshot import SnapshotStore
from serve_apps.guidance_sessions import SessionStore

logger = logging.getLogger(__name__)

STORE_NAME = "guidance_session_snapshots"
STORE_NAMESPACE = "physio_ray_guidance"


def snapshot_store(lease_s: float, ttl_s: float) -> Any:  # noqa: ANN401 - a Ray ActorHandle
    """The shared snapshot store actor (created by the first replica that asks, then reused)."""
    actor = ray.remote(SnapshotStore).options(
        name=STORE_NAME,
        namespace=STORE_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
    )
    return actor.remote(lease_s=lease_s, ttl_s=ttl_s)


class SnapshotSync:
    """Sends one replica's session snapshots to the store, off the request path.

    Args:
        store: the replica's sessions.
        actor: the :func:`snapshot_store` handle.
        interval_s: every changed session is stored at least this often (and a heartbeat sent).
    """

    def __init__(self, store: SessionStore, actor: Any, interval_s: float = 1.0) -> None:  # noqa: ANN401
        self.store = store
        self.actor = actor
        self.interval_s = interval_s
        self.sent = 0
        self._task: asyncio.Task | None = None

    def ensure_running(self) -> None:
        """Starts the background task on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def flush(self, every_dirty: bool = True) -> None:
        """Sends what changed now (fire and forget)."""
        puts, drops = self.store.take_snapshots(every_dirty)
        self.actor.sync.remote(self.store.owner, puts, drops)
        self.sent += len(puts)

    async def _run(self) -> None:
        next_full = 0.0
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            try:
                if now >= next_full:
                    next_full = now + self.interval_s
                    self.flush(every_dirty=True)
                elif self.store.urgent:
                    self.flush(every_dirty=False)
            except Exception:  # noqa: BLE001 - a failed send is retried on the next round
                logger.exception("snapshot sync failed; retrying")
