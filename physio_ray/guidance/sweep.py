"""Ray Tune sweep of the repetition thresholds, stability time and smoothing (``jobs/sweep_guidance.py``).

One trial = one point of the grid in :class:`~physio_ray.guidance.config.SweepGuidanceConfig`.
A trial runs the live per-frame path (One-Euro smoothing, hysteresis phases, time-based rep
counting) over every labelled recording and reports

* ``mae``: mean |counted - labelled| repetitions; ``obo``: share within one repetition;
* ``false_feedback``: share of *correct* executions on which the engine saw a shallow attempt,
  i.e. would have said "go lower" to someone doing it right;
* ``objective = mae + false_feedback_weight * false_feedback`` (minimised).

:func:`evaluate_params` is the pure objective (tested without Ray); :func:`run_guidance_sweep`
wraps it in a Tuner; :func:`write_best_yaml` writes the winner as a loadable YAML.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.guidance.config import SWEPT_PARAMS, GuidanceConfig, SweepGuidanceConfig
from physio_ray.guidance.exercise_rules import RULES, ExerciseTracker
from physio_ray.guidance.features import frame_angles_batch
from physio_ray.video.angles import joint_angles


@dataclass(frozen=True)
class SweepSequence:
    """A labelled recording ready for counting: keypoints ``[T, 17, 4]`` in image-like coordinates,
    or, for ``view: world3d`` on a world-coordinate recording, its 3D joint angles ``[T, 16]``
    (measured once: they do not depend on the swept parameters)."""

    source: str
    exercise: str
    correct: bool
    expected: int
    keypoints: np.ndarray
    fps: float
    aspect: float
    angles: np.ndarray | None = None


def load_sweep_sequences(cfg: SweepGuidanceConfig) -> list[SweepSequence]:
    """The labelled recordings of the sweep (tfjs squat + the chosen UI-PRMD episodes).

    In ``frontal2d`` UI-PRMD world coordinates (x right, y down) are read as a frontal camera
    picture (depth dropped, aspect 1).

    Raises:
        FileNotFoundError: when nothing was found under ``data_dir``.
    """
    from physio_ray.guidance.datasets import iter_labelled_sequences

    out = []
    for seq in iter_labelled_sequences(
        Path(cfg.data_dir),
        movements=cfg.uiprmd_movements,
        subjects=cfg.uiprmd_subjects,
        episodes=cfg.uiprmd_episodes,
        include_incorrect=cfg.include_incorrect,
        include_keraal=False,
    ):
        if seq.exercise not in RULES or not RULES[seq.exercise].countable:
            continue
        angles = None
        if seq.coord_space == "world3d" and cfg.view == "world3d":  # as LabelledSequence.count
            angles = joint_angles(seq.keypoints, "world3d", min_visibility=GuidanceConfig().min_visibility)
        out.append(
            SweepSequence(
                seq.source, seq.exercise, seq.correct, seq.expected, seq.keypoints, seq.fps, seq.aspect, angles
            )
        )
    if not out:
        raise FileNotFoundError(f"no labelled recordings found under {cfg.data_dir}")
    return out


def shifted_rule(exercise: str, rest_shift_deg: float, far_shift_deg: float):  # noqa: ANN201
    """The exercise's phase rule with both thresholds moved (positive = towards rest for
    flexion rules, i.e. degrees added to ``rest_deg``/``far_deg`` of a decreasing angle).

    Raises:
        ValueError: when the shifted thresholds cross (rest no longer on the rest side).
    """
    rule = RULES[exercise]
    return dataclasses.replace(
        rule, rest_deg=rule.rest_deg + rule.sign * rest_shift_deg, far_deg=rule.far_deg + rule.sign * far_shift_deg
    )


def evaluate_params(params: Mapping[str, float], seqs: Sequence[SweepSequence], false_feedback_weight: float) -> dict:
    """Counts every sequence with one parameter set and scores the counts (the trial body).

    Args:
        params: one value per name in :data:`~physio_ray.guidance.config.SWEPT_PARAMS`.
        seqs: labelled recordings.
        false_feedback_weight: weight of the false-feedback share in the objective.

    Returns:
        ``mae``, ``obo``, ``exact``, ``false_feedback``, ``objective``, ``n`` plus the params;
        ``objective`` is ``inf`` when the thresholds cross.
    """
    cfg = GuidanceConfig(
        phase_stability_ms=float(params["phase_stability_ms"]),
        min_rep_interval_ms=float(params["min_rep_interval_ms"]),
        one_euro_min_cutoff=float(params["one_euro_min_cutoff"]),
        hysteresis_deg=float(params["hysteresis_deg"]),
    )
    base = {k: float(params[k]) for k in SWEPT_PARAMS}
    errors, false_fb, n_correct = [], 0, 0
    for s in seqs:
        try:
            rule = shifted_rule(s.exercise, base["rest_shift_deg"], base["far_shift_deg"])
        except ValueError:
            return {
                **base,
                "mae": math.inf,
                "obo": 0.0,
                "exact": 0.0,
                "false_feedback": 1.0,
                "objective": math.inf,
                "n": 0,
            }
        times = np.arange(s.keypoints.shape[0]) * (1000.0 / s.fps)
        angles = s.angles if s.angles is not None else frame_angles_batch(s.keypoints, times, cfg, (s.aspect, 1.0))
        tracker = ExerciseTracker(s.exercise, cfg, rule=rule)
        for i, t in enumerate(times):
            tracker.update(float(t), 0.0 if i == 0 else min(float(t - times[i - 1]), cfg.max_frame_gap_ms), angles[i])
        tracker.finish(float(times[-1]))
        errors.append(abs(tracker.reps - s.expected))
        if s.correct:
            n_correct += 1
            false_fb += any(e.kind == "shallow" for e in tracker.movement.events)
    err = np.asarray(errors, dtype=np.float64)
    ff = false_fb / n_correct if n_correct else 0.0
    mae = float(err.mean())
    return {
        **base,
        "mae": mae,
        "obo": float((err <= 1).mean()),
        "exact": float((err == 0).mean()),
        "false_feedback": ff,
        "objective": mae + false_feedback_weight * ff,
        "n": len(errors),
    }


def grid(cfg: SweepGuidanceConfig) -> list[dict[str, float]]:
    """Every parameter combination of the sweep config, in a fixed order."""
    values = [getattr(cfg, name) for name in SWEPT_PARAMS]
    return [dict(zip(SWEPT_PARAMS, combo, strict=True)) for combo in itertools.product(*values)]


def _trainable(
    config: dict[str, Any], seqs_by_cutoff: Mapping[float, Sequence[SweepSequence]] | None = None, weight: float = 0.0
) -> None:
    from ray import tune

    seqs = (seqs_by_cutoff or {}).get(float(config["one_euro_min_cutoff"]), ())
    tune.report(evaluate_params(config, seqs, weight))


def with_smoothed_angles(seqs: Sequence[SweepSequence], one_euro_min_cutoff: float) -> list[SweepSequence]:
    """The sequences with their angles measured once for a One-Euro cutoff (the only swept
    parameter the angles depend on), so trials that share the cutoff do not recompute them."""
    cfg = GuidanceConfig(one_euro_min_cutoff=float(one_euro_min_cutoff))
    out = []
    for s in seqs:
        if s.angles is None:
            times = np.arange(s.keypoints.shape[0]) * (1000.0 / s.fps)
            s = dataclasses.replace(s, angles=frame_angles_batch(s.keypoints, times, cfg, (s.aspect, 1.0)))
        out.append(s)
    return out


def run_tune_grid(trainable: Any, cfg: Any, names: Sequence[str], experiment: str, mode: str) -> list[dict[str, Any]]:
    """Runs a Ray Tune grid over the list fields ``names`` of ``cfg`` (Ray must be initialised).

    Args:
        trainable: the trial function (parameters already bound).
        cfg: a sweep config with those list fields, ``output_dir`` (Tune results go to its
            ``tune/``; a temporary folder when empty), ``cpus_per_trial``, ``max_concurrent_trials``.
        names: the swept fields.
        experiment: the Tune experiment's name.
        mode: ``min`` or ``max`` of the trials' ``objective``.

    Returns:
        Every trial's reported metrics, in trial order.

    Raises:
        RuntimeError: when a trial failed.
    """
    from ray import tune

    storage = Path(cfg.output_dir) / "tune" if cfg.output_dir else Path(tempfile.mkdtemp(prefix=f"{experiment}_"))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cfg.cpus_per_trial}),
        param_space={name: tune.grid_search([float(v) for v in getattr(cfg, name)]) for name in names},
        tune_config=tune.TuneConfig(
            metric="objective", mode=mode, max_concurrent_trials=cfg.max_concurrent_trials or None
        ),
        run_config=tune.RunConfig(name=experiment, storage_path=str(storage.resolve()), verbose=0),
    )
    results = tuner.fit()
    if results.errors:
        raise RuntimeError(f"{len(results.errors)} sweep trials failed; first: {results.errors[0]}")
    return [results[i].metrics or {} for i in range(len(results))]  # ResultGrid is indexable, not typed iterable


def run_guidance_sweep(cfg: SweepGuidanceConfig, seqs: Sequence[SweepSequence] | None = None) -> Any:
    """Runs the grid as a Ray Tune experiment (Ray must already be initialised).

    Args:
        cfg: the sweep config (grid, resources, storage under ``output_dir/tune``).
        seqs: labelled recordings (default: :func:`load_sweep_sequences`).

    Returns:
        A pandas DataFrame, one row per trial, sorted by objective (best first).

    Raises:
        RuntimeError: when a trial failed.
    """
    import pandas as pd
    from ray import tune

    seqs = list(seqs) if seqs is not None else load_sweep_sequences(cfg)
    trainable = tune.with_parameters(
        _trainable,
        seqs_by_cutoff={float(c): with_smoothed_angles(seqs, c) for c in cfg.one_euro_min_cutoff},
        weight=float(cfg.false_feedback_weight),
    )
    trials = run_tune_grid(trainable, cfg, SWEPT_PARAMS, "sweep_guidance", "min")
    cols = [*SWEPT_PARAMS, "mae", "obo", "exact", "false_feedback", "objective", "n"]
    table = pd.DataFrame([{c: m[c] for c in cols} for m in trials])
    return table.sort_values(["objective", *SWEPT_PARAMS]).reset_index(drop=True)


def write_sweep_outputs(cfg: SweepGuidanceConfig, table: Any) -> tuple[dict[str, Any], Path, Path]:
    """Writes ``sweep_table.csv`` and ``best_guidance.yaml`` under ``cfg.output_dir``.

    Returns:
        ``(best row, csv path, yaml path)``.
    """
    out, csv_path, best = write_table(cfg.output_dir, table)
    return best, csv_path, write_best_yaml(out / "best_guidance.yaml", best, cfg)


def write_table(output_dir: str | Path, table: Any) -> tuple[Path, Path, dict[str, Any]]:
    """Writes a sweep's table (best first) as ``<output_dir>/sweep_table.csv``.

    Returns:
        ``(output folder, csv path, best row)``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "sweep_table.csv"
    table.to_csv(csv_path, index=False)
    return out, csv_path, table.iloc[0].to_dict()


