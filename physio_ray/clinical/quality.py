"""Data-quality report of the clinical-validation data: what is wrong, found from the data.

:func:`build_report` runs every check on the loaded records and returns a
:class:`~physio_ray.clinical.records.DataReport` (warnings + statistics). The checks of the image
files themselves (presence, provenance, masks, duplicates) live in
:mod:`physio_ray.clinical.quality_images`; the text, label and split checks here. Nothing here names a particular file: each check is a rule applied to
all images or scenarios, so the same code finds the same kind of problem in a new version.

Checks (``code``: what it finds, and how):

* ``image_file_missing`` (error): a scenario names a file that is not in ``images/``.
* ``image_missing_from_manifest``: an image used by scenarios has no manifest entry (set
  difference of file names), so its provenance, class and licence are unknown.
* ``scenario_missing_from_manifest``: scenario keys that no manifest entry embeds.
* ``segmentation_mask``: the file has at most two grey levels (measured), i.e. it is a mask,
  not a scan; the manifest's ``_mask`` source file name is quoted as corroboration.
* ``manifest_class_mismatch``: the manifest ``class`` differs from the class folder of its own
  ``source_file``.
* ``finding_contradicts_image`` / ``key_contradicts_image``: the finding / diagnosis / key
  affirms something the image's upstream class excludes (:mod:`~physio_ray.clinical.consistency`).
* ``mask_contradicts_finding``: the mask draws a lesion (foreground > 0, measured) while the
  finding says there is none.
* ``label_shortcut``: ``image_type`` alone predicts the label (accuracy 1.0 for a validation type).
* ``pixel_shortcut``: a threshold on a mask's drawn area separates negative from positive images.
* ``duplicate_image`` / ``near_duplicate_images`` / ``image_shared``: same pixels under two
  names; difference hashes within 4 bits (masks excluded); one image used by several scenarios.
* ``target_wording``: more gold answer wordings than the instruction's two answer lines.
* ``upstream_mismatch`` / ``upstream_split``: ``train.jsonl``/``val.jsonl`` rows that disagree
  with the scenarios, and the split's label balance.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from physio_ray.clinical.consistency import class_from_source, contradicting_phrases
from physio_ray.clinical.quality_images import check_duplicates, check_files, check_manifest, check_masks
from physio_ray.clinical.records import (
    DataReport,
    DataWarning,
    ImageRecord,
    Level,
    ManifestImage,
    Scenario,
    UpstreamRow,
)

__all__ = ["build_report", "dataset_stats", "shortcut_accuracy"]


def _source_class(im: ImageRecord | None, modality: str) -> str | None:
    if im is None or im.manifest is None:
        return None
    return class_from_source(modality, im.manifest.source_file)


def _check_text(scenarios: Sequence[Scenario], images: Mapping[str, ImageRecord]) -> list[DataWarning]:
    out = []
    for s in scenarios:
        cls = _source_class(images.get(s.image_file), s.modality)
        if cls is None:
            continue
        fields = [("finding", s.clinical_finding)]
        if s.diagnosis:
            fields.append(("diagnosis", s.diagnosis))
        hits = {f: contradicting_phrases(s.modality, cls, t) for f, t in fields}
        hits = {f: h for f, h in hits.items() if h}
        if hits:
            ev = "; ".join(f"{f} affirms {list(h)}" for f, h in hits.items())
            out.append(
                DataWarning(
                    "finding_contradicts_image",
                    "warning",
                    (s.id, s.image_file),
                    f"{s.id} ({s.key}): image {s.image_file} is upstream class {cls!r} but {ev}",
                )
            )
        if s.validation_type == "treatment_matching":
            key_hits = contradicting_phrases(s.modality, cls, s.key)
            if key_hits:
                out.append(
                    DataWarning(
                        "key_contradicts_image",
                        "warning",
                        (s.id, s.image_file),
                        f"{s.id}: key {s.key!r} affirms {list(key_hits)} but image {s.image_file} is upstream class {cls!r}",
                    )
                )
    return out


def shortcut_accuracy(scenarios: Sequence[Scenario]) -> float:
    """Accuracy of "negative image -> ERROR, positive image -> CORRECT" on ``scenarios`` (NaN if empty)."""
    if not scenarios:
        return float("nan")
    hits = sum((s.image_type == "negative") == (s.label == "ERROR") for s in scenarios)
    return hits / len(scenarios)


def _check_shortcuts(scenarios: Sequence[Scenario], images: Mapping[str, ImageRecord]) -> list[DataWarning]:
    out = []
    for vt in sorted({s.validation_type for s in scenarios}):
        sub = [s for s in scenarios if s.validation_type == vt]
        acc = shortcut_accuracy(sub)
        level: Level = "warning" if acc == 1.0 else "info"
        code = "label_shortcut" if acc == 1.0 else "label_shortcut_partial"
        out.append(
            DataWarning(
                code,
                level,
                tuple(s.id for s in sub),
                f"{vt}: 'negative image -> ERROR' predicts {sum((s.image_type == 'negative') == (s.label == 'ERROR') for s in sub)}"
                f"/{len(sub)} labels (accuracy {acc:.3f}); report this baseline beside every model result",
            )
        )
    by_mod: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, im in images.items():
        users = [s for s in scenarios if s.image_file == name]
        if im.stats is None or not im.stats.is_binary or not users:
            continue
        by_mod[users[0].modality][users[0].image_type].append(im.stats.foreground_fraction)
    for mod, areas in by_mod.items():
        neg, pos = areas.get("negative", []), areas.get("positive", [])
        if neg and pos and max(neg) < min(pos):
            out.append(
                DataWarning(
                    "pixel_shortcut",
                    "warning",
                    (mod,),
                    f"{mod} masks: drawn area of every negative image ({max(neg):.2%} at most) is below every positive "
                    f"one ({min(pos):.2%} at least); the mask area alone separates the labels",
                )
            )
    return out


def _check_wording(scenarios: Sequence[Scenario]) -> list[DataWarning]:
    out = []
    for vt in sorted({s.validation_type for s in scenarios}, reverse=True):
        wordings = Counter(s.expected_determination for s in scenarios if s.validation_type == vt)
        if len(wordings) > 2:
            out.append(
                DataWarning(
                    "target_wording",
                    "info",
                    (vt,),
                    f"{vt}: {len(wordings)} distinct gold answer wordings (e.g. {', '.join(repr(w) for w, _ in wordings.most_common()[-3:])}) "
                    f"where the instruction allows two lines; only the verdict word is scored",
                )
            )
    return out


def _check_upstream(scenarios: Sequence[Scenario], upstream: Sequence[UpstreamRow]) -> list[DataWarning]:
    if not upstream:
        return []
    out = []
    by_key = {s.key: s for s in scenarios}
    for r in upstream:
        s = by_key.get(r.key)
        problems = []
        if s is None:
            problems.append("no scenario has this key")
        else:
            if r.scenario_id != s.id:
                problems.append(f"metadata.scenario_id {r.scenario_id!r} != {s.id!r}")
            if r.output != s.expected_determination:
                problems.append(f"output {r.output!r} != {s.expected_determination!r}")
            if r.image_file != s.image_file:
                problems.append(f"image {r.image_file!r} != {s.image_file!r}")
        if problems:
            out.append(
                DataWarning(
                    "upstream_mismatch", "warning", (r.key,), f"{r.split}.jsonl row {r.key}: {'; '.join(problems)}"
                )
            )
    parts = []
    for split in dict.fromkeys(r.split for r in upstream):
        labels = Counter(r.output.split(" ")[0] for r in upstream if r.split == split)
        parts.append(
            f"{split} {sum(labels.values())} rows ({labels.get('ERROR', 0)} ERROR / {labels.get('CORRECT', 0)} CORRECT)"
        )
    n_val = sum(r.split == "val" for r in upstream)
    step = f"; one val answer moves accuracy by {100 / n_val:.1f} points" if n_val else ""
    out.append(DataWarning("upstream_split", "info", (), f"upstream split: {', '.join(parts)}{step}"))
    return out


def dataset_stats(
    scenarios: Sequence[Scenario], images: Mapping[str, ImageRecord], manifest: Mapping[str, ManifestImage]
) -> dict[str, Any]:
    """Counts and rates of the data set (rendered in the report's statistics section)."""
    stats: dict[str, Any] = {"scenarios": len(scenarios)}
    for vt in sorted({s.validation_type for s in scenarios}, reverse=True):
        sub = [s for s in scenarios if s.validation_type == vt]
        err = [s for s in sub if s.label == "ERROR"]
        stats[f"{vt}"] = f"{len(sub)} ({len(err)} ERROR / {len(sub) - len(err)} CORRECT)"
        stats[f"{vt} modalities"] = dict(sorted(Counter(s.modality for s in sub).items()))
        stats[f"{vt} severity of errors"] = dict(Counter(s.severity for s in err).most_common())
        stats[f"{vt} error types"] = dict(Counter(s.error_type for s in err).most_common())
        stats[f"{vt} cost impact of errors (USD)"] = int(sum(s.cost_impact for s in err))
        stats[f"{vt} shortcut accuracy"] = round(shortcut_accuracy(sub), 4)
    stats["image files"] = sum(im.path is not None for im in images.values())
    stats["images used"] = len({s.image_file for s in scenarios})
    stats["manifest entries"] = len(manifest)
    stats["binary masks"] = sum(1 for im in images.values() if im.stats and im.stats.is_binary)
    stats["distinct pictures (pixel hash)"] = len({im.stats.pixel_sha256 for im in images.values() if im.stats})
    return stats


def build_report(
    scenarios: Sequence[Scenario],
    images: Mapping[str, ImageRecord],
    manifest: Mapping[str, ManifestImage],
    upstream: Sequence[UpstreamRow] = (),
) -> DataReport:
    """Runs every check (see the module docstring) on loaded records.

    Args:
        scenarios: all scenarios.
        images: image records by file name.
        manifest: manifest entries by file name (empty: no manifest).
        upstream: rows of the upstream train/val files.

    Returns:
        The :class:`DataReport`.
    """
    warnings = [
        *check_files(scenarios, images),
        *check_manifest(scenarios, images, manifest),
        *check_masks(scenarios, images),
        *_check_text(scenarios, images),
        *_check_shortcuts(scenarios, images),
        *check_duplicates(scenarios, images),
        *_check_wording(scenarios),
        *_check_upstream(scenarios, upstream),
    ]
    return DataReport(tuple(warnings), dataset_stats(scenarios, images, manifest))
