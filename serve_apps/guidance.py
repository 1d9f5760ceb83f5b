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
in that replica's event loop: no actor hop, no serialisation of state, no lock. To make this hold
with several replicas, session ids carry the owner replica's id (``<owner>.<random>``) and the
deployment uses a keyed request router (:class:`~serve_apps.guidance_router.SessionOwnerRouter`)
that sends every request of a session to its owner. The alternatives cost more per frame: a named
actor per session adds an actor call (and a process-wide actor) per frame; sharing state through
the object store or a database adds a round trip and a serialisation per frame. The price of the
keyed design is that a replica's death ends its sessions (404, the page starts a new one);
sessions last minutes and hold nothing worth replicating.
"""

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import ValidationError
from ray import serve
from ray.serve.config import RequestRouterConfig

from physio_ray.guidance.session import GuidanceSession
from serve_apps.guidance_schemas import Frame, FrameBatch, GuidanceAppArgs, ReselectRequest, StartRequest
from serve_apps.guidance_sessions import ServiceError, SessionStore, exercise_catalogue

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
        self.token = os.environ.get(self.args.auth_token_env, "") if self.args.auth_token_env else ""
        self.static_dir = Path(self.args.static_dir) if self.args.static_dir else STATIC_DIR
        self.vendor_dir = Path(self.args.vendor_dir) if self.args.vendor_dir else VENDOR_DIR
        if not (self.vendor_dir / "pose.js").is_file():
            logger.warning(
                "no @mediapipe/pose at %s: run scripts/setup_browser.sh for the camera page", self.vendor_dir
            )
        _warm_up()

    # ------------------------------------------------------------------ helpers
    def _auth(self, authorization: str | None, query_token: str | None = None) -> None:
        if not self.token:
            return
        given = query_token
        if authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if given != self.token:
            raise ServiceError(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")

    # ------------------------------------------------------------------ API
    @app.get("/api/health")
    async def health(self) -> dict:
        return {"status": "ok", "replica": self.store.owner, "sessions": len(self.store)}

    @app.get("/api/exercises")
    async def exercises(self, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return {"exercises": exercise_catalogue()}

    @app.post("/api/session/start")
    async def start(self, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        req = _parse(StartRequest, await request.body(), self.args.max_body_bytes)
        sid, info = self.store.start(req)
        return {"session_id": sid, **info}

    @app.post("/api/session/{session_id}/frame")
    async def frame(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        frames = parse_frames(await request.body(), self.args.max_body_bytes)
        return {"session_id": session_id, **self.store.frames(session_id, frames)}

    @app.post("/api/session/{session_id}/confirm")
    async def confirm(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return self.store.confirm(session_id)

    @app.post("/api/session/{session_id}/reselect")
    async def reselect(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        req = _parse(ReselectRequest, await request.body(), self.args.max_body_bytes)
        return self.store.reselect(session_id, req.exercise)

    @app.post("/api/session/{session_id}/end")
    async def end(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return self.store.end(session_id)

    @app.get("/api/session/{session_id}/status")
    async def status(self, session_id: str, request: Request) -> dict:
        self._auth(request.headers.get("authorization"))
        return self.store.status(session_id)

    @app.websocket("/api/session/{session_id}/stream")
    async def stream(self, websocket: WebSocket, session_id: str) -> None:
        """One JSON frame (or ``{"frames": [...]}``) per message; one JSON result per message.

        Errors come back as ``{"error": message, "status": code}``; 422 keeps the stream open,
        401/404 close it (close codes 4401/4404).
        """
        await websocket.accept()
        try:
            self._auth(websocket.headers.get("authorization"), websocket.query_params.get("token"))
            self.store.get(session_id)
        except ServiceError as exc:
            await websocket.send_text(json.dumps({"error": exc.message, "status": exc.status}))
            await websocket.close(code=4000 + exc.status)
            return
        try:
            while True:
                message = await websocket.receive_text()
                try:
                    frames = parse_frames(message.encode(), self.args.max_body_bytes)
                    out = self.store.frames(session_id, frames)
                except ServiceError as exc:
                    await websocket.send_text(json.dumps({"error": exc.message, "status": exc.status}))
                    if exc.status != 422:
                        await websocket.close(code=4000 + exc.status)
                        return
                    continue
                await websocket.send_text(json.dumps(out))
        except WebSocketDisconnect:
            return

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
    options: dict = {"num_replicas": args.num_replicas, "max_ongoing_requests": args.max_ongoing_requests}
    if args.sticky_router:
        options["request_router_config"] = RequestRouterConfig(
            request_router_class="serve_apps.guidance_router.SessionOwnerRouter"
        )
    return GuidanceIngress.options(**options).bind(args.model_dump())
