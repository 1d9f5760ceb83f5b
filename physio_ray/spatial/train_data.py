"""Spatial records -> the HF ``datasets`` rows TRL's trainers take (messages/prompt + images).

The builder writes the seed's chat format, whose user turn starts with a literal ``<image>``
line. TRL's vision collators instead take an ``images`` column and insert one image block
before the first user text (:func:`trl.data_utils.prepare_multimodal_messages`), so here the
``<image>`` line is removed and the frame goes to ``images``:

* SFT rows: ``{"messages": [user, assistant], "images": [frame]}``.
* GRPO rows: ``{"prompt": [user], "images": [frame], "instrument": str, "position_class": int|None}``
  (the last two are passed by ``GRPOTrainer`` to :func:`physio_ray.spatial.rewards.trl_spatial_reward`).

Frames are stored as paths and cast to ``datasets.Image``, so they load lazily as PIL images.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_TAG",
    "grpo_dataset",
    "load_records",
    "record_targets",
    "sft_dataset",
    "strip_image_tag",
    "true_points",
]

IMAGE_TAG = "<image>"


def strip_image_tag(text: str) -> str:
    """Removes the seed's leading ``<image>`` placeholder line.

    >>> strip_image_tag("<image>\\nPoint to the suction.")
    'Point to the suction.'
    """
    stripped = text.lstrip()
    if stripped.startswith(IMAGE_TAG):
        stripped = stripped[len(IMAGE_TAG) :].lstrip("\n ")
    return stripped


def load_records(dataset_dir: str | Path, kind: str, split: str) -> list[dict[str, Any]]:
    """Reads ``<dataset_dir>/<kind>/<split>.parquet`` (or ``.jsonl``) into row dicts.

    Raises:
        FileNotFoundError: naming the build command when neither file exists.
    """
    folder = Path(dataset_dir) / kind
    parquet, jsonl = folder / f"{split}.parquet", folder / f"{split}.jsonl"
    if parquet.is_file():
        return pq.read_table(parquet).to_pylist()
    if jsonl.is_file():
        import json

        with jsonl.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    raise FileNotFoundError(
        f"no {kind}/{split}.parquet or .jsonl under {dataset_dir}; build it with "
        "`python jobs/build_spatial_dataset.py configs/build_spatial_dataset/local.yaml`"
    )


def true_points(dataset_dir: str | Path, split: str) -> dict[str, tuple[float, float]]:
    """``grpo`` record id -> the true primary tip point, from the ``sft_stage1`` primary records.

    Only rendered frames have one (PitVQA labels regions): their ids map here, others do not.
    """
    out = {}
    for rec in load_records(dataset_dir, "sft_stage1", split):
        if rec.get("task") == "primary" and rec.get("point_x") is not None:
            out[str(rec["id"]).removesuffix("-primary") + "-grpo"] = (float(rec["point_x"]), float(rec["point_y"]))
    return out


def record_targets(
    records: Sequence[Mapping[str, Any]], points: Mapping[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """Targets ``{"instrument", "position_class", "point"}`` of ``grpo`` records (``point``: ``None`` if unknown).

    >>> record_targets([{"id": "r-grpo", "instrument": "suction", "position_class": 2}], {"r-grpo": (80.0, 10.0)})
    [{'instrument': 'suction', 'position_class': 2, 'point': (80.0, 10.0)}]
    """
    return [
        {
            "instrument": rec["instrument"],
            "position_class": None if rec["position_class"] is None else int(rec["position_class"]),
            "point": points.get(str(rec["id"])),
        }
        for rec in records
    ]


def _image_path(rec: dict[str, Any], images_dir: Path) -> str:
    path = images_dir / rec["image"]
    if not path.is_file():
        raise FileNotFoundError(f"record {rec['id']!r}: frame {path} does not exist (images_dir={images_dir})")
    return str(path)


def _with_images(rows: list[dict[str, Any]]) -> Any:
    import datasets

    ds = datasets.Dataset.from_list(rows)
    return ds.cast_column("images", datasets.List(datasets.Image()))


def sft_dataset(
    records: Sequence[dict[str, Any]], images_dir: str | Path, tasks: Sequence[str], max_examples: int | None = None
) -> Any:
    """SFT rows for TRL's ``SFTTrainer`` (vision-language, conversational).

    Args:
        records: ``sft_stage1`` (or ``sft_stage2``) rows.
        images_dir: folder the ``image`` paths are relative to.
        tasks: keep records whose ``task`` is one of these (rows without ``task`` are kept).
        max_examples: keep the first this many (``None``: all).

    Returns:
        A ``datasets.Dataset`` with ``messages`` and ``images``.

    Raises:
        FileNotFoundError: when a frame is missing.
        ValueError: when no record is left.
    """
    root = Path(images_dir)
    rows = []
    for rec in records:
        if rec.get("task") is not None and rec["task"] not in tasks:
            continue
        messages = [
            {"role": m["role"], "content": strip_image_tag(m["content"]) if m["role"] == "user" else m["content"]}
            for m in rec["messages"]
        ]
        rows.append({"messages": messages, "images": [_image_path(rec, root)]})
        if max_examples is not None and len(rows) >= max_examples:
            break
    if not rows:
        raise ValueError(f"no SFT records left for tasks {list(tasks)}")
    return _with_images(rows)


def grpo_dataset(records: Sequence[dict[str, Any]], images_dir: str | Path, max_prompts: int | None = None) -> Any:
    """GRPO prompt rows for TRL's ``GRPOTrainer``.

    Args:
        records: ``grpo`` rows (``prompt``, ``image``, ``instrument``, ``position_class``).
        images_dir: folder the ``image`` paths are relative to.
        max_prompts: keep the first this many (``None``: all).

    Returns:
        A ``datasets.Dataset`` with ``prompt``, ``images``, ``instrument``, ``position_class``.

    Raises:
        FileNotFoundError: when a frame is missing.
        ValueError: when there is no record.
    """
    root = Path(images_dir)
    rows = []
    for rec in records[:max_prompts] if max_prompts is not None else records:
        prompt = [{"role": m["role"], "content": strip_image_tag(m["content"])} for m in rec["prompt"]]
        rows.append(
            {
                "prompt": prompt,
                "images": [_image_path(rec, root)],
                "instrument": rec["instrument"],
                "position_class": rec["position_class"],
            }
        )
    if not rows:
        raise ValueError("no GRPO prompts")
    return _with_images(rows)
