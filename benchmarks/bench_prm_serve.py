"""PRM scoring throughput on Ray Serve: ``@serve.batch`` (max_batch_size=8) vs batch size 1.

Starts a local Ray + Serve, deploys the scoring app twice (same model, only the batch size
differs), fires the same concurrent loopback HTTP requests at each and prints requests/s side
by side. Untrained PRM (no checkpoint): throughput does not depend on the weights.

Run: python benchmarks/bench_prm_serve.py [--requests 48] [--concurrency 16] [--layers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = [
    "Step 1: Parallel depth corresponds to roughly 90-100 degrees of knee flexion ки",
    "Step 2: 95 degrees is close to parallel but not clearly below it ки",
    "Step 3: So the squat reaches about parallel depth ки",
]
BODY = {
    "question": "During a bodyweight squat the knee flexion peaks at 95 degrees. Is the depth adequate?",
    "options": ["Yes, below parallel", "No, above parallel", "Cannot tell", "Only the left knee"],
    "steps": STEPS,
}


async def _fire(url: str, n: int, concurrency: int) -> float:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=300) as client:

        async def one() -> None:
            async with sem:
                r = await client.post(url, json=BODY)
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - start


def measure(batch: int, port: int, args: argparse.Namespace) -> float:
    """Requests per second of one deployment with ``max_batch_size=batch``."""
    from ray import serve

    from serve_apps.prm_scoring import build_app

    app = build_app(
        {
            "checkpoint": None,
            "model": {"text": {"num_layers": args.layers}, "vision": {"kind": "none"}},
            "prompt": {"max_length": 256},
            "max_batch_size": batch,
            "batch_wait_timeout_s": 0.02,
        }
    )
    serve.run(app, name=f"prm-b{batch}", route_prefix="/")
    url = f"http://127.0.0.1:{port}/score"
    asyncio.run(_fire(url, 4, 4))  # warm-up
    seconds = asyncio.run(_fire(url, args.requests, args.concurrency))
    serve.delete(f"prm-b{batch}")
    return args.requests / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4, help="SmolLM2 layers kept in the text tower")
    args = parser.parse_args()
    import ray
    from ray import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        single = measure(1, port, args)
        batched = measure(8, port, args)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"PRM /score, {args.requests} requests, concurrency {args.concurrency}, {args.layers}-layer SmolLM2 tower")
    print(f"  batch size 1 : {single:7.2f} req/s")
    print(f"  @serve.batch 8: {batched:7.2f} req/s")
    print(f"  batched / unbatched: {batched / single:7.2f}x (goal >= 3x)")
    print(f"ratio: {batched / single:.2f}")


if __name__ == "__main__":
    main()
