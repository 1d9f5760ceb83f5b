"""Fine-tune a Qwen2-VL for coordinate-aware surgical VQA (seed 001): SFT -> GRPO -> eval.

Reads a dataset written by jobs/build_spatial_dataset.py (sft_stage1/, grpo/), trains SFT (LoRA,
or every weight with finetune=full) and then GRPO with the spatial reward (0.5 distance-to-
region + 0.3 instrument + 0.2 position class), each stage a Ray Train TorchTrainer running TRL's SFTTrainer / GRPOTrainer, and scores
the base, SFT and GRPO models on the held-out split (quadrant accuracy, distance to region,
instrument macro-F1, per-class tables, beside the majority-class and untrained baselines) into
output_dir/eval/metrics.{json,md,png}; with sft.curve_every=N the held-out figures every N SFT
steps go to output_dir/eval/curve.png.

Rerunning with the same output_dir and run.name resumes: finished stages are skipped and an
interrupted stage restarts from its last Ray Train checkpoint. Locally (configs/train_spatial/
local.yaml, ~13 min on 2 cores) the model is a tiny random-init Qwen2-VL built in code, trained
in full, and the data are RENDERED frames; their metrics say nothing about surgical video.
"""

from __future__ import annotations

import sys

from _common import check_cluster, parse

from physio_ray.runtime import init_ray
from physio_ray.spatial.config import TrainSpatialConfig
from physio_ray.spatial.train_pipeline import run_train_spatial

EPILOG = """config keys (YAML or key=value overrides):
  dataset_dir=DIR  images_dir=DIR  output_dir=DIR  run.name=NAME  stages=[sft,grpo,eval]
  model.name=tiny-qwen2vl|Qwen/Qwen2-VL-2B-Instruct  model.dtype=float32|bfloat16
  finetune=lora|full  lora.r=16 lora.alpha=32  sft.max_steps=N sft.epochs=3 sft.lr=2e-5
  sft.vision_lr_multiplier=10 sft.curve_every=500 sft.curve_examples=100  grpo.max_steps=N grpo.num_generations=4
  model.tiny.rope_theta=30 model.tiny.spatial_rope_share=0.5 model.tiny.initializer_range=0.15
  eval.max_examples=N  scaling.num_workers=1 scaling.use_gpu=false  run.storage_path=DIR (old key run_name: deprecated)

examples:
  python jobs/build_spatial_dataset.py configs/build_spatial_dataset/local.yaml
  python jobs/train_spatial.py configs/train_spatial/local.yaml
  python jobs/train_spatial.py configs/train_spatial/local.yaml sft.max_steps=20 grpo.max_steps=4 output_dir=outputs/x
  ray job submit --working-dir . -- python jobs/train_spatial.py configs/train_spatial/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(TrainSpatialConfig, argv, __doc__ or "", EPILOG)
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run
    init_ray(cfg.ray)
    summary = run_train_spatial(cfg)
    print(summary.render())


if __name__ == "__main__":
    main(sys.argv[1:])
