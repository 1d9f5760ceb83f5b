"""Build the PitVQA spatial datasets (seed 001): pointing SFT, grounded SFT, GRPO prompts.

Reads the PitVQA annotation CSVs (annotations_dir/instruments_csv/, steps_csv/) for whatever
videos are there, joins steps to seconds, and writes under output_dir: sft_stage1/, sft_stage2/
and grpo/ (<split>.parquet and <split>.jsonl, loadable with HF datasets), labels_per_second.parquet
and stats.json (rows per video, split and position class; CSV quirks). Position classes:
1 top-left, 2 top-right, 3 centre, 4 bottom-left, 5 bottom-right (0-100 scale regions).
Optional rendered frames (rendered.count > 0) go to output_dir/rendered/ (data_origin "rendered").

This is a pure-CPU build of a few seconds to minutes: it does not start or need Ray (it runs
the same as a driver under `ray job submit`).
"""

from __future__ import annotations

import sys

from _common import fail, parse

from physio_ray.spatial.config import BuildSpatialDatasetConfig
from physio_ray.spatial.dataset import build_spatial_dataset

EPILOG = """config keys (YAML or key=value overrides):
  annotations_dir=DIR      folder with instruments_csv/ and steps_csv/ (required)
  output_dir=DIR           where datasets and stats.json go (required)
  formats=[parquet,jsonl]  train_videos=[...]  val_videos=[...]  include_secondary=true
  include_none=true        rendered.count=N rendered.seed=S rendered.width=W rendered.height=H

examples:
  python jobs/build_spatial_dataset.py configs/build_spatial_dataset/local.yaml
  python jobs/build_spatial_dataset.py configs/build_spatial_dataset/local.yaml \\
      annotations_dir=../shared/data/pitvqa-annotations output_dir=outputs/spatial rendered.count=0
  ray job submit --working-dir . -- python jobs/build_spatial_dataset.py configs/build_spatial_dataset/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(BuildSpatialDatasetConfig, argv, __doc__ or "", EPILOG)
    try:
        result = build_spatial_dataset(cfg)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    stats = result.stats
    print(f"spatial dataset written to {result.output_dir} (stats: {result.stats_path})")
    print(f"videos: {stats['n_videos']} {stats['videos_by_split']}; seconds: {stats['seconds_total']}")
    missing = stats["missing_official_videos"]
    if missing["train"] or missing["val"]:
        print(f"official videos not found: {missing}")
    for kind, n in stats["rows"].items():
        print(
            f"  {kind:11s} {n:7d} rows  per class {stats['rows_per_class'][kind]}  per split {stats['rows_per_split'][kind]}"
        )
    if "rendered" in stats:
        print(f"  rendered    {stats['rendered']['rows']} in {stats['rendered']['dir']} (data_origin=rendered)")
    for note in stats["file_notes"]:
        print(f"  note: {note}")


if __name__ == "__main__":
    main(sys.argv[1:])
