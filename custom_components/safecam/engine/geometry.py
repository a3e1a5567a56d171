"""Plane geometry on normalized coordinates (0..1, x right, y down), with validation.

Validation lives here so the CLI config, the HA options flow and the add-on reject the same
malformed shapes with the same message. It is pure Python: Home Assistant validates scenes without
numpy (a thin integration imports none). numpy is imported only by the vectorized helpers the
analyzers run per frame (points_in_polygon, side_of_line).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

type Point = tuple[float, float]
type Coords = Sequence[float] | np.ndarray  # one point: a pair, or a row of an (N, 2) array
type Rows = Sequence[Sequence[float]] | np.ndarray  # points: pairs, or an (N, 2) array

MAX_POLYGON_POINTS = 64
MIN_POLYGON_AREA = 1e-4  # 0.01 % of the frame: smaller is a typo, not a zone
MIN_LINE_LENGTH = 0.01


class GeometryError(ValueError):
    """A shape that cannot be used; the message says which and why."""


def _cross(o: Coords, a: Coords, b: Coords) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def segments_intersect(p1: Coords, p2: Coords, q1: Coords, q2: Coords) -> bool:
    """Proper or touching intersection of segments p1p2 and q1q2."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 * d2 < 0 and d3 * d4 < 0:
        return True

    def on_segment(a: Coords, b: Coords, c: Coords, d: float) -> bool:
        return abs(d) < 1e-12 and min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    return on_segment(q1, q2, p1, d1) or on_segment(q1, q2, p2, d2) or on_segment(p1, p2, q1, d3) or on_segment(p1, p2, q2, d4)


def _points(value: object, what: str) -> list[Point]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise GeometryError(f"{what}: expected a list of [x, y] points")
    pts = []
    for i, p in enumerate(value):
        if (
            not isinstance(p, Sequence)
            or isinstance(p, str)
            or len(p) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
        ):
            raise GeometryError(f"{what}: point {i + 1} is not [x, y] numbers")
        try:
            x, y = float(p[0]), float(p[1])
        except OverflowError:
            raise GeometryError(f"{what}: point {i + 1} is outside 0..1 (coordinates are normalized)") from None
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise GeometryError(f"{what}: point {i + 1} ({x}, {y}) is outside 0..1 (coordinates are normalized)")
        pts.append((x, y))
    return pts


def polygon_area(pts: Rows) -> float:
    """Shoelace area of a polygon given as (x, y) rows (a list of pairs or an (N, 2) array)."""
    n = len(pts)
    twice = sum(float(pts[i][0]) * float(pts[(i + 1) % n][1]) - float(pts[(i + 1) % n][0]) * float(pts[i][1]) for i in range(n))
    return abs(twice) / 2


def validate_polygon(value: object, what: str = "polygon") -> list[Point]:
    pts = _points(value, what)
    if len(pts) < 3:
        raise GeometryError(f"{what}: needs at least 3 points, got {len(pts)}")
    if len(pts) > MAX_POLYGON_POINTS:
        raise GeometryError(f"{what}: has {len(pts)} points, at most {MAX_POLYGON_POINTS} are allowed")
    n = len(pts)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbouring edges share a vertex
            if segments_intersect(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]):
                raise GeometryError(f"{what}: edges {i + 1} and {j + 1} cross (self-intersecting)")
    if polygon_area(pts) < MIN_POLYGON_AREA:
        raise GeometryError(f"{what}: is degenerate (area {polygon_area(pts):.2g} of the frame)")
    return pts


def validate_line(value: object, what: str = "line") -> list[Point]:
    pts = _points(value, what)
    if len(pts) != 2:
        raise GeometryError(f"{what}: needs exactly 2 points, got {len(pts)}")
    if math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]) < MIN_LINE_LENGTH:
        raise GeometryError(f"{what}: is too short (degenerate)")
    return pts


def points_in_polygon(points: np.ndarray, polygon: Rows) -> np.ndarray:
    """Even-odd ray casting for (N, 2) points; vectorized over points."""
    import numpy as np  # the per-frame maths: only where analysis runs

    polygon = np.asarray(polygon)  # (a validated polygon is a list of pairs; an array passes through)
    if len(points) == 0:
        return np.zeros(0, bool)
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < x_at)
    return (crossings.sum(axis=1) % 2) == 1


def side_of_line(points: np.ndarray, p1: Coords, p2: Coords) -> np.ndarray:
    """s(q) = (p2 - p1) x (q - p1): positive on one side, negative on the other."""
    import numpy as np

    p1, p2 = np.asarray(p1), np.asarray(p2)
    d = p2 - p1
    return d[0] * (points[:, 1] - p1[1]) - d[1] * (points[:, 0] - p1[0])
