"""Builds the spatial SFT / grounded / GRPO datasets from PitVQA annotations (+ rendered frames).

Per second of video (:func:`physio_ray.spatial.pitvqa.load_annotations`) the *primary target*
is decided by :func:`primary_target`:

* a visible primary instrument with a position class -> that instrument and class;
* no primary but a visible, positioned secondary (it happens) -> the secondary is promoted;
* no instrument at all and no position anywhere -> ``"no_visible_instrument"`` (a negative);
* otherwise the second is excluded, with a reason counted in ``stats.json``: out of patient,
  occluded (blurred) image, position without instrument, instrument without position, or an
  instrument name/id disagreement.

Records (see :mod:`physio_ray.spatial.records`): ``sft_stage1`` = a ``primary`` pointing record
per usable second + a ``named`` record per visible positioned instrument (primary and
secondary); ``sft_stage2`` = step + instruments for seconds inside a surgical step (id 1-14);
``grpo`` = one primary prompt per usable second. Points are region centroids (PitVQA gives no
coordinates). Splits are by video: ``train`` / ``val`` lists, anything else ``unassigned``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from physio_ray.spatial.config import BuildSpatialDatasetConfig, RenderedConfig
from physio_ray.spatial.pitvqa import (
    INSTRUMENTS,
    NO_VISIBLE,
    STATUS_INSTRUMENT,
    STATUS_NO_VISIBLE,
    load_annotations,
    region_name,
    table_rows,
)
from physio_ray.spatial.records import (
    ORIGIN_PITVQA,
    ORIGIN_RENDERED,
    POINT_CENTROID,
    POINT_TRUE,
    grpo_record,
    stage1_record,
    stage2_record,
    write_records,
)
from physio_ray.spatial.regions import CENTRE_BOX, REGION_CENTRES, REGIONS
from physio_ray.spatial.render import random_frame_spec, render_frame, save_rgb

logger = logging.getLogger(__name__)

KINDS = ("sft_stage1", "sft_stage2", "grpo")
_CLASS_KEYS = ("1", "2", "3", "4", "5", "none")

Target = tuple[str, int | None]


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_spatial_dataset` wrote.

    Attributes:
        output_dir: dataset root.
        stats_path: ``stats.json``.
        outputs: kind -> split -> format -> path (``rendered/`` ones under key ``"rendered"``).
        stats: the content of ``stats.json``.
    """

    output_dir: str
    stats_path: str
    outputs: dict[str, Any]
    stats: dict[str, Any]


def split_of(video_num: int, cfg: BuildSpatialDatasetConfig) -> str:
    """``"train"``, ``"val"`` or ``"unassigned"`` for a video number."""
    if video_num in cfg.train_videos:
        return "train"
    if video_num in cfg.val_videos:
        return "val"
    return "unassigned"


def primary_target(row: dict[str, Any]) -> tuple[Target | None, str]:
    """The primary reward target of one per-second row, or ``None`` with the reason.

    Args:
        row: a row of the per-second table (``frame_status``, ``instrument1/2``,
            ``position1/2``, ``quirks``).

    Returns:
        ``((instrument, class_or_None), how)`` where ``how`` is ``"primary"``,
        ``"promoted_secondary"`` or ``"none"``; or ``(None, reason)`` when excluded.
    """
    quirks = set(row["quirks"])
    pos1, pos2 = _opt_int(row["position1"]), _opt_int(row["position2"])
    vis2 = row["instrument2"] in INSTRUMENTS.values()
    if "instrument_name_id_mismatch" in quirks:
        return None, "instrument_name_id_mismatch"
    if "stray_value_in_extra_column" in quirks:
        return None, "stray_value_in_extra_column"
    status = row["frame_status"]
    if status == STATUS_INSTRUMENT:
        if pos1 is None:
            return None, "instrument_without_position"
        return (row["instrument1"], pos1), "primary"
    if status != STATUS_NO_VISIBLE:
        return None, status  # "occluded" or "out_of_patient"
    if pos1 is not None:
        return None, "position_without_instrument"
    if vis2:
        if pos2 is None:
            return None, "secondary_without_position"
        return (row["instrument2"], pos2), "promoted_secondary"
    if pos2 is not None:
        return None, "position_without_instrument"
    return (NO_VISIBLE, None), "none"


def _opt_int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _centroid(cls: int) -> tuple[float, float]:
    return REGION_CENTRES[cls]


def _class_key(cls: int | None) -> str:
    return "none" if cls is None else str(cls)


