"""UI-PRMD Kinect recordings: forward kinematics from relative positions + Euler angles.

Each Kinect file has 22 joints x (x, y, z) per row at 30 Hz, in centimetres, y up. Joint 0
(waist) is absolute; every other joint is an offset expressed in its parent's frame. Absolute
positions follow from chaining rotations parent -> child::

    G[j] = G[parent(j)] @ R(angles[j]),   p[j] = p[parent(j)] + G[parent(j)] @ offset[j]

with ``G[0] = R(angles[0])``. The rotation convention was settled by measurement over all 36
permutations of axis order and column meaning: with columns (x, y, z) in degrees and
``R = Rz @ Rx @ Ry`` (a Y-X-Z sequence), both feet stay still during a deep squat (ankle
position spread 3.6 cm on m01_s01_e01; 14.8 cm for the next best convention, 23.9 cm for
``Rz @ Ry @ Rx``, the formula written in SOURCE.txt), the hands holding the dowel keep their distance
(std 1.5 cm) above the head, toes point to the camera and the left hip is on the subject's left.

Axes: Kinect camera space has x to the subject's left when they face the camera, y up and z
toward the camera. :func:`read_uiprmd` converts to ``world3d`` (metres, x right as seen
from the camera, y down, z away from the camera) = ``(x, -y, -z) / 100``.

Kinect has no eyes or ears: the nose is placed 60% of the way from the Head joint to the
HeadTip joint (visibility 1, an estimate); eyes and ears sit at that same point with
visibility 0, so nothing downstream treats them as measured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.video.layout import COCO, PoseSequence

UIPRMD_JOINTS: tuple[str, ...] = (
    "Waist",
    "Spine",
    "Chest",
    "Neck",
    "Head",
    "HeadTip",
    "LCollar",
    "LUpperArm",
    "LForearm",
    "LHand",
    "RCollar",
    "RUpperArm",
    "RForearm",
    "RHand",
    "LUpperLeg",
    "LLowerLeg",
    "LFoot",
    "LToes",
    "RUpperLeg",
    "RLowerLeg",
    "RFoot",
    "RToes",
)
# Chains 0-1-2-3-4-5; 2-6-7-8-9; 2-10-11-12-13; 0-14-15-16-17; 0-18-19-20-21.
UIPRMD_PARENT: tuple[int, ...] = (-1, 0, 1, 2, 3, 4, 2, 6, 7, 8, 2, 10, 11, 12, 0, 14, 15, 16, 0, 18, 19, 20)
UIPRMD_FPS = 30.0
NOSE_FRACTION = 0.6  # nose height between the Head and HeadTip joints

# COCO body joint -> UI-PRMD joint: the *UpperArm joint sits at the shoulder, *Forearm at the
# elbow, *Hand at the wrist; *UpperLeg at the hip, *LowerLeg at the knee, *Foot at the ankle.
_COCO_FROM_KINECT = {
    "left_shoulder": "LUpperArm",
    "right_shoulder": "RUpperArm",
    "left_elbow": "LForearm",
    "right_elbow": "RForearm",
    "left_wrist": "LHand",
    "right_wrist": "RHand",
    "left_hip": "LUpperLeg",
    "right_hip": "RUpperLeg",
    "left_knee": "LLowerLeg",
    "right_knee": "RLowerLeg",
    "left_ankle": "LFoot",
    "right_ankle": "RFoot",
}

_NAME_RE = re.compile(r"(m\d{2})_(s\d{2})_(e\d{2})_(positions|angles)(_inc)?\.txt(\.gz)?$")


def _rot_x(t: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(t), np.sin(t), np.ones_like(t), np.zeros_like(t)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(t: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(t), np.sin(t), np.ones_like(t), np.zeros_like(t)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(t: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(t), np.sin(t), np.ones_like(t), np.zeros_like(t)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def euler_to_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """UI-PRMD joint rotation ``Rz @ Rx @ Ry`` from (x, y, z) Euler angles in degrees.

    Args:
        angles_deg: ``[..., 3]`` rotations about x, y, z in degrees.

    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    return _rot_z(a[..., 2]) @ _rot_x(a[..., 0]) @ _rot_y(a[..., 1])


