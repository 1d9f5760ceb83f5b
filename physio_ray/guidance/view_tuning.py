"""Choosing the view-invariant rules' thresholds on the view sweep, fast enough for a Ray Tune grid.

The view sweep (:mod:`physio_ray.video.view_sweep`, ``benchmarks/bench_guidance_views.py``)
renders 3D recordings through virtual cameras and counts repetitions with ``count_reps``. The
expensive half of that, rendering and the cues (:mod:`physio_ray.guidance.cues`), does not depend
on the phase thresholds, the hysteresis or the stability time, so a threshold search renders each
stream once (:func:`render_cues`) and re-counts the cached cues per candidate (:func:`count_cached`),
which is what ``count_reps`` does after its cue stream.

The rest-anchored cue rules (``PhaseRule.anchor == "rest"``) state their thresholds as offsets
from the person's rest level. :func:`scaled_rules` derives every exercise's offsets from one pair
of fractions of that exercise's *excursion*
(:data:`~physio_ray.guidance.exercise_rules.CUE_EXCURSION`: how far the cue moves from rest in
a correct repetition, 5th percentile over the tuning subjects' renders), so a sweep tunes two
numbers for every movement instead of two per movement, and a new movement needs only its
measured excursion.

Scores (:func:`score_counts`) follow the benchmark: exact count on 10-rep sequences, single
repetitions counted 1, over-count rate; the objective rewards the first two and punishes
over-counting three times as hard (a counter that invents reps is worse than one that misses).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.guidance.config import VIEW_SWEPT_PARAMS, GuidanceConfig, SweepGuidanceViewsConfig
from physio_ray.guidance.cues import cue_stream
from physio_ray.guidance.exercise_rules import CUE_EXCURSION, CUE_RULES, ExerciseTracker
from physio_ray.guidance.features import as_xyzv
from physio_ray.guidance.phases import PhaseRule, scaled_rule
from physio_ray.video import virtual_camera as vc
from physio_ray.video.layout import to_coco17
from physio_ray.video.view_sweep import SweepItem, split_of

OVERCOUNT_WEIGHT = 3.0
"""How much more an over-count costs than a miss in :func:`score_counts`' objective."""


@dataclass(frozen=True)
class Cell:
    """One virtual camera and detector draw of a sweep item."""

    yaw: float
    pitch: float
    fps: float
    body_fraction: float
    seed: int


@dataclass(frozen=True)
class CachedCues:
    """One rendered stream reduced to what the counter reads.

    Attributes:
        item: the sweep item's name.
        exercise, kind, subject, expected: as in :class:`~physio_ray.video.view_sweep.SweepItem`.
        cell: the camera.
        times_ms: ``[T]`` frame times.
        cues: ``[T, N_CUES]`` cue values (NaN where not seen; all NaN while the view is unknown).
        switched: ``[T]`` side switches.
    """

    item: str
    exercise: str
    kind: str
    subject: str
    expected: int
    cell: Cell
    times_ms: np.ndarray
    cues: np.ndarray
    switched: np.ndarray

    @property
    def split(self) -> str:
        """``tuning`` or ``heldout`` (from the subject)."""
        return split_of(self.subject)


def render_cues(
    item: SweepItem,
    cells: Iterable[Cell],
    noise: vc.DetectorNoise = vc.DetectorNoise(),  # noqa: B008 (frozen dataclass)
    cfg: GuidanceConfig | None = None,
) -> list[CachedCues]:
    """Renders ``item`` through every cell and computes its cue streams (as ``count_reps`` does).

    Args:
        item: a single repetition or a 10-rep sequence.
        cells: cameras and noise seeds.
        noise: the detector noise model.
        cfg: visibility threshold (default: the seed's config).

    Returns:
        One :class:`CachedCues` per cell.
    """
    cfg = cfg or GuidanceConfig()
    out = []
    for c in cells:
        cam = vc.VirtualCamera(yaw_deg=c.yaw, pitch_deg=c.pitch, body_fraction=c.body_fraction)
        r = vc.render(item.points, item.fps, cam, c.fps, noise, c.seed)
        kp = vc.counter_input(r.keypoints, r.visibility)
        times = np.arange(kp.shape[0]) * (1000.0 / c.fps)
        w, h = r.image_size
        coco = np.asarray(to_coco17(as_xyzv(kp, allow_missing=True, third="auto")))
        cues, switched, _ = cue_stream(coco, times, w / h, cfg.min_visibility)
        out.append(
            CachedCues(item.name, item.exercise, item.kind, item.subject, item.expected, c, times, cues, switched)
        )
    return out


