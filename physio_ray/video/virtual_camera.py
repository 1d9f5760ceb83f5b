"""A virtual camera for 3D motion capture: BlazePose-ordered 3D points -> 2D keypoint streams.

Pure numpy. The input is ``[T, 33, 3]`` world positions in metres, in BlazePose order
(:data:`~physio_ray.video.layout.BLAZEPOSE33_NAMES`), with **z up** (x and y horizontal, any
heading). The output is what a pose detector such as MediaPipe gives for a video of that body:
``[T, 33, 2]`` normalised image coordinates (x right / width, y down / height) and a visibility.

Camera (:class:`VirtualCamera`), a pinhole with square pixels:

* the body frame comes from the first ``rest_s`` seconds (a segmented repetition starts at
  rest): ``left`` = horizontal mean of (left - right) over hips and shoulders, ``up`` = +z,
  ``forward = left x up`` (the way the chest faces);
* ``yaw_deg`` turns the camera about the vertical through the body: 0 = in front of the body
  looking at it, 90 = on the body's left side (a left profile); ``pitch_deg`` is the camera's
  elevation: > 0 above the body looking down, < 0 below looking up;
* the camera aims at the centre of the body's vertical extent in the rest pose, and its
  distance is solved so the rest pose spans ``body_fraction`` of the frame height;
* ``hfov_deg`` is the horizontal field of view (60: a phone's main camera).

Detector noise (:class:`DetectorNoise`), stated so a benchmark can say what it assumed:

* jitter: independent Gaussian noise on x and y of every point and frame, standard deviation
  ``jitter`` x the body's height in the image (isotropic in pixels);
* dropped points: each point of each frame is lost with probability ``drop_prob``;
* dropout bursts: bursts start as a Poisson process of ``burst_rate_hz`` per second; each lasts
  a uniform ``burst_s`` range and drops one limb (an arm: shoulder to hand, or a leg: hip to
  foot, of a random side) in every frame it covers;
* points outside the frame are lost too. Lost points have visibility 0 and keep their noisy
  position; :func:`counter_input` turns them into NaN, which ``count_reps`` reads as "not seen".

Example:
    >>> import numpy as np
    >>> pts = np.zeros((1, 33, 3)); pts[0, :, 2] = np.linspace(0.0, 1.7, 33)
    >>> pts[0, 11::2, 1], pts[0, 12::2, 1] = 0.2, -0.2  # left points at +y, right at -y
    >>> kp, vis = project(pts, VirtualCamera(body_fraction=0.5))
    >>> kp.shape, round(float(np.nanmax(kp[..., 1]) - np.nanmin(kp[..., 1])), 3)
    ((1, 33, 2), 0.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from physio_ray.video.layout import BLAZEPOSE33_NAMES

_B = {name: i for i, name in enumerate(BLAZEPOSE33_NAMES)}
_LEFT_RIGHT = ((_B["left_hip"], _B["right_hip"]), (_B["left_shoulder"], _B["right_shoulder"]))
UP = np.array([0.0, 0.0, 1.0])
LIMBS: tuple[tuple[int, ...], ...] = tuple(
    tuple(_B[f"{side}_{part}"] for part in parts)
    for side in ("left", "right")
    for parts in (
        ("shoulder", "elbow", "wrist", "pinky", "index", "thumb"),
        ("hip", "knee", "ankle", "heel", "foot_index"),
    )
)
"""The point groups a dropout burst removes (left arm, left leg, right arm, right leg)."""


@dataclass(frozen=True)
class VirtualCamera:
    """Where the camera stands and what it sees.

    Attributes:
        yaw_deg: heading around the body, 0 (front) .. 180; 90 = the body's left side.
        pitch_deg: elevation, -89 .. 89 (> 0: above, looking down).
        body_fraction: share of the frame height the rest pose spans, 0.05 .. 1.
        image_size: ``(width, height)`` in pixels.
        hfov_deg: horizontal field of view in degrees.
        rest_s: seconds at the start that define the body frame and the framing.
    """

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    body_fraction: float = 0.7
    image_size: tuple[int, int] = (1280, 720)
    hfov_deg: float = 60.0
    rest_s: float = 0.3

    def __post_init__(self) -> None:
        if not -180.0 <= self.yaw_deg <= 180.0:
            raise ValueError(f"yaw_deg={self.yaw_deg} must be in -180..180")
        if not -89.0 <= self.pitch_deg <= 89.0:
            raise ValueError(f"pitch_deg={self.pitch_deg} must be in -89..89 (90 would look straight down)")
        if not 0.05 <= self.body_fraction <= 1.0:
            raise ValueError(f"body_fraction={self.body_fraction} must be in 0.05..1 of the frame height")
        w, h = self.image_size
        if w <= 0 or h <= 0:
            raise ValueError(f"image_size={self.image_size} must be positive (width, height)")
        if not 10.0 <= self.hfov_deg <= 150.0:
            raise ValueError(f"hfov_deg={self.hfov_deg} must be in 10..150")
        if self.rest_s <= 0:
            raise ValueError(f"rest_s={self.rest_s} must be positive")

    @property
    def aspect(self) -> float:
        """Width / height."""
        return self.image_size[0] / self.image_size[1]

    @property
    def focal_px(self) -> float:
        """Focal length in pixels."""
        return 0.5 * self.image_size[0] / math.tan(math.radians(self.hfov_deg) / 2.0)


@dataclass(frozen=True)
class DetectorNoise:
    """What a real detector adds (see the module docstring).

    Attributes:
        jitter: Gaussian standard deviation as a fraction of the body's height in the image.
        drop_prob: per point and frame probability of a lost point.
        burst_rate_hz: dropout bursts per second.
        burst_s: ``(shortest, longest)`` burst duration in seconds.
    """

    jitter: float = 0.01
    drop_prob: float = 0.02
    burst_rate_hz: float = 0.05
    burst_s: tuple[float, float] = (0.1, 0.5)

    def __post_init__(self) -> None:
        if self.jitter < 0 or not 0.0 <= self.drop_prob < 1.0 or self.burst_rate_hz < 0:
            raise ValueError(
                f"noise jitter={self.jitter}, drop_prob={self.drop_prob}, burst_rate_hz={self.burst_rate_hz}: "
                "need jitter >= 0, 0 <= drop_prob < 1, burst_rate_hz >= 0"
            )
        lo, hi = self.burst_s
        if not 0.0 < lo <= hi:
            raise ValueError(f"burst_s={self.burst_s} must be (shortest, longest) with 0 < shortest <= longest")


NO_NOISE = DetectorNoise(jitter=0.0, drop_prob=0.0, burst_rate_hz=0.0)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not math.isfinite(n) or n < 1e-9:
        raise ValueError("cannot find the body's left-right axis: hips and shoulders coincide or are missing")
    return v / n


def body_frame(points: np.ndarray, n_rest: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and forward unit vectors (horizontal) of the rest pose.

    Args:
        points: ``[T, 33, 3]`` world positions, z up.
        n_rest: number of leading frames that define the frame (at least 1 is used).

    Returns:
        ``(left, forward)``, each ``[3]``; ``forward = left x up``.

    Raises:
        ValueError: when the left-right axis is degenerate.
    """
    rest = points[: max(1, n_rest)]
    lateral = sum(rest[:, a] - rest[:, b] for a, b in _LEFT_RIGHT)
    lateral = np.nanmean(lateral, axis=0)
    left = _unit(lateral - UP * float(lateral @ UP))
    return left, np.cross(left, UP)


