"""Train the guidance LSTMs (seed 003): exercise classifier + per-exercise quality models.

Reads UI-PRMD (Kinect, projected as a frontal camera sees it), KERAAL (BlazePose) and the tfjs
squat clip from data_dir, turns every recording into the 16 shared joint angles, splits UI-PRMD
by subject (heldout_subjects are never trained on; s02 is not in the data), trains on CPU torch
in-process and writes to output_dir: guidance_lstm.pt (weights), training_report.json (held-out
repetition accuracy, correct-vs-incorrect AUC per exercise) and training_report.png.
With ship=true the weights and report are also copied into physio_ray/guidance/weights/, which
is what GuidanceSession(models=...) and the Serve app load.

The job does not start Ray: the data is small (1,800 one-repetition episodes) and the models
are tiny; it runs the same as a driver under `ray job submit`.
"""

from __future__ import annotations

import json
import sys

from _common import fail, parse

from physio_ray.guidance.config import TrainGuidanceConfig
from physio_ray.guidance.training import train_guidance

EPILOG = """config keys (YAML or key=value overrides):
  data_dir=DIR  output_dir=DIR  cache_dir=DIR  heldout_subjects=[s09,s10]  uiprmd_subjects=[...]
  uiprmd_episodes=[...]  classifier.epochs=N  classifier.hidden=N  classifier.window_s=S
  quality.epochs=N  quality.hidden=N  seed=N  torch_threads=N  ship=true|false

examples:
  python jobs/train_guidance.py configs/train_guidance/local.yaml
  python jobs/train_guidance.py configs/train_guidance/local.yaml ship=true
  ray job submit --working-dir . -- python jobs/train_guidance.py configs/train_guidance/cluster.yaml
"""


def main(argv: list[str]) -> None:
    cfg = parse(TrainGuidanceConfig, argv, __doc__ or "", EPILOG)
    try:
        report = train_guidance(cfg)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    clf, q = report["classifier"], report["quality"]
    print(f"guidance models written to {cfg.output_dir} ({report['weights_bytes']} bytes, {report['seconds']} s)")
    print(f"held-out subjects {report['heldout_subjects']}: {report['n_recordings']}")
    print(f"classifier held-out repetition accuracy: {clf['heldout_rep_accuracy']}")
    print(f"  by exercise: {json.dumps(clf['heldout_rep_accuracy_by_exercise'])}")
    print(f"  held-in single recordings (KERAAL, tfjs): {json.dumps(clf['held_in_single_recordings'])}")
    print(f"quality held-out AUC (mean over exercises): {q['heldout_auc_mean']}")
    for ex, entry in q["by_exercise"].items():
        print(
            f"  {ex:28s} AUC={entry.get('heldout_auc')} acc={entry.get('heldout_accuracy')} n={entry.get('heldout_n')}"
        )
    if cfg.ship:
        print("shipped into physio_ray/guidance/weights/")


if __name__ == "__main__":
    main(sys.argv[1:])
