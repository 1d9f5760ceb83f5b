"""Clinical data loader and its data-quality report, on the real medbilldozer-clinical folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from physio_ray.clinical.consistency import class_from_source, contradicting_phrases, denies_lesion
from physio_ray.clinical.data import load_clinical_dataset, parse_scenario
from physio_ray.clinical.images import image_stats, image_stats_from_pil
from physio_ray.clinical.records import ClinicalDataset
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def root() -> Path:
    return shared_path("medbilldozer-clinical")


@pytest.fixture(scope="module")
def ds(root: Path) -> ClinicalDataset:
    return load_clinical_dataset(root)


def test_counts_and_types(ds: ClinicalDataset) -> None:
    assert len(ds.scenarios) == 48
    tm, icd = ds.select("treatment_matching"), ds.select("icd_coding")
    assert (len(tm), len(icd)) == (24, 24)
    assert sum(s.label == "ERROR" for s in tm) == 12
    assert sum(s.label == "ERROR" for s in icd) == 12
    for mod in ("xray", "histopathology", "mri", "ultrasound"):
        sub = ds.select("treatment_matching", mod)
        assert sorted(s.image_type for s in sub) == ["negative"] * 3 + ["positive"] * 3
    crit = [s for s in tm if s.severity == "critical"]
    assert len(crit) == 6 and all(s.label == "ERROR" for s in crit)
    s = ds.by_id()["clinical_007"]
    assert (s.modality, s.image_type, s.severity, s.cost_impact) == ("histopathology", "negative", "critical", 150000.0)
    assert dict(s.patient.extra) == {"biopsy_site": "Left upper lobe"}
    assert s.image_path is not None and Path(s.image_path).is_file()
    assert ds.by_id()["icd_001"].icd_code == "J18.9"
    assert s.to_dict()["scenario_key"] == s.key


def test_images_are_measured(ds: ClinicalDataset) -> None:
    assert len(ds.images) == 24
    masks = sorted(n for n, im in ds.images.items() if im.stats and im.stats.is_binary)
    assert masks == sorted(
        f"ultrasound_{t}.png" for t in ("negative", "negative_2", "negative_3", "positive", "positive_2", "positive_3")
    )
    xr = ds.images["xray_negative.png"].stats
    assert (xr.mode, xr.width, xr.height, xr.is_binary, xr.is_greyscale) == ("L", 299, 299, False, True)
    assert ds.images["histopathology_positive.jpeg"].stats.is_greyscale is False
    assert len({im.stats.pixel_sha256 for im in ds.images.values()}) == 24
    us = ds.images["ultrasound_negative.png"].stats
    assert us.foreground_fraction == pytest.approx(0.0079, abs=5e-4)


def test_missing_manifest_image_is_detected(ds: ClinicalDataset) -> None:
    report = ds.report
    missing = [w for w in report.warnings if w.code == "image_missing_from_manifest"]
    assert [w.subjects[0] for w in missing] == ["xray_negative.png"]
    assert set(missing[0].subjects[1:]) == {"clinical_001", "icd_002", "icd_006"}
    assert "COVID-19 Radiography Database" in missing[0].message  # format twin hint
    assert report.subjects("scenario_missing_from_manifest") == {"clinical_001", "icd_002", "icd_006"}
    assert set(ds.images) - set(ds.manifest_images) == {"xray_negative.png"}


def test_masks_and_contradictions_are_detected(ds: ClinicalDataset) -> None:
    r = ds.report
    assert len([w for w in r.warnings if w.code == "segmentation_mask"]) == 6
    assert r.subjects("manifest_class_mismatch") == {"ultrasound_negative.png"}
    finding_ids = {w.subjects[0] for w in r.warnings if w.code == "finding_contradicts_image"}
    assert finding_ids == {
        "clinical_005", "icd_003", "icd_005",  # COVID image, "bacterial pneumonia"
        "clinical_006",  # COVID image, "viral pneumonia"
        "clinical_017", "icd_017",  # glioma image, meningioma (dural tail / diagnosis)
        "clinical_019", "icd_019", "clinical_021", "icd_021",  # BUSI benign lesion mask, "no masses, BI-RADS 1"
    }  # fmt: skip
    key_ids = {w.subjects[0] for w in r.warnings if w.code == "key_contradicts_image"}
    assert key_ids == {"clinical_006", "clinical_011", "clinical_017", "clinical_019", "clinical_021"}
    images = {w.subjects[1] for w in r.warnings if w.code in ("finding_contradicts_image", "key_contradicts_image")}
    assert images == {
        "xray_positive_2.png", "xray_positive_3.png", "histopathology_positive_2.jpeg",
        "mri_positive_2.jpg", "ultrasound_negative.png", "ultrasound_negative_3.png",
    }  # fmt: skip
    mask_ids = {w.subjects[0] for w in r.warnings if w.code == "mask_contradicts_finding"}
    assert mask_ids == {"clinical_019", "icd_019", "clinical_021", "icd_021"}


def test_shortcuts_are_reported(ds: ClinicalDataset) -> None:
    r = ds.report
    assert "label_shortcut" in r.codes() and "label_shortcut_partial" in r.codes()
    assert r.stats["treatment_matching shortcut accuracy"] == 1.0
    assert r.stats["icd_coding shortcut accuracy"] == 0.875
    assert r.subjects("pixel_shortcut") == {"ultrasound"}
    assert "duplicate_image" not in r.codes()
    assert "upstream_mismatch" not in r.codes()
    assert r.subjects("target_wording") == {"treatment_matching"}  # 14 wordings, ICD has 2


def test_report_renders(ds: ClinicalDataset) -> None:
    text = ds.report.render()
    assert text.startswith("# Clinical data report")
    assert "| warning | image_missing_from_manifest | xray_negative.png" in text
    assert "- binary masks: 6" in text
    assert "image_missing_from_manifest x1" in ds.report.summary()


def test_upstream_split_is_loaded(ds: ClinicalDataset) -> None:
    assert [r.split for r in ds.upstream].count("train") == 16
    assert [r.split for r in ds.upstream].count("val") == 8
    by_key = {s.key: s for s in ds.scenarios}
    assert all(by_key[r.key].id == r.scenario_id for r in ds.upstream)


def test_detection_is_not_hard_coded(root: Path, tmp_path: Path) -> None:
    # Copy the folder, drop a different image from the manifest and add a mask whose finding
    # says "no masses": the checks must name the new subjects.
    work = tmp_path / "clin"
    shutil.copytree(root, work)
    for p in [work, *work.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    manifest = json.loads((work / "manifest.json").read_text())
    manifest["images"] = [im for im in manifest["images"] if im["filename"] != "mri_negative.jpg"]
    (work / "manifest.json").write_text(json.dumps(manifest))
    arr = np.zeros((40, 40), np.uint8)
    arr[10:20, 10:20] = 255
    Image.fromarray(arr).convert("1").save(work / "images" / "mri_negative_3.jpg.png")
    scen = json.loads((work / "clinical_scenarios_48.json").read_text())
    scen[14]["image_file"] = "mri_negative_3.jpg.png"  # clinical_015: "No intracranial mass, ..."
    (work / "clinical_scenarios_48.json").write_text(json.dumps(scen))
    ds2 = load_clinical_dataset(work)
    missing = {w.subjects[0] for w in ds2.report.warnings if w.code == "image_missing_from_manifest"}
    assert missing == {"xray_negative.png", "mri_negative.jpg", "mri_negative_3.jpg.png"}
    assert "mri_negative_3.jpg.png" in ds2.report.subjects("segmentation_mask")
    assert "clinical_015" in ds2.report.subjects("mask_contradicts_finding")
    assert ds2.report.subjects("upstream_mismatch") == {"mri_003_normal_scan_unnecessary_biopsy"}


def test_scenario_validation() -> None:
    raw = {
        "id": "x",
        "validation_type": "treatment_matching",
        "modality": "mri",
        "image_type": "negative",
        "image_file": "a.jpg",
        "clinical_finding": "f",
        "expected_determination": "ERROR - Treatment does not match imaging",
        "error_type": "none",
        "severity": "none",
    }
    with pytest.raises(ValueError, match="disagrees"):
        parse_scenario(raw)
    with pytest.raises(ValueError, match="lacks"):
        parse_scenario({k: v for k, v in raw.items() if k != "modality"})
    with pytest.raises(ValueError, match="validation_type"):
        parse_scenario({**raw, "validation_type": "other", "error_type": "x"})
    with pytest.raises(FileNotFoundError):
        load_clinical_dataset("/nonexistent/folder")


def test_consistency_rules() -> None:
    assert contradicting_phrases("xray", "Normal", "Clear lung fields, no infiltrates, no effusion") == ()
    assert contradicting_phrases("xray", "Normal", "Right lower lobe consolidation") == ("consolidation",)
    assert (
        contradicting_phrases("histopathology", "lung_n", "Normal lung parenchyma, no malignant cells identified") == ()
    )
    assert contradicting_phrases("ultrasound", "benign", "BI-RADS 10") == ()
    assert contradicting_phrases("mri", "notumor", "mri_001_no_tumor_unnecessary_surgery") == ()
    assert contradicting_phrases("mri", "unknown-class", "anything") == ()
    assert denies_lesion("No intracranial mass, normal gray-white differentiation") == ("no intracranial mass",)
    assert denies_lesion("Simple cyst with smooth walls, BI-RADS 2 (benign finding)") == ()
    assert class_from_source("ultrasound", "ultrasound/Dataset_BUSI_with_GT/benign/benign (246)_mask.png") == "benign"
    assert class_from_source("mri", "mri/Testing/notumor/Te-no_200.jpg") == "notumor"
    assert class_from_source("mri", "somewhere/else.jpg") is None


def test_image_stats_on_synthetic_images(tmp_path: Path) -> None:
    grad = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (8, 1)))
    s = image_stats_from_pil(grad)
    assert (s.grey_levels, s.is_binary, s.is_greyscale) == (256, False, True)
    grad.save(tmp_path / "g.png")
    grad.convert("RGB").save(tmp_path / "g_rgb.png")
    a, b = image_stats(tmp_path / "g.png"), image_stats(tmp_path / "g_rgb.png")
    assert a.pixel_sha256 == b.pixel_sha256 and a.file_sha256 != b.file_sha256
    with pytest.raises(FileNotFoundError):
        image_stats(tmp_path / "none.png")