def pitvqa_records(rows: list[dict[str, Any]], cfg: BuildSpatialDatasetConfig) -> tuple[dict[str, list[dict]], Counter]:
    """Turns the per-second rows (:func:`physio_ray.spatial.pitvqa.table_rows`) into records.

    Returns:
        ``(records by kind, Counter of how each second was used or why it was excluded)``.
    """
    out: dict[str, list[dict]] = {k: [] for k in KINDS}
    usage: Counter = Counter()
    for row in rows:
        target, how = primary_target(row)
        usage[how] += 1
        base = {
            "id": f"{row['video_id']}-t{int(row['time_s']):06d}",
            "image": row["image"],
            "video_id": row["video_id"],
            "time_s": int(row["time_s"]),
            "split": split_of(int(row["video_num"]), cfg),
            "data_origin": ORIGIN_PITVQA,
        }
        if target is None or (target[1] is None and not cfg.include_none):
            continue
        name, cls = target
        point = _centroid(cls) if cls is not None else None
        out["sft_stage1"].append(stage1_record(base, "primary", name, cls, point, POINT_CENTROID if point else None))
        out["grpo"].append(grpo_record(base, name, cls))
        secondary = None
        pos2 = _opt_int(row["position2"])
        if how == "primary" and row["instrument2"] in INSTRUMENTS.values() and pos2 is not None:
            secondary = (row["instrument2"], pos2, _centroid(pos2))
        if cls is not None:
            out["sft_stage1"].append(stage1_record(base, "named", name, cls, point, POINT_CENTROID))
        if secondary is not None and cfg.include_secondary:
            s_name, s_cls, s_point = secondary
            out["sft_stage1"].append(stage1_record(base, "named", s_name, s_cls, s_point, POINT_CENTROID))
        step_id = _opt_int(row["step_id"])
        if step_id is not None and step_id >= 1:
            primary = (name, cls, point) if cls is not None and point is not None else None
            out["sft_stage2"].append(stage2_record(base, row["step"], step_id, primary, secondary, POINT_CENTROID))
    return out, usage


def rendered_records(out_dir: Path, cfg: RenderedConfig) -> dict[str, list[dict]]:
    """Renders ``cfg.count`` frames under ``out_dir/frames/`` and returns their records.

    Frame ``i`` uses seed ``cfg.seed + i``; the first ``round(count * val_fraction)`` frames are
    ``val``. Image paths are relative to ``out_dir`` (``frames/frame_000000.jpg``).
    """
    out: dict[str, list[dict]] = {"sft_stage1": [], "grpo": []}
    n_val = int(round(cfg.count * cfg.val_fraction))
    for i in range(cfg.count):
        seed = cfg.seed + i
        spec = random_frame_spec(seed, cfg.none_fraction, cfg.secondary_fraction)
        frame = render_frame(
            spec["instrument"],
            spec["position_class"],
            seed,
            cfg.width,
            cfg.height,
            secondary=spec["secondary"],
            marker_size=cfg.marker_size,
        )
        image = f"frames/frame_{i:06d}.jpg"
        save_rgb(frame.image, out_dir / image)
        base = {
            "id": f"rendered-{i:06d}",
            "image": image,
            "video_id": "rendered",
            "time_s": i,
            "split": "val" if i < n_val else "train",
            "data_origin": ORIGIN_RENDERED,
        }
        kind = POINT_TRUE if frame.point else None
        recs = [stage1_record(base, "primary", frame.instrument, frame.position_class, frame.point, kind)]
        if frame.point is not None and frame.position_class is not None:
            recs.append(stage1_record(base, "named", frame.instrument, frame.position_class, frame.point, POINT_TRUE))
        if frame.secondary is not None:
            s_name, s_cls, s_point = frame.secondary
            recs.append(stage1_record(base, "named", s_name, s_cls, s_point, POINT_TRUE))
        out["sft_stage1"] += recs
        out["grpo"].append(grpo_record(base, frame.instrument, frame.position_class))
    return out


def _write_all(records: dict[str, list[dict]], out_dir: Path, formats: list[str]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for kind, recs in records.items():
        by_split: dict[str, list[dict]] = {}
        for rec in recs:
            by_split.setdefault(rec["split"], []).append(rec)
        outputs[kind] = {
            split: write_records(rows, kind, out_dir, split, formats) for split, rows in sorted(by_split.items())
        }
    return outputs


def _class_counts(recs: list[dict]) -> dict[str, int]:
    counts = Counter(_class_key(r["position_class"]) for r in recs)
    return {k: counts.get(k, 0) for k in _CLASS_KEYS}


def _position_counts(series: pd.Series) -> dict[str, int]:
    counts = {str(int(k)): int(v) for k, v in series.value_counts().items()}
    counts["empty"] = int(series.isna().sum())
    return {k: counts.get(k, 0) for k in ("1", "2", "3", "4", "5", "empty")}


def _value_counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts(dropna=False).items()}


