"""Sweep the RAG judge's confidence threshold with Ray Tune (seed 000 §5, the hybrid annotation).

Steps judged below the threshold go to Monte-Carlo (expensive, close to the truth); the others
keep the judge's label (cheap). On steps that carry BOTH a judge verdict and a full-MC hard label
(Med-PRM's sample by default: 16 rollouts per step; or an annotate run made with
montecarlo.mode=full judge.confidence_threshold=1.0), each threshold is one Tune trial scoring
agreement - cost_weight * MC share. The winner is written into a copy of the annotate YAML.
Writes output_dir/{sweep.json, sweep.csv, sweep.png, annotate-tuned.yaml} and prints the table.
"""

from __future__ import annotations

import sys

from _common import check_cluster, fail, parse

from physio_ray.runtime import init_ray
from physio_ray.tune.annotation_sweep import run_annotation_sweep
from physio_ray.tune.annotation_threshold import SweepAnnotationConfig

EPILOG = """config keys (YAML or key=value overrides):
  source=medprm|annotated      medprm_judge=local|gemini_proxy   limit=N (Med-PRM solutions)
  annotated_dir=DIR            thresholds=[0.5,0.7,0.9]          cost_weight=0.1
  base_yaml=configs/annotate/local.yaml   tuned_yaml=PATH         judge.backend=local|gemini|openai

examples:
  python jobs/sweep_annotation.py configs/sweep_annotation/local.yaml
  python jobs/sweep_annotation.py configs/sweep_annotation/local.yaml medprm_judge=gemini_proxy
  python jobs/sweep_annotation.py configs/sweep_annotation/local.yaml source=annotated annotated_dir=outputs/annotate-local
  ray job submit --working-dir . -- python jobs/sweep_annotation.py configs/sweep_annotation/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(SweepAnnotationConfig, argv, __doc__ or "", EPILOG)
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run
    init_ray(cfg.ray)
    try:
        summary = run_annotation_sweep(cfg)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    info = summary["info"]
    print(f"threshold sweep on {summary['n_steps']} steps ({info['source']}), cost_weight={summary['cost_weight']}")
    for key in ("vs_gemini", "vs_mc_hard"):
        if key in info:
            print(
                f"  our judge {key.replace('_', ' ')}: agreement {info[key]['agreement']:.1%}, kappa {info[key]['kappa']}"
            )
    print(summary["text"])
    best = summary["chosen"]
    print(
        f"chosen judge.confidence_threshold={best['threshold']:g}: {best['mc_cost_fraction']:.1%} of steps to MC, "
        f"{best['agreement']:.1%} agreement with full MC"
    )
    for name, path in summary["outputs"].items():
        print(f"  {name}: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
