"""Sixteen joint angles from COCO-17 keypoints: the feature set shared by seeds 000 and 003.

A pure numpy function, :func:`joint_angles`, that the guidance engine imports as is, and the
helpers every angle consumer shares: :func:`angle_index` (names -> columns), :data:`GROUPS`
(joint groups measured together) and :func:`resample_angles` (a fixed-rate window of a stream).

Geometry by coordinate space (decided by measurement, see below):

* ``world3d``: full 3D angles.
* ``image3d`` and ``image2d``: 2D angles in the image plane. MediaPipe's relative depth is
  not trusted: on the real squat video (tfjs ``pose_squats``), knee angles against the
  BlazePose world landmarks had a mean absolute error of 16.2 deg in 2D but 31.2 deg when
  the image z was used (hip: 11.3 vs 20.8 deg), so z is ignored.

Image coordinates are normalised by width and height separately; pass ``aspect``
(width / height) so x is rescaled to the units of y before measuring angles. Pixel
coordinates need ``aspect=1``.

Example:
    >>> import numpy as np
    >>> kp = np.zeros((17, 4)); kp[:, 3] = 1
    >>> kp[11, :2], kp[13, :2], kp[15, :2] = (0, 0), (0, 1), (1, 1)  # hip, knee, ankle
    >>> float(joint_angles(kp, "image2d")[ANGLE_NAMES.index("left_knee")])
    90.0
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from physio_ray.video.layout import COCO, COORD_SPACES, to_coco17

ANGLE_NAMES: tuple[str, ...] = (
    "left_elbow",  # shoulder-elbow-wrist; 180 = straight arm
    "right_elbow",
    "left_shoulder",  # hip-shoulder-elbow; 0 = arm along the trunk, 180 = overhead
    "right_shoulder",
    "left_hip",  # shoulder-hip-knee; 180 = standing straight, smaller = flexed
    "right_hip",
    "left_knee",  # hip-knee-ankle; 180 = straight leg
    "right_knee",
    "left_shank_incline",  # ankle->knee vs vertical up; 0 = vertical shin
    "right_shank_incline",
    "left_hip_abduction",  # knee-hip-other hip; ~90 neutral, > 90 abducted
    "right_hip_abduction",
    "trunk_lean",  # mid-hip->mid-shoulder vs vertical up; 0 = upright
    "shoulder_tilt",  # signed: > 0 when the left shoulder is lower than the right
    "pelvis_tilt",  # signed: > 0 when the left hip is lower than the right
    "neck",  # nose-mid shoulder-mid hip; 180 = head straight above the trunk
)
ANGLE_INDEX = {name: i for i, name in enumerate(ANGLE_NAMES)}
N_ANGLES = len(ANGLE_NAMES)

GROUPS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "knee": ("left_knee", "right_knee"),
        "hip": ("left_hip", "right_hip"),
        "shoulder": ("left_shoulder", "right_shoulder"),
        "elbow": ("left_elbow", "right_elbow"),
        "trunk": ("trunk_lean",),
        "neck": ("neck",),
    }
)
"""Joint groups measured together (a group's range of motion is that of its larger side)."""


def angle_index(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Column indices of angle ``names`` in :data:`ANGLE_NAMES`.

    Raises:
        KeyError: naming the unknown angle and the valid names.

    >>> angle_index(("left_knee", "right_knee")).tolist()
    [6, 7]
    """
    out = []
    for name in names:
        if name not in ANGLE_INDEX:
            raise KeyError(f"unknown angle {name!r}; valid names: {list(ANGLE_NAMES)}")
        out.append(ANGLE_INDEX[name])
    return np.asarray(out, dtype=np.int64)


def resample_angles(times_ms: np.ndarray, angles: np.ndarray, end_ms: float, span_s: float, hz: float) -> np.ndarray:
    """The angles of the last ``span_s`` seconds before ``end_ms`` on a fixed grid.

    Each grid point takes the latest sample at or before it (no look-ahead, as in a live
    stream); grid points before the first sample are NaN. A 5 fps recording and a 60 fps
    camera thus give a model the same input.

    Args:
        times_ms: ``[T]`` increasing sample times.
        angles: ``[T, 16]`` degrees.
        end_ms: time of the last grid point.
        span_s: window length in seconds.
        hz: grid rate.

    Returns:
        ``[round(span_s * hz), 16]`` degrees (NaN where nothing was seen).

    >>> resample_angles(np.array([0.0, 100.0, 200.0]), np.arange(3.0)[:, None].repeat(16, 1), 200.0, 0.4, 10.0)[:, 0]
    array([nan,  0.,  1.,  2.])
    """
    steps = max(1, int(round(span_s * hz)))
    grid = end_ms - np.arange(steps - 1, -1, -1, dtype=np.float64) * (1000.0 / hz)
    idx = np.searchsorted(np.asarray(times_ms, dtype=np.float64), grid + 1e-6, side="right") - 1
    out = np.full((steps, N_ANGLES), np.nan)
    ok = idx >= 0
    out[ok] = np.asarray(angles, dtype=np.float64)[idx[ok]]
    return out


_L, _R = "left_", "right_"


def _p(name: str) -> int:
    return COCO[name]


# Three-point angles: (a, vertex, c) per angle name.
_TRIPLETS: dict[str, tuple[int, int, int]] = {}
for _side, _other in ((_L, _R), (_R, _L)):
    _TRIPLETS[f"{_side}elbow"] = (_p(f"{_side}shoulder"), _p(f"{_side}elbow"), _p(f"{_side}wrist"))
    _TRIPLETS[f"{_side}shoulder"] = (_p(f"{_side}hip"), _p(f"{_side}shoulder"), _p(f"{_side}elbow"))
    _TRIPLETS[f"{_side}hip"] = (_p(f"{_side}shoulder"), _p(f"{_side}hip"), _p(f"{_side}knee"))
    _TRIPLETS[f"{_side}knee"] = (_p(f"{_side}hip"), _p(f"{_side}knee"), _p(f"{_side}ankle"))
    _TRIPLETS[f"{_side}hip_abduction"] = (_p(f"{_side}knee"), _p(f"{_side}hip"), _p(f"{_other}hip"))


_MID_SH, _MID_HIP, _ORIGIN, _UP = 17, 18, 19, 20  # helper points appended after the 17 keypoints


def _vector_pairs() -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Index arrays (a, b, c, d) and output columns: angle between P[a]-P[b] and P[c]-P[d]."""
    rows: list[tuple[str, int, int, int, int]] = []
    for name, (a, b, c) in _TRIPLETS.items():
        rows.append((name, a, b, c, b))
    for side in (_L, _R):
        rows.append((f"{side}shank_incline", _p(f"{side}knee"), _p(f"{side}ankle"), _UP, _ORIGIN))
    rows.append(("trunk_lean", _MID_SH, _MID_HIP, _UP, _ORIGIN))
    rows.append(("neck", _p("nose"), _MID_SH, _MID_HIP, _MID_SH))
    cols = np.array([ANGLE_INDEX[r[0]] for r in rows])
    return tuple(np.array([r[k] for r in rows]) for k in range(1, 5)), cols


_PAIRS, _PAIR_COLUMNS = _vector_pairs()


def _angle_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unsigned angle in degrees between vectors ``[..., D]`` (NaN for zero-length)."""
    nu = np.linalg.norm(u, axis=-1)
    nv = np.linalg.norm(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(u * v, axis=-1) / (nu * nv)
    cos = np.where((nu > 0) & (nv > 0), cos, np.nan)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _tilt(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Signed tilt (deg) of the right->left line vs horizontal; > 0 when left is lower (y down)."""
    d = left - right
    horizontal = np.linalg.norm(np.delete(d, 1, axis=-1), axis=-1)
    with np.errstate(invalid="ignore"):
        out = np.degrees(np.arctan2(d[..., 1], horizontal))
    return np.where(np.isfinite(horizontal), out, np.nan)


def joint_angles(
    keypoints: np.ndarray,
    coord_space: str,
    *,
    aspect: float = 1.0,
    min_visibility: float = 0.5,
) -> np.ndarray:
    """Computes the 16 :data:`ANGLE_NAMES` angles for every frame.

    Args:
        keypoints: ``[T, 17 | 33, C]`` or a single frame ``[17 | 33, C]``; C is 2 (x, y),
            3 (x, y, z) or 4 (x, y, z, visibility). 33-point BlazePose input is reduced
            with :func:`~physio_ray.video.layout.to_coco17`. x right, y down.
        coord_space: ``"world3d"`` (3D angles) or ``"image2d"`` / ``"image3d"`` (2D angles).
        aspect: frame width / height, applied to x for image spaces (use 1.0 for pixels).
        min_visibility: an angle is NaN when any point it needs is below this visibility.

    Returns:
        float32 ``[T, 16]`` degrees (``[16]`` for a single frame), NaN where not measurable.

    Raises:
        ValueError: for an unknown coord_space, a bad aspect, or a bad landmark layout.
    """
    if coord_space not in COORD_SPACES:
        raise ValueError(f"coord_space={coord_space!r} is not one of {COORD_SPACES}")
    if not (np.isfinite(aspect) and aspect > 0):
        raise ValueError(f"aspect={aspect} must be a positive number (frame width / height)")
    arr = np.asarray(keypoints, dtype=np.float64)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"keypoints must be [T, points, channels], got shape {np.shape(keypoints)}")
    kp = to_coco17(arr).astype(np.float64)

    if coord_space == "world3d":
        pts = kp[..., :3].copy()
        up = np.array([0.0, -1.0, 0.0])
    else:
        pts = kp[..., :2].copy()
        pts[..., 0] *= aspect
        up = np.array([0.0, -1.0])
    seen = (kp[..., 3] >= min_visibility) & np.all(np.isfinite(pts), axis=-1)
    pts[~seen] = np.nan  # every angle touching an unseen point becomes NaN

    # Every unsigned angle is between (P[a] - P[b]) and (P[c] - P[d]) over the 17 points plus
    # four helper points (mid-shoulder, mid-hip, origin, "up"): one vectorised call per batch.
    t = kp.shape[0]
    helpers = np.empty((t, 4, pts.shape[-1]))
    helpers[:, 0] = (pts[:, COCO["left_shoulder"]] + pts[:, COCO["right_shoulder"]]) / 2.0
    helpers[:, 1] = (pts[:, COCO["left_hip"]] + pts[:, COCO["right_hip"]]) / 2.0
    helpers[:, 2] = 0.0
    helpers[:, 3] = up
    ext = np.concatenate([pts, helpers], axis=1)
    a, b, c, d = _PAIRS
    out = np.full((t, len(ANGLE_NAMES)), np.nan)
    out[:, _PAIR_COLUMNS] = _angle_between(ext[:, a] - ext[:, b], ext[:, c] - ext[:, d])
    out[:, ANGLE_INDEX["shoulder_tilt"]] = _tilt(pts[:, COCO["left_shoulder"]], pts[:, COCO["right_shoulder"]])
    out[:, ANGLE_INDEX["pelvis_tilt"]] = _tilt(pts[:, COCO["left_hip"]], pts[:, COCO["right_hip"]])
    out = out.astype(np.float32)
    return out[0] if single else out
