"""Clinical validation training (seed 002): image context, LoRA SFT and GRPO, grouped CV.

Phase 1 encodes every scenario image with an open_clip tower (BiomedCLIP on the cluster; a
random-weight architecture built from config locally) and puts its nearest finding
descriptions into the prompt. Phase 2 fine-tunes a LoRA adapter (r 16, alpha 32, dropout 0.1,
q/v/o) on the "ERROR - ..." / "CORRECT - ..." instruction format; Phase 3 continues it with
TRL GRPO on the seed's severity-weighted clinical reward (PPO is gone from TRL 1.x). Each
image-grouped CV fold trains in its own Ray Train TorchTrainer; rerunning resumes.

Writes under output_dir: report.json, report.md (every model result beside the image_type
shortcut baseline), metrics.png, data_report.md, folds/<fold>.json, ray_results/.
"""

from __future__ import annotations

import sys

from _common import check_cluster, parse

from physio_ray.clinical.config import TrainClinicalConfig
from physio_ray.clinical.train import run_train_clinical
from physio_ray.runtime import init_ray

EPILOG = """config keys (YAML or key=value overrides), e.g.:
  output_dir=DIR  data_dir=DIR  cv.k=3  cv.max_folds=1  sft.max_steps=8  grpo.enabled=false
  grpo.max_steps=2  model.name=smollm2-135m  use_image_context=false  scaling.cpus_per_worker=2
  run.name=NAME  run.storage_path=DIR  (old keys run_name / storage_path still work, with a deprecation warning)

examples:
  python jobs/train_clinical.py configs/train_clinical/local.yaml
  python jobs/train_clinical.py configs/train_clinical/local.yaml cv.max_folds=3 output_dir=outputs/clin-3fold
  ray job submit --working-dir . -- python jobs/train_clinical.py configs/train_clinical/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(TrainClinicalConfig, argv, __doc__ or "", EPILOG)
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run
    init_ray(cfg.ray)
    result = run_train_clinical(cfg)
    print(result.markdown)
    print(f"report: {result.report_path}\ntables: {result.markdown_path}\nplot:   {result.plot_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
