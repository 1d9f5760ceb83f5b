"""Rendered (synthetic) surgical-looking frames with instrument tips at known points.

PitVQA frames are not redistributable, and PitVQA labels only a region per tip. For local
training runs that must be able to *learn*, this module draws a frame: a dark reddish, noisy,
vignetted background with a few tissue-like blobs, and for each instrument a grey shaft from the
bottom edge ending in a tip marker whose shape and colour identify the instrument class. The tip
is drawn at a random point inside the true region (:func:`physio_ray.spatial.regions.sample_point`),
and that point is returned, so rendered records carry true coordinates.

Everything is a function of the seed (numpy ``default_rng`` + deterministic OpenCV drawing).
Every rendered record says ``data_origin = "rendered"``; never mix them with PitVQA metrics.
"""

from __future__ import annotations

import colorsys
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physio_ray.spatial.pitvqa import INSTRUMENTS, NO_VISIBLE
from physio_ray.spatial.regions import POSITION_CLASSES, sample_point

logger = logging.getLogger(__name__)

__all__ = ["MARKER_SIZE", "RenderedFrame", "instrument_style", "random_frame_spec", "render_frame"]

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
# Tip marker width as a share of the frame's shorter side: 0.18 of 144 px is 27 px, about one
# merged Qwen2-VL image token (2 x 2 patches of 14 px). At 0.09 (13 px, under half a token; the
# size before issue 13 at a shorter side of 144 px) the tiny model's vision
# tower barely encoded which marker it saw: a linear probe on its tip token read the instrument
# 0.18 of the time after SFT (chance 0.06; README "Spatial VQA").
MARKER_SIZE = 0.18
_INSTRUMENT_INDEX = {name: i for i, name in enumerate(sorted(INSTRUMENTS.values()))}


@dataclass(frozen=True)
class RenderedFrame:
    """One rendered frame and its ground truth.

    Attributes:
        image: ``[height, width, 3]`` uint8 RGB.
        instrument: CSV name of the primary instrument, or ``"no_visible_instrument"``.
        position_class: region class (1-5) of the primary tip, ``None`` without an instrument.
        point: primary tip ``(x, y)`` on the 0-100 scale, ``None`` without an instrument.
        secondary: ``(instrument, class, (x, y))`` of a second tip, or ``None``.
    """

    image: np.ndarray
    instrument: str
    position_class: int | None
    point: tuple[float, float] | None
    secondary: tuple[str, int, tuple[float, float]] | None = None


