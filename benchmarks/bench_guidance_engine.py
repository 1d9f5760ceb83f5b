"""Guidance engine frame-step latency in-process, side by side.

Goals (issue 15): the batched engine <= 0.1 ms per frame at 50 sessions per tick; one frame
p99 <= 1 ms.

Run: python benchmarks/bench_guidance_engine.py [--seconds 40] [--batch 10] [--sessions 50] [--no-lstm]
         [--torch-threads 1]

torch runs with one intra-op thread by default, as in a Serve replica (Ray gives an actor of one
CPU OMP_NUM_THREADS=1); with two threads on this shared 2-core box one LSTM window's p99 goes
from ~1.7 to ~9 ms (threads waiting for each other), so compare like with like.

Streams a synthetic 30 fps squat session (3-second reps, 17 MoveNet keypoints with jitter)
through GuidanceSession and prints p50/p99/max per frame for
  (a) frame(): one HTTP-style frame at a time;
  (b) frames(): the seed's cadence, one call per 10 camera frames (per-call and per-frame);
  (c) the same two with the shipped LSTM classifier + quality models;
  (d) a tick of --sessions sessions (one frame each, every session at its own point of the
      squat): today's loop (frame() per session) against the batched engine
      (physio_ray.guidance.batch_engine.step_frames, what the multiplexed stream runs), per tick
      and per frame;
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
    parser.add_argument("--sessions", type=int, default=50, help="sessions per tick in the batched rows")
    parser.add_argument("--no-lstm", action="store_true", help="skip the shipped-LSTM rows")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: what a Serve replica of 1 CPU gets, OMP_NUM_THREADS=1)",
    )
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.torch_threads)

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
        for mode in ("loop", "batched"):
            ticks, reps = _ticks(factory, ts, kp, args.sessions, mode == "batched")
            rows.append((f"{name}: {args.sessions} sessions, {mode}, per tick", _pct(ticks), reps))
            rows.append(
                (f"{name}: {args.sessions} sessions, {mode}, per frame", _pct([t / args.sessions for t in ticks]), reps)
            )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"guidance engine, {len(ts)} frames at 30 fps, {n_reps} squats; load average {load:.1f} on {os.cpu_count()} cores; "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"  {'path':44s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}  {'reps (final state)':18s} vs goal")
    a = _pct(ang)
    print(f"  {'shared 16 angles, one frame':44s} {a['p50']:8.3f} {a['p99']:8.3f} {a['max']:8.3f}")
    for label, p, reps in rows:
        goal = _goal(label, p)
        print(f"  {label:44s} {p['p50']:8.3f} {p['p99']:8.3f} {p['max']:8.3f}  {reps:18s} {goal}")
    by = {label: p for label, p, _ in rows}
    base = rows[0][1]["p50"]
    print(
        f"  ratio frame() p50 / one angle call p50: {base / a['p50']:.2f}; batched per-frame p50 / frame() p50: "
        f"{rows[2][1]['p50'] / base:.2f}"
    )
    for name, _ in factories:
        loop = by[f"{name}: {args.sessions} sessions, loop, per frame"]["p50"]
        batched = by[f"{name}: {args.sessions} sessions, batched, per frame"]["p50"]
        print(f"  {name}: {args.sessions}-session tick, loop / batched per-frame p50: {loop / batched:.2f}x")


def _goal(label: str, p: dict[str, float]) -> str:
    """The row's figure over its goal (<= 1 is met)."""
    if "batched, per frame" in label:
        return f"p50/0.1 ms {p['p50'] / 0.1:5.2f}x"
    if "frame() per frame" in label:
        return f"p99/1 ms {p['p99'] / 1.0:5.2f}x"
    return ""


def _ticks(session_factory, ts, kp, n: int, batched: bool) -> tuple[list[float], str]:  # noqa: ANN001
    """Ticks of one frame for each of ``n`` sessions, each session ``i`` 7*i frames into the squat."""
    from physio_ray.guidance.batch_engine import step_frames

    sessions = [session_factory() for _ in range(n)]
    for s in sessions:
        s.start("squat")
    times = []
    for k in range(len(ts)):
        frames = [kp[(k + 7 * i) % len(ts)] for i in range(n)]
        stamps = [float(ts[k])] * n
        t0 = time.perf_counter()
        if batched:
            step_frames(sessions, stamps, frames)
        else:
            for s, t, f in zip(sessions, stamps, frames, strict=True):
                s.frame(t, f)
        times.append(time.perf_counter() - t0)
    reps = sorted(s.reps for s in sessions)
    return times[30:], f"{reps[0]}-{reps[-1]} ({sessions[0].state.value})"


if __name__ == "__main__":
    main(sys.argv[1:])
