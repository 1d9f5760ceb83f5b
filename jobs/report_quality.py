"""Quality report: the held-out figures of every learned part beside its trivial baselines.

Reads the output folders of jobs/annotate.py (judge vs Med-PRM and vs Monte-Carlo, the
measurement check, the policy), jobs/train_prm.py (step AUC), jobs/eval_bestofn.py (Best-of-N
selection) and jobs/train_spatial.py / jobs/train_clinical.py (the recipes); trains nothing.
Writes <output_dir>/quality.json ({"rows": [...]}: component, metric, split, n, value, ci95,
baselines, learned, rule), quality.md and quality.png. "learned" is true only when the value
beats the best baseline with the 95% interval of the gain above zero (paired bootstrap on
per-item data where the source has it, else the value's interval against the best baseline:
see each row's "rule"). A source that is missing gives rows with value null and a "missing"
reason naming the file. No Ray needed.
"""

from __future__ import annotations

import sys

from _common import fail, parse

from physio_ray.quality.config import ReportQualityConfig
from physio_ray.quality.report import run_report_quality

EPILOG = """examples:
  python jobs/report_quality.py configs/report_quality/local.yaml
  python jobs/report_quality.py configs/report_quality/local.yaml output_dir=outputs/quality
  python jobs/report_quality.py configs/report_quality/local.yaml sources.annotate_dir=/tmp/base_demo components=[judge,policy]
"""


def main(argv: list[str]) -> None:
    cfg = parse(ReportQualityConfig, argv, __doc__ or "", EPILOG)
    try:
        report = run_report_quality(cfg)
    except ValueError as exc:
        fail(str(exc), 2)
    print(report.render())


if __name__ == "__main__":
    main(sys.argv[1:])
