"""Rep counting wherever the camera stands: today's counter over a sweep of virtual cameras.

Run: python benchmarks/bench_guidance_views.py [--quick | --full] [--workers 2] [--data-dir ../shared/data]

Material (physio_ray.video.view_sweep): every 3D recording we ship (UI-PRMD Kinect s01, s03-s10;
UI-PRMD Vicon s01; KERAAL Kinect P1), mapped to 33 BlazePose points, for every movement
``physio_ray.guidance.count_reps`` can count. Single segmented repetitions (expected 1) and
10-rep sequences (the subject's episodes joined with 0.3 s blends; expected 10), correct
executions only unless --include-incorrect.

Cameras (physio_ray.video.virtual_camera): yaw 0..90 in 15 deg steps (0 = facing the body,
90 = its left side), pitch -20..20 in 10 deg steps, a 1280x720 frame with a 60 deg horizontal
field of view, distance set so the rest pose spans a fraction of the frame height drawn
uniformly in 0.4..0.9 per render. Frame rate 15, 30 or 100 fps: by default each
(item, yaw, pitch) cell gets one of them in rotation (balanced over the sweep), and each single
repetition is rendered at one pitch per yaw in rotation (10-rep sequences at every pitch);
--full renders every fps and pitch for everything (about 10x the default work). Detector noise: Gaussian jitter 1% of the body height, 2% of points lost per frame,
limb dropout bursts of 0.1-0.5 s at 0.05 per second, points outside the frame lost. All draws
are seeded (--seed), so a rerun gives the same numbers.

Split by subject: tuning = UI-PRMD s01, s03-s06 (and Vicon s01); held out = s07-s10 and KERAAL
P1. The JSON's ``yaw_bands`` are the held-out subjects (the goals' reference); ``splits`` has
tuning, heldout, heldout_uiprmd (s07-s10 only: KERAAL's three movements have P1 as their only
recording, and their thresholds were read off it) and all. Anchors (RepCount-A, long multi-rep videos, not the same task):
PoseRAC MAE 0.236 / OBO 0.56; Joint-based PoseRAC MAE 0.211 / OBO 0.599.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from physio_ray.guidance import view_tuning as vt  # noqa: E402
from physio_ray.video import view_sweep as vs  # noqa: E402
from physio_ray.video import virtual_camera as vc  # noqa: E402

ANCHORS = {"PoseRAC": {"mae": 0.236, "obo": 0.56}, "Joint-based PoseRAC": {"mae": 0.211, "obo": 0.599}}
YAWS = (0, 15, 30, 45, 60, 75, 90)
PITCHES = (-20, -10, 0, 10, 20)
FPS = (15.0, 30.0, 100.0)
FRACTION = vt.BODY_FRACTION
NOISE = vc.DetectorNoise()
QUICK_SUBJECTS = ("s01", "s07", "P1")

_ITEMS: list[vs.SweepItem] = []  # filled before the pool forks; workers read it by index


def countable_exercises() -> list[str]:
    """Exercises ``count_reps`` counts (it raises NotCountableError for the others)."""
    from physio_ray.guidance import NotCountableError, count_reps, known_exercises

    still = np.full((4, 33, 2), 0.5)
    out = []
    for ex in known_exercises():
        try:
            count_reps(still, 30.0, ex)
        except NotCountableError:
            continue
        out.append(ex)
    return out


def _run_item(task: tuple[int, tuple[int, ...], tuple[int, ...], tuple[float, ...], bool, int, bool]) -> list[tuple]:
    from physio_ray.guidance import count_reps

    i, yaws, pitches, fps, full, seed, noisy = task
    item = _ITEMS[i]
    rows = []
    for c in vt.sweep_cells(i, item.kind, yaws, pitches, fps, seed, full):
        yaw, pitch, f, frac = int(c.yaw), int(c.pitch), c.fps, c.body_fraction
        cam = vc.VirtualCamera(yaw_deg=yaw, pitch_deg=pitch, body_fraction=frac)
        r = vc.render(item.points, item.fps, cam, f, NOISE if noisy else vc.NO_NOISE, c.seed)
        try:
            n, err = (
                count_reps(vc.counter_input(r.keypoints, r.visibility), f, item.exercise, image_size=r.image_size),
                "",
            )
        except ValueError as exc:  # an unusable stream counts nothing
            n, err = 0, type(exc).__name__
        rows.append((i, yaw, pitch, f, round(frac, 3), int(n), err))
    return rows


def _metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    seq = [r for r in rows if r["kind"] == "sequence"]
    single = [r for r in rows if r["kind"] == "single"]
    m = vs.count_metrics([r["expected"] for r in seq], [r["counted"] for r in seq])
    m["single_n"] = len(single)
    m["single_one"] = float(np.mean([r["counted"] == 1 for r in single])) if single else float("nan")
    return m


def _group(rows: list[dict[str, Any]], *keys: str) -> dict[str, Any]:
    out: dict[Any, list] = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]].append(r)
    return out


def _fmt(x: float, pct: bool = True) -> str:
    if x != x:
        return "   - "
    return f"{100 * x:4.0f}%" if pct else f"{x:5.2f}"


def _print_bands(title: str, rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    bands = {str(y): _metrics(rs) for y, rs in sorted(_group(rows, "yaw").items())}
    print(f"\n{title}: 10-rep sequences (MAE, off-by-one, exact, over-count) and single reps counted 1")
    print(f"  {'yaw':>4} {'n_seq':>6} {'MAE':>6} {'obo':>6} {'exact':>6} {'over':>6} {'n_1rep':>7} {'1rep=1':>7}")
    for y, m in bands.items():
        print(
            f"  {y:>4} {m['n']:>6} {_fmt(m['mae'], False):>6} {_fmt(m['obo']):>6} {_fmt(m['exact']):>6} "
            f"{_fmt(m['overcount']):>6} {m['single_n']:>7} {_fmt(m['single_one']):>7}"
        )
    return bands


def _print_movements(rows: list[dict[str, Any]], yaws: tuple[int, ...]) -> dict[str, dict[str, dict[str, float]]]:
    by = {ex: {str(y): _metrics(rs) for y, rs in sorted(_group(ex_rows, "yaw").items())}
          for ex, ex_rows in sorted(_group(rows, "exercise").items())}  # fmt: skip
    for key, pct, label in (
        ("mae", False, "MAE, 10-rep"),
        ("obo", True, "off-by-one, 10-rep"),
        ("exact", True, "exact, 10-rep"),
        ("overcount", True, "over-count, 10-rep"),
        ("single_one", True, "single rep counted 1"),
    ):
        print(f"\nper movement, {label} (all subjects), yaw: " + " ".join(f"{y:>5}" for y in yaws))
        for ex, bands in by.items():
            print(
                f"  {ex:28s}" + " ".join(f"{_fmt(bands.get(str(y), {}).get(key, float('nan')), pct):>5}" for y in yaws)
            )
    return by


def _heatmap(rows: list[dict[str, Any]], yaws: tuple[int, ...], pitches: tuple[int, ...], path: Path) -> dict:
    seq = _group([r for r in rows if r["kind"] == "sequence"], "yaw", "pitch")
    one = _group([r for r in rows if r["kind"] == "single"], "yaw", "pitch")
    exact = np.full((len(pitches), len(yaws)), np.nan)
    single = np.full_like(exact, np.nan)
    for pi, p in enumerate(pitches):
        for yi, y in enumerate(yaws):
            if seq.get((y, p)):
                exact[pi, yi] = np.mean([r["counted"] == r["expected"] for r in seq[(y, p)]])
            if one.get((y, p)):
                single[pi, yi] = np.mean([r["counted"] == 1 for r in one[(y, p)]])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, grid, title in (
        (axes[0], exact, "10-rep sequences: exact count"),
        (axes[1], single, "single rep: count 1"),
    ):
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        ax.set_xticks(range(len(yaws)), [str(y) for y in yaws])
        ax.set_yticks(range(len(pitches)), [str(p) for p in pitches])
        ax.set_xlabel("yaw (deg, 0 = facing)")
        ax.set_ylabel("pitch (deg, > 0 = above)")
        ax.set_title(title)
        for (pi, yi), v in np.ndenumerate(grid):
            if v == v:
                ax.text(yi, pi, f"{100 * v:.0f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8, label="rate (all subjects)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"yaws": list(yaws), "pitches": list(pitches), "exact": exact.tolist(), "single_one": single.tolist()}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_guidance_views.json")
    parser.add_argument("--png", type=Path, default=REPO / "outputs" / "bench_guidance_views_heatmap.png")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="yaw 0/30/60/90, pitch 0, 30 fps, subjects s01, s07, P1")
    size.add_argument("--full", action="store_true", help="every fps and pitch for every item (~10x the default work)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-noise", action="store_true", help="perfect detector (projection only)")
    parser.add_argument("--include-incorrect", action="store_true", help="also UI-PRMD's incorrect executions")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        raise SystemExit(f"data not found: {args.data_dir} (pass --data-dir)")

    t0 = time.time()
    yaws = (0, 30, 60, 90) if args.quick else YAWS
    pitches = (0,) if args.quick else PITCHES
    fps = (30.0,) if args.quick else FPS
    exercises = countable_exercises()
    clips = vs.load_clips(
        args.data_dir,
        exercises=exercises,
        subjects=QUICK_SUBJECTS if args.quick else None,
        include_incorrect=args.include_incorrect,
    )
    _ITEMS[:] = vs.sweep_items(clips)
    if not _ITEMS:
        raise SystemExit(f"no 3D recordings under {args.data_dir}/ui-prmd or keraal")
    order = sorted(range(len(_ITEMS)), key=lambda i: -_ITEMS[i].points.shape[0] / _ITEMS[i].fps)
    tasks = [(i, yaws, pitches, fps, args.full, args.seed, not args.no_noise) for i in order]
    print(
        f"{len(_ITEMS)} items ({sum(it.kind == 'sequence' for it in _ITEMS)} sequences) from {len(clips)} clips, "
        f"{len({it.exercise for it in _ITEMS})} movements; yaw {yaws}, pitch {pitches}, fps {fps} ({'all' if args.full else 'rotating'}), "
        f"{args.workers} workers; loaded in {time.time() - t0:.0f} s",
        flush=True,
    )
    if args.workers > 1:
        with mp.get_context("fork").Pool(args.workers) as pool:
            results = pool.map(_run_item, tasks, chunksize=1)
    else:
        results = [_run_item(t) for t in tasks]
    rows = []
    for res in results:
        for i, yaw, pitch, f, frac, n, err in res:
            it = _ITEMS[i]
            rows.append(
                {"kind": it.kind, "name": it.name, "source": it.source, "subject": it.subject, "split": it.split,
                 "exercise": it.exercise, "expected": it.expected, "yaw": yaw, "pitch": pitch, "fps": f,
                 "body_fraction": frac, "counted": n, "error": err}
            )  # fmt: skip
    seconds = time.time() - t0

    print("\nanchors on RepCount-A (long multi-rep videos; context, not the same task): "
          + "; ".join(f"{k} MAE {v['mae']} / OBO {v['obo']}" for k, v in ANCHORS.items()))  # fmt: skip
    splits = {}
    for name, sel in (("heldout", "heldout"), ("tuning", "tuning"), ("all", None)):
        sub = [r for r in rows if sel is None or r["split"] == sel]
        if sub:
            splits[name] = {"yaw_bands": _print_bands(f"{name} subjects", sub)}
    # KERAAL's P1 is the only recording of flank stretch, torso rotation and hiding face: their
    # thresholds were read off it, so it is held out from the UI-PRMD tuning but not from those.
    strict = [r for r in rows if r["split"] == "heldout" and not r["source"].startswith("keraal")]
    if strict:
        splits["heldout_uiprmd"] = {"yaw_bands": _print_bands("held-out UI-PRMD subjects (s07-s10 only)", strict)}
    by_movement = _print_movements(rows, yaws)
    by_fps = {str(f): {str(y): _metrics(rs) for y, rs in sorted(_group(f_rows, "yaw").items())}
              for f, f_rows in sorted(_group(rows, "fps").items())}  # fmt: skip
    print("\nper fps, exact 10-rep / single counted 1 (all subjects), yaw: " + " ".join(f"{y:>11}" for y in yaws))
    for f, bands in by_fps.items():
        cells = [f"{_fmt(bands[str(y)]['exact'])}/{_fmt(bands[str(y)]['single_one'])}" for y in yaws if str(y) in bands]
        print(f"  {f:>6}" + " ".join(f"{c:>11}" for c in cells))
    heat = _heatmap(rows, yaws, pitches, args.png)
    errors = sum(1 for r in rows if r["error"])
    out = {
        "yaw_bands": splits.get("heldout", splits["all"])["yaw_bands"],
        "splits": splits,
        "by_movement": by_movement,
        "by_fps": by_fps,
        "heatmap": heat,
        "anchors_repcount_a": ANCHORS,
        "setup": {
            "quick": args.quick, "full": args.full, "seed": args.seed, "yaws": list(yaws), "pitches": list(pitches),
            "fps": list(fps), "body_fraction": list(FRACTION), "noise": None if args.no_noise else vars(NOISE),
            "tuning_subjects": list(vs.TUNING_SUBJECTS), "exercises": exercises, "renders": len(rows),
            "count_errors": errors, "workers": args.workers, "seconds": round(seconds, 1),
        },
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    print(
        f"\n{len(rows)} renders ({errors} unusable streams counted 0) in {seconds:.0f} s; wrote {args.out}, {args.png}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