def count_cached(s: CachedCues, cfg: GuidanceConfig, rule: PhaseRule | None = None) -> int:
    """Repetitions the view-invariant counter finds in a cached stream (``count_reps``' second half).

    Args:
        s: the cached cues.
        cfg: hysteresis, stability, rep interval, rest window.
        rule: the cue rule to apply (default: ``CUE_RULES[s.exercise]``).
    """
    tracker = ExerciseTracker(s.exercise, cfg, view_invariant=True, cue_rule=rule)
    no_angles = np.full(16, np.nan)
    times = s.times_ms
    for i in range(times.shape[0]):
        dt = 0.0 if i == 0 else min(float(times[i] - times[i - 1]), cfg.max_frame_gap_ms)
        tracker.update(float(times[i]), dt, no_angles, s.cues[i], bool(s.switched[i]))
    if times.size:
        tracker.finish(float(times[-1]))
    return tracker.reps


def score_counts(streams: Sequence[CachedCues], counts: Sequence[int]) -> dict[str, float]:
    """Exact 10-rep sequences, single reps counted 1, over-counts, and the objective (maximised).

    Returns:
        ``seq_exact``, ``seq_overcount``, ``seq_mae``, ``single_one``, ``n_seq``, ``n_single`` and
        ``objective = seq_exact + single_one - OVERCOUNT_WEIGHT x (over-count rate of all streams)``.
    """
    seq = [(s.expected, n) for s, n in zip(streams, counts, strict=True) if s.kind == "sequence"]
    one = [n for s, n in zip(streams, counts, strict=True) if s.kind != "sequence"]
    nan = float("nan")
    exact = float(np.mean([n == e for e, n in seq])) if seq else nan
    over_seq = float(np.mean([n > e for e, n in seq])) if seq else nan
    mae = float(np.mean([abs(n - e) for e, n in seq])) if seq else nan
    single = float(np.mean([n == 1 for n in one])) if one else nan
    over_all = float(np.mean([n > s.expected for s, n in zip(streams, counts, strict=True)])) if streams else 0.0
    parts = [v for v in (exact, single) if not math.isnan(v)]
    return {
        "seq_exact": exact,
        "seq_overcount": over_seq,
        "seq_mae": mae,
        "single_one": single,
        "n_seq": len(seq),
        "n_single": len(one),
        "objective": float(sum(parts)) - OVERCOUNT_WEIGHT * over_all,
    }


def scaled_rules(
    rest_frac: float, far_frac: float, hysteresis_frac: float, excursion: Mapping[str, float] | None = None
) -> dict[str, PhaseRule]:
    """Every rest-anchored cue rule with its offsets set to fractions of the exercise's excursion
    (:func:`physio_ray.guidance.phases.scaled_rule`, the same function the shipped rules use).

    Args:
        rest_frac: the rest threshold sits this fraction of the excursion away from rest.
        far_frac: the far threshold sits this fraction of the excursion away from rest.
        hysteresis_frac: the rule's hysteresis margin as a fraction of the excursion.
        excursion: per exercise, how far a correct repetition moves the cue (default
            :data:`physio_ray.guidance.exercise_rules.CUE_EXCURSION`).

    Returns:
        ``{exercise: rule}`` for the anchored rules with an excursion (absolute rules are left out).

    Raises:
        ValueError: unless ``0 < rest_frac < far_frac < 1`` and ``hysteresis_frac >= 0``.
    """
    exc: Mapping[str, float] = CUE_EXCURSION if excursion is None else excursion
    return {
        ex: scaled_rule(rule, float(exc[ex]), rest_frac, far_frac, hysteresis_frac)
        for ex, rule in CUE_RULES.items()
        if rule.anchor == "rest" and ex in exc
    }


def excursions(streams: Sequence[CachedCues], cfg: GuidanceConfig | None = None, pct: float = 5.0) -> dict[str, float]:
    """Measured excursion per exercise: the ``pct`` percentile over single repetitions of how far
    the driving cue moves from the rest level (:class:`~physio_ray.guidance.cues.RestLevel`).

    Args:
        streams: cached single repetitions (sequences are skipped).
        cfg: rest window and smoothing.
        pct: the percentile (5: nearly every correct repetition moves at least this far).
    """
    cfg = cfg or GuidanceConfig()
    by_ex: dict[str, list[float]] = {}
    for s in streams:
        rule = CUE_RULES.get(s.exercise)
        if s.kind == "sequence" or rule is None or rule.anchor != "rest":
            continue
        tracker = ExerciseTracker(s.exercise, cfg, view_invariant=True)
        rel = []
        for i in range(s.times_ms.shape[0]):
            drive, _ = tracker.signal(np.full(16, np.nan), s.cues[i])
            assert tracker.rest_level is not None
            level = tracker.rest_level.push(float(s.times_ms[i]), drive)
            rel.append(rule.sign * (level - drive))
        r = np.asarray(rel, dtype=np.float64)
        if np.isfinite(r).any():
            by_ex.setdefault(s.exercise, []).append(float(np.nanmax(r)))
    return {ex: float(np.percentile(v, pct)) for ex, v in sorted(by_ex.items())}


