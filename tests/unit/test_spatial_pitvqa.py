"""PitVQA annotation loading on the real CSVs: counts, mapping, split, step join and each quirk."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physio_ray.spatial.dataset import primary_target
from physio_ray.spatial.pitvqa import (
    INSTRUMENTS,
    OFFICIAL_TRAIN_VIDEOS,
    OFFICIAL_VAL_VIDEOS,
    ROW_QUIRKS,
    STEPS,
    join_steps,
    load_annotations,
    parse_position,
    region_name,
    table_rows,
)
from tests.conftest import shared_path

ROWS_PER_VIDEO = {
    "video_01": 7202, "video_03": 3420, "video_04": 5389, "video_05": 3965, "video_07": 2647,
    "video_08": 4886, "video_09": 3506, "video_10": 4457, "video_11": 4018, "video_14": 4802,
    "video_15": 4014, "video_16": 4881, "video_17": 3155, "video_18": 4796, "video_19": 4456,
    "video_20": 8646, "video_21": 6768, "video_22": 3796, "video_23": 3776, "video_25": 4338,
}  # fmt: skip


@pytest.fixture(scope="module")
def ann_dir() -> Path:
    return shared_path("pitvqa-annotations")


@pytest.fixture(scope="module")
def loaded(ann_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    return load_annotations(ann_dir)


@pytest.fixture(scope="module")
def rows(loaded: tuple[pd.DataFrame, list[str]]) -> dict[tuple[str, int], dict]:
    return {(r["video_id"], r["time_s"]): r for r in table_rows(loaded[0])}


# ------------------------------------------------------------------ mapping


def test_region_name_is_the_authoritative_pitvqa_mapping() -> None:
    assert [region_name(k) for k in (1, 2, 3, 4, 5)] == [
        "top-left",
        "top-right",
        "centre",
        "bottom-left",
        "bottom-right",
    ]
    assert region_name(np.int64(3)) == "centre"


@pytest.mark.parametrize("bad", [0, 6, -1, 3.0, "3", None, True])
def test_region_name_rejects_other_values_naming_them(bad: object) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(").replace(")", r"\)")):
        region_name(bad)  # type: ignore[arg-type]


def test_parse_position() -> None:
    assert [parse_position(v) for v in ("", " ", "3", "3.0", "5")] == [None, None, 3, 3, 5]
    for bad in ("2.5", "6", "0", "x"):
        with pytest.raises(ValueError, match=bad):
            parse_position(bad)


def test_vocabulary_matches_the_shipped_metadata(ann_dir: Path) -> None:
    with (ann_dir / "metadata" / "map_instruments.utf8.csv").open(encoding="utf-8") as fh:
        inst = {
            int(r["int_instrument"]): r["str_instrument"] for r in csv.DictReader(fh) if int(r["int_instrument"]) > 0
        }
    assert inst == INSTRUMENTS
    with (ann_dir / "metadata" / "map_steps.csv").open(encoding="utf-8") as fh:
        steps = {int(r["int_step"]): r["str_step"].strip().replace(" ", "_") for r in csv.DictReader(fh)}
    assert {k: v for k, v in steps.items() if k > 0} == STEPS


def test_official_split_lists() -> None:
    assert len(OFFICIAL_TRAIN_VIDEOS) == 20 and OFFICIAL_VAL_VIDEOS == (2, 6, 12, 13, 24)
    assert sorted(OFFICIAL_TRAIN_VIDEOS + OFFICIAL_VAL_VIDEOS) == list(range(1, 26))


# ------------------------------------------------------------------ counts


def test_row_counts_per_video(loaded: tuple[pd.DataFrame, list[str]]) -> None:
    table, _ = loaded
    assert len(table) == 92_918
    assert table.groupby("video_id").size().to_dict() == ROWS_PER_VIDEO
    assert sorted(table["video_num"].unique().tolist()) == list(OFFICIAL_TRAIN_VIDEOS)


def test_position_class_distribution_of_the_train_videos(loaded: tuple[pd.DataFrame, list[str]]) -> None:
    table, _ = loaded
    pos1 = table["position1"].value_counts().to_dict()
    assert pos1 == {3: 29_031, 5: 10_836, 4: 7_044, 2: 5_813, 1: 2_164}
    assert int(table["position1"].isna().sum()) == 38_030
    assert table["position2"].value_counts().to_dict() == {3: 7_549, 5: 3_291, 2: 1_024, 4: 810, 1: 252}


def test_frame_status_counts(loaded: tuple[pd.DataFrame, list[str]]) -> None:
    assert loaded[0]["frame_status"].value_counts().to_dict() == {
        "instrument": 54_857,
        "no_visible_instrument": 29_113,
        "out_of_patient": 8_512,
        "occluded": 436,
    }


def test_quirk_counts(loaded: tuple[pd.DataFrame, list[str]]) -> None:
    counts: dict[str, int] = {}
    for qs in loaded[0]["quirks"]:
        for q in qs:
            counts[q] = counts.get(q, 0) + 1
    assert set(counts) <= set(ROW_QUIRKS)
    assert counts == {
        "position_without_instrument": 129,
        "instrument_without_position": 98,
        "secondary_position_without_instrument": 88,
        "secondary_without_position": 4,
        "secondary_without_primary": 12,
        "secondary_slot_no_visible": 2,
        "instrument_name_id_mismatch": 1,
        "same_position_class": 8_686,
        "stray_value_in_extra_column": 11,
    }


# ------------------------------------------------------------------ each quirk, pinned on a real row


def _r(rows: dict, video: int, t: int) -> dict:
    return rows[(f"video_{video:02d}", t)]


def test_plain_rows(rows: dict) -> None:
    first = _r(rows, 1, 0)
    assert first["frame_status"] == "out_of_patient" and first["image"] == "video_01/frame_000000.jpg"
    assert primary_target(first) == (None, "out_of_patient")
    assert primary_target(_r(rows, 1, 3)) == (("no_visible_instrument", None), "none")
    assert _r(rows, 3, 1179)["frame_status"] == "occluded"
    assert primary_target(_r(rows, 3, 1179)) == (None, "occluded")


def test_both_instruments_in_the_same_class(rows: dict) -> None:
    r = _r(rows, 1, 2002)
    assert (r["instrument1"], r["position1"], r["instrument2"], r["position2"]) == ("kerrisons", 3, "suction", 3)
    assert "same_position_class" in r["quirks"]
    assert primary_target(r) == (("kerrisons", 3), "primary")


def test_name_and_id_disagree(rows: dict) -> None:
    r = _r(rows, 16, 546)  # "no_visible_instrument" with id 10 (nasal_cutting_forceps) and position 4
    assert (r["instrument1"], r["instrument1_id"], r["position1"]) == ("no_visible_instrument", 10, 4)
    assert {"instrument_name_id_mismatch", "position_without_instrument"} <= set(r["quirks"])
    assert primary_target(r) == (None, "instrument_name_id_mismatch")


def test_position_without_instrument(rows: dict) -> None:
    r = _r(rows, 3, 2941)
    assert (r["frame_status"], r["position1"]) == ("no_visible_instrument", 3)
    assert primary_target(r) == (None, "position_without_instrument")


def test_instrument_without_position(rows: dict) -> None:
    r = _r(rows, 7, 484)
    assert (r["instrument1"], r["position1"]) == ("kerrisons", None)
    assert primary_target(r) == (None, "instrument_without_position")


def test_secondary_without_primary_is_promoted(rows: dict) -> None:
    r = _r(rows, 1, 4691)
    assert (r["instrument1"], r["instrument2"], r["position2"]) == ("no_visible_instrument", "suction", 3)
    assert "secondary_without_primary" in r["quirks"]
    assert primary_target(r) == (("suction", 3), "promoted_secondary")


def test_secondary_quirks(rows: dict) -> None:
    r = _r(rows, 3, 3306)  # cup_forceps at 3, suction without position
    assert "secondary_without_position" in r["quirks"] and primary_target(r) == (("cup_forceps", 3), "primary")
    r = _r(rows, 1, 6319)  # no secondary instrument but a secondary position
    assert (r["instrument2"], r["position2"]) == ("no_secondary_instrument", 3)
    assert "secondary_position_without_instrument" in r["quirks"]
    r = _r(rows, 1, 1412)  # secondary slot written as no_visible_instrument (id 0)
    assert (r["instrument2"], r["instrument2_id"]) == ("no_visible_instrument", 0)
    assert "secondary_slot_no_visible" in r["quirks"]


def test_stray_values_in_the_extra_columns_of_video_03(rows: dict) -> None:
    r = _r(rows, 3, 54)
    assert r["quirks"] == ["stray_value_in_extra_column"] and r["frame_status"] == "no_visible_instrument"
    assert primary_target(r) == (None, "stray_value_in_extra_column")
    assert _r(rows, 3, 58)["quirks"] == []


# ------------------------------------------------------------------ steps (change points joined to seconds)


def test_change_points_are_joined_to_each_second(rows: dict) -> None:
    got = [(_r(rows, 1, t)["step"], _r(rows, 1, t)["step_id"]) for t in (1, 2, 173, 174, 7108, 7109, 7201)]
    assert got == [
        ("operation_not_started", -1),
        ("nasal_corridor_creation", 1),
        ("nasal_corridor_creation", 1),
        ("anterior_sphenoidotomy", 2),
        ("debris_clearance", 14),
        ("operation_ended", -1),
        ("operation_ended", -1),
    ]


def test_step_file_quirks_are_repaired_and_reported(rows: dict, loaded: tuple[pd.DataFrame, list[str]]) -> None:
    notes = loaded[1]
    # steps_16: 4442 fat_graft_placement listed before 4116 synthetic_graft_placement -> sorted
    assert [_r(rows, 16, t)["step"] for t in (4200, 4441, 4442)] == [
        "synthetic_graft_placement",
        "haemostasis",
        "fat_graft_placement",
    ]
    # steps_11 starts with operation_ended at t=0
    assert _r(rows, 11, 0)["step"] == "operation_not_started" and _r(rows, 11, 25)["step_id"] == 1
    # steps_20: gasket_seal_construct written with int_step 8 (map: 11)
    assert (_r(rows, 20, 8141)["step"], _r(rows, 20, 8141)["step_id"]) == ("gasket_seal_construct", 11)
    # steps_22: last row says int_video 23
    assert _r(rows, 22, 3795)["step"] == "operation_ended"
    joined = "\n".join(notes)
    for expected in (
        "instruments_03.csv: 2 extra unnamed column(s) ignored (11 rows",
        "steps_07.csv: 1 extra unnamed column(s) ignored (3 rows",
        "steps_11.csv: operation_ended at t=0",
        "steps_16.csv: change points out of time order",
        "steps_20.csv:30: gasket_seal_construct has int_step 8",
        "steps_22.csv:18: int_video=23",
    ):
        assert expected in joined
    assert len(notes) == 6


def test_non_operative_seconds_are_all_out_of_patient(loaded: tuple[pd.DataFrame, list[str]]) -> None:
    table, _ = loaded
    non_op = table[table["step_id"] == -1]
    assert len(non_op) == 1_443 and set(non_op["frame_status"]) == {"out_of_patient"}
    assert int(table["step_id"].isna().sum()) == 0


def test_join_steps_before_the_first_change_point_is_unknown() -> None:
    names, ids = join_steps(np.arange(4), [(2, "sellotomy", 5)])
    assert names == [None, None, "sellotomy", "sellotomy"] and ids == [None, None, 5, 5]


def test_missing_folder_is_an_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="instruments_csv"):
        load_annotations(tmp_path)


def test_malformed_file_names_file_and_second(tmp_path: Path) -> None:
    (tmp_path / "instruments_csv").mkdir()
    header = "int_video,int_time,str_instrument1,str_instrument2,int_instrument1,int_instrument2,pos_instrument1,pos_instrument2\n"
    (tmp_path / "instruments_csv" / "instruments_30.csv").write_text(
        header + "30,0,suction,no_secondary_instrument,16,-2,3,\n30,1,scalpel,no_secondary_instrument,19,-2,3,\n"
    )
    with pytest.raises(ValueError, match=r"instruments_30.csv: second 1: unknown instrument 'scalpel'"):
        load_annotations(tmp_path)