def render_table(table: Any) -> str:
    """The sweep table as fixed-width text (best first)."""
    return table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def write_best_yaml(path: str | Path, best: Mapping[str, float], cfg: SweepGuidanceConfig) -> Path:
    """Writes the best trial as YAML: a ``guidance`` block (GuidanceConfig fields) and the
    shifted ``rules`` thresholds, with a header saying where it came from.

    Returns:
        The written path (load it back with :func:`load_best_yaml`).
    """
    import yaml

    from physio_ray.config import to_dict

    gcfg = GuidanceConfig(
        phase_stability_ms=float(best["phase_stability_ms"]),
        min_rep_interval_ms=float(best["min_rep_interval_ms"]),
        one_euro_min_cutoff=float(best["one_euro_min_cutoff"]),
        hysteresis_deg=float(best["hysteresis_deg"]),
    )
    exercises = sorted({cfg.exercise, *(_uiprmd_names(cfg.uiprmd_movements))})
    rules = {}
    for ex in exercises:
        r = shifted_rule(ex, float(best["rest_shift_deg"]), float(best["far_shift_deg"]))
        rules[ex] = {"rest_deg": float(r.rest_deg), "far_deg": float(r.far_deg)}
    body = {
        "guidance": to_dict(gcfg),
        "rules": rules,
        "score": {k: float(best[k]) for k in ("mae", "obo", "false_feedback", "objective")},
    }
    header = (
        "# Best guidance settings found by: python jobs/sweep_guidance.py (Ray Tune grid)\n"
        f"# objective = rep MAE + {cfg.false_feedback_weight} x false-feedback share on {int(best['n'])} recordings\n"
        "# Load: physio_ray.guidance.sweep.load_best_yaml(path) -> (GuidanceConfig, rule thresholds)\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(body, sort_keys=False))
    return path


def load_best_yaml(path: str | Path) -> tuple[GuidanceConfig, dict[str, dict[str, float]]]:
    """Reads a YAML written by :func:`write_best_yaml` back into a validated GuidanceConfig."""
    import yaml

    from physio_ray.config import from_dict

    data = yaml.safe_load(Path(path).read_text())
    return from_dict(GuidanceConfig, data["guidance"], source=str(path)), dict(data.get("rules", {}))


def _uiprmd_names(movements: Sequence[str]) -> list[str]:
    from physio_ray.video.exercises import uiprmd_exercise

    return [uiprmd_exercise(m) for m in movements]
