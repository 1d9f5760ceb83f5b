"""Sweep the guidance engine's rep thresholds, stability time and smoothing with Ray Tune (seed 003).

Each trial runs the live per-frame path (One-Euro smoothing, hysteresis phases, time-based rep
counting) over labelled recordings: the tfjs squat clip (2 complete reps + 1 partial) and
UI-PRMD segmented episodes (one repetition each, correct and incorrect executions), and scores
  objective = rep-count MAE + false_feedback_weight x share of correct executions that would
              have been told to "go lower" (wrong feedback is worse than none).
Writes under output_dir: tune/ (Tune results), sweep_table.csv, best_guidance.yaml (the best
GuidanceConfig + rule thresholds, loadable with physio_ray.guidance.sweep.load_best_yaml), and
prints the table, best first.
"""

from __future__ import annotations

import sys

from _common import check_cluster, fail, parse

from physio_ray.guidance.config import SweepGuidanceConfig
from physio_ray.guidance.sweep import load_sweep_sequences, render_table, run_guidance_sweep, write_sweep_outputs
from physio_ray.runtime import init_ray

EPILOG = """config keys (YAML or key=value overrides):
  data_dir=DIR output_dir=DIR exercise=squat uiprmd_movements=[m01,m05] uiprmd_subjects=[...]
  uiprmd_episodes=[...] include_incorrect=true view=frontal2d false_feedback_weight=0.5
  grids: rest_shift_deg=[...] far_shift_deg=[...] phase_stability_ms=[...] min_rep_interval_ms=[...]
         one_euro_min_cutoff=[...] hysteresis_deg=[...]
  resources: cpus_per_trial=1 max_concurrent_trials=N ray.num_cpus=N ray.address=auto

examples:
  python jobs/sweep_guidance.py configs/sweep_guidance/local.yaml
  python jobs/sweep_guidance.py configs/sweep_guidance/local.yaml hysteresis_deg=[0,5]
  ray job submit --working-dir . -- python jobs/sweep_guidance.py configs/sweep_guidance/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(SweepGuidanceConfig, argv, __doc__ or "", EPILOG)
    try:
        seqs = load_sweep_sequences(cfg)
    except FileNotFoundError as exc:
        fail(str(exc))
    print(f"{cfg.n_trials} trials over {len(seqs)} labelled recordings")
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run
    init_ray(cfg.ray)
    table = run_guidance_sweep(cfg, seqs)
    best, csv_path, yaml_path = write_sweep_outputs(cfg, table)
    print(render_table(table))
    print(
        f"best: objective={best['objective']:.3f} MAE={best['mae']:.3f} OBO={best['obo']:.3f} "
        f"false feedback={best['false_feedback']:.3f}"
    )
    print(f"table: {csv_path}  best config: {yaml_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