def _camera_basis(cam: VirtualCamera, left: np.ndarray, forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Viewing direction from the body to the camera, and the camera rotation (rows x, y, z)."""
    yaw, pitch = math.radians(cam.yaw_deg), math.radians(cam.pitch_deg)
    heading = math.cos(yaw) * forward + math.sin(yaw) * left
    to_cam = math.cos(pitch) * heading + math.sin(pitch) * UP
    z_c = -to_cam  # optical axis, from the camera to the body
    x_c = _unit(np.cross(z_c, UP))  # image right
    y_c = np.cross(z_c, x_c)  # image down
    return to_cam, np.stack([x_c, y_c, z_c])


def _pinhole(points: np.ndarray, centre: np.ndarray, rot: np.ndarray, cam: VirtualCamera) -> np.ndarray:
    """``[..., 3]`` world -> ``[..., 2]`` normalised image coordinates (NaN behind the camera)."""
    pc = (points - centre) @ rot.T
    depth = pc[..., 2]
    depth = np.where(depth > 1e-6, depth, np.nan)
    w, h = cam.image_size
    f = cam.focal_px
    u = (f * pc[..., 0] / depth + 0.5 * w) / w
    v = (f * pc[..., 1] / depth + 0.5 * h) / h
    return np.stack([u, v], axis=-1)


def project(points: np.ndarray, cam: VirtualCamera, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Projects a 3D sequence through the camera, noise-free.

    Args:
        points: ``[T, 33, 3]`` BlazePose-ordered world positions in metres, z up.
        cam: the camera.
        fps: frame rate of ``points`` (sets how many frames ``cam.rest_s`` covers).

    Returns:
        ``(keypoints, visibility)``: ``[T, 33, 2]`` normalised image coordinates and ``[T, 33]``
        visibility (1 inside the frame, 0 outside it or for non-finite input).

    Raises:
        ValueError: for a wrong shape or a degenerate body.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (33, 3) or pts.shape[0] == 0:
        raise ValueError(f"points must be [frames, 33, 3] BlazePose world positions, got shape {pts.shape}")
    n_rest = max(1, int(round(cam.rest_s * fps)))
    left, forward = body_frame(pts, n_rest)
    to_cam, rot = _camera_basis(cam, left, forward)
    rest = pts[:n_rest]
    heights = rest @ UP
    top, bottom = float(np.nanmax(heights)), float(np.nanmin(heights))
    span = top - bottom
    if not span > 0:
        raise ValueError("the rest pose has no vertical extent")
    flat = np.nanmean(rest.reshape(-1, 3), axis=0)
    target = flat - UP * float(flat @ UP) + UP * (0.5 * (top + bottom))
    # Solve the distance so the rest pose spans body_fraction of the height (fixed point:
    # projected height is close to inversely proportional to distance).
    dist = cam.focal_px * span / (cam.body_fraction * cam.image_size[1])
    for _ in range(8):
        kp = _pinhole(rest, target + dist * to_cam, rot, cam)
        got = float(np.nanmax(kp[..., 1]) - np.nanmin(kp[..., 1]))
        if not math.isfinite(got) or got <= 0:
            raise ValueError("the rest pose does not project into the image")
        dist *= got / cam.body_fraction
    kp = _pinhole(pts, target + dist * to_cam, rot, cam)
    finite = np.all(np.isfinite(kp), axis=-1)
    inside = finite & np.all((kp >= 0.0) & (kp <= 1.0), axis=-1)
    return kp, inside.astype(np.float64)


def resample(points: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear interpolation in time of a ``[T, ...]`` sequence to another frame rate.

    Frame ``i`` of the output is at ``i / fps_out`` seconds, up to the last input frame's time.

    Args:
        points: ``[T, ...]`` values sampled at ``fps_in``.
        fps_in: input frame rate.
        fps_out: output frame rate.

    Returns:
        ``[T', ...]`` with ``T' = floor((T - 1) * fps_out / fps_in) + 1``.

    Raises:
        ValueError: for non-positive frame rates or an empty sequence.
    """
    if not (fps_in > 0 and fps_out > 0):
        raise ValueError(f"frame rates must be positive, got fps_in={fps_in}, fps_out={fps_out}")
    arr = np.asarray(points, dtype=np.float64)
    if arr.shape[0] == 0:
        raise ValueError("cannot resample an empty sequence")
    n_out = int(math.floor((arr.shape[0] - 1) * fps_out / fps_in + 1e-9)) + 1
    src = np.arange(n_out) * (fps_in / fps_out)
    i0 = np.minimum(np.floor(src).astype(np.int64), arr.shape[0] - 1)
    i1 = np.minimum(i0 + 1, arr.shape[0] - 1)
    w = (src - i0).reshape((-1,) + (1,) * (arr.ndim - 1))
    return (1.0 - w) * arr[i0] + w * arr[i1]


def apply_noise(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    fps: float,
    body_height: float,
    aspect: float,
    noise: DetectorNoise,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Adds the detector noise model to a projected stream.

    Args:
        keypoints: ``[T, 33, 2]`` normalised image coordinates.
        visibility: ``[T, 33]`` visibility in 0..1.
        fps: frame rate (burst durations are in seconds).
        body_height: body height as a fraction of the frame height (sets the jitter scale).
        aspect: frame width / height (x jitter is divided by it, so noise is isotropic in pixels).
        noise: the model.
        rng: the random generator (seed it for a reproducible stream).

    Returns:
        New ``(keypoints, visibility)``; lost points have visibility 0.
    """
    kp = np.array(keypoints, dtype=np.float64, copy=True)
    vis = np.array(visibility, dtype=np.float64, copy=True)
    t = kp.shape[0]
    sigma = noise.jitter * body_height
    if sigma > 0:
        kp += rng.normal(0.0, sigma, size=kp.shape) * np.array([1.0 / aspect, 1.0])
    if noise.drop_prob > 0:
        vis[rng.random(size=vis.shape) < noise.drop_prob] = 0.0
    if noise.burst_rate_hz > 0 and t:
        n_bursts = rng.poisson(noise.burst_rate_hz * t / fps)
        for _ in range(int(n_bursts)):
            start = int(rng.integers(0, t))
            length = max(1, int(round(rng.uniform(*noise.burst_s) * fps)))
            limb = LIMBS[int(rng.integers(0, len(LIMBS)))]
            vis[start : start + length, list(limb)] = 0.0
    outside = ~np.all(np.isfinite(kp) & (kp >= 0.0) & (kp <= 1.0), axis=-1)
    vis[outside] = 0.0
    return kp, vis


def counter_input(keypoints: np.ndarray, visibility: np.ndarray, min_visibility: float = 0.5) -> np.ndarray:
    """``[T, 33, 2]`` with lost points (visibility below ``min_visibility``) as NaN.

    Args:
        keypoints: ``[T, 33, 2]``.
        visibility: ``[T, 33]``.
        min_visibility: visibility under which a point counts as lost.

    Returns:
        A new float64 array.
    """
    out = np.array(keypoints, dtype=np.float64, copy=True)
    out[np.asarray(visibility) < min_visibility] = np.nan
    return out


@dataclass(frozen=True)
class RenderedStream:
    """A 2D keypoint stream as a detector would give it.

    Attributes:
        keypoints: ``[T, 33, 2]`` normalised image coordinates.
        visibility: ``[T, 33]`` in 0..1.
        fps: frame rate.
        image_size: ``(width, height)`` of the virtual frame.
    """

    keypoints: np.ndarray
    visibility: np.ndarray
    fps: float
    image_size: tuple[int, int]


def render(
    points: np.ndarray,
    fps_in: float,
    cam: VirtualCamera,
    fps_out: float | None = None,
    noise: DetectorNoise = NO_NOISE,
    seed: int = 0,
) -> RenderedStream:
    """Resamples, projects and adds detector noise: 3D capture -> a 2D detector stream.

    Args:
        points: ``[T, 33, 3]`` BlazePose-ordered world positions in metres, z up.
        fps_in: frame rate of ``points``.
        cam: the camera.
        fps_out: frame rate of the stream (default: ``fps_in``).
        noise: detector noise (default: none).
        seed: seed of the noise generator.

    Returns:
        The :class:`RenderedStream`.
    """
    fps = float(fps_out or fps_in)
    pts = resample(points, fps_in, fps) if fps != fps_in else np.asarray(points, dtype=np.float64)
    kp, vis = project(pts, cam, fps)
    kp, vis = apply_noise(kp, vis, fps, cam.body_fraction, cam.aspect, noise, np.random.default_rng(seed))
    return RenderedStream(kp, vis, fps, cam.image_size)
