"""PitVQA annotation CSVs: vocabulary, the position-class table, and a per-second label table.

Input layout (``github.com/mobarakol/PitVQA_Annotations``)::

    <annotations_dir>/instruments_csv/instruments_XX.csv   one row per second of video XX
    <annotations_dir>/steps_csv/steps_XX.csv               step change points of video XX

:func:`load_annotations` reads every video it finds, joins the change-point steps to each
second, and returns one row per ``(video, second)`` with normalised columns and the quirks
seen on that row (see :data:`ROW_QUIRKS`); file-level oddities are returned as messages.

The position classes follow PitVQA's ``number_location_mapping``:
1 top-left, 2 top-right, 3 centre, 4 bottom-left, 5 bottom-right (their geometry is in
:mod:`physio_ray.spatial.regions`).

>>> region_name(3)
'centre'
"""

from __future__ import annotations

import csv
import logging
import numbers
import re
from pathlib import Path

import numpy as np
import pandas as pd

from physio_ray.spatial.frames import frame_path

logger = logging.getLogger(__name__)

POSITION_NAMES: dict[int, str] = {1: "top-left", 2: "top-right", 3: "centre", 4: "bottom-left", 5: "bottom-right"}

INSTRUMENTS: dict[int, str] = {
    1: "bipolar_forceps",
    2: "cottle",
    3: "cup_forceps",
    4: "dural_scissors",
    5: "freer_elevator",
    6: "haemostatic_foam",
    7: "irrigation_syringe",
    8: "kerrisons",
    9: "micro_doppler",
    10: "nasal_cutting_forceps",
    11: "pituitary_rongeurs",
    12: "retractable_knife",
    13: "ring_curette",
    14: "spatula_dissector",
    15: "stealth_pointer",
    16: "suction",
    17: "surgical_drill",
    18: "tissue_glue",
}
"""Instrument id -> name as written in the CSVs (``metadata/map_instruments.csv``)."""

OUT_OF_PATIENT = "out_of_patient"  # id -1 (primary slot)
NO_VISIBLE = "no_visible_instrument"  # id 0
OCCLUDED = "occluded_image_inside_patient"  # id 0 as well
NO_SECONDARY = "no_secondary_instrument"  # id -2 (secondary slot)
NON_INSTRUMENT_IDS: dict[str, int] = {OUT_OF_PATIENT: -1, NO_VISIBLE: 0, OCCLUDED: 0, NO_SECONDARY: -2}

STEPS: dict[int, str] = {
    1: "nasal_corridor_creation",
    2: "anterior_sphenoidotomy",
    3: "septum_displacement",
    4: "sphenoid_sinus_clearance",
    5: "sellotomy",
    6: "durotomy",
    7: "tumour_excision",
    8: "haemostasis",
    9: "synthetic_graft_placement",
    10: "fat_graft_placement",
    11: "gasket_seal_construct",
    12: "dural_sealant",
    13: "nasal_packing",
    14: "debris_clearance",
}
"""Step id -> name as written in ``steps_XX.csv`` (``map_steps.csv`` spells them with spaces)."""
NON_OPERATIVE_STEPS = ("operation_not_started", "operation_ended", "out_of_patient")  # all id -1

OFFICIAL_TRAIN_VIDEOS = (1, 3, 4, 5, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 25)
OFFICIAL_VAL_VIDEOS = (2, 6, 12, 13, 24)

# frame_status values: what the primary slot says about the frame.
STATUS_INSTRUMENT = "instrument"
STATUS_NO_VISIBLE = "no_visible_instrument"
STATUS_OCCLUDED = "occluded"
STATUS_OUT_OF_PATIENT = "out_of_patient"

ROW_QUIRKS = {
    "position_without_instrument": "primary slot has no instrument but a position class",
    "instrument_without_position": "primary instrument visible but its position is empty",
    "secondary_position_without_instrument": "secondary slot has no instrument but a position class",
    "secondary_without_position": "secondary instrument visible but its position is empty",
    "secondary_without_primary": "secondary instrument visible while the primary slot has none",
    "secondary_slot_no_visible": "secondary slot says no_visible_instrument instead of no_secondary_instrument",
    "instrument_name_id_mismatch": "instrument name and id disagree (e.g. no_visible_instrument with id 10)",
    "same_position_class": "both instruments in the same position class",
    "stray_value_in_extra_column": "a value in an unnamed column past pos_instrument2 (instruments_03.csv)",
}
"""Row-level quirk codes (stored in the ``quirks`` list column) and what they mean."""

