"""Choose the view-invariant rep counter's thresholds with Ray Tune on the view sweep (seed 003, issue 14).

The tuning subjects' 3D recordings (UI-PRMD s01, s03-s06; held-out subjects are never read) are
rendered through virtual cameras with detector noise, one Ray task per recording, and reduced to
the counter's cue streams once. Each trial then counts every stream with one set of fractions:
every rest-anchored cue rule puts its rest and far thresholds and its hysteresis at these
fractions of its movement's excursion (measured on the same streams), and scores
  objective = exact count on 10-rep sequences + single reps counted 1 - 3 x over-count rate
per movement. Writes under output_dir: tune/ (Tune results), sweep_table.csv (one row per trial,
a column per movement), best_view_rules.yaml (per movement: the best fractions and the
thresholds they give; compare with physio_ray.guidance.exercise_rules.CUE_RULES), and prints
the table, best first.
"""

from __future__ import annotations

import sys

from _common import check_cluster, fail, parse

from physio_ray.guidance.config import SweepGuidanceViewsConfig
from physio_ray.guidance.view_tuning import (
    best_per_exercise,
    excursions,
    render_tuning_streams,
    run_view_sweep,
    tuning_items,
    write_view_outputs,
)
from physio_ray.runtime import init_ray

EPILOG = """config keys (YAML or key=value overrides):
  data_dir=DIR output_dir=DIR exercises=[deep_squat,...] (default: every rest-anchored cue rule)
  cameras: yaws=[0,15,...,90] pitches=[-20,...,20] fps=[15,30,100] seed=0
  grids: rest_frac=[...] far_frac=[...] hysteresis_frac=[...] phase_stability_ms=[...]
  resources: cpus_per_trial=1 max_concurrent_trials=N ray.num_cpus=N ray.address=auto

examples:
  python jobs/sweep_guidance_views.py configs/sweep_guidance_views/local.yaml
  python jobs/sweep_guidance_views.py configs/sweep_guidance_views/local.yaml exercises=[side_lunge]
  ray job submit --working-dir . -- python jobs/sweep_guidance_views.py configs/sweep_guidance_views/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(SweepGuidanceViewsConfig, argv, __doc__ or "", EPILOG)
    try:
        items = tuning_items(cfg)
    except FileNotFoundError as exc:
        fail(str(exc))
    check_cluster(cfg)  # ray.cluster_file set: refuse what no node type can run
    init_ray(cfg.ray)
    streams = render_tuning_streams(cfg, items)
    excursion = excursions(streams)
    print(f"{cfg.n_trials} trials over {len(streams)} rendered streams of {len(items)} recordings")
    print("excursion (5th percentile, cue units): " + ", ".join(f"{k} {v:.1f}" for k, v in excursion.items()))
    table = run_view_sweep(cfg, streams, excursion)
    best, csv_path, yaml_path = write_view_outputs(cfg, table, excursion)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for ex, f in best_per_exercise(table).items():
        print(
            f"{ex:28s} rest {f['rest_frac']:.2f} far {f['far_frac']:.2f} hysteresis {f['hysteresis_frac']:.2f} "
            f"stability {f['phase_stability_ms']:.0f} ms: objective {f['objective']:.3f}"
        )
    print(f"best shared: objective={best['objective']:.3f} exact={best['seq_exact']:.3f} one={best['single_one']:.3f}")
    print(f"table: {csv_path}  best rules: {yaml_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