def forward_kinematics(offsets: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Absolute joint positions from UI-PRMD relative positions and joint angles.

    Args:
        offsets: ``[T, 22, 3]`` positions file (joint 0 absolute, others parent-relative), cm.
        angles_deg: ``[T, 22, 3]`` angles file, degrees.

    Returns:
        ``[T, 22, 3]`` absolute positions in the Kinect frame (cm, y up).

    Raises:
        ValueError: on mismatched or wrong shapes.
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    if offsets.shape != angles_deg.shape or offsets.ndim != 3 or offsets.shape[1:] != (22, 3):
        raise ValueError(f"need positions and angles of shape [T, 22, 3]; got {offsets.shape} and {angles_deg.shape}")
    local = euler_to_matrix(angles_deg)  # [T, 22, 3, 3]
    glob = np.empty_like(local)
    pos = np.empty_like(offsets)
    pos[:, 0] = offsets[:, 0]
    glob[:, 0] = local[:, 0]
    for j in range(1, 22):
        par = UIPRMD_PARENT[j]
        pos[:, j] = pos[:, par] + np.einsum("tij,tj->ti", glob[:, par], offsets[:, j])
        glob[:, j] = glob[:, par] @ local[:, j]
    return pos


def kinect_to_coco17(joints_cm: np.ndarray) -> np.ndarray:
    """Maps absolute UI-PRMD joints to COCO-17 in ``world3d`` (metres, x right, y down).

    Args:
        joints_cm: ``[T, 22, 3]`` absolute Kinect positions (cm, y up, z toward the camera).

    Returns:
        float32 ``[T, 17, 4]``; see the module docstring for the synthesised face points.
    """
    world = joints_cm * np.array([1.0, -1.0, -1.0]) / 100.0
    T = world.shape[0]
    out = np.zeros((T, 17, 4), dtype=np.float64)
    out[..., 3] = 1.0
    for coco_name, kin_name in _COCO_FROM_KINECT.items():
        out[:, COCO[coco_name], :3] = world[:, UIPRMD_JOINTS.index(kin_name)]
    head = world[:, UIPRMD_JOINTS.index("Head")]
    tip = world[:, UIPRMD_JOINTS.index("HeadTip")]
    nose = head + NOSE_FRACTION * (tip - head)
    for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        out[:, COCO[name], :3] = nose
        out[:, COCO[name], 3] = 1.0 if name == "nose" else 0.0
    bad = ~np.all(np.isfinite(out[..., :3]), axis=-1)
    out[..., 3][bad] = 0.0
    return out.astype(np.float32)


def angles_path_for(positions_path: str | Path) -> Path:
    """Derives the Angles file that belongs to a Kinect Positions file.

    Args:
        positions_path: e.g. ``.../Kinect/Positions/m01_s01_e01_positions.txt.gz``.

    Returns:
        e.g. ``.../Kinect/Angles/m01_s01_e01_angles.txt.gz``.

    Raises:
        ValueError: when the name does not look like a UI-PRMD positions file.
    """
    p = Path(positions_path)
    if not _NAME_RE.search(p.name) or "_positions" not in p.name:
        raise ValueError(f"{str(p)!r} is not a UI-PRMD positions file (mMM_sSS_eEE_positions[_inc].txt[.gz])")
    parent = p.parent.parent / "Angles" if p.parent.name == "Positions" else p.parent
    return parent / p.name.replace("_positions", "_angles")


def parse_uiprmd_name(path: str | Path) -> dict[str, object]:
    """Reads movement, subject, episode and correctness from a UI-PRMD file name.

    Args:
        path: a positions or angles file path.

    Returns:
        ``{"movement": "m01", "subject": "s01", "episode": 1, "correct": True}``.

    Raises:
        ValueError: when the name does not match the UI-PRMD pattern.
    """
    m = _NAME_RE.search(Path(path).name)
    if not m:
        raise ValueError(f"{str(path)!r} does not match mMM_sSS_eEE_(positions|angles)[_inc].txt[.gz]")
    return {"movement": m.group(1), "subject": m.group(2), "episode": int(m.group(3)[1:]), "correct": not m.group(5)}


def _load_table(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"UI-PRMD file not found: {path}")
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path} is not a numeric CSV: {exc}") from exc
    if table.shape[0] == 0 or table.shape[1] != 66:
        raise ValueError(
            f"{path} has {table.shape[1] if table.ndim == 2 else 0} columns; Kinect files have 66 (22 joints x 3)"
        )
    return table.reshape(-1, 22, 3)


def read_uiprmd(positions_path: str | Path, angles_path: str | Path | None = None) -> PoseSequence:
    """Reads a UI-PRMD Kinect recording into COCO-17 ``world3d`` keypoints.

    Args:
        positions_path: the relative-positions file (``.txt`` or ``.txt.gz``).
        angles_path: the matching angles file; derived with :func:`angles_path_for` if None.

    Returns:
        A :class:`PoseSequence` at 30 fps in ``world3d``.

    Raises:
        FileNotFoundError: when either file is missing.
        ValueError: on a malformed file or mismatched frame counts.
    """
    positions_path = Path(positions_path)
    angles_path = Path(angles_path) if angles_path is not None else angles_path_for(positions_path)
    offsets = _load_table(positions_path)
    angles = _load_table(angles_path)
    if offsets.shape[0] != angles.shape[0]:
        raise ValueError(
            f"{positions_path.name} has {offsets.shape[0]} frames but {angles_path.name} has {angles.shape[0]}"
        )
    joints = forward_kinematics(offsets, angles)
    meta: dict[str, Any] = {"positions_path": str(positions_path), "angles_path": str(angles_path)}
    try:
        meta.update(parse_uiprmd_name(positions_path))
    except ValueError:
        pass
    return PoseSequence(kinect_to_coco17(joints), UIPRMD_FPS, "world3d", 1.0, meta)
