"""Typed configuration of ``jobs/build_spatial_dataset.py`` (PitVQA spatial dataset builder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from physio_ray.spatial.pitvqa import OFFICIAL_TRAIN_VIDEOS, OFFICIAL_VAL_VIDEOS


@dataclass(frozen=True)
class RenderedConfig:
    """Synthetic (rendered) frames with known tip points, for local training runs.

    Attributes:
        count: frames to render (0: none). Written under ``<output_dir>/rendered/``.
        seed: base seed; frame ``i`` uses ``seed + i``, so the set is reproducible.
        width: image width in pixels.
        height: image height in pixels.
        val_fraction: share of rendered frames in the ``val`` split (the rest is ``train``).
        none_fraction: share of frames drawn without any instrument.
        secondary_fraction: share of instrument frames that also show a suction tip.
    """

    count: int = 0
    seed: int = 0
    width: int = 256
    height: int = 144
    val_fraction: float = 0.2
    none_fraction: float = 0.1
    secondary_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"rendered.count={self.count} must be >= 0")
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096):
            raise ValueError(f"rendered.width/height={self.width}x{self.height} must be within 32..4096")
        for name in ("val_fraction", "none_fraction", "secondary_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rendered.{name}={value} must be in [0, 1]")


@dataclass(frozen=True)
class BuildSpatialDatasetConfig:
    """What ``jobs/build_spatial_dataset.py`` reads and writes.

    Attributes:
        annotations_dir: folder with ``instruments_csv/`` and ``steps_csv/`` (PitVQA_Annotations).
        output_dir: dataset root; gets ``sft_stage1/``, ``sft_stage2/``, ``grpo/``,
            ``labels_per_second.parquet`` and ``stats.json``.
        formats: files to write per record kind and split.
        train_videos: video numbers of the train split (default: the official PitVQA split).
        val_videos: video numbers of the val split; any other video found is ``"unassigned"``.
        include_secondary: add ``named`` pointing records for the secondary instrument (suction).
        include_none: add "no instrument visible" records (primary task, stage 2, GRPO).
        rendered: synthetic frames with true points (see :class:`RenderedConfig`).
    """

    annotations_dir: str
    output_dir: str
    formats: list[Literal["parquet", "jsonl"]] = field(default_factory=lambda: ["parquet", "jsonl"])
    train_videos: list[int] = field(default_factory=lambda: list(OFFICIAL_TRAIN_VIDEOS))
    val_videos: list[int] = field(default_factory=lambda: list(OFFICIAL_VAL_VIDEOS))
    include_secondary: bool = True
    include_none: bool = True
    rendered: RenderedConfig = field(default_factory=RenderedConfig)

    def __post_init__(self) -> None:
        problems = []
        if not self.annotations_dir:
            problems.append("annotations_dir must be set (folder with instruments_csv/ and steps_csv/)")
        if not self.output_dir:
            problems.append("output_dir must be set")
        if not self.formats or len(set(self.formats)) != len(self.formats):
            problems.append(f"formats={self.formats} must list parquet and/or jsonl once each")
        both = sorted(set(self.train_videos) & set(self.val_videos))
        if both:
            problems.append(f"videos {both} are in both train_videos and val_videos")
        if any(v < 0 for v in [*self.train_videos, *self.val_videos]):
            problems.append("video numbers must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))
