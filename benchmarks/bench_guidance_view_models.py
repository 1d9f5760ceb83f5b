"""The exercise classifier and the quality model wherever the camera stands (issue 14, part 4).

Run: python benchmarks/bench_guidance_view_models.py [--quick] [--workers 2] [--data-dir ../shared/data]

Material: the view sweep's held-out subjects (UI-PRMD Kinect s07-s10; KERAAL P1 has no
incorrect executions and its movements are outside the LSTM's classes, so it is left out here),
rendered as ``bench_guidance_views.py`` renders them (``physio_ray.guidance.view_tuning``:
virtual camera, detector noise), at yaw 0..90 (15 deg steps; --quick: 0/30/60/90), pitch 0,
30 fps, body at 40-90% of the frame height.

For each movement the classifier knows, a live ``GuidanceSession`` runs with that movement
selected, once with the shipped LSTMs (``load_guidance_models``) and once with the rule models:

* classifier accuracy: the share of classifier windows taken while the body moves (not the
  uniform "still" output) whose most likely exercise is the true one, on 10-rep sequences of
  correct executions;
* false contradictions per 10 minutes of correct movement: ``uncertain`` events (the session
  pauses counting and asks the user to confirm) on those same sequences;
* quality AUC: per single repetition the mean ``p_correct`` the quality model gave while it ran;
  the AUC of correct (1) against incorrect (0) executions, per yaw band and beside the frontal
  view's (yaw 0). Goals: >= 95% correct exercise at yaw 0-60, at most one false contradiction
  per 10 minutes, quality AUC within 0.05 of the frontal view's.

Writes ``outputs/bench_guidance_view_models.json`` (per model kind, per yaw band).
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

HELD_OUT = ("s07", "s08", "s09", "s10")
SINGLES_PER_LABEL = 5
"""Single repetitions per subject, movement and execution label (the first episodes)."""

_ITEMS: list[vs.SweepItem] = []
_MODELS: dict[str, Any] = {}


class _Recorder:
    """Wraps a classifier or quality model and keeps what it returned (the session calls it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.outputs: list[Any] = []
        for name in ("sample_hz", "window_s", "exercises"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def predict_proba(self, window: np.ndarray) -> np.ndarray:
        p = self.inner.predict_proba(window)
        self.outputs.append(np.asarray(p))
        return p

    def score(self, window: np.ndarray) -> tuple[float, float]:
        s = self.inner.score(window)
        self.outputs.append(s)
        return s


def _classes(kind: str) -> tuple[str, ...]:
    from physio_ray.guidance.exercise_rules import known

    return tuple(_MODELS["lstm"].classifier.exercises) if kind == "lstm" else known()


def _session(kind: str, exercise: str, image_size: tuple[int, int]) -> tuple[Any, _Recorder, list[_Recorder]]:
    from physio_ray.guidance import GuidanceSession
    from physio_ray.guidance.exercise_rules import default_classifier, default_quality_model

    clf = _Recorder(_MODELS["lstm"].classifier if kind == "lstm" else default_classifier())
    qualities: list[_Recorder] = []

    def quality(ex: str) -> _Recorder:
        inner = _MODELS["lstm"].quality_factory(ex) if kind == "lstm" else default_quality_model(ex)
        qualities.append(_Recorder(inner))
        return qualities[-1]

    s = GuidanceSession(classifier=clf, quality_factory=quality)
    s.start(exercise, image_size=image_size)
    return s, clf, qualities


def _run_item(task: tuple[int, tuple[float, ...], int]) -> list[dict[str, Any]]:
    i, yaws, seed = task
    item = _ITEMS[i]
    rows = []
    for cell in vt.sweep_cells(i, "sequence", yaws, (0.0,), (30.0,), seed):
        cam = vc.VirtualCamera(yaw_deg=cell.yaw, pitch_deg=cell.pitch, body_fraction=cell.body_fraction)
        r = vc.render(item.points, item.fps, cam, cell.fps, vc.DetectorNoise(), cell.seed)
        # as a live client sends it: x, y, z (unknown: 0), visibility (lost points: 0)
        kp = np.concatenate([r.keypoints, np.zeros_like(r.keypoints[..., :1]), r.visibility[..., None]], axis=-1)
        ts = np.arange(kp.shape[0]) * (1000.0 / cell.fps)
        for kind in ("lstm", "rules"):
            if item.exercise not in _classes(kind):
                continue
            s, clf, qualities = _session(kind, item.exercise, r.image_size)
            results = [res for k in range(0, len(ts), 30) for res in s.frames(ts[k : k + 30], kp[k : k + 30])]
            classes = _classes(kind)
            moving = [p for p in clf.outputs if np.ptp(p) > 1e-9]
            hits = [classes[int(np.argmax(p))] == item.exercise for p in moving]
            q = [sc[0] for rec in qualities for sc in rec.outputs if np.isfinite(sc[0])]
            rows.append(
                {"kind": kind, "item": item.kind, "exercise": item.exercise, "subject": item.subject,
                 "correct": item.correct, "yaw": cell.yaw, "minutes": float(ts[-1] - ts[0]) / 60000.0,
                 "windows": len(moving), "hits": int(sum(hits)),
                 "uncertain": sum(res.event == "uncertain" for res in results),
                 "quality": float(np.mean(q)) if q else float("nan")}
            )  # fmt: skip
    return rows


def _auc(pos: list[float], neg: list[float]) -> float:
    pos = [p for p in pos if np.isfinite(p)]
    neg = [n for n in neg if np.isfinite(n)]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins / (len(pos) * len(neg)))


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per model kind and yaw: classifier accuracy, false contradictions per 10 min, quality AUC."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    by = defaultdict(list)
    for r in rows:
        by[(r["kind"], r["yaw"])].append(r)
    for (kind, yaw), rs in sorted(by.items()):
        seq = [r for r in rs if r["item"] == "sequence" and r["correct"]]
        one = [r for r in rs if r["item"] == "single"]
        windows = sum(r["windows"] for r in seq)
        minutes = sum(r["minutes"] for r in seq)
        out[kind][str(int(yaw))] = {
            "classifier_accuracy": sum(r["hits"] for r in seq) / windows if windows else float("nan"),
            "windows": windows,
            "false_contradictions_per_10min": 10.0 * sum(r["uncertain"] for r in seq) / minutes if minutes else 0.0,
            "minutes": minutes,
            "quality_auc": _auc([r["quality"] for r in one if r["correct"]], [r["quality"] for r in one if not r["correct"]]),
            "n_single": len(one),
        }  # fmt: skip
    return dict(out)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_guidance_view_models.json")
    parser.add_argument("--quick", action="store_true", help="yaw 0/30/60/90 and 2 held-out subjects")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        raise SystemExit(f"data not found: {args.data_dir} (pass --data-dir)")
    from physio_ray.guidance.models import load_guidance_models

    t0 = time.time()
    _MODELS["lstm"] = load_guidance_models()
    yaws = (0.0, 30.0, 60.0, 90.0) if args.quick else (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)
    subjects = HELD_OUT[:2] if args.quick else HELD_OUT
    clips = [c for c in vs.load_clips(args.data_dir, subjects=subjects, include_incorrect=True)]
    clips = [c for c in clips if c.source == "uiprmd-kinect" and c.episode <= SINGLES_PER_LABEL or c.correct]
    items = [it for it in vs.sweep_items(clips) if it.kind == "single" or it.correct]
    items = [it for it in items if it.kind == "sequence" or int(it.name.rsplit("/e", 1)[1]) <= SINGLES_PER_LABEL]
    _ITEMS[:] = [it for it in items if it.exercise in set(_classes("lstm")) | set(_classes("rules"))]
    tasks = [(i, yaws, args.seed) for i in range(len(_ITEMS))]
    print(f"{len(_ITEMS)} items from subjects {', '.join(subjects)}; yaws {yaws}; {args.workers} workers", flush=True)
    if args.workers > 1:
        with mp.get_context("fork").Pool(args.workers) as pool:
            parts = pool.map(_run_item, tasks, chunksize=1)
    else:
        parts = [_run_item(t) for t in tasks]
    rows = [r for p in parts for r in p]
    table = summarise(rows)
    for kind, bands in table.items():
        frontal = bands.get("0", {}).get("quality_auc", float("nan"))
        print(
            f"\n{kind}: yaw  classifier acc (windows)  false contradictions /10 min (min)  quality AUC (n)  AUC - frontal"
        )
        for yaw, m in bands.items():
            print(
                f"  {yaw:>4}  {m['classifier_accuracy']:8.3f} ({m['windows']:5d})  {m['false_contradictions_per_10min']:10.2f} "
                f"({m['minutes']:5.1f})  {m['quality_auc']:8.3f} ({m['n_single']:4d})  {m['quality_auc'] - frontal:+.3f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    setup = {"yaws": list(yaws), "subjects": list(subjects), "seconds": round(time.time() - t0, 1), "rows": len(rows)}
    args.out.write_text(json.dumps({"bands": table, "setup": setup}, indent=1, default=float))
    print(f"\n{len(rows)} sessions in {time.time() - t0:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
