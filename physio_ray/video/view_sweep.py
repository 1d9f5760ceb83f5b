"""The view sweep's material: 3D recordings as BlazePose-33 world points, single and 10-rep clips.

Sources (every 3D recording we ship; see the SOURCE.txt files of ``ui-prmd`` and ``keraal``):

* ``uiprmd-kinect``: UI-PRMD Kinect, 30 Hz, absolute joints by forward kinematics
  (:func:`physio_ray.video.uiprmd.forward_kinematics`), subjects s01, s03-s10, e01-e10;
* ``uiprmd-vicon``: UI-PRMD Vicon Plug-in-Gait markers, 100 Hz, s01 e01-e02;
* ``keraal-kinect``: KERAAL Kinect v2 joints, 30 Hz, participant P1, one repetition each.

Each is converted to metres with z up and mapped to the 33 BlazePose points. Points the
sensor does not give are placed by fixed offsets (a stated model, not a measurement): face
points around the head centre along the head's facing direction (Vicon: the head markers;
Kinect: the shoulders' facing), finger points along the forearm beyond the wrist (Kinect v1),
heels behind and below the ankle (Kinect). Vicon joint centres: hips from the pelvis markers
(36% lateral, 19% posterior, 30% inferior of the inter-ASIS width, after Bell et al.), knees
and ankles 5 and 3.5 cm medial of their lateral markers.

A 10-rep sequence joins the segmented repetitions of one subject, movement and execution
label in episode order (cycling when there are fewer than 10: Vicon has 2, KERAAL 1) with a
``transition_s`` linear blend between the end of one and the start of the next.

Subjects are split for tuning (:data:`TUNING_SUBJECTS`) versus held out (everything else,
including KERAAL's participant): tune thresholds on the first, report goals on the second.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physio_ray.video.exercises import KERAAL_EXERCISES, UIPRMD_MOVEMENTS
from physio_ray.video.layout import BLAZEPOSE33_NAMES
from physio_ray.video.uiprmd import UIPRMD_JOINTS, angles_path_for, forward_kinematics, parse_uiprmd_name

B = {name: i for i, name in enumerate(BLAZEPOSE33_NAMES)}
UP = np.array([0.0, 0.0, 1.0])
TUNING_SUBJECTS: tuple[str, ...] = ("s01", "s03", "s04", "s05", "s06")
"""UI-PRMD subjects a counter may be tuned on; s07-s10 and KERAAL's P1 are held out (s02 is not shipped)."""
VICON_MARKERS: tuple[str, ...] = tuple(
    "LFHD RFHD LBHD RBHD C7 T10 CLAV STRN RBAK LSHO LUPA LELB LFRM LWRA LWRB LFIN RSHO RUPA RELB RFRM RWRA RWRB RFIN "
    "LASI RASI LPSI RPSI LTHI LKNE LTIB LANK LHEE LTOE RTHI RKNE RTIB RANK RHEE RTOE".split()
)
KERAAL_JOINTS: tuple[str, ...] = tuple(
    "SpineBase SpineMid Neck Head ShoulderLeft ElbowLeft WristLeft HandLeft ShoulderRight ElbowRight WristRight "
    "HandRight HipLeft KneeLeft AnkleLeft FootLeft HipRight KneeRight AnkleRight FootRight SpineShoulder "
    "HandTipLeft ThumbLeft HandTipRight ThumbRight".split()
)
_KINECT_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # (x, y up, z) -> (x, -z, y)


@dataclass(frozen=True)
class MotionClip:
    """One segmented repetition in 3D.

    Attributes:
        source: ``uiprmd-kinect``, ``uiprmd-vicon`` or ``keraal-kinect``.
        subject: ``s01``.. or ``P1``.
        exercise: canonical exercise name.
        episode: repetition number within the subject's recording.
        correct: the dataset's execution label.
        points: ``[T, 33, 3]`` BlazePose-ordered world positions, metres, z up.
        fps: frame rate.
    """

    source: str
    subject: str
    exercise: str
    episode: int
    correct: bool
    points: np.ndarray
    fps: float

    @property
    def split(self) -> str:
        """``tuning`` or ``heldout``."""
        return split_of(self.subject)