_NAME_TO_ID = {**{v: k for k, v in INSTRUMENTS.items()}, **NON_INSTRUMENT_IDS}
_STEP_TO_ID = {**{v: k for k, v in STEPS.items()}, **dict.fromkeys(NON_OPERATIVE_STEPS, -1)}
_INSTRUMENT_COLUMNS = (
    "int_video",
    "int_time",
    "str_instrument1",
    "str_instrument2",
    "int_instrument1",
    "int_instrument2",
    "pos_instrument1",
    "pos_instrument2",
)
_STEP_COLUMNS = ("int_video", "int_time", "str_step", "int_step")
_VIDEO_FILE = re.compile(r"^instruments_(\d+)\.csv$")


def region_name(position_class: int) -> str:
    """The name of a PitVQA position class.

    Args:
        position_class: 1-5 (any integral type, numpy included).

    Returns:
        One of ``"top-left"``, ``"top-right"``, ``"centre"``, ``"bottom-left"``, ``"bottom-right"``.

    Raises:
        ValueError: naming the value when it is not an integer 1-5.

    >>> [region_name(k) for k in (1, 2, 4, 5)]
    ['top-left', 'top-right', 'bottom-left', 'bottom-right']
    """
    if type(position_class) is int and position_class in POSITION_NAMES:  # fast path
        return POSITION_NAMES[position_class]
    if isinstance(position_class, bool) or not isinstance(position_class, numbers.Integral):
        raise ValueError(f"position class {position_class!r} is not an integer 1-5 (PitVQA classes 1-5)")
    name = POSITION_NAMES.get(int(position_class))
    if name is None:
        raise ValueError(f"position class {position_class!r} is not one of 1-5 ({POSITION_NAMES})")
    return name


def video_id(video_num: int) -> str:
    """``3 -> "video_03"`` (the folder name used in frame paths)."""
    return f"video_{video_num:02d}"


def parse_position(raw: str) -> int | None:
    """Reads a ``pos_instrument`` cell (``""``, ``"3"`` or ``"3.0"``) into ``None`` or 1-5.

    Raises:
        ValueError: for anything else, naming the value.
    """
    text = raw.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"position {raw!r} is not a number") from None
    if not value.is_integer() or int(value) not in POSITION_NAMES:
        raise ValueError(f"position {raw!r} is not a class 1-5")
    return int(value)


def discover_videos(annotations_dir: str | Path) -> dict[int, tuple[Path, Path | None]]:
    """Finds ``instruments_XX.csv`` files and their ``steps_XX.csv`` (``None`` when absent).

    Raises:
        FileNotFoundError: when ``instruments_csv/`` is missing or holds no instruments file.
    """
    root = Path(annotations_dir)
    inst_dir = root / "instruments_csv"
    found = (
        sorted(p for p in inst_dir.glob("instruments_*.csv") if _VIDEO_FILE.match(p.name)) if inst_dir.is_dir() else []
    )
    if not found:
        raise FileNotFoundError(
            f"no instruments_XX.csv under {inst_dir}; annotations_dir must hold instruments_csv/ and steps_csv/ "
            "from github.com/mobarakol/PitVQA_Annotations"
        )
    out: dict[int, tuple[Path, Path | None]] = {}
    for path in found:
        num = int(_VIDEO_FILE.match(path.name).group(1))  # type: ignore[union-attr]
        steps = root / "steps_csv" / f"steps_{path.name.split('_', 1)[1]}"
        out[num] = (path, steps if steps.is_file() else None)
    return out


