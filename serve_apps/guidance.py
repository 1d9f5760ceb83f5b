"""The exercise guidance service of seed 003 on Ray Serve: 8 JSON endpoints, a WebSocket, the page.

Run it (serves on http://127.0.0.1:8000)::

    serve run configs/serve/guidance.yaml

Endpoints (seed 003 "API Endpoints"; bodies are JSON, errors are ``{"detail": "<message>"}``):

=======  ==============================  =====================================================
GET      /api/exercises                  exercises the user can pick
POST     /api/session/start              ``{"exercise"[, "coordinates", "image_width", "image_height"]}``
                                         -> ``{"session_id", "state", ...}``
POST     /api/session/{id}/frame         ``{"timestamp_ms", "keypoints"}`` or ``{"frames": [...]}``
                                         -> ``{"state", "reps", "feedback", ...}``
POST     /api/session/{id}/confirm       manual confirmation (409 unless VERIFYING/UNCERTAINTY)
POST     /api/session/{id}/reselect      ``{"exercise"}`` after an uncertainty prompt (else 409)
POST     /api/session/{id}/end           ends the session, returns its summary
GET      /api/session/{id}/status        current state
GET      /api/health                     liveness, no token needed
WS       /api/session/{id}/stream        one frame (or batch) per message, one result per message
=======  ==============================  =====================================================

Bad frames (NaN/inf, wrong point counts, oversized bodies, out-of-order timestamps, pixel values
in a normalised session) get 422 with a message and leave the session unchanged; an unknown,
ended or expired session gets 404; an action the state forbids gets 409; a start beyond
``max_sessions`` gets 429; a missing or wrong bearer token gets 401.

Where session state lives, and why. A frame must reach its session's state machine within a few
milliseconds, 150 times a second for 50 sessions, on a 2-core box where one Ray actor call costs
about as much as the engine step itself. So a session lives *inside the ingress replica that
started it*, in a plain dict (:class:`~serve_apps.guidance_sessions.SessionStore`), and is stepped
in that replica's event loop: no actor hop, no lock. Session ids carry the owner replica's id
(``<owner>.<random>``). Routing uses Serve's public API only: the request router
(:class:`~serve_apps.guidance_router.SessionOwnerRouter`) reads the key from the request
metadata Serve fills from the ``serve_multiplexed_model_id`` header (or ``x-session-id``); a
client that sends ``serve_multiplexed_model_id: <session_id>`` reaches the owner directly.
A request without the header that lands on another replica is passed to the owner by a
deployment-handle call keyed the same way (one extra hop). The multiplexed stream
(``WS /api/stream``, :mod:`serve_apps.guidance_stream`) needs no key: its sessions live where its
socket is.

Crash survival: every replica sends snapshots of its changed sessions (at once on a state or
rep change, else once a second) to a detached named actor
(:mod:`serve_apps.guidance_snapshots`) and renews its owner lease with each send. A request for
a session whose owner is gone claims it from that store, restores it on the replica that got
the request, and the next reply carries ``"resumed": true``; at most the frames of the last
second are lost, and the claim is atomic, so a session is never held (or counted) twice.
"""

import gc
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from ray import serve
from ray.serve.config import RequestRouterConfig

from physio_ray.guidance.session import GuidanceSession
from physio_ray.guidance.stream import StreamLimits
from serve_apps.guidance_schemas import Frame, FrameBatch, GuidanceAppArgs, ReselectRequest, StartRequest
from serve_apps.guidance_sessions import ServiceError, SessionStore, exercise_catalogue
from serve_apps.guidance_snapshots import SnapshotSync, snapshot_store
from serve_apps.guidance_stream import serve_stream

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
STATIC_DIR = Path(__file__).resolve().parent / "static" / "guidance"
VENDOR_DIR = REPO / "node_modules" / "@mediapipe" / "pose"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

app = FastAPI(title="Exercise guidance", docs_url="/api/docs", openapi_url="/api/openapi.json")


@app.exception_handler(ServiceError)
async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse({"detail": exc.message}, status_code=exc.status)


