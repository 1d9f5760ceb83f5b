"""Train the process reward model on Ray Train and report held-out step AUC (seed 000 phase 4).

Loads Med-PRM JSON (+ an annotation run's annotated/ Parquet when present), splits by
video/question (no leakage), trains the two-tower PRM with a TorchTrainer (workers and
resources from the YAML), checkpoints every K steps and writes <output_dir>/prm (the
checkpoint), metrics.json (AUC of the trained PRM vs the untrained one vs a constant
predictor) and loss.png. Rerunning the same run.name resumes from its latest checkpoint.

Checkpoint: <output_dir>/prm (prm.pt + prm_config.json). Score a solution with it:
  physio_ray.prm.scoring.score_solution("<output_dir>/prm", question, options, steps)
(steps each ending in " ки"; returns one P(+) per step).
"""

from __future__ import annotations

import sys

from _common import check_cluster, fail, parse

from physio_ray.prm.config import TrainPRMConfig
from physio_ray.prm.ray_train import run_train_prm
from physio_ray.runtime import init_ray

EPILOG = """examples:
  python jobs/train_prm.py configs/train_prm/local.yaml
  python jobs/train_prm.py configs/train_prm/ci.yaml train.max_steps=8 run.name=prm-ci-2
  ray job submit --working-dir . -- python jobs/train_prm.py configs/train_prm/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(TrainPRMConfig, argv, __doc__ or "", EPILOG)
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run
    init_ray(cfg.ray)
    try:
        summary = run_train_prm(cfg)
    except FloatingPointError as exc:
        fail(str(exc))
    print(summary.render())


if __name__ == "__main__":
    main(sys.argv[1:])
