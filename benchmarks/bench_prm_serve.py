"""PRM scoring throughput on Ray Serve: ``@serve.batch`` (max_batch_size 16) vs batch size 1.

Starts a local Ray + Serve, deploys the scoring app twice (same model, only the batch size
differs), fires the same concurrent loopback HTTP requests at each and prints requests/s side
by side. Untrained PRM (no checkpoint): throughput does not depend on the weights.

The traffic is Best-of-N scoring as the app sends it: real physiotherapy questions (UI-PRMD
question rows of ``tests/assets/policy/questions.parquet``: system prompt, the measured evidence,
the question and its options, ~450 tokens) with 4 candidate solutions each (the reference
reasoning of each option: they share their first step and differ from the finding on).
``--concurrency`` clients each send one question's 4 candidates together, wait for their
scores, and take the next question. On a CPU a batch of 8 costs about 8
single forwards (compute-bound), so what a batch buys is the shared prompt: the scoring path
runs the prefix that a batch's rows share once per group (``physio_ray/prm/prefix.py``).
``--no-share`` turns that off on the batched side (to see what batching alone gives).

Run: python benchmarks/bench_prm_serve.py [--requests 96] [--concurrency 32] [--layers 8] [--batch 16] [--no-share]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUESTIONS = ROOT / "tests" / "assets" / "policy" / "questions.parquet"


def bon_requests() -> list[dict[str, Any]]:
    """Request bodies: 4 candidates per question (one per option), question after question."""
    import pandas as pd

    from physio_ray.annotate.reference_solutions import reference_steps
    from physio_ray.schemas import LETTERS

    bodies = []
    for row in pd.read_parquet(QUESTIONS).itertuples():
        options = [str(o) for o in row.options]
        for letter in LETTERS[: len(options)]:
            steps = reference_steps(str(row.template), str(row.exercise), options, letter, row.features)
            if steps:
                bodies.append({"question": str(row.question), "options": options, "steps": steps})
    return bodies


async def _fire(url: str, bodies: list[dict[str, Any]], clients: int) -> float:
    """``clients`` clients each score one question's candidates at a time (sent together, as a
    Best-of-N caller does), then take the next question; returns the seconds for all bodies."""
    import httpx

    sets: list[list[dict[str, Any]]] = []
    for body in bodies:
        if sets and sets[-1][0]["question"] == body["question"]:
            sets[-1].append(body)
        else:
            sets.append([body])
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for candidates in sets:
        queue.put_nowait(candidates)
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=None)) as client:

        async def post(body: dict[str, Any]) -> None:
            r = await client.post(url, json=body)
            r.raise_for_status()

        async def caller() -> None:
            while not queue.empty():
                candidates = queue.get_nowait()
                await asyncio.gather(*(post(b) for b in candidates))

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(clients)))
        return time.perf_counter() - start


def measure(batch: int, share: bool, port: int, bodies: list[dict[str, Any]], args: argparse.Namespace) -> float:
    """Requests per second of one deployment with ``max_batch_size=batch``."""
    from ray import serve

    from serve_apps.prm_scoring import build_app

    app = build_app(
        {
            "checkpoint": None,
            "model": {"text": {"num_layers": args.layers}, "vision": {"kind": "none"}},
            "prompt": {"max_length": 1024},
            "max_batch_size": batch,
            "batch_wait_timeout_s": args.wait if batch > 1 else 0.0,
            "share_prefix": share,
        }
    )
    name = f"prm-b{batch}-{'shared' if share else 'plain'}"
    serve.run(app, name=name, route_prefix="/")
    url = f"http://127.0.0.1:{port}/score"
    asyncio.run(_fire(url, bodies[:4], 4))  # warm-up
    seconds = asyncio.run(_fire(url, bodies, args.concurrency))
    serve.delete(name)
    return len(bodies) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=96, help="requests per side (4 per question)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="Best-of-N clients (each sends its 4 candidates at once)"
    )
    parser.add_argument("--layers", type=int, default=8, help="SmolLM2 layers kept in the text tower (local PRM: 8)")
    parser.add_argument("--batch", type=int, default=16, help="max_batch_size of the batched side")
    parser.add_argument("--wait", type=float, default=0.01, help="batch_wait_timeout_s of the batched side")
    parser.add_argument("--no-share", action="store_true", help="batched side without prefix sharing")
    args = parser.parse_args()
    bodies = bon_requests()[: args.requests]
    import ray
    from ray import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        single = measure(1, False, port, bodies, args)
        batched = measure(args.batch, not args.no_share, port, bodies, args)
    finally:
        serve.shutdown()
        ray.shutdown()
    share = "off" if args.no_share else "on"
    print(
        f"PRM /score, {len(bodies)} Best-of-N requests ({len({b['question'] for b in bodies})} questions, "
        "up to 4 candidates each), "
        f"concurrency {args.concurrency}, {args.layers}-layer SmolLM2 tower, 1 CPU per replica"
    )
    print(f"  batch size 1 : {single:7.2f} req/s")
    print(f"  @serve.batch {args.batch} (prefix sharing {share}): {batched:7.2f} req/s")
    print(f"  batched / unbatched: {batched / single:7.2f}x (goal >= 3x)")
    print(f"ratio: {batched / single:.2f}")


if __name__ == "__main__":
    main()
