"""The stateless half of the view-invariant cues: limb lengths and vertical distances of keypoints.

:class:`~physio_ray.guidance.cues.ViewCues` turns these per-frame measurements into cues with
its smoothers, reference-length windows and view estimate (the stateful half). Measuring is
split out so the batched engine measures every frame of a tick in one numpy call
(:func:`cue_geometry`) while one frame takes plain Python (:func:`geometry_row`, a tenth of
numpy's per-call overhead); distances are ``sqrt(dx * dx + dy * dy)``, IEEE-exact in both, so
the two give bit-identical rows.
"""

from __future__ import annotations

import math

import numpy as np

# COCO-17 indices.
NOSE, LSH, RSH, LEL, REL, LWR, RWR, LHIP, RHIP, LKN, RKN, LAN, RAN = 0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
_SEG_A = np.array([LHIP, LKN, RHIP, RKN, LSH, LEL, RSH, REL])  # limb segments: thigh, shank, ...
_SEG_B = np.array([LKN, LAN, RKN, RAN, LEL, LWR, REL, RWR])
_CHAINS = np.array([[LHIP, LKN, LAN], [RHIP, RKN, RAN], [LSH, LEL, LWR], [RSH, REL, RWR]])
_TOP = np.array([LHIP, RHIP, LSH, RSH])  # vertical distances: ankle - hip, wrist - shoulder
_BOTTOM = np.array([LAN, RAN, LWR, RWR])

G_LEG, G_ARM, G_TORSO, G_DY, G_SH_X, G_NOSE_X, G_BODY_X = 0, 1, 2, 3, 9, 10, 11
N_GEOMETRY = 12
"""Columns of :func:`cue_geometry` (``G_DY`` starts six vertical distances)."""
NUMPY_FROM = 8
"""From this many frames on, :func:`geometry_rows` measures them in one numpy call."""


def cue_geometry(
    coco: np.ndarray, aspect: float | np.ndarray = 1.0, min_visibility: float | np.ndarray = 0.3
) -> np.ndarray:
    """The stateless half of :meth:`ViewCues.push` for many frames at once: limb lengths and
    vertical distances of ``[M, 17, 4]`` keypoints, NaN where their points are not visible.

    Distances are ``sqrt(dx * dx + dy * dy)`` (IEEE-exact in numpy and in Python alike), so
    :func:`geometry_row`, the same computation on one frame in plain Python (a tenth of the
    cost of numpy's per-call overhead for one frame), gives bit-identical rows.

    Args:
        coco: ``[M, 17, 4]`` ``(x, y, z, visibility)`` normalised image coordinates.
        aspect: picture width over height, one for all or ``[M]`` (one per frame).
        min_visibility: visibility threshold, one for all or ``[M]``.

    Returns:
        ``[M, N_GEOMETRY]``: columns ``G_LEG`` / ``G_ARM`` (thigh + shank, upper arm + forearm,
        the longer visible side), ``G_TORSO`` (shoulder centre to hip centre), ``G_DY`` .. +5 (the
        vertical distances behind the first six cues: ankle - hip per side, wrist - shoulder
        per side, |left - right shoulder|, left - right shoulder), ``G_SH_X`` (left - right
        shoulder x), ``G_NOSE_X`` (nose x - shoulder centre x; NaN unless both shoulders and the
        nose are seen), ``G_BODY_X`` (mean of the shoulders' and hips' left - right x; NaN unless
        all four are seen).
    """
    p = np.asarray(coco, dtype=np.float64)
    x = p[:, :, 0] * np.reshape(np.asarray(aspect, dtype=np.float64), (-1, 1))
    y = p[:, :, 1]
    ok = (
        (p[:, :, 3] >= np.reshape(np.asarray(min_visibility, dtype=np.float64), (-1, 1)))
        & np.isfinite(x)
        & np.isfinite(y)
    )
    g = np.empty((p.shape[0], N_GEOMETRY))
    dx, dy = x[:, _SEG_A] - x[:, _SEG_B], y[:, _SEG_A] - y[:, _SEG_B]
    seg = np.sqrt(dx * dx + dy * dy)
    limbs = np.where(ok[:, _CHAINS].all(axis=2), seg[:, 0::2] + seg[:, 1::2], -1.0)  # leg L, R, arm L, R
    longest = np.maximum(limbs[:, 0::2], limbs[:, 1::2])  # leg, arm
    g[:, G_LEG : G_ARM + 1] = np.where(longest > 0, longest, np.nan)
    g[:, G_DY : G_DY + 4] = np.where(ok[:, _TOP] & ok[:, _BOTTOM], y[:, _BOTTOM] - y[:, _TOP], np.nan)
    shoulders = ok[:, LSH] & ok[:, RSH]
    body = shoulders & ok[:, LHIP] & ok[:, RHIP]
    mid_sh_x, mid_sh_y = 0.5 * (x[:, LSH] + x[:, RSH]), 0.5 * (y[:, LSH] + y[:, RSH])
    tx, ty = mid_sh_x - 0.5 * (x[:, LHIP] + x[:, RHIP]), mid_sh_y - 0.5 * (y[:, LHIP] + y[:, RHIP])
    sh_dx, sh_dy = x[:, LSH] - x[:, RSH], y[:, LSH] - y[:, RSH]
    rest = np.stack(
        [np.sqrt(tx * tx + ty * ty), np.abs(sh_dy), sh_dy, sh_dx, x[:, NOSE] - mid_sh_x,
         0.5 * (sh_dx + (x[:, LHIP] - x[:, RHIP]))], axis=1)  # fmt: skip
    seen = np.stack([body, shoulders, shoulders, shoulders, shoulders & ok[:, NOSE], body], axis=1)
    rest = np.where(seen, rest, np.nan)
    g[:, G_TORSO] = rest[:, 0]
    g[:, G_DY + 4 : G_DY + 6] = rest[:, 1:3]
    g[:, G_SH_X:] = rest[:, 3:]
    return g