BODY_FRACTION = (0.4, 0.9)
"""Range of the rest pose's height as a fraction of the frame height (uniform per render)."""


def sweep_cells(
    index: int,
    kind: str,
    yaws: Sequence[float],
    pitches: Sequence[float],
    fps: Sequence[float],
    seed: int = 0,
    full: bool = False,
) -> list[Cell]:
    """The cameras of the ``index``-th sweep item, deterministic (the benchmark's and the sweep's).

    A 10-rep sequence gets every (yaw, pitch); a single repetition one pitch per yaw, in rotation
    (unless ``full``). Each cell gets one frame rate in rotation (every one when ``full``), a body
    size drawn in 0.4..0.9 of the frame height and a detector-noise seed, both from
    ``(seed, index, yaw, pitch, fps)`` positions.
    """
    single = kind == "single" and not full
    out = []
    for yi, yaw in enumerate(yaws):
        for pi, pitch in enumerate(pitches):
            if single and pi != (index + yi) % len(pitches):
                continue
            choices = range(len(fps)) if full else [(index + yi + pi) % len(fps)]
            for fi in choices:
                rng = np.random.default_rng([seed, index, yi, pi, fi])
                frac = float(rng.uniform(*BODY_FRACTION))
                out.append(Cell(float(yaw), float(pitch), float(fps[fi]), frac, int(rng.integers(0, 2**31 - 1))))
    return out


def evaluate_view_params(
    params: Mapping[str, float], streams: Sequence[CachedCues], excursion: Mapping[str, float]
) -> dict[str, float]:
    """Counts every cached stream with one parameter set and scores it (a trial's body).

    Args:
        params: ``rest_frac``, ``far_frac``, ``hysteresis_frac``, ``phase_stability_ms``.
        streams: cached cue streams of the tuning subjects.
        excursion: per exercise, the measured excursion (:func:`excursions`).

    Returns:
        The params, ``objective`` (mean over movements of exact + single-one - 3 x over-count),
        ``seq_exact``, ``single_one``, ``overcount`` (pooled), ``n``, and ``obj_<exercise>`` per
        movement (the objective decomposes by movement, so one grid also picks per movement);
        ``objective`` is ``-inf`` when the fractions are inconsistent.
    """
    base = {k: float(v) for k, v in params.items()}
    try:
        rules = scaled_rules(base["rest_frac"], base["far_frac"], base["hysteresis_frac"], excursion)
    except ValueError:
        worst = {f"obj_{ex}": -math.inf for ex in excursion}
        return {**base, "objective": -math.inf, "seq_exact": 0.0, "single_one": 0.0, "overcount": 1.0, "n": 0, **worst}
    cfg = GuidanceConfig(phase_stability_ms=base["phase_stability_ms"])
    by_ex: dict[str, tuple[list[CachedCues], list[int]]] = {}
    for s in streams:
        rule = rules.get(s.exercise)
        if rule is None:
            continue
        group = by_ex.setdefault(s.exercise, ([], []))
        group[0].append(s)
        group[1].append(count_cached(s, cfg, rule))
    scores = {ex: score_counts(ss, cs) for ex, (ss, cs) in sorted(by_ex.items())}
    all_s = [s for ss, _ in by_ex.values() for s in ss]
    all_c = [c for _, cs in by_ex.values() for c in cs]
    pooled = score_counts(all_s, all_c)
    over = float(np.mean([c > s.expected for s, c in zip(all_s, all_c, strict=True)])) if all_s else 1.0
    return {
        **base,
        "objective": float(np.mean([m["objective"] for m in scores.values()])) if scores else -math.inf,
        "seq_exact": pooled["seq_exact"],
        "single_one": pooled["single_one"],
        "overcount": over,
        "n": len(all_s),
        **{f"obj_{ex}": m["objective"] for ex, m in scores.items()},
    }


def best_per_exercise(table: Any) -> dict[str, dict[str, float]]:
    """Per movement, the fractions of the trial that scored it best (ties: the better overall trial).

    Args:
        table: the sweep's DataFrame (one row per trial, ``obj_<exercise>`` columns).

    Returns:
        ``{exercise: {"rest_frac", "far_frac", "hysteresis_frac", "phase_stability_ms", "objective"}}``.
    """
    out = {}
    for col in [c for c in table.columns if c.startswith("obj_")]:
        row = table.sort_values([col, "objective"], ascending=False, kind="stable").iloc[0]
        out[col[4:]] = {k: float(row[k]) for k in VIEW_SWEPT_PARAMS} | {"objective": float(row[col])}
    return out


