"""Adaptive pose stride: MediaPipe on every k-th frame while the body moves slowly, on the frames
around each turning point, decided online from the poses already seen.

Camera-rate video (30 fps) carries more frames than the keyframes need: they follow the driving
angle smoothed over ``keyframes.smooth_window_s`` (0.4 s, 12 frames at 30 fps), while one
MediaPipe call costs about 17 decoded frames on CPU. The policy (:func:`strided_pose`):

1. frame 0 is posed; the next posed frame is ``k`` frames on, ``k`` at most
   ``max_interval_s * fps`` (:func:`max_stride`);
2. speed: an interval over which any joint angle moved more than ``max_step_deg`` (or over
   which the person appeared or vanished) is bisected, posing its middle frame, until no
   sub-interval does or it is one frame wide; the next ``k`` is ``max_step_deg`` over the last
   sub-interval's fastest angle speed, clipped to ``1..max_stride``;
3. turning points: per angle, a hysteresis peak tracker over the posed frames; once an angle
   has come back ``turn_deg`` from its running extreme, that extreme is refined to the frame:
   the gaps on both sides of the current best frame are halved until both neighbours are
   posed (about ``2 log2 k`` poses per turn);
4. frames not posed get landmarks from a cubic Hermite curve through the posed frames around them
   (a frame between a detection and a miss counts as a miss).

Refinement reaches back only to frames still held (``buffer_s`` of decoded frames, see
:class:`FrameWindow`); the last frame is always posed. ``max_interval_s`` at or below one frame
period (e.g. the 5 fps squat clip) poses every frame, exactly as without a stride.

Example:
    >>> import numpy as np
    >>> t = np.arange(90) / 30.0  # 3 s at 30 fps, one slow bend and back
    >>> ang = 170.0 - 60.0 * np.sin(np.pi * t / 3.0) ** 2
    >>> src = ArrayFrames(np.arange(90))
    >>> res = strided_pose(src, 30.0, lambda i: np.full((1, 1), ang[int(i)]), lambda row: row[0], StrideConfig())
    >>> res.n_frames, int(res.posed.sum()) < 45, bool(res.posed[0] and res.posed[-1] and res.posed[45])
    (90, True, True)
"""

from __future__ import annotations

import bisect as _bisect
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physio_ray.video.angles import ANGLE_INDEX, joint_angles
from physio_ray.video.exercises import GENERIC_CANDIDATES, Exercise
from physio_ray.video.layout import to_coco17


@dataclass(frozen=True)
class StrideConfig:
    """How sparsely MediaPipe may run on camera-rate video.

    Attributes:
        enabled: False poses every frame.
        max_interval_s: longest gap between posed frames (0.2 s: 6 frames at 30 fps, one at 5 fps).
        max_step_deg: an interval over which a watched angle moved more than this is bisected.
        turn_deg: a watched angle's extreme is refined to the frame once it has come back this
            far (20: the keyframes' ``min_prominence_deg``; detector jitter of ~5 deg per frame
            stays below it).
        buffer_s: decoded frames held for refinement (memory: ~2.7 MB per 720p frame).
    """

    enabled: bool = True
    max_interval_s: float = 0.2
    max_step_deg: float = 30.0
    turn_deg: float = 20.0
    buffer_s: float = 1.0

    def __post_init__(self) -> None:
        if not (self.max_interval_s > 0 and self.max_step_deg > 0 and self.turn_deg > 0 and self.buffer_s > 0):
            raise ValueError(
                f"pose.stride: max_interval_s={self.max_interval_s}, max_step_deg={self.max_step_deg}, "
                f"turn_deg={self.turn_deg} and buffer_s={self.buffer_s} must all be > 0"
            )


def max_stride(cfg: StrideConfig, fps: float) -> int:
    """The largest ``k`` at this frame rate (1 when the stride is off or fps is too low).

    >>> max_stride(StrideConfig(), 30.0), max_stride(StrideConfig(), 5.0), max_stride(StrideConfig(enabled=False), 30.0)
    (6, 1, 1)
    """
    if not cfg.enabled or not (fps > 0):
        return 1
    return max(1, int(math.floor(cfg.max_interval_s * fps + 1e-9)))


