"""Image-grouped cross-validation on the real scenarios: no picture in train and test."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from physio_ray.clinical.data import load_clinical_dataset
from physio_ray.clinical.records import ClinicalDataset
from physio_ray.clinical.splits import (
    Fold,
    LeakageError,
    check_no_leakage,
    grouped_kfold,
    image_groups,
    leave_one_modality_out,
    upstream_fold,
)
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def ds() -> ClinicalDataset:
    return load_clinical_dataset(shared_path("medbilldozer-clinical"))


def _pixels(ds: ClinicalDataset, ids: tuple[str, ...]) -> set[str]:
    by_id = ds.by_id()
    return {ds.images[by_id[x].image_file].stats.pixel_sha256 for x in ids}


@pytest.mark.parametrize("k", [2, 3, 4, 6])
@pytest.mark.parametrize("which", ["treatment_matching", "all"])
def test_no_image_in_train_and_test(ds: ClinicalDataset, k: int, which: str) -> None:
    scenarios = ds.scenarios if which == "all" else ds.select(which)
    folds = grouped_kfold(scenarios, k, seed=1, images=ds.images)
    assert len(folds) == k
    all_test = [x for f in folds for x in f.test_ids]
    assert sorted(all_test) == sorted(s.id for s in scenarios)  # a partition
    for f in folds:
        # measured independently of the splitter: pixel hashes, and file names
        assert not _pixels(ds, f.train_ids) & _pixels(ds, f.test_ids)
        by_id = ds.by_id()
        assert not {by_id[x].image_file for x in f.train_ids} & {by_id[x].image_file for x in f.test_ids}
        assert len(f.train_ids) + len(f.test_ids) == len(scenarios)


def test_treatment_folds_are_balanced(ds: ClinicalDataset) -> None:
    folds = grouped_kfold(ds.select("treatment_matching"), 3, images=ds.images)
    by_id = ds.by_id()
    for f in folds:
        t = [by_id[x] for x in f.test_ids]
        assert Counter(s.label for s in t) == {"ERROR": 4, "CORRECT": 4}
        assert Counter(s.modality for s in t) == {"xray": 2, "histopathology": 2, "mri": 2, "ultrasound": 2}


def test_shared_images_stay_together(ds: ClinicalDataset) -> None:
    folds = grouped_kfold(ds.scenarios, 4, images=ds.images)
    fold_of = {x: f.index for f in folds for x in f.test_ids}
    # xray_positive.png is used by clinical_004, icd_001 and icd_004
    assert len({fold_of["clinical_004"], fold_of["icd_001"], fold_of["icd_004"]}) == 1


def test_seed_changes_assignment_deterministically(ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching")
    a = grouped_kfold(tm, 3, seed=0, images=ds.images)
    assert a == grouped_kfold(tm, 3, seed=0, images=ds.images)
    assert a != grouped_kfold(tm, 3, seed=5, images=ds.images)


def test_naive_scenario_split_leaks_and_is_caught(ds: ClinicalDataset) -> None:
    # The upstream split is leak-free on the treatment scenarios alone ...
    group_of = image_groups(ds.scenarios, ds.images)
    up = upstream_fold(ds.scenarios, ds.upstream)
    assert (len(up.train_ids), len(up.test_ids)) == (16, 8)
    check_no_leakage([up], group_of, require_partition=False)
    # ... but adding the ICD scenarios to training (same images) leaks, and the check says so.
    icd = tuple(s.id for s in ds.select("icd_coding"))
    leaky = replace(up, train_ids=up.train_ids + icd)
    with pytest.raises(LeakageError, match="share an image"):
        check_no_leakage([leaky], group_of, require_partition=False)


def test_partition_check(ds: ClinicalDataset) -> None:
    tm = ds.select("treatment_matching")
    group_of = image_groups(tm, ds.images)
    folds = grouped_kfold(tm, 3, images=ds.images)
    with pytest.raises(LeakageError, match="partition"):
        check_no_leakage(folds[:2], group_of)
    with pytest.raises(LeakageError, match="both in train and test"):
        check_no_leakage([Fold(0, "bad", ("clinical_001",), ("clinical_001",))], group_of, require_partition=False)


def test_group_by_file_name_without_stats(ds: ClinicalDataset) -> None:
    groups = image_groups(ds.scenarios)
    assert groups["clinical_001"] == groups["icd_002"] == "file:xray_negative.png"
    assert len(set(groups.values())) == 24


def test_leave_one_modality_out(ds: ClinicalDataset) -> None:
    folds = leave_one_modality_out(ds.scenarios, ds.images)
    assert [f.name for f in folds] == ["heldout-histopathology", "heldout-mri", "heldout-ultrasound", "heldout-xray"]
    by_id = ds.by_id()
    for f in folds:
        assert len(f.test_ids) == 12 and len({by_id[x].modality for x in f.test_ids}) == 1


def test_bad_k(ds: ClinicalDataset) -> None:
    with pytest.raises(ValueError, match="distinct images"):
        grouped_kfold(ds.scenarios, 25, images=ds.images)
    with pytest.raises(ValueError, match="mixes strata"):
        grouped_kfold(ds.scenarios, 3, images=ds.images, stratum=lambda s: s.label)
