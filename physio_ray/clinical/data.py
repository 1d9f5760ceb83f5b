"""Typed loader for the medBillDozer clinical-validation scenarios (seed 002).

The data folder (``../shared/data/medbilldozer-clinical``) holds:

* ``clinical_scenarios_48.json``: 24 ``treatment_matching`` scenarios (image + finding +
  treatment -> ERROR/CORRECT) and 24 ``icd_coding`` scenarios (finding + diagnosis + ICD code);
* ``images/``: the pictures the scenarios name;
* ``manifest.json``: provenance of the images (upstream data set, class, source file);
* ``train.jsonl`` / ``val.jsonl``: the upstream project's 16/8 instruction-format split.

:func:`load_clinical_dataset` reads all of it into the frozen records of
:mod:`physio_ray.clinical.records`, measures every image (:mod:`physio_ray.clinical.images`) and
builds a :class:`~physio_ray.clinical.records.DataReport` of data-quality findings (masks
instead of scans, findings that contradict the image's upstream class, images without
provenance, the image_type -> label shortcut). Read ``dataset.report.render()`` before trusting
any number computed on this data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from physio_ray.clinical.images import image_stats
from physio_ray.clinical.parsing import parse_determination
from physio_ray.clinical.quality import build_report
from physio_ray.clinical.records import (
    VALIDATION_TYPES,
    ClinicalDataset,
    ImageRecord,
    ManifestImage,
    PatientContext,
    Scenario,
    UpstreamRow,
)

logger = logging.getLogger(__name__)

__all__ = ["load_clinical_dataset", "load_scenarios", "parse_scenario"]

SCENARIO_FILE = "clinical_scenarios_48.json"
MANIFEST_FILE = "manifest.json"
IMAGES_DIR = "images"
UPSTREAM_SPLITS = ("train", "val")

_REQUIRED = (
    "id",
    "validation_type",
    "modality",
    "image_type",
    "image_file",
    "clinical_finding",
    "expected_determination",
    "error_type",
    "severity",
)


def _patient(raw: Mapping[str, Any] | None) -> PatientContext:
    raw = dict(raw or {})
    age = raw.pop("age", None)
    return PatientContext(
        age=int(age) if age is not None else None,
        gender=raw.pop("gender", None),
        chief_complaint=raw.pop("chief_complaint", None),
        vital_signs=raw.pop("vital_signs", None),
        extra=tuple((str(k), str(v)) for k, v in raw.items()),
    )


def parse_scenario(raw: Mapping[str, Any], images_dir: Path | None = None) -> Scenario:
    """Builds a :class:`Scenario` from one JSON entry.

    Args:
        raw: one entry of ``clinical_scenarios_48.json``.
        images_dir: folder to resolve ``image_file`` in (``None``: ``image_path`` stays ``None``).

    Returns:
        The typed scenario.

    Raises:
        ValueError: a required field is missing or the fields are inconsistent.
    """
    missing = [k for k in _REQUIRED if raw.get(k) in (None, "")]
    if missing:
        raise ValueError(f"scenario {raw.get('id')!r} lacks {missing}")
    if raw["validation_type"] not in VALIDATION_TYPES:
        raise ValueError(
            f"scenario {raw['id']!r}: validation_type {raw['validation_type']!r} not in {VALIDATION_TYPES}"
        )
    label = parse_determination(raw["expected_determination"])
    if (raw["error_type"] == "none") != (label == "CORRECT"):
        raise ValueError(
            f"scenario {raw['id']!r}: error_type={raw['error_type']!r} disagrees with "
            f"expected_determination={raw['expected_determination']!r}"
        )
    path = None
    if images_dir is not None and (images_dir / raw["image_file"]).is_file():
        path = str((images_dir / raw["image_file"]).resolve())
    return Scenario(
        id=str(raw["id"]),
        key=str(raw.get("scenario_key") or raw["id"]),
        validation_type=raw["validation_type"],
        modality=raw["modality"],
        image_type=raw["image_type"],
        image_file=raw["image_file"],
        image_path=path,
        patient=_patient(raw.get("patient_context")),
        clinical_finding=raw["clinical_finding"],
        prescribed_treatment=raw.get("prescribed_treatment"),
        expected_determination=raw["expected_determination"],
        label=label,
        error_type=raw["error_type"],
        severity=raw["severity"],
        cost_impact=float(raw.get("cost_impact") or 0),
        diagnosis=raw.get("diagnosis"),
        icd_code=raw.get("icd_code"),
        icd_description=raw.get("icd_description"),
        correct_code=raw.get("correct_code"),
        raw=dict(raw),
    )


def load_scenarios(path: str | Path, images_dir: str | Path | None = None) -> tuple[Scenario, ...]:
    """Reads ``clinical_scenarios_48.json`` (a JSON list of scenario dicts).

    Args:
        path: the JSON file.
        images_dir: folder to resolve image files in (default: ``images/`` beside ``path``).

    Returns:
        The scenarios in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a list, ids repeat, or a scenario is malformed.
    """
    path = Path(path)
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON list of scenarios, got {type(data).__name__}")
    img_dir = Path(images_dir) if images_dir is not None else path.parent / IMAGES_DIR
    scenarios = tuple(parse_scenario(raw, img_dir) for raw in data)
    ids = [s.id for s in scenarios]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"{path}: scenario ids repeat: {dupes}")
    return scenarios


def _load_manifest(path: Path) -> dict[str, ManifestImage]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out: dict[str, ManifestImage] = {}
    for im in data.get("images", []):
        out[im["filename"]] = ManifestImage(
            filename=im["filename"],
            modality=im.get("modality", ""),
            diagnosis=im.get("diagnosis", ""),
            manifest_class=im.get("class", ""),
            source_file=im.get("source_file", ""),
            dataset=im.get("dataset", ""),
            license=im.get("license", ""),
            scenario_keys=tuple(s.get("scenario_id", "") for s in im.get("scenarios", [])),
        )
    return out


def _load_upstream(root: Path) -> tuple[UpstreamRow, ...]:
    rows = []
    for split in UPSTREAM_SPLITS:
        path = root / f"{split}.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            rows.append(
                UpstreamRow(
                    split=split,
                    key=r["id"],
                    scenario_id=r.get("metadata", {}).get("scenario_id", ""),
                    instruction=r.get("instruction", ""),
                    input=r.get("input", ""),
                    output=r.get("output", ""),
                    image_file=r.get("image_file", ""),
                )
            )
    return tuple(rows)


def _image_record(filename: str, images_dir: Path, manifest: Mapping[str, ManifestImage]) -> ImageRecord:
    path = images_dir / filename
    if not path.is_file():
        return ImageRecord(filename, None, None, manifest.get(filename), read_error="file not found")
    try:
        stats = image_stats(path)
    except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
        return ImageRecord(filename, str(path.resolve()), None, manifest.get(filename), read_error=repr(exc))
    return ImageRecord(filename, str(path.resolve()), stats, manifest.get(filename))


def load_clinical_dataset(root: str | Path) -> ClinicalDataset:
    """Loads scenarios, images, manifest and upstream split, and checks their quality.

    Args:
        root: the data folder (with ``clinical_scenarios_48.json``, ``images/``, and optionally
            ``manifest.json``, ``train.jsonl``, ``val.jsonl``).

    Returns:
        The :class:`ClinicalDataset`; its ``report`` lists every data-quality finding (also
        logged once as a warning summary).

    Raises:
        FileNotFoundError: ``root`` or its scenario file does not exist.
        ValueError: a scenario is malformed (see :func:`parse_scenario`).
    """
    root = Path(root)
    scenario_file = root / SCENARIO_FILE
    if not scenario_file.is_file():
        raise FileNotFoundError(f"{scenario_file} not found; point root at the medbilldozer-clinical data folder")
    images_dir = root / IMAGES_DIR
    scenarios = load_scenarios(scenario_file, images_dir)
    manifest = _load_manifest(root / MANIFEST_FILE)
    on_disk = sorted(p.name for p in images_dir.iterdir() if p.is_file()) if images_dir.is_dir() else []
    names = sorted(set(on_disk) | {s.image_file for s in scenarios})
    images = {name: _image_record(name, images_dir, manifest) for name in names}
    upstream = _load_upstream(root)
    report = build_report(scenarios, images, manifest, upstream)
    n_warn = sum(1 for w in report.warnings if w.level != "info")
    if n_warn:
        logger.warning("%s: %d data-quality warnings (%s); see dataset.report.render()", root, n_warn, report.summary())
    return ClinicalDataset(
        root=str(root.resolve()),
        scenarios=scenarios,
        images=images,
        manifest_images=manifest,
        upstream=upstream,
        report=report,
    )