def watched_angles(exercise: Exercise | None) -> Callable[[np.ndarray], np.ndarray]:
    """What the policy watches, from a frame's 16 joint angles: the exercise's driving signal
    (the mean of its driving angles, or each of them for ``max_range``), else every flexion
    angle that may drive an unknown movement.

    >>> from physio_ray.video.exercises import get_exercise
    >>> a = np.arange(16, dtype=float)
    >>> watched_angles(get_exercise("deep_squat"))(a).tolist()  # mean(left_knee, right_knee)
    [6.5]
    >>> watched_angles(None)(a).size
    8
    """
    if exercise is not None and exercise.combine == "mean":
        cols = [ANGLE_INDEX[n] for n in exercise.driving_angles]

        def mean(angles: np.ndarray) -> np.ndarray:
            vals = np.asarray(angles, dtype=np.float64)[cols]
            vals = vals[np.isfinite(vals)]
            return np.array([vals.mean() if vals.size else math.nan])

        return mean
    names = exercise.driving_angles if exercise is not None else GENERIC_CANDIDATES
    idx = [ANGLE_INDEX[n] for n in names]
    return lambda angles: np.asarray(angles, dtype=np.float64)[idx]


def angle_watcher(
    exercise: Exercise | None, space: str, aspect: float, third: str = "z"
) -> Callable[[np.ndarray], np.ndarray]:
    """Landmark row (33 or 17 points) -> the watched angles: the ``angles_of`` of :func:`strided_pose`.

    Args:
        exercise: see :func:`watched_angles`.
        space: coordinate space of the rows (``image2d`` / ``image3d`` / ``world3d``).
        aspect: frame width / height for image spaces.
        third: meaning of a third channel (see :func:`physio_ray.video.layout.to_coco17`).
    """
    watch = watched_angles(exercise)
    return lambda row: watch(joint_angles(to_coco17(row[None], third=third), space, aspect=aspect)[0])


class FrameWindow:
    """Random access to a forward-only frame stream, holding the last ``keep`` frames.

    Args:
        frames: the decoded frames, in order.
        keep: how many of the most recent frames stay reachable.
    """

    def __init__(self, frames: Iterable[Any], keep: int) -> None:
        self._it: Iterator[Any] = iter(frames)
        self._held: deque[Any] = deque(maxlen=max(1, keep))
        self._next = 0  # index of the next frame the iterator yields
        self._ended = False

    def _advance_to(self, i: int) -> None:
        while not self._ended and self._next <= i:
            try:
                self._held.append(next(self._it))
            except StopIteration:
                self._ended = True
                return
            self._next += 1

    def last_index(self, upto: int) -> int:
        """The largest available index ``<= upto`` (decoding forward as needed); -1 when empty."""
        self._advance_to(upto)
        return min(upto, self._next - 1)

    def get(self, i: int) -> Any:
        """Frame ``i``.

        Raises:
            LookupError: when ``i`` is past the end or older than the held window.
        """
        self._advance_to(i)
        first = self._next - len(self._held)
        if not first <= i < self._next:
            raise LookupError(f"frame {i} is not held (frames {first}..{self._next - 1} are)")
        return self._held[i - first]


class ArrayFrames(FrameWindow):
    """A :class:`FrameWindow` over an in-memory sequence, every frame reachable (tests, benchmarks)."""

    def __init__(self, frames: Any) -> None:
        super().__init__(frames, keep=len(frames))