def validation_message(exc: ValidationError) -> str:
    """One readable line per problem: ``keypoints.3.1: Input should be a finite number``."""
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_frames(body: bytes, limit: int) -> list[Frame]:
    """Parses a frame body (one frame or ``{"frames": [...]}``).

    Raises:
        ServiceError: 422 for an oversized, malformed or invalid body.
    """
    if len(body) > limit:
        raise ServiceError(422, f"request body of {len(body)} bytes exceeds the limit of {limit} bytes")
    try:
        if b'"frames"' in body:
            return FrameBatch.model_validate_json(body).frames
        return [Frame.model_validate_json(body)]
    except ValidationError as exc:
        raise ServiceError(422, validation_message(exc)) from exc


def _parse(model: type, body: bytes, limit: int):  # noqa: ANN202 - returns an instance of ``model``
    if len(body) > limit:
        raise ServiceError(422, f"request body of {len(body)} bytes exceeds the limit of {limit} bytes")
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise ServiceError(422, validation_message(exc)) from exc


def _memory_mb() -> dict[str, float]:
    """Resident memory of this process in MiB from Linux /proc (NaN elsewhere): ``rss_mb`` and
    its parts ``rss_anon_mb`` (heap: what a leak grows), ``rss_file_mb`` (mapped files: code,
    libraries) and ``rss_shmem_mb`` (shared memory: pages of Ray's object store this process has
    touched, which grow as objects pass through it and are not this process's own)."""
    keys = {"VmRSS:": "rss_mb", "RssAnon:": "rss_anon_mb", "RssFile:": "rss_file_mb", "RssShmem:": "rss_shmem_mb"}
    out = dict.fromkeys(keys.values(), float("nan"))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(":", 1)[0] + ":"
            if key in keys:
                out[keys[key]] = round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return out


def _warm_up() -> None:
    """Runs one short synthetic session so the first user does not pay for imports and caches."""
    session = GuidanceSession()
    session.start("squat")
    pts = np.tile(np.array([[0.5, 0.5, 0.9]]), (17, 1))
    pts[:, 1] += np.linspace(-0.3, 0.4, 17)
    for i in range(10):
        session.step(i * 33.0, pts)
    session.end()


