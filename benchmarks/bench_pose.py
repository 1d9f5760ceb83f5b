"""Pose + keyframe throughput vs decode-only reading of the same video, side by side.

Run: python benchmarks/bench_pose.py [--video PATH] [--repeats N] [--max-frames N]

Prints frames/s for (a) decoding only (OpenCV read + BGR->RGB, what the pose path also
does), (b) the full "poses" + "keyframes" work per video (decode, MediaPipe, One-Euro,
16 angles, keyframe selection), and their ratio (goal: pose within 3x of decode). Model
loading is timed separately and excluded (an actor loads it once).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "tfjs-pose-squats" / "pose_squats.mp4"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes of each kind (best is kept)")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)
    if not args.video.is_file():
        raise SystemExit(f"video not found: {args.video} (pass --video PATH)")

    from physio_ray.video.angles import joint_angles
    from physio_ray.video.config import PoseConfig
    from physio_ray.video.decode import iter_frames, video_info
    from physio_ray.video.keyframes import select_keyframes
    from physio_ray.video.mediapipe_pose import MediaPipePose, pose_from_video
    from physio_ray.video.smoothing import smooth_sequence

    info = video_info(args.video)
    cfg = PoseConfig()
    t0 = time.perf_counter()
    estimator = MediaPipePose(cfg.model_complexity, cfg.min_detection_confidence)
    load_s = time.perf_counter() - t0

    decode_best, pose_best, post_best, n = float("inf"), float("inf"), float("inf"), 0
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        n = sum(1 for _ in iter_frames(args.video, args.max_frames))
        decode_best = min(decode_best, time.perf_counter() - t0)

        t0 = time.perf_counter()
        seq, _ = pose_from_video(args.video, estimator, args.max_frames)
        t1 = time.perf_counter()
        kp = smooth_sequence(seq.keypoints, seq.fps, cfg.one_euro_min_cutoff, cfg.one_euro_beta)
        angles = joint_angles(kp, seq.coord_space, aspect=seq.aspect)
        res = select_keyframes(angles, seq.fps, None, None, kp, seq.coord_space, seq.aspect)
        t2 = time.perf_counter()
        pose_best = min(pose_best, t2 - t0)
        post_best = min(post_best, t2 - t1)
    estimator.close()

    ratio = pose_best / decode_best
    print(f"video        {args.video.name}: {n} frames, {info.width}x{info.height} @ {info.fps:g} fps")
    print(f"machine      {os.cpu_count()} CPUs visible; load average {os.getloadavg()[0]:.2f}")
    print(f"model load   {load_s * 1000:.0f} ms (once per actor, excluded)")
    print(f"decode only  {n / decode_best:8.1f} frames/s  ({decode_best / n * 1000:6.1f} ms/frame)")
    print(f"pose+keys    {n / pose_best:8.1f} frames/s  ({pose_best / n * 1000:6.1f} ms/frame)")
    print(f"  of which smoothing+angles+keyframes {post_best * 1000:.1f} ms per video")
    print(f"keyframes    {list(zip(res.times, res.kinds, strict=True))}")
    print(f"pose+keyframes / decode = {ratio:.1f}x (goal <= 3x); every frame is posed (no stride yet)")
    print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
