"""The one place where the guidance service leans on Ray Serve internals (checked with ray 2.60.0).

Why this module exists: the keyed session router (:mod:`serve_apps.guidance_router`) needs the
session id of every request it routes. Serve's public request-router API
(``ray.serve.request_router``: ``RequestRouter``, ``PendingRequest``, the FIFO / locality /
multiplex mixins) gives it ``pending_request.metadata`` and ``pending_request.args``, but for a
plain HTTP request proxied by Serve the URL path is only inside ``args[0]``: a pickled request
object whose ``asgi_scope`` attribute is the ASGI scope. That format is undocumented and may
change in any Ray release, so it is read here and nowhere else, and a failure means "no key"
(default routing), never an error.

This module imports nothing from ``ray._private`` or ``ray.serve._private`` (the router now
subclasses the public ``RequestRouter``); the layering test lets this single file, and no other,
hold such imports should a future Ray need them. Issue 15 replaces it with a key that Serve's
public API carries (e.g. the multiplexed-model id header), after which this file can be deleted.
"""

from __future__ import annotations

import pickle
from typing import Any

CHECKED_WITH_RAY = "2.60.0"


def proxied_http_path(request_args: tuple[Any, ...] | list[Any] | None) -> str | None:
    """The URL path of an HTTP request as Serve's proxy hands it to the request router, or None.

    Args:
        request_args: ``PendingRequest.args`` of the request being routed.

    Returns:
        The ASGI scope's ``path``; None when the request is not a proxied HTTP request (a
        deployment-handle call, an unreadable or changed internal format).

    >>> from types import SimpleNamespace
    >>> proxied_http_path([pickle.dumps(SimpleNamespace(asgi_scope={"path": "/api/x"}))])
    '/api/x'
    >>> proxied_http_path([b"not a pickle"]) is None
    True
    """
    if not request_args or not isinstance(request_args[0], bytes):
        return None
    try:
        scope = getattr(pickle.loads(request_args[0]), "asgi_scope", None)
    except Exception:  # noqa: BLE001 - not a proxy HTTP request (or a changed format): no key
        return None
    if not isinstance(scope, dict):
        return None
    return str(scope.get("path", ""))
