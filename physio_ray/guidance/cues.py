"""View-invariant movement cues from 2D keypoints, and an estimate of the view.

A camera that turns about the vertical through the body (the usual way a phone is propped up
somewhere in a room) changes every horizontal distance in the picture and keeps the vertical
ones: the height of the hips above the ankles, of the wrists below the shoulders, the drop of
one shoulder below the other. A 2D knee angle seen from the front stays near 180 in a squat (the
knees bend towards the camera); the hip height over the leg length drops the same way from any
side. The cues here are therefore vertical distances over a *reference length* of the limb
measured while it is straight and upright (the rest posture shows it at full length from any
yaw, and a camera pitch foreshortens the distance and its reference alike):

=====================  ==============================================================  ==========
cue                    definition (image y down, x scaled by the aspect ratio)        units
=====================  ==============================================================  ==========
``{side}_leg_height``  100 x (ankle_y - hip_y) / leg reference                         % of leg
``{side}_arm_elev``    arccos((wrist_y - shoulder_y) / arm reference)                  degrees
``side_bend``          asin(abs(l_shoulder_y - r_shoulder_y) / (0.7 x torso ref))      degrees
``side_tilt``          asin((l_shoulder_y - r_shoulder_y) / (0.7 x torso ref))          degrees
``torso_heading``      atan2(nose offset / 0.2, shoulder width / 0.7) (both / torso)   degrees
=====================  ==============================================================  ==========

``side_tilt`` is ``side_bend`` with its sign (positive when the left shoulder is the lower one),
so a bend to each side reads as the opposite sign; ``torso_heading`` is the heading of the
shoulders alone (the hips do not turn in a trunk rotation), 0 facing the camera. A camera that
turns changes the heading by its own yaw, so a rule on it must anchor at the person's rest
(``PhaseRule.anchor == "centre"``): the *change* of heading is what a rotation makes.

A reference length is the maximum over the last ``ref_window_ms`` of the limb's 2D length
(thigh + shank, upper arm + forearm, shoulder centre to hip centre; the larger side, since the
two legs and arms have one length), after a time-based exponential smoothing of ``ref_tau_ms``
so detector jitter does not inflate it. Each cue's vertical distance is smoothed the same way
with ``cue_tau_ms``. All smoothing and windows are in milliseconds, so 15 and 100 fps give the
same cue.

The view estimate (:class:`ViewEstimate`) is the body's heading seen from the camera: 0 when the
chest faces the camera, +-90 in profile, 180 from behind, from the signed shoulder/hip width
(left minus right, over the torso length: +0.7 facing, 0 in profile, negative from behind) and
the nose's offset from the shoulder centre (towards the way the face points). It needs both
shoulders, both hips and the nose; without them the view is *unknown*. A sustained change to
the opposite side (the patient turns round) is a *side switch*: the counter drops the
repetition in progress instead of counting one across the turn.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from physio_ray.guidance.cue_geometry import (
    G_ARM,
    G_BODY_X,
    G_DY,
    G_LEG,
    G_NOSE_X,
    G_SH_X,
    G_TORSO,
    cue_geometry,
    geometry_row,
)

CUE_NAMES: tuple[str, ...] = (
    "left_leg_height",
    "right_leg_height",
    "left_arm_elev",
    "right_arm_elev",
    "side_bend",
    "side_tilt",
    "torso_heading",
)
N_CUES = len(CUE_NAMES)
_CI = {name: i for i, name in enumerate(CUE_NAMES)}

WIDTH_OVER_TORSO = 0.7
"""Shoulder (and hip) width over torso length of an adult seen square on (a body model)."""
NOSE_OVER_TORSO = 0.2
"""Nose offset ahead of the shoulder centre over the torso length, seen in profile."""
MIN_HEADING_EVIDENCE = 0.4
"""Width and nose offset (each over its body-model value) this small tell no heading apart."""


def cue_index(names: tuple[str, ...]) -> np.ndarray:
    """Column indices of cue names in :data:`CUE_NAMES`.

    Raises:
        KeyError: for an unknown cue name (the message lists the known ones).
    """
    try:
        return np.array([_CI[n] for n in names], dtype=np.intp)
    except KeyError as exc:
        raise KeyError(f"unknown cue {exc.args[0]!r}; known cues: {CUE_NAMES}") from None


class _WindowMax:
    """Maximum over a trailing time window (monotonic deque, O(1) amortised per push)."""

    def __init__(self, window_ms: float) -> None:
        self.window_ms = window_ms
        self._q: deque[tuple[float, float]] = deque()

    def push(self, t: float, value: float) -> float:
        if math.isfinite(value):
            while self._q and self._q[-1][1] <= value:
                self._q.pop()
            self._q.append((t, value))
        while self._q and t - self._q[0][0] > self.window_ms:
            self._q.popleft()
        return self._q[0][1] if self._q else math.nan


class _WindowMode:
    """The most crowded value over a trailing time window (same interface as :class:`_WindowMax`).

    The centre of the narrowest ``width``-wide band holding the most samples: where the signal
    stays longest. For a movement that leaves rest to both sides that is the rest posture, even
    when one side is visited longer (a median would move towards it).
    """

    def __init__(self, window_ms: float, width: float = 6.0) -> None:
        self.window_ms = window_ms
        self.width = width
        self._q: deque[tuple[float, float]] = deque()

    def push(self, t: float, value: float) -> float:
        if math.isfinite(value):
            self._q.append((t, value))
        while self._q and t - self._q[0][0] > self.window_ms:
            self._q.popleft()
        if not self._q:
            return math.nan
        v = np.sort(np.fromiter((x for _, x in self._q), dtype=np.float64, count=len(self._q)))
        counts = np.searchsorted(v, v + self.width, side="right") - np.arange(v.size)
        i = int(np.argmax(counts))
        return float(np.median(v[i : i + counts[i]]))


class _Ema:
    """Time-based exponential smoothing; NaN input keeps the state and gives NaN."""

    def __init__(self, tau_ms: float, max_gap_ms: float) -> None:
        self.tau = tau_ms
        self.max_gap = max_gap_ms
        self._v = math.nan
        self._t = math.nan

    def push(self, t: float, value: float) -> float:
        if not math.isfinite(value):
            return math.nan
        if not math.isfinite(self._v) or not t - self._t <= self.max_gap or self.tau <= 0:
            self._v = value
        else:
            self._v += (1.0 - math.exp(-(t - self._t) / self.tau)) * (value - self._v)
        self._t = t
        return self._v


class RestLevel:
    """Where a driving signal rests: its most rest-ward value over a trailing time window.

    People differ in how they stand (a wide stance lowers the hip over the leg; arms hang at
    15-55 deg of elevation in the 2D cue), and the same rest posture reads a few units apart from
    different cameras (perspective). A rule anchored at the rest level (``PhaseRule.anchor ==
    "rest"``) states its thresholds as offsets from this level, so only the *excursion* of the
    movement matters, which is what the cues keep across views and people.

    The signal is first smoothed with ``tau_ms`` (so detector jitter does not pull the extreme),
    then the window keeps its maximum in "rest units" (``sign x value``: larger is closer to rest).
    NaN frames add nothing; an empty window gives NaN (the phase is then not known).

    A movement that leaves rest to *both* sides (a side bend left then right, a trunk rotation
    one way then the other) has its rest in the middle: ``centre=True`` takes the window's most
    crowded value (its mode: where the body stays longest) instead of its extreme.

    Args:
        sign: the rule's sign (+1 when the signal decreases away from rest, -1 when it increases).
        window_ms: trailing window of the extreme.
        tau_ms: smoothing before the extreme.
        max_gap_ms: a longer gap restarts the smoothing.
        centre: the window's mode instead of its rest-ward extreme.

    Example:
        >>> lv = RestLevel(sign=1.0, window_ms=1000.0, tau_ms=0.0, max_gap_ms=500.0)
        >>> [lv.push(t, v) for t, v in ((0, 90.0), (100, 60.0), (200, 88.0), (1150, 70.0))]
        [90.0, 90.0, 90.0, 88.0]
    """

    def __init__(self, sign: float, window_ms: float, tau_ms: float, max_gap_ms: float, centre: bool = False) -> None:
        self.sign = float(sign)
        self.centre = bool(centre)
        self._ema = _Ema(tau_ms, max_gap_ms)
        self._win: _WindowMax | _WindowMode = _WindowMode(window_ms) if centre else _WindowMax(window_ms)
        self._since = math.nan  # start of the smoothing's current run (its first tau is not trusted)

    def push(self, t_ms: float, value: float) -> float:
        """One frame's signal -> the rest level (in the signal's units; NaN while nothing was seen).

        For the first ``tau_ms`` of a run of visible frames the smoothing has seen too little to
        be trusted (one noisy first frame would otherwise set the level for the whole window):
        the level is then the window's, or, before anything entered it, the smoothed value.
        """
        if math.isfinite(value) and not t_ms - self._ema._t <= self._ema.max_gap:
            self._since = t_ms
        x = self._ema.push(t_ms, self.sign * value)
        if t_ms - self._since >= self._ema.tau:
            return self.sign * self._win.push(t_ms, x)
        level = self._win.push(t_ms, math.nan)
        return self.sign * (level if math.isfinite(level) else x)

    def reset(self) -> None:
        """Forgets the level (the camera or the body turned: the rest posture reads anew)."""
        self._ema = _Ema(self._ema.tau, self._ema.max_gap)
        self._win = type(self._win)(self._win.window_ms)
        self._since = math.nan


@dataclass(frozen=True)
class ViewEstimate:
    """Where the camera stands relative to the body, on the latest frame.

    Attributes:
        known: False when too few points are visible to tell (the counter then counts nothing).
        heading_deg: 0 facing the camera, +-90 in profile, 180 from behind (NaN when unknown).
        sector: the sustained quarter of the heading (0 front, 1 = +90, 2 back, 3 = -90; -1 unknown).
        switches: side switches seen so far.
    """

    known: bool
    heading_deg: float
    sector: int
    switches: int

    @property
    def label(self) -> str:
        """``front``, ``profile``, ``back`` or ``unknown``, for the session status."""
        return ("front", "profile", "back", "profile", "unknown")[self.sector]


class ViewCues:
    """Streaming COCO-17 keypoints -> :data:`CUE_NAMES` values and a :class:`ViewEstimate`.

    Args:
        aspect: picture width over height (normalised x is multiplied by it).
        min_visibility: points below this visibility are missing.
        ref_window_ms: window of the reference-length maximum.
        ref_tau_ms: smoothing of the reference lengths.
        cue_tau_ms: smoothing of the cues' vertical distances.
        max_gap_ms: a longer gap between frames restarts the smoothing.
        sector_hold_ms: a new heading sector must hold this long to be adopted.
        hold_ms: a cue whose points are lost keeps its last value this long (a hand raised out
            of the top of the picture, a limb the detector drops for a few frames); after that
            it is NaN. Without the hold, a ``max``/``min`` rule over both sides would jump to the
            other side, which is still at rest, and read a return to rest mid-repetition.
    """

    def __init__(
        self,
        aspect: float = 1.0,
        min_visibility: float = 0.3,
        ref_window_ms: float = 10_000.0,
        ref_tau_ms: float = 300.0,
        cue_tau_ms: float = 150.0,
        max_gap_ms: float = 500.0,
        sector_hold_ms: float = 500.0,
        hold_ms: float = 2000.0,
    ) -> None:
        self.aspect = float(aspect)
        self.min_visibility = float(min_visibility)
        self._ref = {k: (_Ema(ref_tau_ms, max_gap_ms), _WindowMax(ref_window_ms)) for k in ("leg", "arm", "torso")}
        self._dy = [_Ema(cue_tau_ms, max_gap_ms) for _ in range(N_CUES)]
        self._head = (_Ema(cue_tau_ms, max_gap_ms), _Ema(cue_tau_ms, max_gap_ms))
        self.sector_hold_ms = float(sector_hold_ms)
        self.hold_ms = float(hold_ms)
        self._last = [math.nan] * N_CUES
        self._last_t = [math.nan] * N_CUES
        self._sector, self._cand, self._cand_since = -1, -1, math.nan
        self._history: list[int] = []
        self.switches = 0
        self.view = ViewEstimate(False, math.nan, -1, 0)

    @property
    def view_label(self) -> str:
        """The view for a session status: ``front``, ``profile``, ``back`` or ``unknown``.

        ``unknown`` while too few points are visible to tell (the cues are NaN then: nothing is
        counted). Before a heading sector is adopted (no nose offset or width clear enough yet)
        the smoothed signed width decides: narrow shoulders and hips are a profile.
        """
        if not self.view.known:
            return "unknown"
        if self.view.sector >= 0:
            return self.view.label
        w = self._head[0]._v
        if not math.isfinite(w):
            return "unknown"
        return "profile" if abs(w) < MIN_HEADING_EVIDENCE else "front" if w > 0 else "back"

    def _ref_len(self, kind: str, t: float, value: float) -> float:
        ema, wmax = self._ref[kind]
        return wmax.push(t, ema.push(t, value))

    def push(self, t_ms: float, coco: np.ndarray) -> tuple[np.ndarray, bool]:
        """One frame.

        Args:
            t_ms: frame time.
            coco: ``[17, 4]`` ``(x, y, z, visibility)`` normalised image coordinates.

        Returns:
            ``(cues [N_CUES], switched)``: NaN cues where the points are not visible; switched is
            True on the frame a side switch is adopted.
        """
        return self.advance(t_ms, geometry_row(np.asarray(coco, dtype=np.float64), self.aspect, self.min_visibility))

    def advance(self, t_ms: float, g: list[float]) -> tuple[np.ndarray, bool]:
        """One frame from its :func:`cue_geometry` row (what :meth:`push` does after measuring;
        the batched engine measures every session's frame in one call and advances each).

        Args:
            t_ms: frame time.
            g: the frame's geometry row as Python floats (columns ``G_*`` of
                :mod:`physio_ray.guidance.cue_geometry`; NaN where not seen).

        Returns:
            As :meth:`push`.
        """
        leg_ref = self._ref_len("leg", t_ms, g[G_LEG])
        arm_ref = self._ref_len("arm", t_ms, g[G_ARM])
        torso_ref = self._ref_len("torso", t_ms, g[G_TORSO])
        raw = g[G_DY : G_DY + 6]
        heading = math.nan
        if g[G_NOSE_X] == g[G_NOSE_X] and torso_ref > 0:  # not NaN: both shoulders and the nose seen
            width = g[G_SH_X] / (WIDTH_OVER_TORSO * torso_ref)
            nose = g[G_NOSE_X] / (NOSE_OVER_TORSO * torso_ref)
            heading = math.degrees(math.atan2(nose, width))
        raw.append(heading)
        dy = [f.push(t_ms, v) for f, v in zip(self._dy, raw, strict=True)]
        out = [math.nan] * N_CUES
        if leg_ref > 0:
            out[0], out[1] = 100.0 * dy[0] / leg_ref, 100.0 * dy[1] / leg_ref
        if arm_ref > 0:
            out[2], out[3] = _acos_deg(dy[2] / arm_ref), _acos_deg(dy[3] / arm_ref)
        if torso_ref > 0:
            out[4] = _asin_deg(dy[4] / (WIDTH_OVER_TORSO * torso_ref), 0.0)
            out[5] = _asin_deg(dy[5] / (WIDTH_OVER_TORSO * torso_ref), -1.0)
        out[6] = dy[6]  # an angle already (smoothed as one: the views swept here stay clear of +-180)
        last, last_t = self._last, self._last_t
        for i in range(N_CUES):
            v = out[i]
            if v == v:  # finite (the cues are never infinite)
                last[i], last_t[i] = v, t_ms
            elif t_ms - last_t[i] <= self.hold_ms:
                out[i] = last[i]
        switched = self._update_view(t_ms, g, torso_ref)
        if not self.view.known:  # no counting from a guess
            return np.full(N_CUES, math.nan), switched
        return np.array(out), switched

    def _update_view(self, t: float, g: list[float], torso_ref: float) -> bool:
        if not (g[G_BODY_X] == g[G_BODY_X] and torso_ref > 0):  # NaN unless shoulders and hips seen
            self.view = ViewEstimate(False, math.nan, self._sector, self.switches)
            return False
        width = g[G_BODY_X] / torso_ref
        w = self._head[0].push(t, width / WIDTH_OVER_TORSO)
        if not g[G_NOSE_X] == g[G_NOSE_X]:  # the body is seen, but not which way it faces in profile
            heading = 0.0 if w >= 0 else 180.0
            self.view = ViewEstimate(True, heading, self._sector, self.switches)
            return False
        nose = g[G_NOSE_X] / torso_ref
        n = self._head[1].push(t, nose / NOSE_OVER_TORSO)
        heading = math.degrees(math.atan2(n, w))
        if math.hypot(n, w) < MIN_HEADING_EVIDENCE:  # neither width nor nose offset: keep the sector
            self.view = ViewEstimate(True, heading, self._sector, self.switches)
            return False
        nearest = int(round(heading / 90.0)) % 4
        near_centre = abs((heading - 90.0 * nearest + 180.0) % 360.0 - 180.0) <= 25.0
        switched = False
        if self._sector < 0:
            self._sector = nearest
            self._history = [nearest]
        elif nearest != self._sector and near_centre:
            if self._cand != nearest:
                self._cand, self._cand_since = nearest, t
            elif t - self._cand_since >= self.sector_hold_ms:
                if any((nearest - s) % 4 == 2 for s in self._history[-2:]):
                    self.switches += 1
                    switched = True
                self._sector = nearest
                self._history = (self._history + [nearest])[-3:]
                self._cand = -1
        else:
            self._cand = -1
        self.view = ViewEstimate(True, heading, self._sector, self.switches)
        return switched


def cue_stream(
    coco: np.ndarray, timestamps_ms: np.ndarray, aspect: float = 1.0, min_visibility: float = 0.3
) -> tuple[np.ndarray, np.ndarray, list[ViewEstimate]]:
    """:class:`ViewCues` over a whole recording.

    Args:
        coco: ``[T, 17, 4]`` keypoints (see :meth:`ViewCues.push`).
        timestamps_ms: ``[T]`` frame times.
        aspect: picture width over height.
        min_visibility: visibility threshold.

    Returns:
        ``(cues [T, N_CUES], switched [T] bool, views)``.
    """
    vc = ViewCues(aspect, min_visibility)
    cues = np.full((len(coco), N_CUES), np.nan)
    switched = np.zeros(len(coco), dtype=bool)
    views = []
    rows = cue_geometry(np.asarray(coco, dtype=np.float64), aspect, min_visibility).tolist()
    for i, t in enumerate(np.asarray(timestamps_ms, dtype=np.float64).tolist()):
        cues[i], switched[i] = vc.advance(t, rows[i])
        views.append(vc.view)
    return cues, switched, views


def _acos_deg(x: float) -> float:
    """``degrees(acos(x))`` with ``x`` clipped to [-1, 1]; NaN stays NaN."""
    return math.degrees(math.acos(min(1.0, max(-1.0, x)))) if x == x else math.nan


def _asin_deg(x: float, lo: float) -> float:
    """``degrees(asin(x))`` with ``x`` clipped to [lo, 1]; NaN stays NaN."""
    return math.degrees(math.asin(min(1.0, max(lo, x)))) if x == x else math.nan