def dataset_stats(
    table: pd.DataFrame,
    records: dict[str, list[dict]],
    usage: Counter,
    notes: list[str],
    cfg: BuildSpatialDatasetConfig,
) -> dict[str, Any]:
    """The content of ``stats.json`` (rows per video, split and class; quirks; region geometry)."""
    videos = sorted(table["video_id"].unique())
    split_by_video = {v: split_of(int(n), cfg) for v, n in table.groupby("video_id")["video_num"].first().items()}
    per_kind = {kind: Counter(r["video_id"] for r in records[kind]) for kind in KINDS}
    grpo_by_video: dict[str, list[dict]] = {}
    for r in records["grpo"]:
        grpo_by_video.setdefault(r["video_id"], []).append(r)
    per_video: dict[str, dict[str, Any]] = {}
    for vid, sub in table.groupby("video_id"):
        entry: dict[str, Any] = {"split": split_by_video[vid], "seconds": len(sub)}
        for kind in KINDS:
            entry[kind] = per_kind[kind].get(vid, 0)
        entry["grpo_per_class"] = _class_counts(grpo_by_video.get(str(vid), []))
        entry["position1_counts"] = _position_counts(sub["position1"])
        per_video[str(vid)] = entry
    splits = sorted({*split_by_video.values()})
    missing_val = [f"video_{v:02d}" for v in cfg.val_videos if f"video_{v:02d}" not in split_by_video]
    missing_train = [f"video_{v:02d}" for v in cfg.train_videos if f"video_{v:02d}" not in split_by_video]
    quirk_counts = Counter(q for qs in table["quirks"] for q in qs)
    train = table[[split_by_video[v] == "train" for v in table["video_id"]]]
    return {
        "data_origin": ORIGIN_PITVQA,
        "annotations_dir": cfg.annotations_dir,
        "n_videos": len(videos),
        "seconds_total": len(table),
        "videos_by_split": {s: [v for v in videos if split_by_video[v] == s] for s in splits},
        "missing_official_videos": {"train": missing_train, "val": missing_val},
        "rows": {kind: len(records[kind]) for kind in KINDS},
        "rows_per_split": {kind: dict(sorted(Counter(r["split"] for r in records[kind]).items())) for kind in KINDS},
        "rows_per_class": {kind: _class_counts(records[kind]) for kind in KINDS},
        "rows_per_video": per_video,
        "sft_stage1_per_task": dict(sorted(Counter(r["task"] for r in records["sft_stage1"]).items())),
        "position_class_counts": {
            "primary_all_seconds": _position_counts(table["position1"]),
            "secondary_all_seconds": _position_counts(table["position2"]),
            "primary_train_videos": _position_counts(train["position1"]),
            "secondary_train_videos": _position_counts(train["position2"]),
        },
        "frame_status_counts": dict(sorted(_value_counts(table["frame_status"]).items())),
        "second_usage": dict(sorted(usage.items())),
        "instrument_counts": {
            "primary": _value_counts(table["instrument1"]),
            "secondary": _value_counts(table["instrument2"]),
        },
        "step_seconds": _value_counts(table["step"]),
        "row_quirk_counts": dict(sorted(quirk_counts.items())),
        "file_notes": notes,
        "regions": {
            str(k): {
                "name": region_name(k),
                "boxes": [[b.x0, b.y0, b.x1, b.y1] for b in boxes],
                "centroid": list(REGION_CENTRES[k]),
            }
            for k, boxes in REGIONS.items()
        },
        "region_notes": (
            f"0-100 scale, x right, y down; centre box {list(CENTRE_BOX)} is carved out of the quadrants "
            "(regions partition the frame); points in PitVQA records are region centroids, not true tips"
        ),
    }


def build_spatial_dataset(cfg: BuildSpatialDatasetConfig) -> BuildResult:
    """Reads the annotations, writes every record kind per split, rendered frames, and ``stats.json``.

    Args:
        cfg: the job configuration.

    Returns:
        A :class:`BuildResult` (paths and stats).

    Raises:
        FileNotFoundError: when ``cfg.annotations_dir`` holds no ``instruments_csv/instruments_XX.csv``.
        ValueError: when an annotation file cannot be read (message names the file and row).
    """
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, notes = load_annotations(cfg.annotations_dir)
    records, usage = pitvqa_records(table_rows(table), cfg)
    outputs = _write_all(records, out_dir, list(cfg.formats))
    labels = table.assign(split=[split_of(int(n), cfg) for n in table["video_num"]])
    labels.to_parquet(out_dir / "labels_per_second.parquet", index=False)
    outputs["labels_per_second"] = str(out_dir / "labels_per_second.parquet")
    stats = dataset_stats(table, records, usage, notes, cfg)
    if cfg.rendered.count:
        rdir = out_dir / "rendered"
        rrecs = rendered_records(rdir, cfg.rendered)
        outputs["rendered"] = _write_all(rrecs, rdir, list(cfg.formats))
        stats["rendered"] = {
            "data_origin": ORIGIN_RENDERED,
            "dir": str(rdir),
            "frames": cfg.rendered.count,
            "marker_size": cfg.rendered.marker_size,
            "rows": {k: len(v) for k, v in rrecs.items()},
            "rows_per_class": {k: _class_counts(v) for k, v in rrecs.items()},
        }
    stats["outputs"] = outputs
    stats_path = out_dir / "stats.json"
    stats_path.write_text(json.dumps(stats, indent=2, sort_keys=False) + "\n")
    logger.info("wrote %s", stats_path)
    return BuildResult(str(out_dir), str(stats_path), outputs, stats)
