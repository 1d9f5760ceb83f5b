"""Keyed request router: every request of a session goes to the replica that owns the session.

Session ids are ``<owner>.<random>`` where ``owner`` is the unique id of the Serve replica that
ran ``POST /api/session/start`` (see :mod:`serve_apps.guidance_sessions`). This router runs in
the Serve proxy (and in any deployment handle); for each request it reads the session id from

1. the ``x-session-id`` header (Serve copies it into the request metadata), or
2. the request path ``/api/session/<id>/...`` (read by :mod:`serve_apps.ray_private_adapter`,
   the single module that knows the proxy's internal request format),

and returns the owning replica as the only candidate. Requests without a session id (start,
exercises, health, the page) and ids whose owner is gone get power-of-two choices among the
replicas Serve's locality (or multiplex) rules prefer. A replica that dies takes its sessions
with it: later calls get 404 and the browser starts a new session (sessions are short and cheap,
so no state is replicated).

Ray APIs used: only the public request-router surface ``ray.serve.request_router``
(``RequestRouter``, ``FIFOMixin``, ``LocalityMixin``, ``MultiplexMixin``, ``PendingRequest``,
``RunningReplica``; ``@PublicAPI(stability="alpha")`` in ray 2.60.0).
"""

from __future__ import annotations

import logging
import random
import re

from ray.serve.request_router import (
    FIFOMixin,
    LocalityMixin,
    MultiplexMixin,
    PendingRequest,
    RequestRouter,
    RunningReplica,
)

from serve_apps.ray_private_adapter import proxied_http_path

logger = logging.getLogger(__name__)

_PATH = re.compile(r"/api/session/([A-Za-z0-9_-]+)\.")


def owner_from_path(path: str) -> str | None:
    """The owner part of the session id in a request path, or None.

    >>> owner_from_path("/api/session/ab12cd34.xYz/frame")
    'ab12cd34'
    >>> owner_from_path("/api/session/start") is None
    True
    """
    m = _PATH.search(path)
    return m.group(1) if m else None


def owner_from_request(pending: PendingRequest | None) -> str | None:
    """The session owner a pending Serve request names, or None when it names none."""
    if pending is None:
        return None
    sid = pending.metadata.session_id
    if sid and "." in sid:
        return sid.split(".", 1)[0]
    path = proxied_http_path(pending.args)
    return owner_from_path(path) if path is not None else None


class SessionOwnerRouter(FIFOMixin, LocalityMixin, MultiplexMixin, RequestRouter):
    """Power-of-two choices, except that a session's requests go to the session's owner."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """Returns ``[[owner]]`` for a session request whose owner is alive, else pow-2 choices."""
        if len(candidate_replicas) == 1:
            # One replica owns every session (or the owner is gone and it answers 404): skip
            # reading the key, which unpickles the whole proxied request in the proxy.
            return [candidate_replicas]
        owner = owner_from_request(pending_request)
        if owner is not None:
            for replica in candidate_replicas:
                if replica.replica_id.unique_id == owner:
                    assert pending_request is not None
                    pending_request.routing_context.should_backoff = True  # owner busy: wait, never reroute
                    return [[replica]]
        chosen = self._two_choices(pending_request)
        return [chosen] if chosen else []

    def _two_choices(self, pending_request: PendingRequest | None) -> list[RunningReplica]:
        """Two random replicas among those the multiplex / locality rules prefer (Serve then
        probes both and sends the request to the one with the shorter queue)."""
        if pending_request is not None and pending_request.metadata.multiplexed_model_id:
            preferred = self.apply_multiplex_routing(pending_request=pending_request)
        else:
            preferred = self.apply_locality_routing(pending_request=pending_request)
        replicas = self.curr_replicas
        pool = [replicas[rid] for rid in preferred if rid in replicas]
        return random.sample(pool, min(2, len(pool)))
