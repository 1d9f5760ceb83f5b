"""Where a spatial model loses the instrument's identity: linear probes on its tip token.

For a trained ``train_spatial`` model (or the untrained tiny one), fits a logistic regression per
layer on the hidden state of the image token that holds the true tip (training frames) and scores
it on held-out frames (:func:`physio_ray.spatial.token_probe.probe_tip_tokens`). Layer 0 is the
vision tower's output; if it cannot tell the instruments apart, no amount of text-model training
will name them. Also prints how often the model predicts the name's first token after the true
point. Writes ``outputs/probe_spatial_tokens.json``.

Run (after ``jobs/train_spatial.py``; ~20 s on one core for 1600 frames):
    python benchmarks/probe_spatial_tokens.py outputs/train-spatial-local/sft/model \\
        [outputs/spatial-dataset-local/rendered] [--train 1200] [--val 400]
    python benchmarks/probe_spatial_tokens.py tiny-qwen2vl   # the untrained model, for contrast
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from physio_ray.config import load_config
from physio_ray.spatial.config import TrainSpatialConfig
from physio_ray.spatial.tiny_qwen2vl import load_model_and_processor
from physio_ray.stats import wilson_interval


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a saved model folder, or tiny-qwen2vl for the untrained tiny model")
    parser.add_argument("dataset", nargs="?", default="outputs/spatial-dataset-local/rendered")
    parser.add_argument("--train", type=int, default=1200, help="training frames for the probes")
    parser.add_argument("--val", type=int, default=400, help="held-out frames they are scored on")
    parser.add_argument("--out", default="outputs/probe_spatial_tokens.json")
    args = parser.parse_args(argv)
    from physio_ray.spatial.token_probe import probe_tip_tokens

    torch.set_num_threads(1)
    # the tiny model's sizes as the local recipe builds it (used only for "tiny-qwen2vl")
    spec = load_config(TrainSpatialConfig, ["configs/train_spatial/local.yaml"]).model.tiny
    model, processor = load_model_and_processor(args.model, spec)
    model.eval()
    t0 = time.perf_counter()
    out = probe_tip_tokens(model, processor, args.dataset, args.train, args.val)
    out.update(model=args.model, dataset=args.dataset, seconds=round(time.perf_counter() - t0, 1))
    n = out["n_val"]
    print(f"{args.model}: tip-token probes for the instrument, {out['n_train']} training / {n} held-out frames")
    print(f"  majority class              accuracy {out['majority_accuracy']:.3f}")
    for row in out["layers"]:
        lo, hi = wilson_interval(round(row["accuracy"] * n), n) or (float("nan"), float("nan"))
        where = "vision output (text input)" if row["layer"] == 0 else f"after text layer {row['layer']}"
        print(f"  {where:27s} accuracy {row['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]  macro-F1 {row['macro_f1']:.3f}")
    if out["name_first_token_accuracy"] is not None:
        print(f"  name's first token after the true point: {out['name_first_token_accuracy']:.3f}")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{out['seconds']} s; wrote {path}")
    return out


if __name__ == "__main__":
    main()
