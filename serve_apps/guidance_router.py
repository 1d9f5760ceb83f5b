"""Keyed request router: every request of a session goes to the replica that owns it.

Session ids are ``<owner>.<random>`` where ``owner`` is the unique id of the Serve replica that
started the session (see :mod:`serve_apps.guidance_sessions`). This router runs in the Serve
proxy and in every deployment handle; it reads the key from the request metadata that Serve's
public API fills:

* ``multiplexed_model_id``: the ``serve_multiplexed_model_id`` HTTP header, or
  ``handle.options(multiplexed_model_id=...)`` (the ingress passes a request to the owner this
  way, keyed ``<owner>.<session id>``);
* ``session_id``: the ``x-session-id`` HTTP header.

A key whose owner is alive gets that replica as the only candidate. Requests without a key
(start, exercises, health, the page, the multiplexed stream, and session URLs sent without the
header) and keys whose owner is gone get power-of-two choices among the replicas Serve's
locality rules prefer; the ingress then passes a session request it does not hold to the owner,
or restores the session from its snapshot when the owner is gone.

Ray APIs used: only the public request-router surface ``ray.serve.request_router``
(``RequestRouter``, ``FIFOMixin``, ``LocalityMixin``, ``MultiplexMixin``, ``PendingRequest``, ``RunningReplica``;
``@PublicAPI(stability="alpha")`` in ray 2.60.0) and the documented metadata fields above.
Nothing is unpickled and no ``ray.serve._private`` module is imported.
"""

from __future__ import annotations

import logging
import random

from ray.serve.request_router import (
    FIFOMixin,
    LocalityMixin,
    MultiplexMixin,
    PendingRequest,
    RequestRouter,
    RunningReplica,
)

logger = logging.getLogger(__name__)


def owner_of_key(key: str | None) -> str | None:
    """The owner part of a routing key ``<owner>.<rest>``, or None.

    >>> owner_of_key("ab12cd34.xYz")
    'ab12cd34'
    >>> owner_of_key("") is None, owner_of_key("plain") is None
    (True, True)
    """
    if key and "." in key:
        owner = key.split(".", 1)[0]
        return owner or None
    return None


def owner_from_request(pending: PendingRequest | None) -> str | None:
    """The session owner a pending Serve request names through its public metadata, or None."""
    if pending is None:
        return None
    meta = pending.metadata
    return owner_of_key(getattr(meta, "multiplexed_model_id", "")) or owner_of_key(getattr(meta, "session_id", ""))


class SessionOwnerRouter(FIFOMixin, LocalityMixin, MultiplexMixin, RequestRouter):
    """Power-of-two choices, except that a keyed request goes to the owner it names."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """Returns ``[[owner]]`` for a keyed request whose owner is alive, else pow-2 choices."""
        if len(candidate_replicas) == 1:
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
        """Two random replicas among those the locality rules prefer (Serve then probes both and
        sends the request to the one with the shorter queue)."""
        preferred = self.apply_locality_routing(pending_request=pending_request)
        replicas = self.curr_replicas
        pool = [replicas[rid] for rid in preferred if rid in replicas]
        return random.sample(pool, min(2, len(pool)))