def _read_csv(path: Path, columns: tuple[str, ...], notes: list[str]) -> tuple[list[tuple[str, ...]], list[bool]]:
    """Rows of the named columns as stripped strings (in ``columns`` order), and per row
    whether something is written in an extra (unnamed) column."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        body = [row for row in reader if any(cell.strip() for cell in row)]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; found {header}")
    idx = [header.index(c) for c in columns]
    extra = [i for i, h in enumerate(header) if h not in columns]
    rows, stray = [], []
    for n, row in enumerate(body, start=2):
        if len(row) < len(header) and len(row) <= max(idx):
            raise ValueError(f"{path}:{n}: {len(row)} fields, expected {len(header)}")
        rows.append(tuple(row[i].strip() for i in idx))
        stray.append(any(row[i].strip() for i in extra if i < len(row)) or len(row) > len(header))
    if extra or any(stray):
        notes.append(
            f"{path.name}: {len(extra)} extra unnamed column(s) ignored ({sum(stray)} rows with a value there)"
        )
    return rows, stray


def read_change_points(path: Path, video_num: int, notes: list[str]) -> list[tuple[int, str, int]]:
    """Reads ``steps_XX.csv`` into sorted ``(start_second, step_name, step_id)`` change points.

    Repairs, each reported in ``notes``: rows out of time order are sorted; an ``int_video``
    that disagrees with the file name is ignored; a name/id disagreement keeps the name (ids
    come from :data:`STEPS`); a ``-1`` row before the first surgical step is named
    ``operation_not_started`` whatever it says.

    Raises:
        ValueError: for an unknown step name, a non-integer time or duplicate times.
    """
    rows, _ = _read_csv(path, _STEP_COLUMNS, notes)
    points = []
    for i, (vid, time_s, str_step, int_step) in enumerate(rows, start=2):
        name = str_step.replace(" ", "_").lower()
        if name not in _STEP_TO_ID:
            raise ValueError(f"{path}:{i}: unknown step {str_step!r}; known: {sorted(_STEP_TO_ID)}")
        if vid != str(video_num):
            notes.append(f"{path.name}:{i}: int_video={vid} but the file is video {video_num}; kept")
        if int_step != str(_STEP_TO_ID[name]):
            notes.append(f"{path.name}:{i}: {name} has int_step {int_step}, map says {_STEP_TO_ID[name]}; name kept")
        try:
            points.append((int(time_s), name, _STEP_TO_ID[name]))
        except ValueError:
            raise ValueError(f"{path}:{i}: int_time {time_s!r} is not an integer") from None
    if [p[0] for p in points] != sorted(p[0] for p in points):
        notes.append(f"{path.name}: change points out of time order; sorted by int_time")
        points.sort(key=lambda p: p[0])
    times = [p[0] for p in points]
    if len(set(times)) != len(times):
        raise ValueError(f"{path}: duplicate change-point times {sorted(t for t in set(times) if times.count(t) > 1)}")
    first_surgical = next((i for i, p in enumerate(points) if p[2] >= 1), len(points))
    for i in range(first_surgical):
        if points[i][1] != "operation_not_started":
            notes.append(
                f"{path.name}: {points[i][1]} at t={points[i][0]} precedes the first step; read as operation_not_started"
            )
            points[i] = (points[i][0], "operation_not_started", -1)
    return points


def join_steps(times: np.ndarray, points: list[tuple[int, str, int]]) -> tuple[list[str | None], list[int | None]]:
    """Labels each second with the step whose change point is the latest one at or before it.

    Args:
        times: ``[n]`` integer seconds.
        points: sorted ``(start_second, name, id)`` change points.

    Returns:
        ``(names, ids)``, each of length ``n``; ``None`` before the first change point.

    >>> join_steps(np.array([0, 1, 5, 9]), [(1, "sellotomy", 5), (5, "durotomy", 6)])
    ([None, 'sellotomy', 'durotomy', 'durotomy'], [None, 5, 6, 6])
    """
    starts = np.array([p[0] for p in points], dtype=np.int64)
    idx = np.searchsorted(starts, np.asarray(times, dtype=np.int64), side="right") - 1
    names = [points[i][1] if i >= 0 else None for i in idx]
    ids = [points[i][2] if i >= 0 else None for i in idx]
    return names, ids


def _instrument(name: str, raw_id: str, slot: int, quirks: list[str]) -> tuple[str, int]:
    if name not in _NAME_TO_ID:
        raise ValueError(f"unknown instrument {name!r} in slot {slot}; known: {sorted(_NAME_TO_ID)}")
    if raw_id != str(_NAME_TO_ID[name]):
        quirks.append("instrument_name_id_mismatch")
    return name, int(raw_id)


def _row_labels(r: tuple, quirks: list[str]) -> dict:
    name1, id1 = _instrument(r[2], r[4], 1, quirks)
    name2, id2 = _instrument(r[3], r[5], 2, quirks)
    pos1, pos2 = parse_position(r[6]), parse_position(r[7])
    vis1, vis2 = name1 in INSTRUMENTS.values(), name2 in INSTRUMENTS.values()
    if name2 == NO_VISIBLE:
        quirks.append("secondary_slot_no_visible")
    if not vis1 and pos1 is not None:
        quirks.append("position_without_instrument")
    if vis1 and pos1 is None:
        quirks.append("instrument_without_position")
    if not vis2 and pos2 is not None:
        quirks.append("secondary_position_without_instrument")
    if vis2 and pos2 is None:
        quirks.append("secondary_without_position")
    if vis2 and not vis1:
        quirks.append("secondary_without_primary")
    if vis1 and vis2 and pos1 is not None and pos1 == pos2:
        quirks.append("same_position_class")
    status = {OUT_OF_PATIENT: STATUS_OUT_OF_PATIENT, OCCLUDED: STATUS_OCCLUDED}.get(name1)
    status = status or (STATUS_INSTRUMENT if vis1 else STATUS_NO_VISIBLE)
    return {
        "frame_status": status,
        "instrument1": name1,
        "instrument1_id": id1,
        "position1": pos1,
        "instrument2": name2,
        "instrument2_id": id2,
        "position2": pos2,
    }


def load_video(video_num: int, instruments_csv: Path, steps_csv: Path | None, notes: list[str]) -> pd.DataFrame:
    """One video's per-second labels (see :func:`load_annotations` for the columns).

    Raises:
        ValueError: for missing columns, unknown names, bad positions or non-contiguous seconds.
    """
    raw, stray = _read_csv(instruments_csv, _INSTRUMENT_COLUMNS, notes)
    try:
        times = np.array([int(r[1]) for r in raw], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{instruments_csv}: int_time must hold integers") from None
    if not np.array_equal(times, np.arange(len(times))):
        raise ValueError(f"{instruments_csv}: int_time must be 0..{len(times) - 1} without gaps or duplicates")
    bad_vid = sum(r[0] != str(video_num) for r in raw)
    if bad_vid:
        notes.append(f"{instruments_csv.name}: {bad_vid} rows with int_video != {video_num}; file name kept")
    rows = []
    for r, has_stray in zip(raw, stray, strict=True):
        quirks: list[str] = ["stray_value_in_extra_column"] if has_stray else []
        try:
            labels = _row_labels(r, quirks)
        except ValueError as exc:
            raise ValueError(f"{instruments_csv}: second {r[1]}: {exc}") from None
        rows.append({**labels, "quirks": quirks})
    out = pd.DataFrame(rows)
    names: list[str | None] = [None] * len(times)
    ids: list[int | None] = [None] * len(times)
    if steps_csv is None:
        notes.append(f"{instruments_csv.name}: no steps_csv file; step left empty")
    else:
        names, ids = join_steps(times, read_change_points(steps_csv, video_num, notes))
    out.insert(0, "video_id", video_id(video_num))
    out.insert(1, "video_num", video_num)
    out.insert(2, "time_s", times)
    out.insert(3, "image", [frame_path(video_num, int(t)) for t in times])
    out.insert(4, "step", names)
    out.insert(5, "step_id", pd.array(ids, dtype="Int64"))
    for col in ("position1", "position2"):
        out[col] = out[col].astype("Int64")
    return out


def load_annotations(annotations_dir: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Reads every video under ``annotations_dir`` into one per-second label table.

    Args:
        annotations_dir: folder with ``instruments_csv/`` and (optionally per video) ``steps_csv/``.

    Returns:
        ``(table, notes)``. ``table`` has one row per ``(video, second)`` with columns
        ``video_id`` ("video_01"), ``video_num``, ``time_s``, ``image``
        ("video_01/frame_000123.jpg"), ``step`` / ``step_id`` (joined from change points; -1 for
        non-operative, null when unknown), ``frame_status`` ("instrument",
        "no_visible_instrument", "occluded", "out_of_patient"), ``instrument1`` / ``instrument1_id``
        / ``position1`` (primary; position null when empty), the same for ``*2`` (secondary), and
        ``quirks`` (list of :data:`ROW_QUIRKS` codes). ``notes`` lists file-level repairs.

    Raises:
        FileNotFoundError: when no instruments file is found.
        ValueError: when a file cannot be read as PitVQA annotations (message names file and row).
    """
    notes: list[str] = []
    tables = []
    for num, (inst, steps) in discover_videos(annotations_dir).items():
        tables.append(load_video(num, inst, steps, notes))
    for note in notes:
        logger.warning("PitVQA annotations: %s", note)
    if not any((Path(annotations_dir) / "steps_csv").glob("steps_*.csv")):
        logger.warning("no steps_csv/ under %s: stage-2 (step) records will be empty", annotations_dir)
    return pd.concat(tables, ignore_index=True), notes


def table_rows(table: pd.DataFrame) -> list[dict]:
    """The per-second table as plain dicts (missing values as ``None``), fast.

    ``DataFrame.to_dict`` iterates Arrow-backed string columns element by element, which is
    several times slower on 10^5 rows.
    """
    cols = {c: table[c].to_numpy(dtype=object, na_value=None) for c in table.columns}
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]