def split_of(subject: str) -> str:
    """``tuning`` for :data:`TUNING_SUBJECTS`, else ``heldout``."""
    return "tuning" if subject in TUNING_SUBJECTS else "heldout"


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-9, n, np.nan)


def _horizontal(v: np.ndarray) -> np.ndarray:
    return v - (v @ UP)[..., None] * UP


def _face(out: np.ndarray, centre: np.ndarray, fwd: np.ndarray, left: np.ndarray) -> None:
    """Face points (metres) around the head centre along the head's forward and left axes."""
    up = UP

    def at(f: float, u: float, s: float) -> np.ndarray:
        return centre + f * fwd + u * up + s * left

    out[:, B["nose"]] = at(0.10, -0.02, 0.0)
    for side, s in (("left", 1.0), ("right", -1.0)):
        out[:, B[f"{side}_eye_inner"]] = at(0.085, 0.02, 0.015 * s)
        out[:, B[f"{side}_eye"]] = at(0.08, 0.02, 0.03 * s)
        out[:, B[f"{side}_eye_outer"]] = at(0.075, 0.02, 0.045 * s)
        out[:, B[f"{side}_ear"]] = at(0.0, 0.0, 0.075 * s)
        out[:, B[f"mouth_{side}"]] = at(0.085, -0.06, 0.025 * s)


def _hands_along_forearm(out: np.ndarray) -> None:
    for side in ("left", "right"):
        wrist, elbow = out[:, B[f"{side}_wrist"]], out[:, B[f"{side}_elbow"]]
        d = _unit(wrist - elbow)
        for name, reach in (("index", 0.09), ("pinky", 0.075), ("thumb", 0.045)):
            out[:, B[f"{side}_{name}"]] = wrist + reach * d


def _heels(out: np.ndarray) -> None:
    for side in ("left", "right"):
        ankle, toe = out[:, B[f"{side}_ankle"]], out[:, B[f"{side}_foot_index"]]
        out[:, B[f"{side}_heel"]] = ankle - 0.3 * _horizontal(toe - ankle) - 0.06 * UP


