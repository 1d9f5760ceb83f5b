"""The spatial probe that must work: a small CNN on the rendered frames, beside the baselines.

Trains :func:`physio_ray.spatial.probe.run_probe` on ``<dataset>/train`` and scores it on
``<dataset>/val`` (the same frames and split as ``jobs/train_spatial.py``). Prints quadrant
accuracy, coordinate MAE and instrument F1 with n and 95% intervals, and writes
``outputs/bench_spatial_probe.json``.

Run (after ``python jobs/build_spatial_dataset.py configs/build_spatial_dataset/local.yaml``):
    python benchmarks/bench_spatial_probe.py [outputs/spatial-dataset-local/rendered] [epochs]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from physio_ray.spatial.probe import ProbeConfig, run_probe
from physio_ray.spatial.scores import HEADLINE


def main(argv: list[str]) -> None:
    dataset = argv[0] if argv else "outputs/spatial-dataset-local/rendered"
    cfg = ProbeConfig(epochs=int(argv[1])) if len(argv) > 1 else ProbeConfig()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = run_probe(dataset, cfg)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    for label, scores in (("probe (val)", out["probe"]), ("probe (train fit)", out["train_fit"])):
        cells = [f"{k}={scores[k]:.3f} {_ci(scores.get(k + '_ci'))}" for k in HEADLINE if scores[k] is not None]
        print(f"{label:18s} n={scores['n']}  " + "  ".join(cells))
    print(f"{'baselines':18s} " + "  ".join(f"{k}={out['baselines'][k]:.3f}" for k in HEADLINE))
    path = Path("outputs/bench_spatial_probe.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"{out['seconds']} s; wrote {path}")


def _ci(ci: list[float] | tuple[float, float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


if __name__ == "__main__":
    main(sys.argv[1:])