@dataclass
class StridedPoses:
    """What :func:`strided_pose` posed.

    Attributes:
        rows: posed frame index -> the estimator's landmark row, or None (no person).
        n_frames: frames in the stream.
        stats: frames posed beyond the stride, by reason: ``speed`` (fast movement),
            ``miss_edge`` (the person appeared or vanished), ``turn`` (turning-point
            refinement), and ``turns`` (extremes refined).
    """

    rows: dict[int, np.ndarray | None]
    n_frames: int
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def posed(self) -> np.ndarray:
        """``[T]`` bool, which frames were posed."""
        mask = np.zeros(self.n_frames, dtype=bool)
        mask[list(self.rows)] = True
        return mask

    @property
    def posed_fraction(self) -> float:
        """Share of frames posed."""
        return len(self.rows) / self.n_frames if self.n_frames else 0.0

    def filled(self, empty: np.ndarray) -> np.ndarray:
        """``[T, *empty.shape]`` landmarks: the posed rows, and between two detections a cubic
        Hermite curve through the posed frames (slopes by central differences over the run of
        consecutive detections). Misses, and frames between a detection and a miss, are
        ``empty`` (e.g. NaN)."""
        out = np.empty((self.n_frames, *empty.shape), dtype=np.float64)
        out[:] = empty
        idx = sorted(self.rows)
        run: list[int] = []
        for i in [*idx, -1]:
            if i >= 0 and self.rows[i] is not None:
                run.append(i)
                continue
            if run:
                _fill_run(out, run, [np.asarray(self.rows[r], dtype=np.float64) for r in run])
            run = []
        return out


def _fill_run(out: np.ndarray, frames: list[int], rows: list[np.ndarray]) -> None:
    """Writes one run of consecutive detections and the frames between them into ``out``."""
    t = np.asarray(frames, dtype=np.float64)
    p = np.stack(rows)
    out[frames] = p
    if len(frames) < 2:
        return
    slope = np.zeros_like(p)
    if len(frames) > 2:
        shape = (-1,) + (1,) * (p.ndim - 1)
        slope[1:-1] = (p[2:] - p[:-2]) / (t[2:] - t[:-2]).reshape(shape)
        slope[0] = (p[1] - p[0]) / (t[1] - t[0])
        slope[-1] = (p[-1] - p[-2]) / (t[-1] - t[-2])
    for k in range(len(frames) - 1):
        a, b = frames[k], frames[k + 1]
        if b - a < 2:
            continue
        h = float(b - a)
        s = ((np.arange(a + 1, b) - a) / h).reshape((-1,) + (1,) * (p.ndim - 1))
        h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
        out[a + 1 : b] = h00 * p[k] + h10 * h * slope[k] + h01 * p[k + 1] + h11 * h * slope[k + 1]


class _Turn:
    """Hysteresis peak tracker of one angle over posed frames."""

    __slots__ = ("direction", "ext_i", "ext_v")

    def __init__(self) -> None:
        self.direction = 0  # +1 rising, -1 falling, 0 unknown
        self.ext_i = -1
        self.ext_v = math.nan

    def push(self, i: int, v: float, turn: float) -> tuple[int, int] | None:
        """Feeds one posed value; returns ``(frame, sign)`` of a confirmed extreme (sign +1: a maximum)."""
        if not math.isfinite(v):
            return None
        if self.ext_i < 0:
            self.ext_i, self.ext_v = i, v
            return None
        if self.direction >= 0 and v >= self.ext_v or self.direction <= 0 and v <= self.ext_v:
            if self.direction == 0 and abs(v - self.ext_v) >= turn:
                self.direction = 1 if v > self.ext_v else -1
            if self.direction != 0:
                self.ext_i, self.ext_v = i, v
            return None
        if abs(v - self.ext_v) < turn:
            return None
        if self.direction == 0:  # first clear movement: the start was the extreme
            self.direction = 1 if v > self.ext_v else -1
            self.ext_i, self.ext_v = i, v
            return None
        confirmed = (self.ext_i, self.direction)
        self.direction = -self.direction
        self.ext_i, self.ext_v = i, v
        return confirmed


