"""Training of the guidance LSTMs on real keypoints (``jobs/train_guidance.py``).

Every recording becomes the 16 shared angles *as a camera in front of the person sees them*
(``image2d``): UI-PRMD world coordinates are projected frontally (depth dropped; the Kinect
faced the subject), KERAAL and tfjs are already image coordinates. Windows are cut with the
same :func:`~physio_ray.video.angles.resample_angles` the live session uses.

* Split by subject: UI-PRMD subjects in ``heldout_subjects`` are never trained on (s02 is not
  in the data at all). KERAAL and tfjs have one recording per exercise, so they are training
  data only; their held-in classification is reported separately.
* Classifier: 14 exercises; random windows (``window_s``) ending anywhere in each recording,
  mirrored left/right as augmentation. Held-out *repetition* accuracy: each held-out episode
  (one repetition) is classified by the mean log-probability of windows ending every 0.5 s.
* Quality: one binary LSTM per UI-PRMD exercise, correct vs the deliberately incorrect
  executions, scored on the whole episode; held-out ROC AUC per exercise.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.figures import save_figure
from physio_ray.guidance.config import GuidanceConfig, LstmTrainConfig, TrainGuidanceConfig
from physio_ray.guidance.models import (
    REPORT_FILE,
    WEIGHTS_FILE,
    ModelSpec,
    build_lstm,
    lstm_logits,
    weights_dir,
)
from physio_ray.video.angles import resample_angles

logger = logging.getLogger(__name__)

_MIRROR = np.array([1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13, 14, 15])
_SIGNED = np.array([13, 14])  # shoulder_tilt, pelvis_tilt change sign in a mirror


@dataclass(frozen=True)
class AngleSequence:
    """One recording as angles: ``angles [T, 16]`` at ``fps`` with its labels."""

    source: str
    exercise: str
    subject: str | None
    correct: bool
    fps: float
    angles: np.ndarray

    @property
    def times_ms(self) -> np.ndarray:
        """``[T]`` frame times."""
        return np.arange(self.angles.shape[0]) * (1000.0 / self.fps)


def load_angle_sequences(cfg: TrainGuidanceConfig) -> list[AngleSequence]:
    """Reads every labelled recording into angles, cached as one ``.npz`` per configuration.

    Raises:
        FileNotFoundError: when ``data_dir`` has none of the datasets.
    """
    from physio_ray.guidance.datasets import iter_labelled_sequences
    from physio_ray.video.angles import joint_angles

    cache_dir = Path(cfg.cache_dir or Path(cfg.output_dir) / "cache")
    episodes = "-".join(str(e) for e in cfg.uiprmd_episodes) if cfg.uiprmd_episodes else "all"
    key = f"angles_{'-'.join(cfg.uiprmd_subjects or ['all'])}_{episodes}.npz"
    cache = cache_dir / key
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return [AngleSequence(**m, angles=z[f"a{i}"]) for i, m in enumerate(meta)]
    min_vis = GuidanceConfig().min_visibility
    out = []
    for seq in iter_labelled_sequences(
        Path(cfg.data_dir), subjects=cfg.uiprmd_subjects, episodes=cfg.uiprmd_episodes, include_incorrect=True
    ):
        # world sequences are read as a frontal picture (their aspect is 1.0), as the engine sees them
        angles = joint_angles(seq.keypoints, "image2d", aspect=seq.aspect, min_visibility=min_vis)
        angles = np.asarray(angles, np.float32)
        out.append(AngleSequence(seq.source, seq.exercise, seq.subject, seq.correct, float(seq.fps), angles))
    if not out:
        raise FileNotFoundError(f"no labelled recordings under {cfg.data_dir} (ui-prmd/, keraal/, tfjs-pose-squats/)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta = [{k: v for k, v in asdict(s).items() if k != "angles"} for s in out]
    np.savez_compressed(cache, meta=json.dumps(meta), **{f"a{i}": s.angles for i, s in enumerate(out)})
    return out


def mirror(angles: np.ndarray) -> np.ndarray:
    """Left/right mirror of ``[..., 16]`` angles (sides swapped, signed tilts negated)."""
    out = angles[..., _MIRROR].copy()
    out[..., _SIGNED] *= -1.0
    return out


def _window(seq: AngleSequence, end_ms: float, spec: LstmTrainConfig) -> np.ndarray:
    return resample_angles(seq.times_ms, seq.angles, end_ms, spec.window_s, spec.sample_hz)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (probability a positive outranks a negative, ties half). NaN without both classes.

    >>> auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0]))
    1.0
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if not pos.size or not neg.size:
        return math.nan
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _fit(
    module: Any,
    x: np.ndarray,
    y: np.ndarray,
    spec: LstmTrainConfig,
    loss: str,
    rng: np.random.Generator,
    label: str = "",
) -> list:
    import torch

    from physio_ray.guidance.models import to_features

    opt = torch.optim.Adam(module.parameters(), lr=spec.lr)
    xt = torch.from_numpy(to_features(x))
    yt = torch.from_numpy(y)
    if loss == "ce":
        counts = np.bincount(y.astype(np.int64), minlength=int(y.max()) + 1).astype(np.float64)
        weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(counts), dtype=torch.float32)
        crit: torch.nn.Module = torch.nn.CrossEntropyLoss(weight=weight)
    else:
        pos = float(y.mean())
        crit = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / max(pos, 1e-3)))
    history = []
    module.train()
    for _ in range(spec.epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(0, len(order), spec.batch_size):
            idx = torch.from_numpy(order[i : i + spec.batch_size])
            out = module(xt[idx])
            target = yt[idx] if loss == "ce" else yt[idx].float()
            val = crit(out if loss == "ce" else out[:, 0], target)
            opt.zero_grad()
            val.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            opt.step()
            total += float(val.detach()) * len(idx)
        history.append(total / len(x))
        if label:
            logger.info("%s epoch %d/%d loss %.4f", label, len(history), spec.epochs, history[-1])
    module.eval()
    return history


def _classifier_windows(
    seqs: list[AngleSequence], classes: list[str], spec: LstmTrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for s in seqs:
        dur = s.times_ms[-1]
        # small recordings (KERAAL, tfjs: one per exercise) get more crops so classes balance
        n = spec.windows_per_sequence * (20 if s.subject is None else 1)
        ends = np.concatenate([[dur], rng.uniform(min(1000.0, dur), dur, n - 1)])
        for e in ends:
            w = _window(s, float(e), spec)
            xs.extend([w, mirror(w)])
            ys.extend([classes.index(s.exercise)] * 2)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def _episode_logp(module: Any, s: AngleSequence, spec: LstmTrainConfig) -> np.ndarray:
    ends = np.arange(s.times_ms[-1], 0.0, -500.0)[:8]
    z = lstm_logits(module, np.stack([_window(s, float(e), spec) for e in ends]))
    logp = (
        z - np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) - z.max(axis=1, keepdims=True)
    )
    return logp.mean(axis=0)


def train_guidance(cfg: TrainGuidanceConfig) -> dict[str, Any]:
    """Trains the classifier and quality LSTMs, writes weights + report, optionally ships them.

    Args:
        cfg: the job config.

    Returns:
        The report dict (also written to ``output_dir/training_report.json``).
    """
    import torch

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.torch_threads)
    rng = np.random.default_rng(cfg.seed)
    seqs = load_angle_sequences(cfg)
    held = set(cfg.heldout_subjects)
    train = [s for s in seqs if s.subject not in held]
    test = [s for s in seqs if s.subject in held]
    classes = sorted({s.exercise for s in seqs})
    logger.info("%d recordings (%d train, %d held out), %d classes", len(seqs), len(train), len(test), len(classes))

    c = cfg.classifier
    clf_spec = ModelSpec(c.hidden, c.layers, len(classes), c.window_s, c.sample_hz)
    clf = build_lstm(clf_spec)
    x, y = _classifier_windows(train, classes, c, rng)
    logger.info("classifier: %d training windows (%.0f s so far)", len(x), time.time() - t0)
    clf_loss = _fit(clf, x, y, c, "ce", rng, label="classifier")
    logger.info("classifier trained, loss %.3f (%.0f s so far)", clf_loss[-1], time.time() - t0)
    per_ex: dict[str, list[bool]] = {}
    for s in test:
        per_ex.setdefault(s.exercise, []).append(classes[int(np.argmax(_episode_logp(clf, s, c)))] == s.exercise)
    held_in = {s.source: classes[int(np.argmax(_episode_logp(clf, s, c)))] for s in train if s.subject is None}
    all_hits = [h for v in per_ex.values() for h in v]

    q = cfg.quality
    q_spec = ModelSpec(q.hidden, q.layers, 1, q.window_s, q.sample_hz)
    quality_models, quality_report = {}, {}
    for ex in classes:
        tr = [s for s in train if s.exercise == ex and s.subject is not None]
        if len({s.correct for s in tr}) < 2:
            continue  # no incorrect executions to learn from (KERAAL, tfjs)
        te = [s for s in test if s.exercise == ex]
        xq = np.stack([_window(s, s.times_ms[-1], q) for s in tr] + [mirror(_window(s, s.times_ms[-1], q)) for s in tr])
        yq = np.array([s.correct for s in tr] * 2, dtype=np.float32)
        m = build_lstm(q_spec)
        hist = _fit(m, xq, yq, q, "bce", rng)
        quality_models[ex] = m
        entry: dict[str, Any] = {"train_n": len(tr), "final_loss": round(hist[-1], 4)}
        if te:
            score = lstm_logits(m, np.stack([_window(s, s.times_ms[-1], q) for s in te]))[:, 0]
            labels = np.array([s.correct for s in te])
            entry.update(
                heldout_n=len(te),
                heldout_auc=round(auc(score, labels), 4),
                heldout_accuracy=round(float(((score > 0) == labels).mean()), 4),
            )
        quality_report[ex] = entry
        logger.info("quality %s: %s (%.0f s so far)", ex, entry, time.time() - t0)
    aucs = [v["heldout_auc"] for v in quality_report.values() if "heldout_auc" in v and math.isfinite(v["heldout_auc"])]

    out_dir = Path(cfg.output_dir)
    from physio_ray.guidance.models import save_guidance_models

    weights = save_guidance_models(out_dir / WEIGHTS_FILE, clf, clf_spec, tuple(classes), quality_models, q_spec)
    report = {
        "classes": classes,
        "heldout_subjects": sorted(held),
        "n_recordings": {"train": len(train), "heldout": len(test)},
        "classifier": {
            "spec": asdict(clf_spec),
            "train_windows": int(len(x)),
            "final_loss": round(clf_loss[-1], 4),
            "heldout_rep_accuracy": round(float(np.mean(all_hits)), 4) if all_hits else None,
            "heldout_rep_accuracy_by_exercise": {k: round(float(np.mean(v)), 4) for k, v in sorted(per_ex.items())},
            "held_in_single_recordings": held_in,
        },
        "quality": {
            "spec": asdict(q_spec),
            "heldout_auc_mean": round(float(np.mean(aucs)), 4) if aucs else None,
            "by_exercise": quality_report,
        },
        "seconds": round(time.time() - t0, 1),
        "weights_bytes": weights.stat().st_size,
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2))
    _plot(report, out_dir / "training_report.png")
    if cfg.ship:
        dest = weights_dir()
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(weights, dest / WEIGHTS_FILE)
        shutil.copy2(out_dir / REPORT_FILE, dest / REPORT_FILE)
    return report


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = report["classifier"]["heldout_rep_accuracy_by_exercise"]
    aucs = {k: v.get("heldout_auc", math.nan) for k, v in report["quality"]["by_exercise"].items()}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].barh(list(acc), list(acc.values()), color="#3b82f6")
    axes[0].set_xlim(0, 1)
    axes[0].set_title("exercise classifier: held-out repetition accuracy")
    axes[1].barh(list(aucs), list(aucs.values()), color="#64748b")
    axes[1].set_xlim(0, 1)
    axes[1].set_title("quality LSTM: held-out correct-vs-incorrect AUC")
    save_figure(fig, path, dpi=100)
