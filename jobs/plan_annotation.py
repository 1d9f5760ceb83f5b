"""Plan the 40K-solution annotation job on the autoscaled cluster from one measured run (no Ray).

Reads the measured per-item costs of an annotation run (cost_ledger.json + summary.json in
run_dir), the annotate config to plan, and the node types of cluster.yaml (prices in this
config); simulates the job stage by stage with autoscaling nodes and start-up delays; prints wall
time, utilisation and $ per phase beside the seed's $3,520 table; writes plan.json and plan.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import fail, parse

from physio_ray.annotate.config import AnnotateConfig
from physio_ray.annotate.plan import plan_annotation
from physio_ray.annotate.plan_config import Figures, LedgerError, PlanAnnotationConfig, measured_figures, read_run
from physio_ray.annotate.plan_report import plan_dict, plot_plan, render_plan
from physio_ray.annotate.stages import stage
from physio_ray.cluster import ClusterResourceError, check_resources, load_cluster
from physio_ray.config import ConfigError, load_config

EPILOG = """examples:
  python jobs/plan_annotation.py configs/plan_annotation/local.yaml
  python jobs/plan_annotation.py configs/plan_annotation/local.yaml solutions=40000 run_dir=outputs/annotate-local
"""


def main(argv: list[str]) -> None:
    cfg = parse(PlanAnnotationConfig, argv, __doc__ or "", EPILOG)
    try:
        job = load_config(AnnotateConfig, [cfg.annotate_config])
        measured_cfg = load_config(AnnotateConfig, [cfg.measured_config])
        cluster = load_cluster(cfg.cluster_yaml)
        check_resources(job, cluster)
    except (ConfigError, ClusterResourceError, OSError, ValueError) as exc:
        fail(str(exc))
    actors = {
        s: getattr(measured_cfg, stage(s).config_key).resources.actors for s in ("poses", "keyframes", "questions")
    }
    if not Path(cfg.run_dir).is_dir():
        fail(
            f"run_dir {cfg.run_dir!r} does not exist: run python jobs/annotate.py configs/annotate/local.yaml first, "
            "or pass run_dir=configs/plan_annotation/measured_run (a committed run measured on a 2-CPU machine)"
        )
    ledger, summary = read_run(cfg.run_dir)
    try:
        fig = measured_figures(ledger, summary, actors, Figures.assumed(cfg.assumptions), cfg.run_dir)
    except LedgerError as exc:
        fail(str(exc))
    plan, sensitivity = plan_annotation(fig, job, cfg, cluster)
    data = plan_dict(plan, sensitivity, fig, cfg, f"{cluster.name} ({cfg.cluster_yaml})")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(data, indent=2))
    print(render_plan(data))
    print(f"wrote {out / 'plan.json'}")
    if cfg.plot:
        print(f"wrote {plot_plan(data, out / 'plan.png')}")


if __name__ == "__main__":
    main(sys.argv[1:])
