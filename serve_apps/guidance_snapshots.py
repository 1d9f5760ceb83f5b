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
changed at once, and every other changed session once a second at its own phase of the second
(so the snapshots of 50 sessions spread over ten wake-ups instead of stalling one tick), the
owner lease renewed by every send (a bare heartbeat once an interval when nothing changed), as
fire-and-forget actor calls of under ~90 KB each
(small enough for Ray to pass inside the call rather than through the shared object store).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import ray

from physio_ray.guidance.snapshot import SnapshotStore
from serve_apps.guidance_sessions import SessionStore

logger = logging.getLogger(__name__)

STORE_NAME = "guidance_session_snapshots"
STORE_NAMESPACE = "physio_ray_guidance"
WAKE_S = 0.1
"""The sync task wakes this often: it sends the urgent snapshots and the regular ones due."""
MAX_CALL_BYTES = 90 * 1024
"""One store call carries at most about this much (under Ray's 100 KiB inline-argument limit)."""


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
        max_call_bytes: one store call carries at most about this much (see :func:`chunked`).
    """

    def __init__(
        self,
        store: SessionStore,
        actor: Any,  # noqa: ANN401
        interval_s: float = 1.0,
        max_call_bytes: int = MAX_CALL_BYTES,
    ) -> None:
        self.store = store
        self.actor = actor
        self.interval_s = interval_s
        self.max_call_bytes = max_call_bytes
        self.sent = 0
        self._last_send = -math.inf
        self._task: asyncio.Task | None = None

    def ensure_running(self) -> None:
        """Starts the background task on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def flush(self, every_dirty: bool = True, window: tuple[float, float] | None = None) -> None:
        """Sends what changed now (fire and forget; see :meth:`SessionStore.take_snapshots`)."""
        puts, drops = self.store.take_snapshots(every_dirty, window)
        now = time.monotonic()
        if not puts and not drops:
            if now - self._last_send >= self.interval_s:  # the heartbeat alone, once an interval
                self.actor.sync.remote(self.store.owner, {}, [])
                self._last_send = now
            return
        self._last_send = now
        for chunk in chunked(puts, self.max_call_bytes):
            self.actor.sync.remote(self.store.owner, chunk, drops)
            drops = []
        self.sent += len(puts)

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(WAKE_S)
            now = time.monotonic()
            # the fraction of the interval that elapsed: sessions whose phase it covers are due
            a = (last / self.interval_s) % 1.0
            b = (now / self.interval_s) % 1.0
            window = (0.0, 1.0) if now - last >= self.interval_s else (a, b)
            last = now
            try:
                self.flush(every_dirty=False, window=window)
            except Exception:  # noqa: BLE001 - a failed send is retried on the next round
                logger.exception("snapshot sync failed; retrying")


def snapshot_bytes(snapshot: dict) -> int:
    """A snapshot's pickled size, estimated without pickling: its angle window (two arrays)
    plus ~8 KB for everything else (filters, cue smoothers, counters, tally)."""
    stream = snapshot.get("stream", {})
    return 8192 + sum(int(getattr(stream.get(k), "nbytes", 0)) for k in ("window_t", "window_rows"))


def chunked(puts: dict[str, tuple[dict, dict]], max_bytes: int) -> list[dict[str, tuple[dict, dict]]]:
    """Splits ``puts`` into calls of at most ``max_bytes`` each (at least one session per call).

    Ray passes a call's arguments inside the call while they are small (under 100 KiB by
    default) and through the shared object store above that; object-store pages that the
    replica touches count towards its resident memory and stay mapped, so many small calls
    keep the replica's memory flat where one large call a second grows it.

    Example:
        >>> import numpy as np
        >>> snap = {"stream": {"window_t": np.zeros(10), "window_rows": np.zeros((10, 16))}}
        >>> [len(c) for c in chunked({str(i): (snap, {}) for i in range(5)}, 20_000)]
        [2, 2, 1]
    """
    out: list[dict[str, tuple[dict, dict]]] = []
    size = 0
    for sid, item in puts.items():
        n = snapshot_bytes(item[0])
        if not out or size + n > max_bytes:
            out.append({})
            size = 0
        out[-1][sid] = item
        size += n
    return out
