"""The one keypoint layout every pose source is converted to: COCO-17 ``[T, 17, 4]``.

Channels are ``(x, y, z, visibility)`` with x pointing right and y pointing down, in one of
three coordinate spaces (``physio_ray.schemas.COORD_SPACE``):

* ``image2d``: x, y normalised by the frame width / height (0..1); z is NaN.
* ``image3d``: as ``image2d`` plus MediaPipe's relative depth in z (same scale as x).
* ``world3d``: metres, x to the viewer's right, y down, z away from the camera.

Normalised image coordinates are anisotropic when the frame is not square; the
``aspect`` (width / height) of the frame travels with a :class:`PoseSequence` so angles
can be measured in isotropic units (see :func:`physio_ray.video.angles.joint_angles`).

Example:
    >>> import numpy as np
    >>> to_coco17(np.zeros((5, 33, 3))).shape
    (5, 17, 4)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO = {name: i for i, name in enumerate(COCO17_NAMES)}

BLAZEPOSE33_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
# BlazePose index of each COCO-17 point, in COCO order.
BLAZEPOSE_TO_COCO: tuple[int, ...] = tuple(BLAZEPOSE33_NAMES.index(n) for n in COCO17_NAMES)

COORD_SPACES = ("image2d", "image3d", "world3d")
SOURCE_KINDS = ("video", "uiprmd", "keraal", "tfjs", "movenet")

# Joints that must be seen for a frame to count as "a person is visible": the torso only, so
# close-up recordings of arm exercises (knees out of frame) still count.
CORE_JOINTS: tuple[int, ...] = tuple(COCO[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))


@dataclass
class PoseSequence:
    """A landmark sequence in the common layout, as every reader returns it.

    Attributes:
        keypoints: float32 ``[T, 17, 4]`` (x, y, z, visibility), see the module docstring.
        fps: frames per second.
        coord_space: ``"image2d"`` | ``"image3d"`` | ``"world3d"``.
        aspect: frame width / height for image spaces (1.0 for world3d).
        meta: free-form provenance (paths, frame size, assumptions made by the reader).
    """

    keypoints: np.ndarray
    fps: float
    coord_space: str
    aspect: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 3 or kp.shape[1:] != (17, 4):
            raise ValueError(f"keypoints must be [T, 17, 4], got shape {kp.shape}")
        if self.coord_space not in COORD_SPACES:
            raise ValueError(f"coord_space={self.coord_space!r} is not one of {COORD_SPACES}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps={self.fps} must be a positive number")
        if not (np.isfinite(self.aspect) and self.aspect > 0):
            raise ValueError(f"aspect={self.aspect} must be a positive number (width / height)")
        self.keypoints = kp

    @property
    def n_frames(self) -> int:
        return int(self.keypoints.shape[0])


def to_coco17(arr: np.ndarray, third: str = "z") -> np.ndarray:
    """Converts 33-point BlazePose or 17-point COCO landmarks to COCO-17 ``[..., 17, 4]``.

    Args:
        arr: ``[..., 33 | 17, 2 | 3 | 4]`` landmarks. Two channels are (x, y); three are
            (x, y, z) or (x, y, visibility) depending on ``third``; four are
            (x, y, z, visibility).
        third: meaning of the third channel when there are exactly three:
            ``"z"`` or ``"visibility"``.

    Returns:
        float32 ``[..., 17, 4]``; missing z is NaN and missing visibility is 1.0. Points whose
        x or y is not finite get visibility 0.

    Raises:
        ValueError: when the landmark count is not 17 or 33, or the channel count not 2..4.
    """
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim < 2:
        raise ValueError(f"landmarks need shape [..., points, channels], got {a.shape}")
    n_points, n_ch = a.shape[-2], a.shape[-1]
    if n_points == 33:
        a = a[..., BLAZEPOSE_TO_COCO, :]
    elif n_points != 17:
        raise ValueError(f"expected 17 (COCO) or 33 (BlazePose) landmarks per frame, got {n_points}")
    if n_ch not in (2, 3, 4):
        raise ValueError(f"expected 2, 3 or 4 channels per landmark, got {n_ch}")
    if third not in ("z", "visibility"):
        raise ValueError(f"third={third!r} must be 'z' or 'visibility'")
    out = np.full(a.shape[:-1] + (4,), np.nan, dtype=np.float32)
    out[..., :2] = a[..., :2]
    out[..., 3] = 1.0
    if n_ch == 4:
        out[..., 2:] = a[..., 2:]
    elif n_ch == 3 and third == "z":
        out[..., 2] = a[..., 2]
    elif n_ch == 3:
        out[..., 3] = a[..., 2]
    return mark_missing(out)


def mark_missing(kp: np.ndarray) -> np.ndarray:
    """Sets visibility to 0 where x or y is not finite (in place) and returns ``kp``.

    Args:
        kp: ``[..., 4]`` keypoints.

    Returns:
        The same array, with NaN visibilities also replaced by 0.
    """
    bad = ~np.isfinite(kp[..., 0]) | ~np.isfinite(kp[..., 1]) | ~np.isfinite(kp[..., 3])
    kp[..., 3] = np.where(bad, 0.0, kp[..., 3])
    return kp


def visible_fraction(kp: np.ndarray, min_visibility: float = 0.5) -> float:
    """Share of frames where all core joints (shoulders and hips) are visible.

    Args:
        kp: ``[T, 17, 4]`` keypoints.
        min_visibility: visibility threshold.

    Returns:
        A fraction in 0..1 (0.0 for an empty sequence).
    """
    if kp.shape[0] == 0:
        return 0.0
    core = kp[:, CORE_JOINTS, :]
    ok = np.all((core[..., 3] >= min_visibility) & np.isfinite(core[..., 0]) & np.isfinite(core[..., 1]), axis=1)
    return float(ok.mean())