@serve.deployment(name="GuidanceIngress")
@serve.ingress(app)
class GuidanceIngress:
    """The FastAPI ingress; each replica owns the sessions it starts.

    Args:
        args: :class:`~serve_apps.guidance_schemas.GuidanceAppArgs` as a dict.
    """

    def __init__(self, args: dict) -> None:
        self.args = GuidanceAppArgs.model_validate(args)
        try:
            owner = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001 - local testing mode has no replica context
            owner = "local"
        self.store = SessionStore(owner, self.args.max_sessions, self.args.session_ttl_s)
        raw = os.environ.get(self.args.auth_token_env, "") if self.args.auth_token_env else ""
        self.tokens = {t.strip() for t in raw.split(",") if t.strip()}  # several: one per client/tenant
        self.token = raw
        self.stream_limits = StreamLimits(self.args.max_stream_message_bytes, self.args.max_frames_per_tick)
        self.sync: SnapshotSync | None = None
        if self.args.snapshots and owner != "local":
            actor = snapshot_store(self.args.owner_lease_s, self.args.session_ttl_s)
            self.sync = SnapshotSync(self.store, actor, self.args.snapshot_interval_s)
        self._handle: Any = None
        self._owners: dict[str, str] = {}  # sid -> owner, for sessions another live replica holds
        self.static_dir = Path(self.args.static_dir) if self.args.static_dir else STATIC_DIR
        self.vendor_dir = Path(self.args.vendor_dir) if self.args.vendor_dir else VENDOR_DIR
        if not (self.vendor_dir / "pose.js").is_file():
            logger.warning(
                "no @mediapipe/pose at %s: run scripts/setup_browser.sh for the camera page", self.vendor_dir
            )
        _warm_up()
        # Everything built so far (FastAPI, pydantic, numpy, torch, the models) lives as long as
        # the replica: out of the cyclic collector's reach, a full collection no longer walks
        # those objects and stalls a tick for ~20 ms (measured: tick p99 with 50 sessions).
        gc.freeze()

    # ------------------------------------------------------------------ helpers
    def tenant_of(self, authorization: str | None, token: str | None = None) -> str | None:
        """The tenant a token names: ``""`` without configured tokens, a hash of the token, or None."""
        if not self.tokens:
            return ""
        given = token
        if authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if given not in self.tokens:
            return None
        return hashlib.sha256(given.encode()).hexdigest()[:16]

    def _auth(self, authorization: str | None, query_token: str | None = None) -> str:
        if self.sync is not None:
            self.sync.ensure_running()
        tenant = self.tenant_of(authorization, query_token)
        if tenant is None:
            raise ServiceError(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")
        return tenant

    # ------------------------------------------------------------------ sessions held elsewhere
    async def locate(self, sid: str, follow_prefix: bool = True) -> str | None:
        """Makes ``sid`` local when its owner is gone; returns the live owner when it is elsewhere.

        Args:
            sid: the session id.
            follow_prefix: when the store has no snapshot yet (a session started a moment ago,
                before its owner's first sync), name the owner in the id; False on a request that
                was already passed on (then it is unknown: 404).

        Returns:
            None when the session is here now (or is unknown: the local call then answers 404),
            else the id of the live replica that holds it.

        Raises:
            ServiceError: 503 while the store cannot answer.
        """
        if self.store.has(sid) or self.store.gone(sid):
            return None
        if self.sync is None:  # no store: the id's owner holds it, if anyone does
            owner = sid.split(".", 1)[0]
            return owner if "." in sid and owner != self.store.owner else None
        try:
            claim = await self.sync.actor.claim.remote(sid, self.store.owner)
        except Exception as exc:  # noqa: BLE001 - the store actor is restarting
            raise ServiceError(503, f"session store unavailable ({type(exc).__name__}); retry") from exc
        if claim.outcome == "restored":
            assert claim.snapshot is not None and claim.meta is not None
            self.store.adopt(sid, claim.snapshot, claim.meta)
            self._owners.pop(sid, None)
            return None
        if claim.outcome == "owned":
            return claim.owner
        owner = sid.split(".", 1)[0]
        return owner if follow_prefix and "." in sid and owner != self.store.owner else None

    async def forward(self, owner: str, action: str, sid: str, payload: Any) -> Any:  # noqa: ANN401
        """Runs ``action`` on the replica ``owner`` (a handle call keyed with the owner's id).

        Raises:
            ServiceError: the owner's error, or 503 when the owner cannot be reached.
        """
        if self._handle is None:
            ctx = serve.get_replica_context()
            self._handle = serve.get_deployment_handle(ctx.deployment, app_name=ctx.app_name)
        try:
            ok, value = await self._handle.options(multiplexed_model_id=f"{owner}.{sid}").session_call.remote(
                action, sid, payload
            )
        except Exception as exc:  # noqa: BLE001 - the owner died between the claim and the call
            raise ServiceError(503, f"the replica holding session {sid!r} is gone; retry in a few seconds") from exc
        if not ok:
            raise ServiceError(*value)
        return value

    async def session_call(self, action: str, sid: str, payload: Any) -> tuple[bool, Any]:  # noqa: ANN401
        """Handle entry point: one session action forwarded by another replica."""
        try:
            if (
                not self.store.has(sid)
                and self.sync is not None
                and await self.locate(sid, follow_prefix=False) is not None
            ):
                raise ServiceError(503, f"session {sid!r} is being moved between replicas; retry shortly")
            return True, self._local(action, sid, payload)
        except ServiceError as exc:
            return False, (exc.status, exc.message)

    def _local(self, action: str, sid: str, payload: Any) -> Any:  # noqa: ANN401
        if action == "tick":
            items, tenant = payload
            return self.store.tick(items, tenant)
        if action == "frames":
            return self.store.frames(sid, payload)
        if action == "confirm":
            return self.store.confirm(sid)
        if action == "reselect":
            return self.store.reselect(sid, payload)
        if action == "end":
            return self.store.end(sid)
        if action == "status":
            return self.store.status(sid)
        raise ServiceError(422, f"unknown action {action!r}")

    async def session_action(self, action: str, sid: str, payload: Any, tenant: str | None = None) -> Any:  # noqa: ANN401
        """One session action here, or on the replica that holds the session."""
        if not self.store.has(sid):
            owner = await self.locate(sid)
            if owner is not None:
                return await self.forward(owner, action, sid, payload)
        if tenant is not None:
            self.store.get(sid, tenant)  # 404 for another tenant's session
        return self._local(action, sid, payload)

    # ------------------------------------------------------------------ API
    @app.get("/api/health")
    async def health(self) -> dict:
        return {
            "status": "ok",
            "replica": self.store.owner,
            "sessions": len(self.store),
            "expired": self.store.expired,
            "resumed": self.store.resumed,
            **_memory_mb(),
        }

    @app.get("/api/exercises")
    async def exercises(self, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return {"exercises": exercise_catalogue()}

    @app.post("/api/session/start")
    async def start(self, request: Request) -> dict:
        tenant = self._auth(request.headers.get("authorization"))
        req = _parse(StartRequest, await request.body(), self.args.max_body_bytes)
        sid, info = self.store.start(req, tenant=tenant)
        return {"session_id": sid, **info}

    @app.post("/api/session/{session_id}/frame")
    async def frame(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        frames = parse_frames(await request.body(), self.args.max_body_bytes)
        return {"session_id": session_id, **await self.session_action("frames", session_id, frames)}

    @app.post("/api/session/{session_id}/confirm")
    async def confirm(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return await self.session_action("confirm", session_id, None)

    @app.post("/api/session/{session_id}/reselect")
    async def reselect(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        req = _parse(ReselectRequest, await request.body(), self.args.max_body_bytes)
        return await self.session_action("reselect", session_id, req.exercise)

    @app.post("/api/session/{session_id}/end")
    async def end(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return await self.session_action("end", session_id, None)

    @app.get("/api/session/{session_id}/status")
    async def status(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return await self.session_action("status", session_id, None)

    @app.websocket("/api/session/{session_id}/stream")
    async def stream(self, websocket: WebSocket, session_id: str) -> None:
        """One JSON frame (or ``{"frames": [...]}``) per message; one JSON result per message.

        Errors come back as ``{"error": message, "status": code}``; 422 keeps the stream open,
        401/404 close it (close codes 4401/4404).
        """
        await websocket.accept()
        try:
            self._auth(websocket.headers.get("authorization"), websocket.query_params.get("token"))
            await self.session_action("status", session_id, None)
        except ServiceError as exc:
            await websocket.send_text(json.dumps({"error": exc.message, "status": exc.status}))
            await websocket.close(code=4000 + exc.status)
            return
        try:
            while True:
                message = await websocket.receive_text()
                try:
                    frames = parse_frames(message.encode(), self.args.max_body_bytes)
                    out = await self.session_action("frames", session_id, frames)
                except ServiceError as exc:
                    await websocket.send_text(json.dumps({"error": exc.message, "status": exc.status}))
                    if exc.status != 422:
                        await websocket.close(code=4000 + exc.status)
                        return
                    continue
                await websocket.send_text(json.dumps(out))
        except WebSocketDisconnect:
            return

    @app.websocket("/api/stream")
    async def multiplexed_stream(self, websocket: WebSocket) -> None:
        """Many sessions over one socket (schema: :mod:`physio_ray.guidance.stream`)."""
        if self.sync is not None:
            self.sync.ensure_running()
        await serve_stream(self, websocket)

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    async def root(self) -> RedirectResponse:
        return RedirectResponse("/guidance/")

    @app.get("/guidance/", include_in_schema=False)
    async def page(self) -> FileResponse:
        return FileResponse(self.static_dir / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/guidance/{name}", include_in_schema=False)
    async def asset(self, name: str) -> FileResponse:
        return self._file(self.static_dir, name)

    @app.get("/vendor/pose/{name}", include_in_schema=False)
    async def vendor(self, name: str) -> FileResponse:
        return self._file(self.vendor_dir, name)

    def _file(self, folder: Path, name: str) -> FileResponse:
        path = folder / name
        if not _SAFE_NAME.match(name) or not path.is_file():
            raise ServiceError(404, f"no file {name!r}")
        return FileResponse(path)


def build_app(args: GuidanceAppArgs) -> serve.Application:
    """Builds the guidance application (``import_path: serve_apps.guidance:build_app``).

    Args:
        args: validated from the YAML ``args:`` block.

    Returns:
        The bound application.
    """
    if isinstance(args, dict):
        args = GuidanceAppArgs.model_validate(args)
    options: dict = {
        "num_replicas": args.num_replicas,
        "max_ongoing_requests": args.max_ongoing_requests,
        "health_check_period_s": 2.0,  # a dead replica leaves the routers' lists within seconds
        "health_check_timeout_s": 5.0,
    }
    if args.sticky_router:
        options["request_router_config"] = RequestRouterConfig(
            request_router_class="serve_apps.guidance_router.SessionOwnerRouter"
        )
    return GuidanceIngress.options(**options).bind(args.model_dump())