def instrument_style(instrument: str) -> tuple[str, tuple[int, int, int]]:
    """The tip marker ``(shape, RGB colour)`` of an instrument class (distinct for all 18).

    Raises:
        ValueError: for a name that is not a PitVQA instrument.
    """
    if instrument not in _INSTRUMENT_INDEX:
        raise ValueError(f"instrument {instrument!r} is not one of {sorted(_INSTRUMENT_INDEX)}")
    i = _INSTRUMENT_INDEX[instrument]
    # 18 = 6 shapes x 3 hue bands; hues avoid the background's reds.
    hue = (0.12 + (i * 0.29) % 0.76) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return SHAPES[i % len(SHAPES)], (int(r * 255), int(g * 255), int(b * 255))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    import cv2

    base = np.array([95.0, 28.0, 22.0])  # dark red, RGB
    coarse = rng.normal(0.0, 1.0, size=(max(2, height // 16), max(2, width // 16), 3))
    low: np.ndarray = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    img = base + low * np.array([22.0, 8.0, 6.0]) + rng.normal(0.0, 6.0, size=(height, width, 3))
    mask: np.ndarray = np.zeros((height, width), dtype=np.float32)
    for _ in range(int(rng.integers(2, 6))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (
            int(rng.integers(width // 20 + 1, width // 6 + 2)),
            int(rng.integers(height // 20 + 1, height // 6 + 2)),
        )
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, (1.0,), -1)
    blobs: np.ndarray = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(1.0, width / 60))
    img += blobs[..., None] * np.array([70.0, 35.0, 30.0])
    yy, xx = np.mgrid[0:height, 0:width]
    r = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2))
    img *= np.clip(1.1 - 0.45 * r**2, 0.35, 1.0)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _marker_half_width(width: int, height: int, marker_size: float) -> int:
    """Half-width in pixels of a tip marker (the marker spans ``2 * half + 1`` pixels)."""
    return max(3, round(marker_size * min(width, height) / 2))


def _draw_instrument(
    img: np.ndarray, rng: np.random.Generator, instrument: str, point: tuple[float, float], marker_size: float
) -> None:
    import cv2

    height, width = img.shape[:2]
    tip = (int(min(width - 1, point[0] / 100 * width)), int(min(height - 1, point[1] / 100 * height)))
    entry = (int(rng.uniform(0.15, 0.85) * width), height + height // 10)
    thick = max(2, min(width, height) // 30)
    cv2.line(img, entry, tip, (40, 40, 45), thick + 2, cv2.LINE_AA)
    cv2.line(img, entry, tip, (170, 172, 180), thick, cv2.LINE_AA)
    shape, colour = instrument_style(instrument)
    s = _marker_half_width(width, height, marker_size)
    x, y = tip
    if shape == "circle":
        cv2.circle(img, tip, s, colour, -1, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(img, tip, s, colour, max(2, s // 3), cv2.LINE_AA)
    elif shape == "square":
        cv2.rectangle(img, (x - s, y - s), (x + s, y + s), colour, -1)
    elif shape in ("triangle", "diamond"):
        pts = (
            [(x, y - s), (x + s, y + s), (x - s, y + s)]
            if shape == "triangle"
            else [(x, y - s), (x + s, y), (x, y + s), (x - s, y)]
        )
        cv2.fillPoly(img, [np.array(pts, dtype=np.int32)], colour, cv2.LINE_AA)
    else:  # cross
        cv2.line(img, (x - s, y - s), (x + s, y + s), colour, max(2, s // 2), cv2.LINE_AA)
        cv2.line(img, (x - s, y + s), (x + s, y - s), colour, max(2, s // 2), cv2.LINE_AA)


def render_frame(
    instrument: str,
    position_class: int | None,
    seed: int,
    width: int = 256,
    height: int = 144,
    secondary: tuple[str, int] | None = None,
    margin: float = 3.0,
    marker_size: float = MARKER_SIZE,
) -> RenderedFrame:
    """Draws one frame with the tip of ``instrument`` at a random point of ``position_class``.

    Args:
        instrument: CSV name, or ``"no_visible_instrument"`` for a frame without instruments.
        position_class: 1-5 (ignored without an instrument).
        seed: makes the frame (background, point, shaft) reproducible.
        width: pixels.
        height: pixels.
        secondary: optional ``(instrument, class)`` of a second tip (e.g. ``("suction", 2)``).
        margin: keep tips this far (0-100 units) from other regions, so the class is unambiguous.
        marker_size: tip marker width as a share of the shorter side (:data:`MARKER_SIZE`).

    Returns:
        A :class:`RenderedFrame` with the true point(s).

    Raises:
        ValueError: for an unknown instrument or class.
    """
    rng = np.random.default_rng(seed)
    img = _background(rng, width, height)
    if instrument == NO_VISIBLE:
        return RenderedFrame(img, NO_VISIBLE, None, None, None)
    if position_class not in POSITION_CLASSES:
        raise ValueError(f"position class {position_class!r} is not one of {list(POSITION_CLASSES)}")
    instrument_style(instrument)  # validates the name before drawing
    second = None
    if secondary is not None:
        s_name, s_cls = secondary
        s_point = sample_point(s_cls, rng, margin)
        _draw_instrument(img, rng, s_name, s_point, marker_size)
        second = (s_name, int(s_cls), (round(s_point[0], 4), round(s_point[1], 4)))
    point = sample_point(position_class, rng, margin)
    if second is not None:
        # the primary is drawn on top: keep it off the secondary's marker, or the frame would hide
        # a tip that its "named" record asks for (with the 27 px default, ~2% of two-tip frames)
        apart = 2 * _marker_half_width(width, height, marker_size) + 2
        s_xy = second[2]
        for _ in range(100):
            if math.hypot((point[0] - s_xy[0]) * width / 100, (point[1] - s_xy[1]) * height / 100) > apart:
                break
            point = sample_point(position_class, rng, margin)
    _draw_instrument(img, rng, instrument, point, marker_size)  # primary drawn last, on top
    return RenderedFrame(img, instrument, int(position_class), (round(point[0], 4), round(point[1], 4)), second)


def random_frame_spec(seed: int, none_fraction: float = 0.1, secondary_fraction: float = 0.3) -> dict[str, Any]:
    """Chooses what a rendered frame shows, uniformly over instruments and classes.

    Returns:
        ``{"instrument": str, "position_class": int | None, "secondary": (name, class) | None}``.
    """
    rng = np.random.default_rng([seed, 7919])
    if rng.random() < none_fraction:
        return {"instrument": NO_VISIBLE, "position_class": None, "secondary": None}
    names = sorted(INSTRUMENTS.values())
    instrument = names[int(rng.integers(len(names)))]
    cls = int(rng.choice(POSITION_CLASSES))
    secondary = None
    if instrument != "suction" and rng.random() < secondary_fraction:
        secondary = ("suction", int(rng.choice(POSITION_CLASSES)))
    return {"instrument": instrument, "position_class": cls, "secondary": secondary}


def save_rgb(image: np.ndarray, path: str | Path, jpeg_quality: int = 92) -> None:
    """Writes an RGB ``[H, W, 3]`` uint8 image (JPEG/PNG by suffix), creating folders."""
    import cv2

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
        raise OSError(f"could not write image {path}")
