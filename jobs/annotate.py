"""Annotate exercise recordings into step-labelled PRM data (seed 000, phases 1-3).

Runs the whole chain on Ray Data: sources -> poses -> keyframes -> questions -> solutions
-> judged (RAG judge) -> annotated (selective Monte-Carlo), then writes the exports:
annotated/ Parquet, the seed's appendix JSON, Med-PRM training JSON, cost_ledger.json, a
clinician review sample and summary.json. Rerunning with the same output_dir resumes.
"""

from __future__ import annotations

import sys

from _common import check_cluster, fail, parse

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
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run, before Ray starts
    init_ray(cfg.ray)
    summary = run_annotation(cfg)
    print(render_summary(summary))
    first = next((s for s in summary.get("stages_run", []) if s["name"] == "sources"), None)
    if first and first["processed"] > 0 and first["errors"] == first["processed"]:
        # a run that labelled nothing is a failed run (e.g. data paths that do not exist where the job runs)
        fail(f"every one of {first['processed']} sources failed, e.g. {first['first_errors'][0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
