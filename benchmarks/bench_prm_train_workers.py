"""PRM training step time on Ray Train with 2 workers vs 1 worker (same global work per step).

Runs the CI training config twice through ``run_train_prm`` (one TorchTrainer fit each) and
compares the median optimiser-step time after the first epoch (frozen text tower cached) and
the whole fit time. Each worker processes ``batch_size`` examples per step, so 2 workers do
twice the examples per step: the per-example throughput ratio is printed too. On a 2-core
laptop the two workers share the cores with Ray itself, so expect well under 2x.

Run: python benchmarks/bench_prm_train_workers.py [--steps 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run(workers: int, steps: int, root: str) -> tuple[float, float, int]:
    """``(median step seconds after the first epoch, fit seconds, examples per step)``."""
    from physio_ray.config import load_config
    from physio_ray.prm.config import TrainPRMConfig
    from physio_ray.prm.ray_train import run_train_prm

    cfg = load_config(
        TrainPRMConfig,
        [
            str(REPO / "configs" / "train_prm" / "ci.yaml"),
            f"output_dir={root}/w{workers}",
            f"run.storage_path={root}/ray_train",
            f"run.name=bench-w{workers}",
            f"run.checkpoint_every={steps}",
            f"scaling.num_workers={workers}",
            f"train.max_steps={steps}",
            "train.epochs=100",
        ],
    )
    summary = run_train_prm(cfg)
    history = summary.metrics["history"]
    per_epoch = max(1, -(-cfg.data.limit * 3 // 4 // workers) // cfg.train.batch_size)  # ceil(train/workers/batch)
    later = [h[3] for h in history[per_epoch:]] or [h[3] for h in history]
    return statistics.median(later), summary.seconds, workers * cfg.train.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as root:
            one = run(1, args.steps, root)
            two = run(2, args.steps, root)
    finally:
        ray.shutdown()
    print(f"PRM training, {args.steps} steps, CI config (2-layer SmolLM2 tower, cached hidden states)")
    print(f"  1 worker : step {one[0] * 1000:7.1f} ms, fit {one[1]:6.1f} s, {one[2]} examples/step")
    print(f"  2 workers: step {two[0] * 1000:7.1f} ms, fit {two[1]:6.1f} s, {two[2]} examples/step")
    print(
        f"  step-time ratio (2w/1w): {two[0] / one[0]:.2f}; examples/s ratio (2w/1w): {(two[2] / two[0]) / (one[2] / one[0]):.2f}x"
    )


if __name__ == "__main__":
    main()