def geometry_row(coco: np.ndarray | list, aspect: float = 1.0, min_visibility: float = 0.3) -> list[float]:
    """:func:`cue_geometry` of one ``[17, 4]`` frame in plain Python floats (bit-identical).

    Example:
        >>> frame = np.random.default_rng(0).uniform(0.2, 0.8, (17, 4))
        >>> row = geometry_row(frame, 0.8, 0.3)
        >>> np.array_equal(row, cue_geometry(frame[None], 0.8, 0.3)[0], equal_nan=True)
        True
    """
    nan = math.nan
    pts = coco.tolist() if isinstance(coco, np.ndarray) else coco
    x = [pt[0] * aspect for pt in pts]
    y = [pt[1] for pt in pts]
    ok = [pt[3] >= min_visibility and math.isfinite(a) and math.isfinite(b) for pt, a, b in zip(pts, x, y, strict=True)]

    def dist(a: int, b: int) -> float:
        dx, dy = x[a] - x[b], y[a] - y[b]
        return math.sqrt(dx * dx + dy * dy)

    def limb(chains: tuple[tuple[int, int, int], tuple[int, int, int]]) -> float:
        best = -1.0
        for a, b, c in chains:
            if ok[a] and ok[b] and ok[c]:
                best = max(best, dist(a, b) + dist(b, c))
        return best if best > 0 else nan

    g = [nan] * N_GEOMETRY
    g[G_LEG] = limb(((LHIP, LKN, LAN), (RHIP, RKN, RAN)))
    g[G_ARM] = limb(((LSH, LEL, LWR), (RSH, REL, RWR)))
    for k, (top, bottom) in enumerate(((LHIP, LAN), (RHIP, RAN), (LSH, LWR), (RSH, RWR))):
        if ok[top] and ok[bottom]:
            g[G_DY + k] = y[bottom] - y[top]
    if ok[LSH] and ok[RSH]:
        mid_sh_x, mid_sh_y = 0.5 * (x[LSH] + x[RSH]), 0.5 * (y[LSH] + y[RSH])
        sh_dx, sh_dy = x[LSH] - x[RSH], y[LSH] - y[RSH]
        g[G_DY + 4], g[G_DY + 5], g[G_SH_X] = abs(sh_dy), sh_dy, sh_dx
        if ok[NOSE]:
            g[G_NOSE_X] = x[NOSE] - mid_sh_x
        if ok[LHIP] and ok[RHIP]:
            tx, ty = mid_sh_x - 0.5 * (x[LHIP] + x[RHIP]), mid_sh_y - 0.5 * (y[LHIP] + y[RHIP])
            g[G_TORSO] = math.sqrt(tx * tx + ty * ty)
            g[G_BODY_X] = 0.5 * (sh_dx + (x[LHIP] - x[RHIP]))
    return g


def geometry_rows(coco: np.ndarray, aspect: np.ndarray, min_visibility: np.ndarray) -> list[list[float]]:
    """Geometry rows of ``[M, 17, 4]`` frames with per-frame settings: one numpy call for a
    batch (cheaper per frame from ~8 frames on), plain Python for a few (the same numbers)."""
    if len(coco) >= NUMPY_FROM:
        return cue_geometry(coco, aspect, min_visibility).tolist()
    return [geometry_row(f, float(a), float(v)) for f, a, v in zip(coco, aspect, min_visibility, strict=True)]