def tuning_items(cfg: SweepGuidanceViewsConfig) -> list[SweepItem]:
    """The sweep items of the tuning subjects only (held-out subjects are never loaded).

    Raises:
        FileNotFoundError: when no 3D recording of a tuning subject is under ``cfg.data_dir``.
    """
    from physio_ray.video.view_sweep import TUNING_SUBJECTS, load_clips, sweep_items

    exercises = list(cfg.exercises) or [ex for ex, r in CUE_RULES.items() if r.anchor == "rest"]
    clips = load_clips(Path(cfg.data_dir), exercises=exercises, subjects=TUNING_SUBJECTS)
    items = [it for it in sweep_items(clips) if it.split == "tuning"]
    if not items:
        raise FileNotFoundError(f"no 3D recording of subjects {TUNING_SUBJECTS} under {cfg.data_dir}")
    return items


def _render_item(index: int, item: SweepItem, cfg: SweepGuidanceViewsConfig) -> list[CachedCues]:
    cells = sweep_cells(index, item.kind, cfg.yaws, cfg.pitches, cfg.fps, cfg.seed)
    return render_cues(item, cells)


def render_tuning_streams(cfg: SweepGuidanceViewsConfig, items: Sequence[SweepItem]) -> list[CachedCues]:
    """Renders every item's cells as Ray tasks (one per item, ``cfg.cpus_per_trial`` CPUs each).

    Ray must already be initialised. Returns the cached streams in item order.
    """
    import ray

    render = ray.remote(num_cpus=cfg.cpus_per_trial)(_render_item)
    refs = [render.remote(i, it, cfg) for i, it in enumerate(items)]
    return [s for part in ray.get(refs) for s in part]


def _view_trainable(
    config: dict[str, Any], streams: Sequence[CachedCues] = (), excursion: Mapping[str, float] | None = None
) -> None:
    from ray import tune

    tune.report(evaluate_view_params(config, streams, excursion or {}))


def run_view_sweep(cfg: SweepGuidanceViewsConfig, streams: Sequence[CachedCues], excursion: Mapping[str, float]) -> Any:
    """The grid as a Ray Tune experiment over cached streams (Ray must already be initialised).

    Returns:
        A pandas DataFrame, one row per trial, best (highest objective) first.

    Raises:
        RuntimeError: when a trial failed.
    """
    import pandas as pd
    from ray import tune

    from physio_ray.guidance.sweep import run_tune_grid

    trainable = tune.with_parameters(_view_trainable, streams=list(streams), excursion=dict(excursion))
    trials = run_tune_grid(trainable, cfg, VIEW_SWEPT_PARAMS, "sweep_guidance_views", "max")
    per_ex = sorted({k for m in trials for k in m if k.startswith("obj_")})
    cols = [*VIEW_SWEPT_PARAMS, "objective", "seq_exact", "single_one", "overcount", "n", *per_ex]
    table = pd.DataFrame([{c: m[c] for c in cols} for m in trials])
    return table.sort_values(["objective", *VIEW_SWEPT_PARAMS], ascending=[False, True, True, True, True]).reset_index(
        drop=True
    )


def write_view_outputs(
    cfg: SweepGuidanceViewsConfig, table: Any, excursion: Mapping[str, float]
) -> tuple[dict[str, Any], Path, Path]:
    """Writes ``sweep_table.csv`` and ``best_view_rules.yaml`` (the fractions, the measured
    excursions and every rule's resulting thresholds) under ``cfg.output_dir``.

    Returns:
        ``(best row, csv path, yaml path)``.
    """
    import yaml

    from physio_ray.guidance.sweep import write_table

    out, csv_path, best = write_table(cfg.output_dir, table)
    chosen = best_per_exercise(table)
    rules = {}
    for ex, f in chosen.items():
        r = scaled_rules(f["rest_frac"], f["far_frac"], f["hysteresis_frac"], {ex: excursion[ex]})[ex]
        rules[ex] = {"rest_deg": r.rest_deg, "far_deg": r.far_deg, "hysteresis": r.hysteresis}
    body = {
        "best_shared": {k: float(best[k]) for k in (*VIEW_SWEPT_PARAMS, "objective")},
        "per_exercise": chosen,
        "excursion": {k: round(float(v), 1) for k, v in excursion.items()},
        "rules": rules,
    }
    header = (
        "# Best view-invariant thresholds found by: python jobs/sweep_guidance_views.py (Ray Tune grid)\n"
        f"# on the view sweep's tuning subjects only ({int(best['n'])} rendered streams); compare with\n"
        "# physio_ray.guidance.exercise_rules.CUE_RULES and CUE_EXCURSION\n"
    )
    yaml_path = out / "best_view_rules.yaml"
    yaml_path.write_text(header + yaml.safe_dump(body, sort_keys=False))
    return best, csv_path, yaml_path
