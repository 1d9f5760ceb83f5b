"""Repetition counting on every labelled pose stream we have: MAE and off-by-one accuracy.

Run: python benchmarks/bench_guidance_reps.py [--data-dir ../shared/data] [--out outputs/bench_guidance_reps.json]

Sequences: the tfjs squat clip (MediaPipe landmarks of the real video, 2 complete reps + 1
partial), all UI-PRMD segmented episodes (one repetition each; correct and deliberately
incorrect executions, 9 subjects) and the KERAAL BlazePose recordings (one repetition each).
UI-PRMD is scored twice: 3D angles (world3d) and as a frontal camera sees it (frontal2d, depth
dropped). Printed next to PoseRAC's RepCount-A figures (MAE 0.236, OBO 0.56; a different
dataset of long multi-rep videos, given as an anchor, not a like-for-like comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
POSERAC = {"mae": 0.236, "obo": 0.56}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_guidance_reps.json")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        raise SystemExit(f"data not found: {args.data_dir}")

    from physio_ray.guidance import GuidanceConfig
    from physio_ray.guidance.datasets import iter_labelled_sequences
    from physio_ray.guidance.exercise_rules import RULES
    from physio_ray.guidance.offline import RepCountItem, RepCountReport, count_sequence

    t0 = time.time()
    cfg = GuidanceConfig()
    reports = {"world3d": RepCountReport(view="world3d"), "frontal2d": RepCountReport(view="frontal2d")}
    for seq in iter_labelled_sequences(args.data_dir):
        if not RULES[seq.exercise].countable:
            for rep in reports.values():
                if seq.exercise not in rep.unsupported:
                    rep.unsupported.append(seq.exercise)
            continue
        for view, rep in reports.items():
            counted = count_sequence(seq, view, cfg)
            rep.items.append(RepCountItem(seq.source, seq.exercise, seq.subject, seq.correct, seq.expected, counted))
    out = {"seconds": round(time.time() - t0, 1), "poserac_repcount_a": POSERAC}
    for view, rep in reports.items():
        print(rep.render())
        correct = rep.metrics([r for r in rep.items if r.correct])
        everything = rep.metrics()
        out[view] = {"correct": correct, "all": everything, "by_exercise": rep.by_exercise(True)}
        print(
            f"  => {view}: correct executions MAE {correct['mae']:.3f} (PoseRAC {POSERAC['mae']}, ratio "
            f"{correct['mae'] / POSERAC['mae']:.2f}), OBO {correct['obo']:.3f} (PoseRAC {POSERAC['obo']}); "
            f"incl. incorrect: MAE {everything['mae']:.3f} OBO {everything['obo']:.3f}\n"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"written {args.out} ({out['seconds']} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
