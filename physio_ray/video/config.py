"""Typed configuration of the video capability: pose estimation and keyframe selection.

The annotation pipeline embeds these (``pose:`` and ``keyframes:`` in its YAML); video/ owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from physio_ray.runtime import Resources
from physio_ray.video.stride import StrideConfig


@dataclass(frozen=True)
class PoseConfig:
    """MediaPipe pose on CPU actors, plus landmark smoothing.

    Attributes:
        resources: actor pool for decoding + pose.
        model_complexity: MediaPipe pose model; only 1 (full) ships inside the
            mediapipe==0.10.21 wheel, 0 and 2 would be downloaded at run time and are refused.
        video_space: keypoints kept for videos: ``image3d`` (normalised image x, y plus
            relative z; drawable on frames) or ``world3d`` (MediaPipe world landmarks in metres).
        min_detection_confidence: MediaPipe detection threshold.
        min_visible_fraction: a recording whose frames show a person less often fails.
        smoothing: apply a One-Euro filter to landmarks.
        one_euro_min_cutoff: One-Euro minimum cutoff (Hz).
        one_euro_beta: One-Euro speed coefficient.
        max_frames: decode at most this many frames per video (``None``: all).
        stride: adaptive pose stride for camera-rate video (:mod:`physio_ray.video.stride`);
            at 5 fps (the squat clip) its 0.2 s interval is one frame, so every frame is posed.
    """

    resources: Resources = field(default_factory=lambda: Resources(batch_size=1))
    model_complexity: int = 1
    video_space: str = "image3d"
    min_detection_confidence: float = 0.5
    min_visible_fraction: float = 0.3
    smoothing: bool = True
    one_euro_min_cutoff: float = 1.0
    one_euro_beta: float = 0.05
    max_frames: int | None = None
    stride: StrideConfig = field(default_factory=StrideConfig)

    def __post_init__(self) -> None:
        if self.model_complexity != 1:
            raise ValueError(
                f"pose.model_complexity={self.model_complexity}: only 1 is bundled with mediapipe==0.10.21 "
                "(0 and 2 would download a model at run time)"
            )
        if self.video_space not in ("image3d", "world3d"):
            raise ValueError(f"pose.video_space={self.video_space!r} must be 'image3d' or 'world3d'")
        if not 0 <= self.min_detection_confidence <= 1:
            raise ValueError("pose.min_detection_confidence must be in 0..1")
        if not 0 <= self.min_visible_fraction <= 1:
            raise ValueError("pose.min_visible_fraction must be in 0..1")


@dataclass(frozen=True)
class KeyframeConfig:
    """Movement-driven keyframe selection.

    Attributes:
        max_keyframes: at most this many keyframes per recording (start and end included).
        min_prominence_deg: a bottom/top must stand out from its neighbours by this many degrees.
        min_separation_s: two extrema of the same kind are at least this far apart.
        smooth_window_s: moving-average window applied to the driving angle signal.
        resources: actor pool for keyframe selection (cheap, CPU).
    """

    max_keyframes: int = 12
    min_prominence_deg: float = 20.0
    min_separation_s: float = 0.8
    smooth_window_s: float = 0.4
    resources: Resources = field(default_factory=lambda: Resources(batch_size=16))

    def __post_init__(self) -> None:
        if self.max_keyframes < 2:
            raise ValueError(f"keyframes.max_keyframes={self.max_keyframes} must be >= 2 (start and end)")
        if self.min_prominence_deg <= 0 or self.min_separation_s <= 0 or self.smooth_window_s < 0:
            raise ValueError("keyframes: prominence and separation must be > 0, smooth window >= 0")
