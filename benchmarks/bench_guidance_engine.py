"""Guidance engine frame-step latency in-process (goal: p99 <= 2 ms per frame), side by side.

Run: python benchmarks/bench_guidance_engine.py [--seconds 40] [--batch 10] [--no-lstm]

Streams a synthetic 30 fps squat session (3-second reps, 17 MoveNet keypoints with jitter)
through GuidanceSession and prints p50/p99/max per frame for
  (a) frame(): one HTTP-style frame at a time;
  (b) frames(): the seed's cadence, one call per 10 camera frames (per-call and per-frame);
  (c) the same two with the shipped LSTM classifier + quality models;
next to the cost of the shared 16-angle function on one frame (the fixed numpy overhead that
(a) pays per frame and (b) pays once per batch). Also prints the machine load: this box has 2
cores shared with other work, so compare ratios measured in the same run.
The synthetic figure is seen from the side; the shipped classifier was trained on frontal views,
so with the LSTMs the session may (correctly, never silently) go to UNCERTAINTY: the final
state is printed next to the rep count.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _pct(values: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(values) * 1000.0
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _stream(session_factory, ts, kp, batch: int) -> tuple[list[float], str]:  # noqa: ANN001
    s = session_factory()
    s.start("squat")
    times = []
    if batch <= 1:
        for t, k in zip(ts, kp, strict=True):
            t0 = time.perf_counter()
            s.frame(float(t), k)
            times.append(time.perf_counter() - t0)
    else:
        for i in range(0, len(ts), batch):
            t0 = time.perf_counter()
            s.frames(ts[i : i + batch], kp[i : i + batch])
            times.append(time.perf_counter() - t0)
    return times, f"{s.reps} ({s.state.value})"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the synthetic session")
    parser.add_argument("--batch", type=int, default=10, help="frames per frames() call")
    parser.add_argument("--no-lstm", action="store_true", help="skip the shipped-LSTM rows")
    args = parser.parse_args(argv)

    import numpy as np

    from physio_ray.guidance import GuidanceSession
    from physio_ray.guidance.synthetic import knee_profile, squat_stream
    from physio_ray.video.angles import joint_angles

    n_reps = int((args.seconds - 4.0) // 3.0)
    ts, kp = squat_stream(30.0, args.seconds, knee_fn=lambda t: knee_profile(t, n_reps=n_reps), noise=0.002)
    one = np.zeros((17, 4))
    one[:, :2], one[:, 3] = kp[0, :, :2], 1.0
    ang = []
    for _ in range(300):
        t0 = time.perf_counter()
        joint_angles(one, "image2d", min_visibility=0.3)
        ang.append(time.perf_counter() - t0)

    rows = []
    factories = [("rules", GuidanceSession)]
    if not args.no_lstm:
        from physio_ray.guidance.models import load_guidance_models

        models = load_guidance_models()
        factories.append(("lstm", lambda: GuidanceSession.from_models(models)))
    for name, factory in factories:
        _stream(factory, ts[:60], kp[:60], 1)  # warm-up
        single, reps1 = _stream(factory, ts, kp, 1)
        batched, reps2 = _stream(factory, ts, kp, args.batch)
        per_frame = [b / args.batch for b in batched]
        rows.append((f"{name}: frame() per frame", _pct(single), reps1))
        rows.append((f"{name}: frames({args.batch}) per call", _pct(batched), reps2))
        rows.append((f"{name}: frames({args.batch}) per frame", _pct(per_frame), reps2))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"guidance engine, {len(ts)} frames at 30 fps, {n_reps} squats; load average {load:.1f} on {os.cpu_count()} cores"
    )
    print(f"  {'path':36s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}  {'reps (final state)':18s} p99/goal(2 ms)")
    a = _pct(ang)
    print(f"  {'shared 16 angles, one frame':36s} {a['p50']:8.3f} {a['p99']:8.3f} {a['max']:8.3f}")
    for label, p, reps in rows:
        print(f"  {label:36s} {p['p50']:8.3f} {p['p99']:8.3f} {p['max']:8.3f}  {reps:18s} {p['p99'] / 2.0:5.2f}x")
    base = rows[0][1]["p50"]
    print(
        f"  ratio frame() p50 / one angle call p50: {base / a['p50']:.2f}; batched per-frame p50 / frame() p50: "
        f"{rows[2][1]['p50'] / base:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
