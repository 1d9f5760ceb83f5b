"""Rendered frames (deterministic, tip where the record says) and the 1 fps frame extractor."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from physio_ray.spatial.frames import FrameExtractor, extract_frames, frame_path
from physio_ray.spatial.pitvqa import INSTRUMENTS
from physio_ray.spatial.regions import position_class_of
from physio_ray.spatial.render import MARKER_SIZE, instrument_style, random_frame_spec, render_frame


def test_render_is_deterministic_by_seed() -> None:
    a = render_frame("kerrisons", 4, seed=11)
    b = render_frame("kerrisons", 4, seed=11)
    c = render_frame("kerrisons", 4, seed=12)
    assert np.array_equal(a.image, b.image) and a.point == b.point
    assert not np.array_equal(a.image, c.image) and a.point != c.point
    assert a.image.shape == (144, 256, 3) and a.image.dtype == np.uint8


@pytest.mark.parametrize("cls", [1, 2, 3, 4, 5])
def test_tip_is_drawn_in_the_true_region_with_the_class_colour(cls: int) -> None:
    frame = render_frame("ring_curette", cls, seed=100 + cls, width=320, height=180)
    assert frame.point is not None and position_class_of(*frame.point) == cls
    x, y = frame.point
    px, py = int(x / 100 * 320), int(y / 100 * 180)
    _, colour = instrument_style("ring_curette")
    patch = frame.image[max(0, py - 2) : py + 3, max(0, px - 2) : px + 3].reshape(-1, 3).astype(int)
    assert np.abs(patch - np.array(colour)).sum(axis=1).min() < 40  # the marker sits on the point
    # the background is dark and reddish
    assert frame.image[..., 0].mean() > frame.image[..., 1].mean() + 15 and frame.image.mean() < 110


def test_no_instrument_frame_and_secondary() -> None:
    empty = render_frame("no_visible_instrument", None, seed=3)
    assert empty.point is None and empty.position_class is None and empty.secondary is None
    two = render_frame("kerrisons", 3, seed=3, secondary=("suction", 2))
    assert two.secondary is not None and two.secondary[:2] == ("suction", 2)
    assert position_class_of(*two.secondary[2]) == 2


def test_styles_are_distinct_per_instrument() -> None:
    styles = {instrument_style(name) for name in INSTRUMENTS.values()}
    assert len(styles) == 18
    with pytest.raises(ValueError, match="scalpel"):
        instrument_style("scalpel")
    with pytest.raises(ValueError, match="6"):
        render_frame("suction", 6, seed=0)


def test_marker_size_sets_the_painted_tip_area() -> None:
    # the same frame (seed) with a square marker at two sizes: only the marker differs, and its
    # side doubles, so the pixels in the marker colour grow about fourfold (26 px vs 13 px of 144)
    _, colour = instrument_style("cottle")  # a square
    areas = []
    for size in (0.09, MARKER_SIZE):
        frame = render_frame("cottle", 3, seed=5, marker_size=size)
        close = np.abs(frame.image.astype(int) - np.array(colour)).sum(axis=2) < 60
        areas.append(int(close.sum()))
    assert 13**2 * 0.8 <= areas[0] <= 13**2 * 1.2 and 27**2 * 0.8 <= areas[1] <= 27**2 * 1.2
    from physio_ray.spatial.config import RenderedConfig

    assert RenderedConfig().marker_size == MARKER_SIZE  # the builder's default is the renderer's
    with pytest.raises(ValueError, match="marker_size"):
        RenderedConfig(marker_size=0.9)


def test_the_primary_marker_never_hides_the_secondary_tip() -> None:
    # same region for both tips, many seeds: the tips stay more than a marker width apart (pixels)
    for seed in range(60):
        frame = render_frame("kerrisons", 3, seed=seed, secondary=("suction", 3))
        assert frame.point is not None and frame.secondary is not None
        (x, y), (sx, sy) = frame.point, frame.secondary[2]
        assert np.hypot((x - sx) * 2.56, (y - sy) * 1.44) > 27, seed
        assert position_class_of(x, y) == 3


def test_random_spec_covers_classes_and_negatives() -> None:
    specs = [random_frame_spec(s, none_fraction=0.1) for s in range(300)]
    assert specs[5] == random_frame_spec(5, none_fraction=0.1)
    assert {s["position_class"] for s in specs} == {None, 1, 2, 3, 4, 5}
    assert 10 <= sum(s["instrument"] == "no_visible_instrument" for s in specs) <= 50


# ------------------------------------------------------------------ frame extractor


def _write_video(path: Path, fps: int, n_frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((48, 64, 3), (i * 7) % 256, dtype=np.uint8))  # grey level encodes the index
    writer.release()


def test_extract_frames_one_per_second(tmp_path: Path) -> None:
    video = tmp_path / "tiny.avi"
    _write_video(video, fps=10, n_frames=35)  # 3.5 s -> seconds 0, 1, 2, 3
    written = extract_frames(video, tmp_path / "frames", video_num=7)
    assert written == [frame_path(7, s) for s in range(4)] == ["video_07/frame_000000.jpg", *written[1:]]
    levels = [cv2.imread(str(tmp_path / "frames" / p)).mean() for p in written]
    assert levels == pytest.approx([0, 70, 140, 210], abs=6)  # frames 0, 10, 20, 30
    # selected seconds only, past-the-end ignored; a rerun skips existing files
    assert extract_frames(video, tmp_path / "frames", video_num=7, seconds=[2, 9]) == ["video_07/frame_000002.jpg"]


def test_frame_extractor_batch_keeps_failures_in_the_error_column(tmp_path: Path) -> None:
    video = tmp_path / "tiny.avi"
    _write_video(video, fps=5, n_frames=11)
    out = FrameExtractor(str(tmp_path / "f"))(
        {
            "video_path": np.array([str(video), str(tmp_path / "missing.mp4")], dtype=object),
            "video_num": np.array([1, 2]),
        }
    )
    assert out["n_frames"].tolist() == [3, 0]
    assert out["error"][0] is None and "does not exist" in out["error"][1]
