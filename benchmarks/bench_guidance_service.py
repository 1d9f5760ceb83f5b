"""Load on the guidance service over 127.0.0.1, with plain-uvicorn anchors measured in the same run.

Phases (each bounded by ``--duration`` seconds, open-loop: requests leave on schedule whether or
not earlier ones returned, so queueing shows up in the tail):

1. anchor A: a trivial FastAPI endpoint on plain uvicorn (one client back to back, then the
   seed cadence below) - what this box does without Ray;
2. anchor B: the same guidance engine and session store on plain uvicorn (no Ray) at the seed
   cadence - the engine's own cost;
3. the guidance service on Ray Serve (``serve_apps.guidance``): ``--sessions`` sessions at the
   seed cadence (30 fps camera, one request per 10 frames -> 3 requests/s each; 50 sessions =
   150 requests/s), one frame of the real tfjs squat clip per request;
4. the same service, the seed cadence over the WebSocket instead of one HTTP request per frame
   (the same ``--sessions`` sessions, 3 messages/s each);
5. the same service, sessions streaming every frame (30 messages/s each) over the WebSocket, for
   each count in ``--ws-sessions``; the largest count with p99 < 50 ms is reported;
6. the multiplexed stream ``WS /api/stream``: one socket, a tick every 33 ms carrying one frame
   of each of 50 sessions (30 frames/s each), then 100 sessions; latency is from a tick's due
   time to its ``states`` reply, on the service and on a plain-uvicorn anchor of the same store.

``--soak S`` runs only the multiplexed stream on Serve for S seconds (50 sessions, 30 fps, TTL
30 s, 5 sessions abandoned and 5 started every minute so the TTL sweep works) and prints the
replica RSS (idle, at steady state after the first minute, every 30 s, at the end; with its
heap / shared-memory parts), p99 per minute, errors and sessions expired by TTL.

Prints p50/p95/p99 latency, achieved rate and errors per phase and the ratios to the anchors,
and writes JSON to ``outputs/bench_guidance_service.json``.

    python benchmarks/bench_guidance_service.py [--duration 30] [--sessions 50] [--ws-sessions 5,10,20]
    python benchmarks/bench_guidance_service.py --soak 600

Every phase in the JSON has ``p50_ms``, ``p99_ms``, ``rate`` (frames or requests per second)
and ``errors``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("PHYSIO_RAY_SHARED", REPO.parent / "shared")) / "data" / "tfjs-pose-squats"

ANCHOR_APP = """
import sys
from fastapi import FastAPI, Request
sys.path.insert(0, {repo!r})
from serve_apps.guidance import parse_frames
from serve_apps.guidance_schemas import StartRequest
from serve_apps.guidance_sessions import ServiceError, SessionStore
from fastapi.responses import JSONResponse
app = FastAPI()
store = SessionStore("plain", 10000, 900)
@app.get("/ping")
async def ping():
    return {{"ok": True}}
@app.post("/api/session/start")
async def start(request: Request):
    sid, info = store.start(StartRequest.model_validate_json(await request.body()))
    return {{"session_id": sid, **info}}
from fastapi import WebSocket
from physio_ray.guidance.stream import StreamLimits, parse_message
import json
@app.websocket("/api/stream")
async def stream(ws: WebSocket):
    await ws.accept()
    limits = StreamLimits(2 * 1024 * 1024, 1000)
    while True:
        try:
            text = await ws.receive_text()
        except Exception:
            return
        msg = parse_message(text, limits)
        if msg.type == "start":
            sid, info = store.start(StartRequest(exercise=msg.fields["exercise"], coordinates="pixels",
                                                 image_width=720, image_height=1280))
            await ws.send_text(json.dumps({{"type": "started", "session_id": sid, "client_ref": msg.fields.get("client_ref")}}))
        else:
            await ws.send_text(json.dumps({{"type": "states", "states": store.tick(list(msg.items), "")}}))
@app.post("/api/session/{{sid}}/frame")
async def frame(sid: str, request: Request):
    try:
        return store.frames(sid, parse_frames(await request.body(), 262144))
    except ServiceError as e:
        return JSONResponse({{"detail": e.message}}, status_code=e.status)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams (a light load generator)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in headers:
            data = await self.reader.readexactly(int(headers["content-length"]))
        else:  # chunked
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        return status, data


