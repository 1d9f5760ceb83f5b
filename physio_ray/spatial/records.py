"""Chat-record formats of the spatial dataset, their Arrow schemas, and Parquet/JSONL writers.

Three record kinds, each a row that HF ``datasets`` loads from Parquet or JSON lines:

* ``sft_stage1`` (pointing SFT, the seed's format)::

    {"messages": [{"role": "user", "content": "<image>\\nPoint to the suction in this surgical frame."},
                  {"role": "assistant", "content": "<point x='79.2' y='20.8'>suction</point> in the top-right region."}],
     "image": "video_01/frame_000123.jpg", ...}

  ``task`` is ``"primary"`` (find and name the main instrument, or say none is visible) or
  ``"named"`` (point to a given instrument, primary or secondary).
* ``sft_stage2`` (grounded: step + primary and secondary instrument).
* ``grpo`` (user prompt only + the reward target columns ``instrument`` / ``position_class``,
  which :func:`physio_ray.spatial.rewards.trl_spatial_reward` reads).

Point coordinates: PitVQA gives a region, not a point, so PitVQA records point at the region's
centroid (``point_kind = "region_centroid"``); rendered records point at the true drawn tip
(``point_kind = "true_point"``). ``data_origin`` is ``"pitvqa"`` or ``"rendered"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from physio_ray.spatial.pitvqa import NO_VISIBLE, region_name

PROMPT_PRIMARY = "<image>\nPoint to the tip of the primary surgical instrument in this frame and name it."
PROMPT_NAMED = "<image>\nPoint to the {name} in this surgical frame."
PROMPT_STAGE2 = "<image>\nWhat surgical step is being performed and where is the primary instrument?"
NONE_ANSWER = "No surgical instrument is visible in this frame."

ORIGIN_PITVQA = "pitvqa"
ORIGIN_RENDERED = "rendered"
POINT_CENTROID = "region_centroid"
POINT_TRUE = "true_point"

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_COMMON = [
    ("id", pa.string()),
    ("image", pa.string()),
    ("video_id", pa.string()),
    ("time_s", pa.int64()),
    ("split", pa.string()),
    ("data_origin", pa.string()),
]
_TARGET = [
    ("instrument", pa.string()),
    ("position_class", pa.int64()),
    ("region", pa.string()),
]
_POINT = [("point_x", pa.float64()), ("point_y", pa.float64()), ("point_kind", pa.string())]

SCHEMAS: dict[str, pa.Schema] = {
    "sft_stage1": pa.schema([("messages", _MESSAGES), *_COMMON, ("task", pa.string()), *_TARGET, *_POINT]),
    "sft_stage2": pa.schema(
        [
            ("messages", _MESSAGES),
            *_COMMON,
            ("step", pa.string()),
            ("step_id", pa.int64()),
            *_TARGET,
            *_POINT,
            ("secondary_instrument", pa.string()),
            ("secondary_position_class", pa.int64()),
        ]
    ),
    "grpo": pa.schema([("prompt", _MESSAGES), *_COMMON, ("task", pa.string()), *_TARGET]),
}
"""Record kind -> Arrow schema of its Parquet file (JSONL rows carry the same keys)."""


def display_name(csv_name: str) -> str:
    """``"ring_curette" -> "ring curette"`` (how names appear in prompts and answers)."""
    return csv_name.replace("_", " ")


def step_display(step: str) -> str:
    """``"sphenoid_sinus_clearance" -> "Sphenoid sinus clearance"``."""
    text = step.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def format_point(x: float, y: float, name: str) -> str:
    """The seed's pointing tag with one decimal.

    >>> format_point(79.1667, 20.8333, "suction")
    "<point x='79.2' y='20.8'>suction</point>"
    """
    return f"<point x='{x:.1f}' y='{y:.1f}'>{name}</point>"


def point_answer(instrument: str, position_class: int, x: float, y: float) -> str:
    """``<point ..>name</point> in the <region> region.``"""
    return f"{format_point(x, y, display_name(instrument))} in the {region_name(position_class)} region."


def _chat(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _target(instrument: str, position_class: int | None) -> dict[str, Any]:
    return {
        "instrument": instrument,
        "position_class": position_class,
        "region": region_name(position_class) if position_class is not None else None,
    }


def stage1_record(
    base: dict[str, Any],
    task: str,
    instrument: str,
    position_class: int | None,
    point: tuple[float, float] | None,
    point_kind: str | None,
) -> dict[str, Any]:
    """One pointing SFT row.

    Args:
        base: the common columns (``id`` prefix, ``image``, ``video_id``, ``time_s``, ``split``,
            ``data_origin``); ``id`` gets ``-<task>[-<instrument>]`` appended.
        task: ``"primary"`` or ``"named"``.
        instrument: CSV name, or ``"no_visible_instrument"`` (primary task only).
        position_class: 1-5, ``None`` with no instrument.
        point: ``(x, y)`` on the 0-100 scale written in the answer, ``None`` with no instrument.
        point_kind: :data:`POINT_CENTROID` or :data:`POINT_TRUE` (``None`` with no instrument).

    Returns:
        A dict matching ``SCHEMAS["sft_stage1"]``.
    """
    if task == "primary":
        question = PROMPT_PRIMARY
        rid = f"{base['id']}-primary"
    elif task == "named":
        question = PROMPT_NAMED.format(name=display_name(instrument))
        rid = f"{base['id']}-named-{instrument}"
    else:
        raise ValueError(f"task {task!r} must be 'primary' or 'named'")
    if instrument == NO_VISIBLE or point is None or position_class is None:
        if task != "primary" or instrument != NO_VISIBLE:
            raise ValueError(f"{rid}: only a primary record may have no instrument/point")
        answer, x, y = NONE_ANSWER, None, None
    else:
        x, y = round(point[0], 4), round(point[1], 4)
        answer = point_answer(instrument, position_class, x, y)
    return {
        "messages": _chat(question, answer),
        **base,
        "id": rid,
        "task": task,
        **_target(instrument, position_class),
        "point_x": x,
        "point_y": y,
        "point_kind": point_kind if x is not None else None,
    }


def stage2_record(
    base: dict[str, Any],
    step: str,
    step_id: int,
    primary: tuple[str, int, tuple[float, float]] | None,
    secondary: tuple[str, int, tuple[float, float]] | None,
    point_kind: str,
) -> dict[str, Any]:
    """One grounded SFT row: the surgical step and where the instruments are.

    Args:
        base: common columns as in :func:`stage1_record`.
        step: step name as in the CSVs (``"tumour_excision"``).
        step_id: 1-14.
        primary: ``(instrument, class, (x, y))`` or ``None`` when no instrument is visible.
        secondary: the same for the secondary instrument, or ``None``.
        point_kind: :data:`POINT_CENTROID` or :data:`POINT_TRUE`.

    Returns:
        A dict matching ``SCHEMAS["sft_stage2"]``.
    """
    lines = [f"Current step: **{step_display(step)}**", ""]
    if primary is None:
        lines.append(NONE_ANSWER)
        target, x, y = _target(NO_VISIBLE, None), None, None
    else:
        name, cls, (x, y) = primary
        x, y = round(x, 4), round(y, 4)
        lines.append(f"Primary instrument: {point_answer(name, cls, x, y)}")
        target = _target(name, cls)
        if secondary is not None:
            s_name, s_cls, (sx, sy) = secondary
            lines += ["", f"Secondary: {point_answer(s_name, s_cls, sx, sy)}"]
    return {
        "messages": _chat(PROMPT_STAGE2, "\n".join(lines)),
        **base,
        "id": f"{base['id']}-stage2",
        "step": step,
        "step_id": step_id,
        **target,
        "point_x": x,
        "point_y": y,
        "point_kind": point_kind if primary is not None else None,
        "secondary_instrument": secondary[0] if secondary else None,
        "secondary_position_class": secondary[1] if secondary else None,
    }


def grpo_record(base: dict[str, Any], instrument: str, position_class: int | None) -> dict[str, Any]:
    """One GRPO prompt (primary task) with its reward target columns."""
    return {
        "prompt": [{"role": "user", "content": PROMPT_PRIMARY}],
        **base,
        "id": f"{base['id']}-grpo",
        "task": "primary",
        **_target(instrument, position_class),
    }


def write_records(
    records: list[dict[str, Any]], kind: str, out_dir: str | Path, split: str, formats: Iterable[str]
) -> dict[str, str]:
    """Writes ``out_dir/<kind>/<split>.parquet`` and/or ``.jsonl``.

    Args:
        records: rows of one kind (see :data:`SCHEMAS`).
        kind: ``"sft_stage1"``, ``"sft_stage2"`` or ``"grpo"``.
        out_dir: dataset root.
        split: file stem, e.g. ``"train"``.
        formats: any of ``"parquet"``, ``"jsonl"``.

    Returns:
        Format -> path written.

    Raises:
        ValueError: for an unknown kind or format, or rows that do not fit the schema.
    """
    if kind not in SCHEMAS:
        raise ValueError(f"record kind {kind!r} is not one of {sorted(SCHEMAS)}")
    names = set(SCHEMAS[kind].names)
    for rec in records:
        if set(rec) != names:
            raise ValueError(f"{kind} row {rec.get('id')!r}: keys {sorted(set(rec) ^ names)} do not match the schema")
    folder = Path(out_dir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for fmt in formats:
        if fmt == "parquet":
            path = folder / f"{split}.parquet"
            pq.write_table(pa.Table.from_pylist(records, schema=SCHEMAS[kind]), path)
        elif fmt == "jsonl":
            path = folder / f"{split}.jsonl"
            encode = json.JSONEncoder(ensure_ascii=False).encode
            with path.open("w", encoding="utf-8") as fh:
                fh.writelines(encode(rec) + "\n" for rec in records)
        else:
            raise ValueError(f"format {fmt!r} is not 'parquet' or 'jsonl'")
        written[fmt] = str(path)
    return written
