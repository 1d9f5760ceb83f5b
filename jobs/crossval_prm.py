"""Grouped cross-validation of the PRM beside its trivial baselines (issue 12: "a PRM that learns").

Same data, model and prompt as jobs/train_prm.py (the same YAML). The frozen text tower's
states at every step marker are computed once; then, for each of crossval.k folds grouped by
recording (physio) or question (Med-PRM), the PRM's trainable parts are refitted on the other
folds and score the held-out steps. Every variant (crossval.variants: prm, prm_balanced,
prm_shuffled_poses, prm_text_only) stands beside the baselines on the same steps: constant,
step position (logistic regression on index / n_steps), position + last step, the untrained
PRM, and a logistic-regression probe of the marker states; 95% intervals resample whole
groups. "Learned" = the gain over the best baseline has an interval above zero.

Runs as one Ray task (scaling.cpus_per_worker x scaling.num_workers CPUs). Writes
<output_dir>/prm_eval.json (per source and variant: auc, ci95, gain_over, best_baseline,
learned, n_steps; every held-out step's predictions; what the text tower read), which
jobs/report_quality.py turns into report rows (component prm_crossval). ~3 min on 2 cores with
the local YAML and the make demo annotation run.
"""

from __future__ import annotations

import sys

from _common import check_cluster, fail, parse

from physio_ray.prm.config import TrainPRMConfig
from physio_ray.runtime import init_ray

EPILOG = """examples:
  python jobs/crossval_prm.py configs/train_prm/local.yaml data.annotated_dir=outputs/annotate-local
  python jobs/crossval_prm.py configs/train_prm/local.yaml crossval.k=3 crossval.variants=[prm,prm_text_only]
"""


def main(argv: list[str]) -> None:
    cfg = parse(TrainPRMConfig, argv, __doc__ or "", EPILOG)
    check_cluster(cfg)
    init_ray(cfg.ray)
    from physio_ray.prm.crossval_report import render_crossval, run_crossval_on_ray

    try:
        out = run_crossval_on_ray(cfg, progress=print)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    print(render_crossval(out))
    print(f"wrote {out['path']} ({out['seconds']} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
