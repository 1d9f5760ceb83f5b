"""The measured-evidence block a question carries and a solver reads.

The question stage writes it into the stem's context; the sampler sees :data:`EVIDENCE_HEADER`
in a question and then does not repeat the measurements in its prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Opens the measurements block of a question stem; the solution prompt then does not repeat them.
EVIDENCE_HEADER = "Measured movement data (from pose landmarks):"

_LABELS = {
    "rep_count": "repetitions counted",
    "knee_min_deg": "smallest knee angle (deg)",
    "knee_max_deg": "largest knee angle (deg)",
    "hip_min_deg": "smallest hip angle (deg)",
    "hip_max_deg": "largest hip angle (deg)",
    "trunk_lean_bottom_deg": "trunk lean at the bottom (deg from vertical)",
    "shoulder_max_deg": "peak shoulder elevation (deg)",
    "rep_duration_s": "mean repetition duration (s)",
    "visible_fraction": "fraction of frames with the person visible",
    "depth_deg": "deepest angle of the moving joint (deg)",
    "best_extreme_deg": "best extreme of the moving joint (deg)",
    "range_of_motion_deg": "range of motion of the moving joint (deg)",
    "rep_extreme_deg": "extreme angle of each repetition (deg)",
    "partial_reps": "partial repetitions",
    "duration_s": "recording duration (s)",
    "descent_s": "descent duration (s)",
    "ascent_s": "ascent duration (s)",
    "driving_angle": "moving joint",
    "knee_asymmetry_at_working_deg": "left-right knee difference at the bottom (deg)",
    "trunk_lean_at_working_deg": "trunk lean at the bottom (deg from vertical)",
}
# Keys a reader does not need (frame bookkeeping, duplicates of a named statistic).
_SKIP = ("exercise", "exercise_name", "fps", "n_frames", "best_extreme_deg")
# Named statistics read from the keyframe stage's angle_min / angle_max dicts, in the words the
# measurement check reads back (physio_ray.annotate.measurement_claims): label, dict, joint, combine.
_NAMED: tuple[tuple[str, str, str, str], ...] = (
    ("smallest knee angle", "angle_min", "knee", "mean"),
    ("largest knee angle", "angle_max", "knee", "mean"),
    ("smallest hip angle", "angle_min", "hip", "mean"),
    ("largest hip angle", "angle_max", "hip", "mean"),
    ("peak shoulder elevation", "angle_max", "shoulder", "max"),
    ("largest trunk lean", "angle_max", "trunk_lean", "one"),
)
_MAX_EVIDENCE_ITEMS = 11
# Scalars the question templates answer from, listed before any other so that the cut at
# _MAX_EVIDENCE_ITEMS never drops them: it once dropped the trunk lean at the bottom from 490 of
# 655 trunk-lean questions on UI-PRMD, which then showed only the largest lean (another band).
_FIRST = ("trunk_lean_bottom_deg", "trunk_lean_at_working_deg", "rep_duration_s", "rep_count")


def named_statistics(features: Mapping[str, Any]) -> list[str]:
    """Joint statistics in plain words, e.g. ``"- smallest knee angle: 72.3 deg"``.

    Left and right are averaged (the larger one for the shoulder: the raised arm); a joint
    missing from the features is left out.

    >>> named_statistics({"angle_min": {"left_knee": 70.0, "right_knee": 74.6}})
    ['- smallest knee angle: 72.3 deg']
    """
    out = []
    for label, table, joint, combine in _NAMED:
        values = features.get(table)
        if not isinstance(values, Mapping):
            continue
        keys = (joint,) if combine == "one" else (f"left_{joint}", f"right_{joint}")
        found = [float(v) for k in keys if isinstance(v := values.get(k), (int, float)) and np.isfinite(v)]
        if found:
            value = max(found) if combine == "max" else sum(found) / len(found)
            out.append(f"- {label}: {value:.1f} deg")
    return out


def _fmt(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if np.isfinite(value) else None
    if isinstance(value, str) and len(value) <= 40:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        shown = ", ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in value[:8])
        return f"[{shown}{', ...' if len(value) > 8 else ''}]"
    return None


def evidence_block(
    features: Mapping[str, Any],
    keyframe_times: Sequence[float] | None = None,
    hide: Sequence[str] = (),
    keyframe_kinds: Sequence[str] | None = None,
) -> str:
    """Short text of the measured features, so a solver has evidence.

    Args:
        features: the keyframe stage's features dict.
        keyframe_times: keyframe times in seconds (shown when given).
        hide: feature keys to leave out (the ones a question asks about directly).
        keyframe_kinds: ``"start" | "bottom" | "top" | ...`` per keyframe, shown beside the times.

    Returns:
        Lines such as ``"- smallest knee angle: 62.3 deg"`` under a heading ("" if empty): the
        named joint statistics first (:func:`named_statistics`), then the scalars the question
        templates answer from (trunk lean at the bottom, repetition duration, count), then the rest.
    """
    lines = named_statistics(features)
    first = [k for k in _FIRST if k in features]
    for key in [*first, *(k for k in features if k not in first)]:
        value = features[key]
        if key in hide or key in _SKIP:
            continue
        shown = _fmt(value)
        if shown is not None:
            lines.append(f"- {_LABELS.get(key, key.replace('_', ' '))}: {shown}")
        if len(lines) >= _MAX_EVIDENCE_ITEMS:
            break
    if keyframe_times is not None and len(keyframe_times):
        times = [f"{float(t):.1f}" for t in list(keyframe_times)[:_MAX_EVIDENCE_ITEMS]]
        if keyframe_kinds is not None and len(keyframe_kinds) == len(keyframe_times):
            lines.append("- keyframes: " + ", ".join(f"{k} {t} s" for k, t in zip(keyframe_kinds, times, strict=False)))
        else:
            lines.append(f"- keyframe times (s): {', '.join(times)}")
    return EVIDENCE_HEADER + "\n" + "\n".join(lines) if lines else ""
