"""The five PitVQA tip-position regions as geometry on the seed's 0-100 image scale.

PitVQA labels each instrument tip with a *position class* (1-5), not a coordinate. The
authoritative class table (PitVQA ``number_location_mapping``) is::

    1 = top-left   2 = top-right   3 = centre   4 = bottom-left   5 = bottom-right

No published geometry goes with it, so we define one here and use it everywhere (targets,
rewards, metrics, rendering). Coordinates are ``x`` to the right and ``y`` down, both 0-100
(percent of width / height).

Decision: the regions **partition** the frame. The centre is the box ``[25, 75] x [25, 75]``
(the middle half of each axis, 25% of the area) and it is carved *out of* the four quadrants,
so each corner region is the quadrant minus the centre box, an L shape of two rectangles
(18.75% of the area each)::

      0        25        50        75       100  x
    0 +---------+---------+---------+---------+
      |    1 top-left     |    2 top-right    |
   25 +         +---------+---------+         +
      |    1    |                   |    2    |
   50 +---------+     3 centre      +---------+
      |    4    |                   |    5    |
   75 +         +---------+---------+         +
      |  4 bottom-left    |  5 bottom-right   |
  100 +---------+---------+---------+---------+
    y

Why a partition: a point then has exactly one class, so "the point is inside the true region"
(distance 0, full distance credit) and "the point's class is the true class" (quadrant credit)
never disagree, except on the measure-zero borders, where :func:`position_class_of` breaks
ties (the centre box is closed; ``x == 50`` or ``y == 50`` outside it count as right / bottom).

Region "centres" (:data:`REGION_CENTRES`) are the centroids of these shapes. A PitVQA row has no
true coordinate, so a coordinate error against a region centre measures only how far a point is
from that arbitrary representative point; distance to the region is the honest measure.

>>> position_class_of(10, 10), position_class_of(50, 50), position_class_of(90, 60)
(1, 3, 5)
>>> distance_to_region(10, 10, 1), round(distance_to_region(50, 50, 1), 1)
(0.0, 25.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CENTRE_BOX",
    "POSITION_CLASSES",
    "REGIONS",
    "REGION_CENTRES",
    "Box",
    "distance_to_region",
    "position_class_of",
    "sample_point",
]

SCALE = 100.0
CENTRE_BOX = (25.0, 25.0, 75.0, 75.0)  # x0, y0, x1, y1 of region 3
POSITION_CLASSES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Box:
    """A closed axis-aligned rectangle ``[x0, x1] x [y0, y1]`` on the 0-100 scale."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def distance(self, x: float, y: float) -> float:
        """Euclidean distance from ``(x, y)`` to the box (0 inside or on the border)."""
        dx = max(self.x0 - x, 0.0, x - self.x1)
        dy = max(self.y0 - y, 0.0, y - self.y1)
        return math.hypot(dx, dy)


def _corner(left: bool, top: bool) -> tuple[Box, ...]:
    """The L-shaped corner region: the quadrant minus the centre box, as two rectangles."""
    cx0, cy0, cx1, cy1 = CENTRE_BOX
    qx0, qx1 = (0.0, 50.0) if left else (50.0, SCALE)
    qy0, qy1 = (0.0, 50.0) if top else (50.0, SCALE)
    # The full-width strip along the outer horizontal edge, then the outer vertical strip.
    strip_y = (qy0, cy0) if top else (cy1, qy1)
    strip_x = (qx0, cx0) if left else (cx1, qx1)
    inner_y = (cy0, qy1) if top else (qy0, cy1)
    return (Box(qx0, strip_y[0], qx1, strip_y[1]), Box(strip_x[0], inner_y[0], strip_x[1], inner_y[1]))


REGIONS: dict[int, tuple[Box, ...]] = {
    1: _corner(left=True, top=True),
    2: _corner(left=False, top=True),
    3: (Box(*CENTRE_BOX),),
    4: _corner(left=True, top=False),
    5: _corner(left=False, top=False),
}
"""Position class -> the rectangles whose union is its region."""


