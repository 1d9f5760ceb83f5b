"""Best-of-N with the trained PRM vs majority vote vs random, and held-out step AUC (seed 000 phase 5).

Samples (or reads) several solutions per question, scores every step with the PRM on Ray
Data actors, and reports accuracy at each N for PRM selection with min / mean / last /
product aggregation, majority vote, random and oracle; also the step-label AUC of the PRM
on the held-out split against a constant predictor. Writes bestofn.json and bestofn.png.
"""

from __future__ import annotations

import sys

from _common import check_cluster, parse

from physio_ray.prm.eval_config import EvalBestOfNConfig
from physio_ray.prm.evaluate import run_eval_bestofn
from physio_ray.runtime import init_ray

EPILOG = """examples:
  python jobs/eval_bestofn.py configs/eval_bestofn/local.yaml
  python jobs/eval_bestofn.py configs/eval_bestofn/local.yaml candidates.max_questions=4 ns=[1,2]
  ray job submit --working-dir . -- python jobs/eval_bestofn.py configs/eval_bestofn/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(EvalBestOfNConfig, argv, __doc__ or "", EPILOG)
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run
    init_ray(cfg.ray)
    summary = run_eval_bestofn(cfg)
    print(summary.render())


if __name__ == "__main__":
    main(sys.argv[1:])
