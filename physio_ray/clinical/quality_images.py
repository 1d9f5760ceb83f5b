"""Data-quality checks of the clinical image files: presence, provenance, masks, duplicates.

Each check is a rule applied to every image (nothing names a particular file) and returns
:class:`~physio_ray.clinical.records.DataWarning` items; :func:`physio_ray.clinical.quality.build_report`
runs them with the text and label checks (the codes are listed in that module's docstring).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from physio_ray.clinical.consistency import class_from_source, denies_lesion
from physio_ray.clinical.records import DataWarning, ImageRecord, ManifestImage, Scenario

__all__ = ["NEAR_DUPLICATE_BITS", "check_duplicates", "check_files", "check_manifest", "check_masks"]

NEAR_DUPLICATE_BITS = 4


def check_files(scenarios: Sequence[Scenario], images: Mapping[str, ImageRecord]) -> list[DataWarning]:
    out = []
    for name, im in images.items():
        users = tuple(s.id for s in scenarios if s.image_file == name)
        if im.path is None:
            out.append(
                DataWarning(
                    "image_file_missing",
                    "error",
                    (name, *users),
                    f"{name} is named by {len(users)} scenarios but not in images/",
                )
            )
        elif im.read_error:
            out.append(DataWarning("image_unreadable", "error", (name,), f"{name}: {im.read_error}"))
        elif not users:
            out.append(DataWarning("image_unused", "info", (name,), f"{name} is in images/ but no scenario uses it"))
    return out


def _format_twins(name: str, images: Mapping[str, ImageRecord]) -> str:
    """Which listed images share this file's mode and size (a hint at its likely source)."""
    st = images[name].stats
    if st is None:
        return ""
    twins = Counter(
        im.manifest.dataset
        for im in images.values()
        if im.manifest is not None
        and im.stats is not None
        and (im.stats.mode, im.stats.width, im.stats.height) == (st.mode, st.width, st.height)
    )
    if not twins:
        return ""
    ds, n = twins.most_common(1)[0]
    return f"; its format (mode {st.mode!r}, {st.width}x{st.height}) matches {n} manifest images from {ds!r}"


def check_manifest(
    scenarios: Sequence[Scenario], images: Mapping[str, ImageRecord], manifest: Mapping[str, ManifestImage]
) -> list[DataWarning]:
    if not manifest:
        return [DataWarning("manifest_absent", "warning", (), "no manifest.json: image provenance cannot be checked")]
    out = []
    for name in sorted(images):
        if name in manifest:
            continue
        users = [s for s in scenarios if s.image_file == name]
        out.append(
            DataWarning(
                "image_missing_from_manifest",
                "warning",
                (name, *(s.id for s in users)),
                f"{name} is used by {len(users)} scenarios ({', '.join(s.key for s in users)}) but the manifest "
                f"({len(manifest)} images for {len(images)} files) has no entry: upstream class, source file and "
                f"licence unknown, so its findings cannot be checked against the image{_format_twins(name, images)}",
            )
        )
    embedded = {k for m in manifest.values() for k in m.scenario_keys}
    absent = [s for s in scenarios if s.key not in embedded]
    if absent:
        out.append(
            DataWarning(
                "scenario_missing_from_manifest",
                "info",
                tuple(s.id for s in absent),
                f"{len(absent)} of {len(scenarios)} scenarios are not embedded in the manifest: {', '.join(s.key for s in absent)}",
            )
        )
    for name, m in manifest.items():
        if name not in images:
            out.append(
                DataWarning(
                    "manifest_file_missing", "error", (name,), f"manifest lists {name}, which is not in images/"
                )
            )
        path_class = class_from_source(m.modality, m.source_file)
        if path_class is not None and m.manifest_class.lower() != path_class.lower():
            out.append(
                DataWarning(
                    "manifest_class_mismatch",
                    "warning",
                    (name,),
                    f"manifest class {m.manifest_class!r} but source file {m.source_file!r} is in class folder {path_class!r}",
                )
            )
    return out


def check_masks(scenarios: Sequence[Scenario], images: Mapping[str, ImageRecord]) -> list[DataWarning]:
    out = []
    for name, im in images.items():
        if im.stats is None or not im.stats.is_binary:
            continue
        src = im.manifest.source_file if im.manifest else "no manifest entry"
        out.append(
            DataWarning(
                "segmentation_mask",
                "warning",
                (name,),
                f"{name} has {im.stats.grey_levels} grey levels (mode {im.stats.mode!r}): a segmentation mask, not a scan; "
                f"drawn area {im.stats.foreground_fraction:.2%}; source {src!r}",
            )
        )
        lesion = im.stats.foreground_fraction > 0
        for s in scenarios:
            denied = denies_lesion(s.clinical_finding)
            if s.image_file == name and lesion and denied:
                out.append(
                    DataWarning(
                        "mask_contradicts_finding",
                        "warning",
                        (s.id, name),
                        f"{s.id}: finding {s.clinical_finding!r} says {denied} but the mask {name} draws a lesion over "
                        f"{im.stats.foreground_fraction:.2%} of the image",
                    )
                )
    return out


def check_duplicates(scenarios: Sequence[Scenario], images: Mapping[str, ImageRecord]) -> list[DataWarning]:
    out = []
    by_hash: dict[str, list[str]] = defaultdict(list)
    for name, im in images.items():
        if im.stats is not None:
            by_hash[im.stats.pixel_sha256].append(name)
    for names in by_hash.values():
        if len(names) > 1:
            out.append(
                DataWarning("duplicate_image", "warning", tuple(sorted(names)), f"same pixels under {len(names)} names")
            )
    scans = [(n, im.stats) for n, im in sorted(images.items()) if im.stats is not None and not im.stats.is_binary]
    near = [
        (a, b, bin(sa.dhash ^ sb.dhash).count("1"))
        for i, (a, sa) in enumerate(scans)
        for b, sb in scans[i + 1 :]
        if sa.pixel_sha256 != sb.pixel_sha256 and bin(sa.dhash ^ sb.dhash).count("1") <= NEAR_DUPLICATE_BITS
    ]
    for a, b, d in near:
        out.append(DataWarning("near_duplicate_images", "info", (a, b), f"difference hashes differ in {d} of 64 bits"))
    uses = Counter(s.image_file for s in scenarios)
    shared = {n: c for n, c in uses.items() if c > 1}
    if shared:
        out.append(
            DataWarning(
                "image_shared",
                "info",
                tuple(sorted(shared)),
                f"{len(shared)} images are used by several scenarios (up to {max(shared.values())}): split by image, "
                f"not by scenario (physio_ray.clinical.splits)",
            )
        )
    return out