def _centroid(boxes: tuple[Box, ...]) -> tuple[float, float]:
    total = sum(b.area for b in boxes)
    return (
        round(sum(b.area * b.centre[0] for b in boxes) / total, 4),
        round(sum(b.area * b.centre[1] for b in boxes) / total, 4),
    )


REGION_CENTRES: dict[int, tuple[float, float]] = {k: _centroid(v) for k, v in REGIONS.items()}
"""Position class -> centroid ``(x, y)`` of its region: (20.8333, 20.8333) for 1, (50, 50) for 3."""


def _check_class(position_class: int) -> int:
    if isinstance(position_class, bool) or position_class not in REGIONS:
        raise ValueError(f"position class {position_class!r} is not one of {list(POSITION_CLASSES)}")
    return int(position_class)


def position_class_of(x: float, y: float) -> int:
    """The position class (1-5) of a point on the 0-100 scale.

    Args:
        x: horizontal coordinate, 0 (left) to 100 (right).
        y: vertical coordinate, 0 (top) to 100 (bottom).

    Returns:
        3 when the point is in the closed centre box, else the quadrant (1, 2, 4, 5).

    Raises:
        ValueError: when a coordinate is not a finite number in [0, 100].
    """
    for name, v in (("x", x), ("y", y)):
        if not (math.isfinite(v) and 0.0 <= v <= SCALE):
            raise ValueError(f"{name}={v!r} is outside the 0-100 image scale")
    cx0, cy0, cx1, cy1 = CENTRE_BOX
    if cx0 <= x <= cx1 and cy0 <= y <= cy1:
        return 3
    top, left = y < 50.0, x < 50.0
    return {(True, True): 1, (True, False): 2, (False, True): 4, (False, False): 5}[(top, left)]


def distance_to_region(x: float, y: float, position_class: int) -> float:
    """Euclidean distance (0-100 units) from a point to the region of ``position_class``.

    Args:
        x: horizontal coordinate on the 0-100 scale (values outside are measured as they are).
        y: vertical coordinate on the 0-100 scale.
        position_class: 1-5.

    Returns:
        0.0 when the point lies in the (closed) region, else the distance to its nearest point.

    Raises:
        ValueError: for a position class outside 1-5.
    """
    boxes = REGIONS[_check_class(position_class)]
    return min(b.distance(x, y) for b in boxes)


def sample_point(position_class: int, rng: np.random.Generator, margin: float = 0.0) -> tuple[float, float]:
    """Draws a uniform random point of a region, at least ``margin`` away from other regions.

    Args:
        position_class: 1-5.
        rng: numpy random generator (the only source of randomness, so results follow its seed).
        margin: minimum distance (0-100 units) from every other region and from the frame edge.

    Returns:
        ``(x, y)`` on the 0-100 scale with ``position_class_of(x, y) == position_class``.

    Raises:
        ValueError: for a position class outside 1-5 or a margin that leaves no room (>= 12.5).
    """
    boxes = REGIONS[_check_class(position_class)]
    if not 0.0 <= margin < 12.5:
        raise ValueError(f"margin={margin} must be in [0, 12.5)")
    weights = np.array([b.area for b in boxes]) / sum(b.area for b in boxes)
    others = [k for k in REGIONS if k != position_class]
    for _ in range(1000):
        box = boxes[int(rng.choice(len(boxes), p=weights))]
        x = float(rng.uniform(box.x0, box.x1))
        y = float(rng.uniform(box.y0, box.y1))
        if position_class_of(x, y) != position_class:
            continue
        near_edge = min(x, y, SCALE - x, SCALE - y) < margin
        if margin and (near_edge or min(distance_to_region(x, y, k) for k in others) < margin):
            continue
        return x, y
    raise AssertionError("unreachable: rejection sampling failed 1000 times")  # pragma: no cover
