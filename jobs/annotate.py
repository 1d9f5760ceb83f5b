"""Annotate exercise recordings into step-labelled PRM data (seed 000, phases 1-3).

Runs the whole chain on Ray Data: sources -> poses -> keyframes -> questions -> solutions
-> judged (RAG judge) -> annotated (selective Monte-Carlo), then writes the exports:
annotated/ Parquet, the seed's appendix JSON, Med-PRM training JSON, cost_ledger.json, a
clinician review sample and summary.json. Rerunning with the same output_dir resumes; a rerun
whose settings changed what a stage's rows are is refused (use another output_dir).
"""

from __future__ import annotations

import sys

from _common import check_cluster, check_resume, fail_if_nothing_usable, parse

from physio_ray.annotate.config import AnnotateConfig
from physio_ray.annotate.pipeline import run_annotation
from physio_ray.annotate.summary import render_summary
from physio_ray.runtime import init_ray

EPILOG = """examples:
  python jobs/annotate.py configs/annotate/local.yaml
  python jobs/annotate.py configs/annotate/local.yaml output_dir=outputs/run2 sources.limit=4
  ray job submit --working-dir . -- python jobs/annotate.py configs/annotate/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(AnnotateConfig, argv, __doc__ or "", EPILOG)
    check_resume(cfg)  # output_dir written with other settings: refuse to mix rows
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run, before Ray starts
    init_ray(cfg.ray)
    summary = run_annotation(cfg)
    print(render_summary(summary))
    fail_if_nothing_usable(summary)


if __name__ == "__main__":
    main(sys.argv[1:])
