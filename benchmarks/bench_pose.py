"""Pose + keyframe cost vs decode-only at 30 fps, with the adaptive pose stride, side by side.

Run: python benchmarks/bench_pose.py [--video PATH] [--video30 PATH] [--repeats N] [--subjects heldout|all] [--videos N] [--no-actors]

Prints, in one run:
1. per-frame costs on the squat clip (5 fps, 720x1280): decode only (OpenCV read + BGR->RGB),
   MediaPipe, and smoothing + angles + keyframes; at 5 fps the stride's 0.2 s interval is one
   frame, so this clip keeps every frame;
2. the real 30 fps clip (pose_1.mp4): every frame vs the stride, wall time, posed frames and
   whether the keyframes agree within one frame;
3. the stride policy on motion capture standing in for the detector at 30 fps (UI-PRMD Kinect
   and Vicon, KERAAL; 10-rep sequences through a camera turned 30 degrees), noise-free and with
   the view sweep's detector noise: posed fraction and keyframes within one frame of posing
   every frame; with noise, beside the same comparison between two noise draws of the *same*
   every-frame stream (how stable the reference itself is);
4. the "poses" stage on Ray Data, an actor pool of 1 vs 2 (``--videos`` rows of the squat clip,
   one CPU per actor, actor start-up included; ``--no-actors`` skips it);
5. the implied ratio at 30 fps: (decode + posed fraction x pose + post) / decode, from (1) and (3).
Model loading is timed separately and excluded (an actor loads it once).
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
DEFAULT_VIDEO_30 = REPO.parent / "shared" / "data" / "tfjs-pose-squats" / "pose_1.mp4"


def _per_frame_costs(video: Path, repeats: int, max_frames: int | None) -> dict[str, float]:
    from physio_ray.video.config import PoseConfig
    from physio_ray.video.decode import iter_frames
    from physio_ray.video.mediapipe_pose import MediaPipePose, pose_from_video
    from physio_ray.video.stride_eval import stream_keyframes

    cfg = PoseConfig()
    t0 = time.perf_counter()
    estimator = MediaPipePose(cfg.model_complexity, cfg.min_detection_confidence)
    load_s = time.perf_counter() - t0
    decode, pose, post, n = float("inf"), float("inf"), float("inf"), 0
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        n = sum(1 for _ in iter_frames(video, max_frames))
        decode = min(decode, time.perf_counter() - t0)
        t0 = time.perf_counter()
        seq, _ = pose_from_video(video, estimator, max_frames)  # every frame
        t1 = time.perf_counter()
        stream_keyframes(seq.keypoints, seq.fps, seq.coord_space, seq.aspect, None)
        t2 = time.perf_counter()
        pose, post = min(pose, t1 - t0), min(post, t2 - t1)
    estimator.close()
    return {"n": n, "load_s": load_s, "decode": decode / n, "pose": (pose - decode) / n, "post": post / n}


def _real_30fps(video: Path, repeats: int) -> dict[str, object]:
    from physio_ray.video.decode import iter_frames
    from physio_ray.video.mediapipe_pose import MediaPipePose, pose_from_video
    from physio_ray.video.stride import StrideConfig
    from physio_ray.video.stride_eval import keyframes_agree, stream_keyframes

    est = MediaPipePose()
    out: dict[str, object] = {}
    decode = min(_timed(lambda: sum(1 for _ in iter_frames(video))) for _ in range(max(1, repeats)))
    for name, stride in (("every", None), ("stride", StrideConfig())):
        best, seq = float("inf"), None
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            seq, _ = pose_from_video(video, est, stride=stride)
            kf = stream_keyframes(seq.keypoints, seq.fps, seq.coord_space, seq.aspect, None)
            best = min(best, time.perf_counter() - t0)
        assert seq is not None
        out[name] = (best, seq.meta.get("posed_frames", seq.n_frames), seq.n_frames, kf)
    est.close()
    out["decode"] = decode
    out["agree"] = keyframes_agree(out["every"][3], out["stride"][3])  # type: ignore[index]
    return out


def _timed(fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _policy_on_motion(subjects: str) -> dict[str, dict[str, float]]:
    from collections import defaultdict

    import numpy as np

    from physio_ray.video.layout import to_coco17
    from physio_ray.video.stride import StrideConfig
    from physio_ray.video.stride_eval import compare_on_stream, keyframes_agree, stream_keyframes
    from physio_ray.video.view_sweep import concatenate, load_clips
    from physio_ray.video.virtual_camera import NO_NOISE, DetectorNoise, VirtualCamera, render

    clips = load_clips(REPO.parent / "shared" / "data")
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    for c in clips:
        if subjects == "all" or c.split == "heldout":
            groups[(c.source, c.subject, c.exercise)].append(c)
    cam = VirtualCamera(yaw_deg=30.0)
    rows_out: dict[str, dict[str, float]] = {}
    for label, noise in (("noise-free", NO_NOISE), ("detector noise", DetectorNoise())):
        agree, posed, stable = [], [], []
        for (_, _, exercise), cs in sorted(groups.items()):
            pts = concatenate(cs, 10)

            def stream(seed: int, pts=pts, cs=cs, noise=noise) -> np.ndarray:
                st = render(pts, cs[0].fps, cam, fps_out=30.0, noise=noise, seed=seed)
                rows = np.concatenate([st.keypoints, st.visibility[..., None]], axis=-1)
                rows[st.visibility < 0.5, :2] = np.nan  # a lost point, as the counter sees it
                return rows

            rows = stream(1)
            ok, frac, ref, _ = compare_on_stream(rows, 30.0, "image2d", cam.aspect, exercise, StrideConfig())
            agree.append(ok)
            posed.append(frac)
            if noise is not NO_NOISE:
                other = stream_keyframes(
                    to_coco17(stream(2), third="visibility"), 30.0, "image2d", cam.aspect, exercise
                )
                stable.append(keyframes_agree(ref, other))
        rows_out[label] = {
            "n": len(agree),
            "agree": float(np.mean(agree)),
            "posed": float(np.mean(posed)),
            "reseed": float(np.mean(stable)) if stable else float("nan"),
        }
    return rows_out


def _actor_pools(video: Path, n_videos: int) -> dict[int, float]:
    """Seconds for the "poses" stage over ``n_videos`` rows with 1 and 2 actors."""
    import numpy as np
    import ray
    from ray.data import ActorPoolStrategy

    from physio_ray.schemas import SOURCE_KIND, SOURCE_PATH, VIDEO_ID
    from physio_ray.video.pose import PoseExtractor

    rows = {
        VIDEO_ID: np.array([f"v{i}" for i in range(n_videos)], dtype=object),
        SOURCE_KIND: np.array(["video"] * n_videos, dtype=object),
        SOURCE_PATH: np.array([str(video)] * n_videos, dtype=object),
    }
    out: dict[int, float] = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for actors in (1, 2):
            t0 = time.perf_counter()
            done = (
                ray.data.from_items([{k: v[i] for k, v in rows.items()} for i in range(n_videos)])
                .map_batches(
                    PoseExtractor,
                    compute=ActorPoolStrategy(size=actors),
                    num_cpus=1,
                    batch_size=1,
                    batch_format="numpy",
                )
                .take_all()
            )
            out[actors] = time.perf_counter() - t0
            assert len(done) == n_videos and all(r["error"] in (None, "") for r in done)
    finally:
        ray.shutdown()
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="clip for the per-frame costs")
    parser.add_argument("--video30", type=Path, default=DEFAULT_VIDEO_30, help="a real 30 fps clip")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes of each kind (best is kept)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--subjects", choices=("heldout", "all"), default="heldout")
    parser.add_argument("--videos", type=int, default=12, help="rows for the actor-pool comparison")
    parser.add_argument("--no-actors", action="store_true", help="skip the Ray actor-pool comparison")
    args = parser.parse_args(argv)
    for video in (args.video, args.video30):
        if not video.is_file():
            raise SystemExit(f"video not found: {video} (pass --video / --video30 PATH)")

    from physio_ray.video.decode import video_info

    info = video_info(args.video)
    costs = _per_frame_costs(args.video, args.repeats, args.max_frames)
    real = _real_30fps(args.video30, args.repeats)
    policy = _policy_on_motion(args.subjects)
    pools = {} if args.no_actors else _actor_pools(args.video, args.videos)

    d, p, q = costs["decode"] * 1000, costs["pose"] * 1000, costs["post"] * 1000
    print(f"machine      {os.cpu_count()} CPUs visible; load average {os.getloadavg()[0]:.2f}")
    print(f"1. {args.video.name}: {costs['n']:.0f} frames, {info.width}x{info.height} @ {info.fps:g} fps")
    print(f"   model load {costs['load_s'] * 1000:.0f} ms (once per actor, excluded)")
    print(f"   per frame: decode {d:.2f} ms, MediaPipe {p:.2f} ms, smoothing+angles+keyframes {q:.2f} ms")
    print(f"   every frame posed: (decode + pose + post) / decode = {(d + p + q) / d:.1f}x")
    print("   (5 fps: the stride's 0.2 s interval is one frame, so this clip keeps every frame)")
    (te, _, n30, _), (ts, ns, _, _) = real["every"], real["stride"]  # type: ignore[misc]
    dec30 = float(real["decode"])  # type: ignore[arg-type]
    print(f"2. {args.video30.name} (real, 30 fps, {n30} frames):")
    print(
        f"   decode only {dec30:.2f} s; every frame {te:.2f} s ({te / dec30:.1f}x); stride {ts:.2f} s ({ts / dec30:.1f}x)"
    )
    print(f"   posed {ns}/{n30} frames; keyframes within one frame of every-frame: {real['agree']}")
    print(f"3. stride policy on motion capture at 30 fps ({args.subjects} subjects, camera yaw 30):")
    print(f"   {'stream':<16}{'n':>4}{'posed':>8}{'keyframes +-1':>15}{'reference vs reseed':>21}")
    for label, row in policy.items():
        reseed = "-" if row["reseed"] != row["reseed"] else f"{row['reseed']:.0%}"
        print(f"   {label:<16}{row['n']:>4.0f}{row['posed']:>8.1%}{row['agree']:>15.0%}{reseed:>21}")
    if pools:
        print(f"4. poses stage on Ray Data, {args.videos} rows of {args.video.name}, 1 CPU per actor:")
        print(f"   1 actor {pools[1]:.1f} s, 2 actors {pools[2]:.1f} s: {pools[1] / pools[2]:.2f}x (goal >= 1.7x)")
    frac = policy["detector noise"]["posed"]
    implied = (d + frac * p + q) / d
    print(
        f"5. implied at 30 fps: (decode {d:.2f} + {frac:.1%} x pose {p:.2f} + post {q:.2f}) / decode = {implied:.1f}x (goal <= 3x)"
    )
    print(f"ratio: {implied:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
