"""The data types of the clinical-validation data (seed 002): scenarios, images, provenance, findings.

Frozen records shared by the loader (:mod:`physio_ray.clinical.data`), the data-quality checks
(:mod:`physio_ray.clinical.quality`), prompts, splits and training; nothing here reads files.

Example:
    >>> w = DataWarning("image_unused", "info", ("a.png",), "a.png is in images/ but no scenario uses it")
    >>> DataReport((w,)).summary()
    'image_unused x1'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from physio_ray.clinical.images import ImageStats
from physio_ray.clinical.parsing import Verdict

__all__ = [
    "MODALITIES",
    "VALIDATION_TYPES",
    "ClinicalDataset",
    "DataReport",
    "DataWarning",
    "ImageRecord",
    "Level",
    "ManifestImage",
    "PatientContext",
    "Scenario",
    "UpstreamRow",
]

ValidationType = Literal["treatment_matching", "icd_coding"]
VALIDATION_TYPES: tuple[str, ...] = ("treatment_matching", "icd_coding")
MODALITIES: tuple[str, ...] = ("xray", "histopathology", "mri", "ultrasound")
Level = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class DataWarning:
    """One data-quality finding.

    Attributes:
        code: stable identifier of the check (see the module docstring).
        level: ``error`` (data unusable as is), ``warning`` (numbers may mislead), ``info``.
        subjects: file names or scenario ids concerned.
        message: what is wrong, with the measured evidence.
    """

    code: str
    level: Level
    subjects: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class DataReport:
    """Warnings and statistics of one loaded data set.

    Attributes:
        warnings: every finding, in check order.
        stats: counts and rates (see :func:`dataset_stats`).
    """

    warnings: tuple[DataWarning, ...]
    stats: Mapping[str, Any] = field(default_factory=dict)

    def codes(self) -> set[str]:
        """The codes that fired."""
        return {w.code for w in self.warnings}

    def subjects(self, code: str) -> set[str]:
        """All subjects of the warnings with ``code``."""
        return {s for w in self.warnings if w.code == code for s in w.subjects}

    def summary(self) -> str:
        """One line: count per code."""
        counts = Counter(w.code for w in self.warnings)
        return ", ".join(f"{c} x{n}" for c, n in counts.items())

    def render(self) -> str:
        """The report as markdown: statistics, then one table row per warning."""
        lines = ["# Clinical data report", "", "## Statistics", ""]
        lines += [f"- {k}: {v}" for k, v in self.stats.items()]
        lines += ["", "## Findings", "", "| level | code | subjects | evidence |", "|---|---|---|---|"]
        for w in self.warnings:
            subj = ", ".join(w.subjects[:8]) + (f" (+{len(w.subjects) - 8})" if len(w.subjects) > 8 else "")
            lines.append(f"| {w.level} | {w.code} | {subj} | {w.message.replace('|', '/')} |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PatientContext:
    """Patient fields of a scenario.

    Attributes:
        age: years.
        gender: as written in the data.
        chief_complaint: presenting complaint.
        vital_signs: free text, when given.
        extra: any other fields (``biopsy_site``, ``scan_type``), as ``(key, value)`` pairs.
    """

    age: int | None
    gender: str | None
    chief_complaint: str | None
    vital_signs: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Scenario:
    """One clinical-validation scenario.

    Attributes:
        id: ``clinical_001`` .. ``clinical_024`` or ``icd_001`` .. ``icd_024``.
        key: the upstream descriptive key (``scenario_key``), e.g. ``xray_001_normal_lung_...``.
        validation_type: ``treatment_matching`` or ``icd_coding``.
        modality: ``xray`` | ``histopathology`` | ``mri`` | ``ultrasound``.
        image_type: ``negative`` | ``positive`` (the image's upstream class polarity).
        image_file: file name under ``images/``.
        image_path: absolute path, ``None`` when the file is absent.
        patient: the patient context.
        clinical_finding: the finding text given to the model.
        prescribed_treatment: the treatment to judge (treatment_matching only).
        expected_determination: the gold answer string.
        label: its verdict, ``ERROR`` or ``CORRECT``.
        error_type: ``none`` | ``overtreatment`` | ``unnecessary_procedure`` | ``incorrect_icd``.
        severity: ``none`` | ``moderate`` | ``high`` | ``critical``.
        cost_impact: USD.
        diagnosis: the coded diagnosis (icd_coding only).
        icd_code: the code to judge (icd_coding only).
        icd_description: its description (icd_coding only).
        correct_code: the right code where the given one is wrong (icd_coding only).
        raw: the scenario dict exactly as read (what :func:`~physio_ray.clinical.reward.clinical_reward` takes).
    """

    id: str
    key: str
    validation_type: str
    modality: str
    image_type: str
    image_file: str
    image_path: str | None
    patient: PatientContext
    clinical_finding: str
    prescribed_treatment: str | None
    expected_determination: str
    label: Verdict
    error_type: str
    severity: str
    cost_impact: float
    diagnosis: str | None = None
    icd_code: str | None = None
    icd_description: str | None = None
    correct_code: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a plain dict (the original JSON entry)."""
        return dict(self.raw)


@dataclass(frozen=True)
class ManifestImage:
    """Provenance of one image, from ``manifest.json``.

    Attributes:
        filename: file name under ``images/``.
        modality: as the manifest says.
        diagnosis: ``positive`` | ``negative`` as the manifest says.
        manifest_class: the ``class`` field.
        source_file: path of the file in the upstream data set.
        dataset: upstream data set name.
        license: as the manifest states it (not re-verified).
        scenario_keys: keys of the scenarios the manifest embeds for this image.
    """

    filename: str
    modality: str
    diagnosis: str
    manifest_class: str
    source_file: str
    dataset: str
    license: str
    scenario_keys: tuple[str, ...]


@dataclass(frozen=True)
class ImageRecord:
    """One image file: measured stats plus manifest provenance, when there is any.

    Attributes:
        filename: file name under ``images/``.
        path: absolute path, ``None`` when the file is absent.
        stats: measurements (``None`` when absent or unreadable).
        manifest: the manifest entry (``None``: the manifest does not list this file).
        read_error: why the file could not be measured.
    """

    filename: str
    path: str | None
    stats: ImageStats | None
    manifest: ManifestImage | None
    read_error: str | None = None


@dataclass(frozen=True)
class UpstreamRow:
    """One row of the upstream ``train.jsonl`` / ``val.jsonl``.

    Attributes:
        split: ``train`` or ``val``.
        key: the row's ``id`` (a scenario key).
        scenario_id: ``metadata.scenario_id`` (``clinical_NNN``).
        instruction: system instruction text.
        input: user prompt text.
        output: gold answer.
        image_file: image file name.
    """

    split: str
    key: str
    scenario_id: str
    instruction: str
    input: str
    output: str
    image_file: str


@dataclass(frozen=True)
class ClinicalDataset:
    """Everything in the data folder, typed, with its data-quality report.

    Attributes:
        root: the data folder.
        scenarios: all scenarios in file order.
        images: image records by file name (every file in ``images/`` and every name a scenario uses).
        manifest_images: manifest entries by file name.
        upstream: rows of ``train.jsonl`` and ``val.jsonl``.
        report: the data-quality findings (built by :func:`physio_ray.clinical.quality.build_report`).
    """

    root: str
    scenarios: tuple[Scenario, ...]
    images: Mapping[str, ImageRecord]
    manifest_images: Mapping[str, ManifestImage]
    upstream: tuple[UpstreamRow, ...]
    report: DataReport

    def select(self, validation_type: str | None = None, modality: str | None = None) -> tuple[Scenario, ...]:
        """Scenarios of one validation type and/or modality (``None``: any)."""
        return tuple(
            s
            for s in self.scenarios
            if (validation_type is None or s.validation_type == validation_type)
            and (modality is None or s.modality == modality)
        )

    def by_id(self) -> dict[str, Scenario]:
        """Scenarios keyed by ``id``."""
        return {s.id: s for s in self.scenarios}
