"""``WS /api/stream``: one connection carries many sessions (schema in :mod:`physio_ray.guidance.stream`).

The socket stays on one replica for its life, so the sessions it starts are owned by that
replica and every tick is stepped locally, in one call (:func:`physio_ray.guidance.stream.step_tick`):
no routing key is needed. After a replica crash the client reconnects (Serve picks a live
replica) and keeps sending the same session ids: the new replica claims each session from the
snapshot store once its old owner's lease has run out (items answer ``busy`` until then, a few
seconds at most) and restores it; that session's next entry says ``"resumed": true``. A session
still held by another live replica (a second socket, a reconnect without a crash) is stepped
there through a deployment-handle call, so no session is ever held twice.

Unreadable messages get one ``error`` reply and the stream stays open. Close codes: 4401 (no
or wrong token first), 1000 on the client's close.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from fastapi import WebSocket, WebSocketDisconnect

from physio_ray.guidance.stream import Message, StreamError, StreamLimits, TickFrame, error_entry, parse_message
from serve_apps.guidance_schemas import StartRequest
from serve_apps.guidance_sessions import ServiceError, SessionStore


class GuidanceIngress(Protocol):
    """What the stream needs of the ingress deployment (serve_apps.guidance.GuidanceIngress).

    A protocol, so this module does not import the ingress that imports it.
    """

    store: SessionStore
    stream_limits: StreamLimits

    def tenant_of(self, authorization: str | None, token: str | None = None) -> str | None: ...

    async def locate(self, sid: str, follow_prefix: bool = True) -> str | None: ...

    async def forward(self, owner: str, action: str, sid: str, payload: Any) -> Any: ...  # noqa: ANN401

    async def session_action(self, action: str, sid: str, payload: Any, tenant: str | None = None) -> Any: ...  # noqa: ANN401


logger = logging.getLogger(__name__)

_STATUS_CODES = {404: "unknown_session", 409: "conflict", 422: "bad_message", 429: "limit", 503: "busy"}


def _code(exc: ServiceError, message: str | None = None) -> StreamError:
    code = _STATUS_CODES.get(exc.status, "bad_message")
    if exc.status == 422 and "unknown exercise" in exc.message:
        code = "unknown_exercise"
    return StreamError(code, message or exc.message)


async def serve_stream(ingress: GuidanceIngress, ws: WebSocket) -> None:
    """Runs one multiplexed stream until the client closes it."""
    await ws.accept()
    tenant = ingress.tenant_of(ws.headers.get("authorization"), ws.query_params.get("token"))
    limits = ingress.stream_limits
    try:
        while True:
            event = await ws.receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            if text is None:
                text = (event.get("bytes") or b"").decode("utf-8", errors="replace")
            try:
                msg = parse_message(text, limits)
            except StreamError as exc:
                await ws.send_text(json.dumps(exc.payload()))
                continue
            if tenant is None:
                tenant = ingress.tenant_of(None, msg.fields.get("token")) if msg.type == "auth" else None
                if tenant is None:
                    err = StreamError("unauthorized", "send {'type': 'auth', 'token': '<token>'} first (or ?token=)")
                    await ws.send_text(json.dumps(err.payload()))
                    await ws.close(code=4401, reason="unauthorized")
                    return
                await ws.send_text(json.dumps({"type": "authenticated"}))
                continue
            reply = await _answer(ingress, msg, tenant)
            await ws.send_text(json.dumps(reply))
    except WebSocketDisconnect:
        return


async def _answer(ingress: GuidanceIngress, msg: Message, tenant: str) -> dict:
    if msg.type == "auth":
        return {"type": "authenticated"}
    if msg.type == "frames":
        return {"type": "states", "states": await _tick(ingress, list(msg.items), tenant)}
    f = msg.fields
    if msg.type == "start":
        ref = f.get("client_ref")
        try:
            req = StartRequest.model_validate({k: v for k, v in f.items() if k != "client_ref"})
            sid, info = ingress.store.start(req, tenant=tenant)
        except ServiceError as exc:
            return _code(exc).payload(client_ref=ref)
        except ValueError as exc:  # pydantic's ValidationError
            return StreamError("bad_message", str(exc).splitlines()[0]).payload(client_ref=ref)
        return {"type": "started", "client_ref": ref, "session_id": sid, **info}
    sid = f["session_id"]
    payload = f.get("exercise")
    try:
        out = await ingress.session_action(msg.type, sid, payload, tenant=tenant)
    except ServiceError as exc:
        return _code(exc).payload(session_id=sid)
    kind = "ended" if msg.type == "end" else "state"
    return {"type": kind, **out}


async def _tick(ingress: GuidanceIngress, items: list[TickFrame | StreamError], tenant: str) -> list[dict]:
    """Steps local items in one call; items of sessions held elsewhere go to their owner."""
    foreign: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        if isinstance(item, TickFrame) and not ingress.store.has(item.session_id):
            foreign.setdefault(item.session_id, []).append(i)
    moved: dict[str, str] = {}  # sid -> owner for sessions held by another live replica
    errors: dict[str, StreamError] = {}
    for sid in foreign:
        try:
            owner = await ingress.locate(sid)
        except ServiceError as exc:
            errors[sid] = _code(exc)
            continue
        if owner is not None:
            moved[sid] = owner
    local = [
        it if not (isinstance(it, TickFrame) and (it.session_id in moved or it.session_id in errors)) else None
        for it in items
    ]
    keep = [i for i, it in enumerate(local) if it is not None]
    stepped = ingress.store.tick([items[i] for i in keep], tenant)
    out: list[dict] = [{}] * len(items)
    for i, entry in zip(keep, stepped, strict=True):
        out[i] = entry
    for sid, err in errors.items():
        for i in foreign[sid]:
            out[i] = error_entry(err, sid)
    for sid, owner in moved.items():
        idx = foreign[sid]
        try:
            entries = await ingress.forward(owner, "tick", sid, ([items[i] for i in idx], tenant))
        except ServiceError as exc:
            entries = [error_entry(_code(exc), sid)] * len(idx)
        for i, entry in zip(idx, entries, strict=True):
            out[i] = entry
    return out
