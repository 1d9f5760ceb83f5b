"""A probe that must work: a small CNN on the rendered frames, same split as the VLM recipe.

The rendered frames (:mod:`physio_ray.spatial.render`) put the primary tip at a known point, so
where the tip is can be read off the pixels. :func:`run_probe` trains a small convolutional
network from scratch on the ``train`` split's frames (downsampled) with three heads: the
position class (1-5, or "none"), the primary instrument (or ``"no_visible_instrument"``) and the
tip point (0-100 scale, regressed on frames that have one). It is scored on the ``val`` split
with the same metrics definitions as the VLM (:mod:`physio_ray.spatial.scores`). If this probe
cannot learn the task, the renderer or the labels are wrong, not the VLM recipe.

Everything is seeded; a run takes seconds on one CPU core.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.spatial.pitvqa import NO_VISIBLE
from physio_ray.spatial.scores import baseline_scores, headline_scores
from physio_ray.spatial.train_data import load_records, record_targets, true_points

logger = logging.getLogger(__name__)

__all__ = ["ProbeConfig", "load_frames", "run_probe"]

NONE_CLASS = 0  # index of "no instrument" in the position head (classes 1-5 keep their number)


@dataclass(frozen=True)
class ProbeConfig:
    """Probe training settings.

    Attributes:
        downsample: integer factor the frames are shrunk by (256x144 / 4 -> 64x36).
        epochs: passes over the training frames.
        batch_size: frames per step.
        lr: Adam learning rate.
        seed: torch / shuffling seed.
    """

    downsample: int = 4
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.downsample < 1 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"probe: downsample, epochs, batch_size must be >= 1 and lr > 0, got {self}")


def load_frames(dataset_dir: str | Path, split: str, downsample: int = 4) -> dict[str, Any]:
    """Frames and targets of one split of a rendered dataset.

    Args:
        dataset_dir: the ``rendered/`` folder written by ``jobs/build_spatial_dataset.py``.
        split: ``"train"`` or ``"val"``.
        downsample: shrink factor (area interpolation).

    Returns:
        ``{"images": [n, 3, H, W] float32 in 0-1, "targets": [{"instrument", "position_class",
        "point"}], "ids": [n]}``.
    """
    import cv2

    root = Path(dataset_dir)
    records = load_records(root, "grpo", split)
    images, ids = [], []
    for rec in records:
        img = cv2.imread(str(root / rec["image"]))[..., ::-1]
        h, w = img.shape[:2]
        small = cv2.resize(img, (w // downsample, h // downsample), interpolation=cv2.INTER_AREA)
        images.append(small.transpose(2, 0, 1).astype(np.float32) / 255.0)
        ids.append(str(rec["id"]))
    return {"images": np.stack(images), "targets": record_targets(records, true_points(root, split)), "ids": ids}


def _network(n_instruments: int) -> Any:
    import torch
    from torch import nn

    class ProbeNet(nn.Module):
        """Conv features + coordinate channels -> position class, instrument, point."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(5, 32, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
            )
            self.heatmap = nn.Conv2d(64, 1, 1)
            self.instrument = nn.Linear(64, n_instruments)
            self.position = nn.Linear(64 + 2, 6)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            b, _, h, w = x.shape
            yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
            coords = torch.stack([xx, yy]).expand(b, 2, h, w)
            f = self.features(torch.cat([x, coords], dim=1))
            attn = torch.softmax(self.heatmap(f).flatten(1), dim=1)  # [b, h'*w'], where the tip is
            fh, fw = f.shape[2:]
            gy, gx = torch.meshgrid(torch.linspace(0, 1, fh), torch.linspace(0, 1, fw), indexing="ij")
            point = torch.stack([(attn * gx.flatten()).sum(1), (attn * gy.flatten()).sum(1)], dim=1)  # [b, 2]
            pooled = (f.flatten(2) * attn[:, None, :]).sum(2)  # [b, 64] features at the tip
            return self.position(torch.cat([pooled, point], dim=1)), self.instrument(pooled), point

    return ProbeNet()


def _train(frames: Mapping[str, Any], names: Sequence[str], cfg: ProbeConfig) -> Any:
    import torch
    from torch.nn import functional as F

    torch.manual_seed(cfg.seed)
    net = _network(len(names))
    x = torch.from_numpy(frames["images"])
    t = frames["targets"]
    pos = torch.tensor([NONE_CLASS if r["position_class"] is None else int(r["position_class"]) for r in t])
    ins = torch.tensor([names.index(r["instrument"]) for r in t])
    pts = torch.tensor([r["point"] or (50.0, 50.0) for r in t], dtype=torch.float32) / 100.0
    has_pt = torch.tensor([r["point"] is not None for r in t], dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            p_logits, i_logits, point = net(x[idx])
            l1 = (point - pts[idx]).abs().sum(1)
            loss = F.cross_entropy(p_logits, pos[idx]) + F.cross_entropy(i_logits, ins[idx])
            loss = loss + 5.0 * (l1 * has_pt[idx]).sum() / has_pt[idx].sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def _answers(net: Any, frames: Mapping[str, Any], names: Sequence[str]) -> list[dict[str, Any]]:
    """Predictions as ``{"instrument", "position_class", "point"}`` (the shape scores take)."""
    import torch

    with torch.no_grad():
        p_logits, i_logits, point = net(torch.from_numpy(frames["images"]))
    out: list[dict[str, Any]] = []
    for pc, ic, pt in zip(
        p_logits.argmax(1).tolist(), i_logits.argmax(1).tolist(), (point * 100).tolist(), strict=True
    ):
        if pc == NONE_CLASS:
            out.append({"instrument": NO_VISIBLE, "position_class": None, "point": None})
        else:
            out.append({"instrument": names[ic], "position_class": int(pc), "point": (pt[0], pt[1])})
    return out


def run_probe(dataset_dir: str | Path, cfg: ProbeConfig | None = None) -> dict[str, Any]:
    """Trains the probe on ``train`` and scores it on ``val`` beside the baselines.

    Args:
        dataset_dir: the ``rendered/`` folder of a built spatial dataset.
        cfg: probe settings (default :class:`ProbeConfig`).

    Returns:
        ``{"probe": headline scores, "train_fit": scores on train, "baselines": {...}, "config": ...}``
        (see :func:`physio_ray.spatial.scores.headline_scores`).
    """
    cfg = cfg or ProbeConfig()
    train = load_frames(dataset_dir, "train", cfg.downsample)
    val = load_frames(dataset_dir, "val", cfg.downsample)
    names = sorted({r["instrument"] for r in train["targets"]} | {r["instrument"] for r in val["targets"]})
    net = _train(train, names, cfg)
    return {
        "probe": headline_scores(_answers(net, val, names), val["targets"]),
        "train_fit": headline_scores(_answers(net, train, names), train["targets"]),
        "baselines": baseline_scores(train["targets"], val["targets"]),
        "n_train": len(train["ids"]),
        "config": cfg.__dict__,
    }
