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
}
_MAX_EVIDENCE_ITEMS = 14


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
        Lines such as ``"- smallest knee angle (deg): 62.3"`` under a heading ("" if empty).
    """
    lines = []
    for key, value in features.items():
        if key in hide or key in ("exercise", "exercise_name"):
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