def stats(lat: list[float], errors: int, seconds: float) -> dict:
    arr = np.asarray(lat) * 1000.0 if lat else np.asarray([np.nan])
    return {
        "requests": len(lat),
        "errors": errors,
        "rate_per_s": round(len(lat) / seconds, 1),
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p95_ms": round(float(np.percentile(arr, 95)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "rate": round(len(lat) / seconds, 1),
    }


async def mux_stream(
    port: int, frames: np.ndarray, sessions: int, fps: float, seconds: float, churn_per_min: int = 0
) -> dict:
    """:func:`_mux_stream`, with a phase that cannot even connect (a server still overloaded by
    the previous phase) reported as all errors instead of ending the run."""
    try:
        return await _mux_stream(port, frames, sessions, fps, seconds, churn_per_min)
    except (OSError, TimeoutError) as exc:
        print(f"multiplexed stream, {sessions} sessions: {type(exc).__name__}: {exc}")
        return stats([], int(seconds * fps) * sessions, seconds) | {"target_rate_per_s": sessions * fps}


async def _mux_stream(
    port: int, frames: np.ndarray, sessions: int, fps: float, seconds: float, churn_per_min: int = 0
) -> dict:
    """One socket on ``/api/stream``: a tick every 1/fps s with one frame of every session.

    Sending and receiving run as two tasks (open loop: a slow reply does not delay the next
    tick); a tick's latency runs from its due time to its reply. ``rate`` counts frames.
    """
    from websockets.asyncio.client import connect

    start = {"type": "start", "exercise": "squat", "coordinates": "pixels", "image_width": 720, "image_height": 1280}
    lat: list[float] = []
    per_minute: list[list[float]] = [[]]
    errors = 0
    expired_refs = 0
    async with connect(f"ws://127.0.0.1:{port}/api/stream", max_size=None, ping_interval=None, open_timeout=60) as ws:
        sids = []
        for k in range(sessions):
            await ws.send(json.dumps(start | {"client_ref": k}))
            sids.append(json.loads(await ws.recv())["session_id"])
        period = 1.0 / fps
        due: asyncio.Queue = asyncio.Queue()
        t_start = time.perf_counter()
        n_ticks = int(seconds * fps)

        async def send() -> None:
            nonlocal sids, expired_refs
            next_min = 60.0
            for i in range(n_ticks):
                t_due = t_start + i * period
                await asyncio.sleep(max(0.0, t_due - time.perf_counter()))
                if churn_per_min and i * period >= next_min:  # abandon some sessions, start new ones
                    next_min += 60.0
                    for k in range(churn_per_min):
                        await ws.send(json.dumps(start | {"client_ref": f"c{i}.{k}"}))
                        await due.put(("start", k))
                kp = frames[i % len(frames)].tolist()
                tick = {"type": "frames", "frames": [{"session_id": s, "timestamp_ms": i * 1000.0 * period,
                                                      "keypoints": kp} for s in sids]}  # fmt: skip
                await ws.send(json.dumps(tick))
                await due.put(("tick", t_due))

        async def recv() -> None:
            nonlocal errors, sids, expired_refs
            got = 0
            deadline = t_start + seconds + 5.0  # bounded: an overloaded server's late replies are errors
            while got < n_ticks:
                try:
                    kind, value = await asyncio.wait_for(due.get(), max(0.01, deadline - time.perf_counter()))
                    reply = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.perf_counter())))
                except TimeoutError:
                    errors += (n_ticks - got) * sessions
                    return
                if kind == "start":  # replaces the session in slot ``value`` (the old one is left to the TTL)
                    if reply.get("type") == "started":
                        sids[value] = reply["session_id"]
                        expired_refs += 1
                    else:
                        errors += 1
                    continue
                got += 1
                dt = time.perf_counter() - value
                lat.append(dt)
                minute = int((value - t_start) // 60)
                while len(per_minute) <= minute:
                    per_minute.append([])
                per_minute[minute].append(dt)
                if reply.get("type") != "states":
                    errors += 1
                else:
                    errors += sum(1 for e in reply["states"] if e.get("error"))

        sender = asyncio.create_task(send())
        await recv()
        sender.cancel()
    out = stats(lat, errors, seconds)
    out["rate"] = round(len(lat) * sessions / seconds, 1)
    out["target_rate_per_s"] = sessions * fps
    out["abandoned_sessions"] = expired_refs
    out["p99_ms_per_minute"] = [round(float(np.percentile(np.asarray(m) * 1000, 99)), 2) for m in per_minute if m]
    return out


async def closed_loop(port: int, path: str, seconds: float) -> dict:
    conn, lat, errors = Conn(port), [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        status, _ = await conn.request("GET", path)
        lat.append(time.perf_counter() - t0)
        errors += status != 200
    return stats(lat, errors, seconds)


async def seed_cadence(port: int, frames: np.ndarray, sessions: int, rate_each: float, seconds: float) -> dict:
    """``sessions`` clients, each sending one frame every 1/rate_each s (open loop, own connection)."""
    body = json.dumps({"exercise": "squat", "coordinates": "pixels", "image_width": 720, "image_height": 1280})
    lat: list[float] = []
    errors = 0

    async def one(k: int) -> None:
        nonlocal errors
        conn = Conn(port)
        status, data = await conn.request("POST", "/api/session/start", body.encode())
        if status != 200:
            errors += 1
            return
        sid = json.loads(data)["session_id"]
        period = 1.0 / rate_each
        t_start = time.perf_counter() + (k / sessions) * period  # spread the sessions over a period
        i = 0
        while True:
            due = t_start + i * period
            if due - t_start > seconds or time.perf_counter() - t_start > seconds + 2.0:
                break  # bounded: an overloaded server gets fewer requests, not a longer run
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            kp = frames[i % len(frames)].tolist()
            payload = json.dumps({"timestamp_ms": i * 1000.0 * period, "keypoints": kp}).encode()
            t0 = time.perf_counter()
            status, _ = await conn.request("POST", f"/api/session/{sid}/frame", payload)
            lat.append(time.perf_counter() - t0 + max(0.0, t0 - due))  # count queueing at the client too
            errors += status != 200
            i += 1
        await conn.request("POST", f"/api/session/{sid}/end")

    await asyncio.gather(*(one(k) for k in range(sessions)))
    return stats(lat, errors, seconds) | {"target_rate_per_s": sessions * rate_each}


async def ws_stream(port: int, frames: np.ndarray, sessions: int, fps: float, seconds: float) -> dict:
    from websockets.asyncio.client import connect

    lat: list[float] = []
    errors = 0
    body = json.dumps({"exercise": "squat", "coordinates": "pixels", "image_width": 720, "image_height": 1280})

    async def one(k: int) -> None:
        nonlocal errors
        status, data = await Conn(port).request("POST", "/api/session/start", body.encode())
        sid = json.loads(data)["session_id"]
        async with connect(f"ws://127.0.0.1:{port}/api/session/{sid}/stream") as ws:
            period = 1.0 / fps
            t_start = time.perf_counter() + (k / sessions) * period
            i = 0
            while i * period <= seconds and time.perf_counter() - t_start <= seconds + 2.0:
                due = t_start + i * period
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                msg = json.dumps({"timestamp_ms": i * 1000.0 * period, "keypoints": frames[i % len(frames)].tolist()})
                t0 = time.perf_counter()
                await ws.send(msg)
                reply = json.loads(await ws.recv())
                lat.append(time.perf_counter() - t0 + max(0.0, t0 - due))
                errors += "error" in reply
                i += 1

    await asyncio.gather(*(one(k) for k in range(sessions)))
    return stats(lat, errors, seconds) | {"target_rate_per_s": sessions * fps}


def wait_http(port: int, path: str, timeout: float = 120.0) -> None:
    import httpx

    end = time.time() + timeout
    while time.time() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"nothing answered on port {port}{path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per load phase (default 30)")
    ap.add_argument("--sessions", type=int, default=50, help="sessions at the seed cadence (default 50)")
    ap.add_argument(
        "--ws-sessions", default="5,10,20", help="per-frame WebSocket session counts to try (default 5,10,20)"
    )
    ap.add_argument("--soak", type=float, default=0.0, help="soak mode: seconds of the multiplexed stream")
    ap.add_argument("--out", default=str(REPO / "outputs" / "bench_guidance_service.json"))
    args = ap.parse_args()
    frames = np.asarray(json.loads((DATA / "pose_squats.full.json").read_text()), dtype=np.float64)
    if args.soak > 0:
        soak(args, frames)
        return
    results: dict = {"config": vars(args), "cpus": os.cpu_count()}
    short = min(args.duration, 5.0)

    port = free_port()
    app_file = REPO / "outputs" / "_bench_anchor_app.py"
    app_file.parent.mkdir(exist_ok=True)
    app_file.write_text(ANCHOR_APP.format(repo=str(REPO)))
    anchor = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "_bench_anchor_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=app_file.parent,
    )
    try:
        wait_http(port, "/ping")
        results["uvicorn_trivial_1client"] = asyncio.run(closed_loop(port, "/ping", short))
        results["uvicorn_guidance_seed_cadence"] = asyncio.run(
            seed_cadence(port, frames, args.sessions, 3.0, args.duration)
        )
        for n in (50, 100):
            results[f"uvicorn_mux_stream_{n}x30fps"] = asyncio.run(mux_stream(port, frames, n, 30.0, args.duration))
    finally:
        anchor.terminate()
        try:
            anchor.wait(timeout=10)
        except subprocess.TimeoutExpired:
            anchor.kill()
            anchor.wait(timeout=10)

    import ray
    from ray import serve

    from serve_apps.guidance import build_app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"enable_access_log": False})
    serve.run(build_app({"num_replicas": 1, "auth_token_env": ""}), name="guidance", route_prefix="/")
    try:
        wait_http(port, "/api/health")
        results["serve_health_1client"] = asyncio.run(closed_loop(port, "/api/health", short))
        results["serve_guidance_seed_cadence"] = asyncio.run(
            seed_cadence(port, frames, args.sessions, 3.0, args.duration)
        )
        results["serve_guidance_ws_seed_cadence"] = asyncio.run(
            ws_stream(port, frames, args.sessions, 3.0, args.duration)
        )
        for n in sorted(int(x) for x in str(args.ws_sessions).split(",")):
            results[f"serve_guidance_ws_per_frame_{n}"] = asyncio.run(ws_stream(port, frames, n, 30.0, args.duration))
        for n in (50, 100):
            results[f"serve_mux_stream_{n}x30fps"] = asyncio.run(mux_stream(port, frames, n, 30.0, args.duration))
    finally:
        serve.shutdown()
        ray.shutdown()

    a, b, s = (
        results["uvicorn_trivial_1client"],
        results["uvicorn_guidance_seed_cadence"],
        results["serve_guidance_seed_cadence"],
    )
    results["ratios"] = {
        "serve_seed_p99_over_uvicorn_guidance_p99": round(s["p99_ms"] / b["p99_ms"], 2),
        "serve_seed_p50_over_uvicorn_guidance_p50": round(s["p50_ms"] / b["p50_ms"], 2),
        "serve_health_p50_over_uvicorn_trivial_p50": round(results["serve_health_1client"]["p50_ms"] / a["p50_ms"], 2),
    }
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    print(
        f"{'phase':36s} {'req':>6s} {'err':>4s} {'rate/s':>7s} {'target':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}"
    )
    for name, r in results.items():
        if isinstance(r, dict) and "p99_ms" in r:
            print(
                f"{name:36s} {r['requests']:6d} {r['errors']:4d} {r['rate_per_s']:7.1f} {r.get('target_rate_per_s', 0):7.0f} "
                f"{r['p50_ms']:8.2f} {r['p95_ms']:8.2f} {r['p99_ms']:8.2f}"
            )
    for k, v in results["ratios"].items():
        print(f"{k:52s} {v:.2f}x")
    held = [
        int(k.rsplit("_", 1)[1])
        for k, r in results.items()
        if k.startswith("serve_guidance_ws_per_frame_") and r["errors"] == 0 and r["p99_ms"] < 50.0
    ]
    results["ws_per_frame_sessions_held"] = max(held, default=0)
    print(f"per-frame WebSocket sessions held at p99 < 50 ms: {results['ws_per_frame_sessions_held']} (goal >= 20)")
    m = results["serve_mux_stream_50x30fps"]
    print(f"multiplexed 50 x 30 fps: p99 {m['p99_ms']:.1f} ms, {m['errors']} errors (goal p99 < 50 ms, 0 errors)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def soak(args: argparse.Namespace, frames: np.ndarray) -> None:
    """50 sessions on the multiplexed stream for ``--soak`` seconds, with RSS and the TTL sweep.

    The replica's memory is sampled every 30 s. Growth is reported twice: from the idle replica
    before the first session (this includes the working set of 50 live sessions: their angle
    windows, filters and counters) and from the first sample after the first minute (sessions
    at their steady size: what a leak would grow). Both against the goal of < 5%.
    """
    import httpx
    import ray
    from ray import serve

    from serve_apps.guidance import build_app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"enable_access_log": False})
    serve.run(
        build_app({"num_replicas": 1, "auth_token_env": "", "session_ttl_s": 30}), name="guidance", route_prefix="/"
    )
    samples: list[tuple[float, dict]] = []

    async def sample_memory(t0: float) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                await asyncio.sleep(30.0)
                health = (await client.get(f"http://127.0.0.1:{port}/api/health")).json()
                samples.append((time.perf_counter() - t0, health))

    async def run() -> dict:
        sampler = asyncio.create_task(sample_memory(time.perf_counter()))
        try:
            return await mux_stream(port, frames, 50, 30.0, args.soak, churn_per_min=5)
        finally:
            sampler.cancel()

    try:
        wait_http(port, "/api/health")
        before = httpx.get(f"http://127.0.0.1:{port}/api/health").json()
        r = asyncio.run(run())
        time.sleep(2.0)
        after = httpx.get(f"http://127.0.0.1:{port}/api/health").json()
    finally:
        serve.shutdown()
        ray.shutdown()
    growth = (after["rss_mb"] - before["rss_mb"]) / before["rss_mb"] * 100.0
    r |= {"rss_mb_start": before["rss_mb"], "rss_mb_end": after["rss_mb"], "rss_growth_pct": round(growth, 2)}
    for part in ("rss_anon_mb", "rss_file_mb", "rss_shmem_mb"):
        r[f"{part}_start"], r[f"{part}_end"] = before.get(part), after.get(part)
    steady = next((h for t, h in samples if t >= 60.0), None)
    if steady is not None:
        r["rss_mb_steady_start"] = steady["rss_mb"]
        r["rss_growth_from_steady_pct"] = round((after["rss_mb"] - steady["rss_mb"]) / steady["rss_mb"] * 100.0, 2)
    r["memory_samples"] = [{"t_s": round(t, 1), **{k: h.get(k) for k in ("rss_mb", "rss_anon_mb", "rss_shmem_mb", "sessions")}}
                           for t, h in samples]  # fmt: skip
    r["ttl_expired_sessions"] = after["expired"]
    print(f"soak {args.soak:.0f} s, 50 sessions x 30 fps on one socket")
    print(f"replica RSS idle {before['rss_mb']:.1f} MiB, end {after['rss_mb']:.1f} MiB ({growth:+.2f}% from idle)")
    if steady is not None:
        print(f"replica RSS steady (first sample after 60 s) {steady['rss_mb']:.1f} MiB -> end {after['rss_mb']:.1f} MiB "
              f"({r['rss_growth_from_steady_pct']:+.2f}%; goal < 5%)")  # fmt: skip
    print("  of which " + ", ".join(
        f"{part[4:-3]} {before.get(part, float('nan')):.1f} -> {after.get(part, float('nan')):.1f}"
        for part in ("rss_anon_mb", "rss_file_mb", "rss_shmem_mb")
    ) + " MiB (anon: the heap; shmem: object-store pages the replica touched)")  # fmt: skip
    for t, h in samples:
        print(f"  t={t:6.0f} s: RSS {h['rss_mb']:.1f} MiB (anon {h.get('rss_anon_mb')}, shmem {h.get('rss_shmem_mb')}), "
              f"{h['sessions']} sessions held")  # fmt: skip
    for i, p in enumerate(r["p99_ms_per_minute"]):
        print(f"minute {i + 1:3d}: p99 {p:8.2f} ms")
    print(f"errors {r['errors']} (goal 0); sessions expired by TTL {r['ttl_expired_sessions']}"
          f" of {r['abandoned_sessions']} abandoned; overall p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms")  # fmt: skip
    out = Path(args.out).with_name("bench_guidance_service_soak.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "soak": r}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