def strided_pose(
    frames: FrameWindow,
    fps: float,
    pose: Callable[[Any], np.ndarray | None],
    angles_of: Callable[[np.ndarray], np.ndarray],
    cfg: StrideConfig,
) -> StridedPoses:
    """Poses a stream on the frames the policy picks (see the module docstring).

    Args:
        frames: the frame source.
        fps: its frame rate.
        pose: frame -> landmark row (any shape), or None when no person is found.
        angles_of: landmark row -> ``[A]`` watched angles in degrees (NaN where unseen), e.g.
            :func:`angle_watcher`.
        cfg: the policy's settings.

    Returns:
        The :class:`StridedPoses`.

    Raises:
        ValueError: when the stream has no frame.
    """
    k_max = max_stride(cfg, fps)
    rows: dict[int, np.ndarray | None] = {}
    order: list[int] = []  # posed frame indices, sorted
    angles: dict[int, np.ndarray] = {}
    stats = {"speed": 0, "turn": 0, "miss_edge": 0, "turns": 0}

    def do_pose(i: int, why: str | None = None) -> bool:
        if i in rows:
            return True
        try:
            frame = frames.get(i)
        except LookupError:
            return False
        row = pose(frame)
        rows[i] = row
        _bisect.insort(order, i)
        angles[i] = np.asarray(angles_of(row), dtype=np.float64) if row is not None else np.full(1, math.nan)
        if why:
            stats[why] += 1
        return True

    def moved(a: int, b: int) -> tuple[float, bool]:
        """Largest angle change between two posed frames, and whether detection differs."""
        ra, rb = rows[a], rows[b]
        if (ra is None) != (rb is None):
            return math.inf, True
        if ra is None:
            return 0.0, False
        d = np.abs(angles[b] - angles[a])
        d = d[np.isfinite(d)]
        return (float(d.max()) if d.size else 0.0), False

    def bisect(a: int, b: int) -> None:
        stack = [(a, b)]
        while stack:
            lo, hi = stack.pop()
            if hi - lo < 2:
                continue
            change, edge = moved(lo, hi)
            if change <= cfg.max_step_deg:
                continue
            mid = (lo + hi) // 2
            if not do_pose(mid, "miss_edge" if edge else "speed"):
                continue
            stack += [(mid, hi), (lo, mid)]

    def neighbours(i: int) -> tuple[int | None, int | None]:
        at = _bisect.bisect_left(order, i)
        left = order[at - 1] if at > 0 else None
        at = _bisect.bisect_right(order, i)
        right = order[at] if at < len(order) else None
        return left, right

    def refine(a: int, sign: int, lo: int, hi: int) -> None:
        """Halves the gaps beside the best frame of angle ``a`` within [lo, hi] until both are 1."""
        for _ in range(64):
            span = order[_bisect.bisect_left(order, lo) : _bisect.bisect_right(order, hi)]
            ok = [
                (i, float(angles[i][a]))
                for i in span
                if rows[i] is not None and a < angles[i].size and math.isfinite(angles[i][a])
            ]
            if not ok:
                return
            best = max(ok, key=lambda iv: sign * iv[1])[0]
            left, right = neighbours(best)
            progress = False
            for x, y in ((left, best), (best, right)):
                if x is not None and y is not None and y - x > 1 and do_pose((x + y) // 2, "turn"):
                    progress = True
            if not progress:
                return

    if frames.last_index(0) < 0:
        raise ValueError("the stream has no frame")
    do_pose(0)
    trackers: list[_Turn] = []
    fed = 0  # posed frames up to this index have been fed to the trackers
    last, k = 0, k_max
    while True:
        j = frames.last_index(last + k)
        if j <= last:
            break
        do_pose(j)
        bisect(last, j)
        # feed the trackers with every posed frame of (fed, j], in order
        for i in order[_bisect.bisect_right(order, fed) : _bisect.bisect_right(order, j)]:
            row_angles = angles[i]
            if rows[i] is None:
                continue
            while len(trackers) < row_angles.size:
                trackers.append(_Turn())
            for a, tr in enumerate(trackers[: row_angles.size]):
                hit = tr.push(i, float(row_angles[a]), cfg.turn_deg)
                if hit is not None:
                    m, sign = hit
                    left, right = neighbours(m)
                    refine(a, sign, m if left is None else left, m if right is None else right)
                    stats["turns"] += 1
        fed = j
        # next stride from the speed of the last sub-interval
        prev = neighbours(j)[0]
        assert prev is not None
        change, _ = moved(prev, j)
        speed = change / (j - prev)
        k = k_max if speed <= 0 else int(np.clip(math.floor(cfg.max_step_deg / speed), 1, k_max))
        last = j
    return StridedPoses(rows, last + 1, stats)  # the loop ends on the stream's last frame