def _shoulder_axes(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    left = _unit(_horizontal(out[:, B["left_shoulder"]] - out[:, B["right_shoulder"]]))
    return np.cross(left, UP), left


def uiprmd_kinect_points(offsets: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """UI-PRMD Kinect positions + angles files -> ``[T, 33, 3]`` (metres, z up).

    Args:
        offsets: ``[T, 22, 3]`` positions file (parent-relative, cm).
        angles_deg: ``[T, 22, 3]`` angles file.

    Returns:
        BlazePose-ordered world points.
    """
    j = forward_kinematics(offsets, angles_deg) @ _KINECT_TO_ZUP.T / 100.0
    k = {name: j[:, i] for i, name in enumerate(UIPRMD_JOINTS)}
    out = np.full((j.shape[0], 33, 3), np.nan)
    for side, s in (("left", "L"), ("right", "R")):
        for bp, kin in (
            ("shoulder", "UpperArm"),
            ("elbow", "Forearm"),
            ("wrist", "Hand"),
            ("hip", "UpperLeg"),
            ("knee", "LowerLeg"),
            ("ankle", "Foot"),
            ("foot_index", "Toes"),
        ):
            out[:, B[f"{side}_{bp}"]] = k[s + kin]
    fwd, left = _shoulder_axes(out)
    _face(out, 0.5 * (k["Head"] + k["HeadTip"]), fwd, left)
    _hands_along_forearm(out)
    _heels(out)
    return out


def vicon_points(markers_mm: np.ndarray) -> np.ndarray:
    """UI-PRMD Vicon markers ``[T, 39, 3]`` (mm, z up) -> ``[T, 33, 3]`` (metres, z up).

    Args:
        markers_mm: Plug-in-Gait markers in :data:`VICON_MARKERS` order.

    Returns:
        BlazePose-ordered world points (joint centres as in the module docstring).
    """
    m = {name: markers_mm[:, i] / 1000.0 for i, name in enumerate(VICON_MARKERS)}
    out = np.full((markers_mm.shape[0], 33, 3), np.nan)
    lat = _unit(m["LASI"] - m["RASI"])
    mid_asi, mid_psi = 0.5 * (m["LASI"] + m["RASI"]), 0.5 * (m["LPSI"] + m["RPSI"])
    back = mid_asi - mid_psi
    fwd_p = _unit(back - (back * lat).sum(-1, keepdims=True) * lat)
    up_p = np.cross(fwd_p, lat)
    width = np.linalg.norm(m["LASI"] - m["RASI"], axis=-1, keepdims=True)
    for side, s, x in (("left", 1.0, "L"), ("right", -1.0, "R")):
        out[:, B[f"{side}_hip"]] = mid_asi + width * (0.36 * s * lat - 0.19 * fwd_p - 0.30 * up_p)
        out[:, B[f"{side}_knee"]] = m[x + "KNE"] - 0.05 * s * lat
        out[:, B[f"{side}_ankle"]] = m[x + "ANK"] - 0.035 * s * lat
        out[:, B[f"{side}_heel"]] = m[x + "HEE"]
        out[:, B[f"{side}_foot_index"]] = m[x + "TOE"]
        out[:, B[f"{side}_shoulder"]] = m[x + "SHO"]
        out[:, B[f"{side}_elbow"]] = m[x + "ELB"]
        out[:, B[f"{side}_wrist"]] = 0.5 * (m[x + "WRA"] + m[x + "WRB"])
        out[:, B[f"{side}_index"]] = m[x + "FIN"]
        out[:, B[f"{side}_thumb"]] = 0.5 * (m[x + "WRA"] + m[x + "FIN"])
        out[:, B[f"{side}_pinky"]] = 0.5 * (m[x + "WRB"] + m[x + "FIN"])
    front, rear = 0.5 * (m["LFHD"] + m["RFHD"]), 0.5 * (m["LBHD"] + m["RBHD"])
    head_left = _unit(_horizontal(m["LFHD"] - m["RFHD"] + m["LBHD"] - m["RBHD"]))
    _face(out, 0.5 * (front + rear) - 0.03 * UP, _unit(front - rear), head_left)
    return out


def keraal_kinect_points(table: np.ndarray) -> np.ndarray:
    """KERAAL Kinect v2 rows (25 joints x position + quaternion) -> ``[T, 33, 3]`` (metres, z up).

    Args:
        table: ``[T, 175]`` as in ``G3-Kinect-*.txt``.

    Returns:
        BlazePose-ordered world points.

    Raises:
        ValueError: for a wrong column count.
    """
    if table.ndim != 2 or table.shape[1] != 175:
        raise ValueError(f"KERAAL Kinect rows have 175 values (25 joints x 7), got shape {table.shape}")
    j = table.reshape(-1, 25, 7)[..., :3] @ _KINECT_TO_ZUP.T
    k = {name: j[:, i] for i, name in enumerate(KERAAL_JOINTS)}
    out = np.full((j.shape[0], 33, 3), np.nan)
    for side, s in (("left", "Left"), ("right", "Right")):
        for bp, kin in (
            ("shoulder", "Shoulder"),
            ("elbow", "Elbow"),
            ("wrist", "Wrist"),
            ("hip", "Hip"),
            ("knee", "Knee"),
            ("ankle", "Ankle"),
            ("foot_index", "Foot"),
            ("index", "HandTip"),
            ("thumb", "Thumb"),
            ("pinky", "Hand"),
        ):
            out[:, B[f"{side}_{bp}"]] = k[kin + s]
    fwd, left = _shoulder_axes(out)
    _face(out, k["Head"], fwd, left)
    _heels(out)
    return out


def _uiprmd_clips(root: Path, subjects: set[str] | None, include_incorrect: bool) -> Iterable[MotionClip]:
    for folder, correct in (("Segmented_Movements", True), ("Incorrect_Segmented_Movements", False)):
        if not correct and not include_incorrect:
            continue
        for path in sorted((root / folder / "Kinect" / "Positions").glob("m*_s*_e*_positions*.txt*")):
            meta = parse_uiprmd_name(path)
            if subjects is not None and meta["subject"] not in subjects:
                continue
            offsets = np.loadtxt(path, delimiter=",", ndmin=2).reshape(-1, 22, 3)
            angles = np.loadtxt(angles_path_for(path), delimiter=",", ndmin=2).reshape(-1, 22, 3)
            pts = uiprmd_kinect_points(offsets, angles)
            ex = UIPRMD_MOVEMENTS[str(meta["movement"])]
            yield MotionClip("uiprmd-kinect", str(meta["subject"]), ex, int(str(meta["episode"])), correct, pts, 30.0)
        for path in sorted((root / folder / "Vicon" / "Positions").glob("m*_s*_e*_positions*.txt*")):
            meta = parse_uiprmd_name(path)
            if subjects is not None and meta["subject"] not in subjects:
                continue
            pts = vicon_points(np.loadtxt(path, delimiter=",", ndmin=2).reshape(-1, 39, 3))
            ex = UIPRMD_MOVEMENTS[str(meta["movement"])]
            yield MotionClip("uiprmd-vicon", str(meta["subject"]), ex, int(str(meta["episode"])), correct, pts, 100.0)


def load_clips(
    data_dir: str | Path,
    *,
    exercises: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    include_incorrect: bool = False,
) -> list[MotionClip]:
    """Every 3D repetition under ``data_dir`` (missing datasets are skipped).

    Args:
        data_dir: the shared data folder (with ``ui-prmd/`` and ``keraal/``).
        exercises: canonical exercise names to keep (default: all).
        subjects: subject ids to keep (``s01``..; ``P1`` for KERAAL); default all.
        include_incorrect: also UI-PRMD's deliberately incorrect executions.

    Returns:
        The clips, in file order.
    """
    data_dir = Path(data_dir)
    subj = set(subjects) if subjects is not None else None
    clips = list(_uiprmd_clips(data_dir / "ui-prmd", subj, include_incorrect))
    for path in sorted((data_dir / "keraal").glob("G3-Kinect-*.txt")):
        m = re.search(r"G3-Kinect-([A-Z]+)-(P\d+)T(\d+)-.*-([A-Z])-\d+\.txt$", path.name)
        if not m or m.group(1) not in KERAAL_EXERCISES or (subj is not None and m.group(2) not in subj):
            continue
        if m.group(4) != "C" and not include_incorrect:
            continue
        pts = keraal_kinect_points(np.loadtxt(path, ndmin=2))
        clips.append(
            MotionClip("keraal-kinect", m.group(2), KERAAL_EXERCISES[m.group(1)], 1, m.group(4) == "C", pts, 30.0)
        )
    if exercises is not None:
        keep = set(exercises)
        clips = [c for c in clips if c.exercise in keep]
    return clips


def concatenate(clips: Sequence[MotionClip], n_reps: int = 10, transition_s: float = 0.3) -> np.ndarray:
    """Joins repetitions into one recording of ``n_reps`` (cycling through ``clips``).

    Args:
        clips: repetitions of one subject, exercise and label, all at the same frame rate.
        n_reps: repetitions in the result.
        transition_s: seconds of linear blend from the end of one repetition to the next's start.

    Returns:
        ``[T, 33, 3]`` world points at the clips' frame rate.

    Raises:
        ValueError: for no clips, mixed frame rates or ``n_reps < 1``.
    """
    if not clips or n_reps < 1:
        raise ValueError(f"need at least one clip and n_reps >= 1, got {len(clips)} clips and n_reps={n_reps}")
    fps = clips[0].fps
    if any(c.fps != fps for c in clips):
        raise ValueError(f"clips have mixed frame rates {sorted({c.fps for c in clips})}")
    n_blend = max(0, int(round(transition_s * fps)))
    parts: list[np.ndarray] = []
    for i in range(n_reps):
        cur = clips[i % len(clips)].points
        if parts and n_blend:
            w = (np.arange(1, n_blend + 1) / (n_blend + 1))[:, None, None]
            parts.append((1.0 - w) * parts[-1][-1] + w * cur[0])
        parts.append(cur)
    return np.concatenate(parts, axis=0)


@dataclass(frozen=True)
class SweepItem:
    """One 3D recording to render: a single repetition or a 10-rep sequence.

    Attributes:
        kind: ``single`` or ``sequence``.
        source, subject, exercise, correct: as in :class:`MotionClip`.
        expected: repetitions in the recording.
        points: ``[T, 33, 3]`` world points.
        fps: frame rate of ``points``.
        name: a readable id.
    """

    kind: str
    source: str
    subject: str
    exercise: str
    correct: bool
    expected: int
    points: np.ndarray
    fps: float
    name: str

    @property
    def split(self) -> str:
        """``tuning`` or ``heldout``."""
        return split_of(self.subject)


def sweep_items(
    clips: Sequence[MotionClip], n_reps: int = 10, transition_s: float = 0.3, singles: bool = True
) -> list[SweepItem]:
    """Single repetitions and ``n_reps`` sequences (one per source, subject, exercise and label).

    Args:
        clips: from :func:`load_clips`.
        n_reps: repetitions per sequence.
        transition_s: blend between joined repetitions.
        singles: also one item per clip.

    Returns:
        Sequences first, then singles.
    """
    groups: dict[tuple[str, str, str, bool], list[MotionClip]] = defaultdict(list)
    for c in clips:
        groups[(c.source, c.subject, c.exercise, c.correct)].append(c)
    items = []
    for (src, subj, ex, ok), group in groups.items():
        group = sorted(group, key=lambda c: c.episode)
        pts = concatenate(group, n_reps, transition_s)
        label = "" if ok else "_inc"
        items.append(SweepItem("sequence", src, subj, ex, ok, n_reps, pts, group[0].fps, f"{src}/{subj}/{ex}{label}"))
    if singles:
        for c in clips:
            label = "" if c.correct else "_inc"
            name = f"{c.source}/{c.subject}/{c.exercise}{label}/e{c.episode:02d}"
            items.append(SweepItem("single", c.source, c.subject, c.exercise, c.correct, 1, c.points, c.fps, name))
    return items


def count_metrics(expected: Sequence[int], counted: Sequence[int]) -> dict[str, float]:
    """MAE, off-by-one, exact, over- and under-count rates of counts against labels.

    Args:
        expected: labelled repetitions per stream.
        counted: what the counter gave.

    Returns:
        ``{"n", "mae", "obo", "exact", "overcount", "undercount"}`` (rates in 0..1; NaN when empty).

    Example:
        >>> count_metrics([10, 10, 10, 10], [10, 9, 11, 7])["mae"]
        1.25
    """
    e = np.asarray(expected, dtype=np.float64)
    c = np.asarray(counted, dtype=np.float64)
    if e.size == 0:
        return {k: float("nan") for k in ("mae", "obo", "exact", "overcount", "undercount")} | {"n": 0}
    err = c - e
    return {
        "n": int(e.size),
        "mae": float(np.abs(err).mean()),
        "obo": float((np.abs(err) <= 1).mean()),
        "exact": float((err == 0).mean()),
        "overcount": float((err > 0).mean()),
        "undercount": float((err < 0).mean()),
    }
