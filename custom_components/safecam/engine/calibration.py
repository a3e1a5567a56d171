"""Ground-plane calibration: normalized image points -> floor positions in metres (a homography).

A site owner marks four points on the floor in the image and says where they are on the floor
(`floor`, metres, any origin and axes), or marks the corners of a rectangle of known size
(`rectangle_m: [width, depth]`, corners in order around it, starting at the floor origin).
The homography from those four pairs turns a person's feet into metres, and zones into floor
polygons, which is what every metric rule (approach, distancing, density) needs.

Points beyond the floor's horizon (where the mapping goes to infinity or behind the camera) have
no floor position: they map to NaN, and zones are clipped at the horizon.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ConfigError, ZoneConfig, reject_unknown_keys
from .geometry import GeometryError, polygon_area, validate_polygon

MIN_IMAGE_AREA = 0.005  # 0.5 % of the frame: smaller quads extrapolate too poorly to be worth having
MIN_SIDE_M, MAX_SIDE_M = 0.2, 200.0  # floor sides outside this are a unit mistake (cm? mm?), not a CCTV view
COLLINEAR_RATIO = 0.02  # a triangle of three of the points under 2 % of the quad: they are on one line
# w (the homogeneous scale) is 1 at the calibration quad; below this a point is over 50x further
# away than the quad, or beyond the horizon: no usable floor position.
MIN_W = 0.02
_KEYS = {"image", "floor", "rectangle_m"}


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def _convex(pts: np.ndarray) -> bool:
    edges = np.roll(pts, -1, axis=0) - pts
    turns = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    return bool(np.all(turns > 0) or np.all(turns < 0))


def _collinear_triple(pts: np.ndarray) -> tuple[int, int, int] | None:
    area = polygon_area(pts)
    for tri in itertools.combinations(range(4), 3):
        if polygon_area(pts[list(tri)]) < COLLINEAR_RATIO * area:
            return tri
    return None


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 H with dst ~ H @ [src, 1] for four point pairs (direct linear transform, null space by SVD)."""
    rows = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, sing, vt = np.linalg.svd(np.asarray(rows, np.float64))  # 8 x 9: the last row of vt spans the null space
    # Four pairs in general position give rank 8 (one null vector); a near-zero 8th singular value
    # means a second one: the pairs do not pin the mapping down.
    if sing[-1] < 1e-9 * sing[0]:
        raise ConfigError("calibration: the points do not define a unique floor mapping (degenerate)")
    return np.asarray(vt[-1].reshape(3, 3), np.float64)


@dataclass(frozen=True, slots=True)
class FloorPolygon:
    """A zone on the floor, in metres. `clipped`: part of the zone lies beyond the horizon."""

    points: np.ndarray  # (K, 2) metres
    clipped: bool

    @property
    def area_m2(self) -> float | None:
        return None if self.clipped else polygon_area(self.points)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Metres from each floor point (N, 2) to the polygon: 0 inside, NaN for NaN points."""
        return polygon_distance(points, self.points)


def polygon_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance from (N, 2) points to a simple polygon (K, 2): 0 inside, to the nearest edge outside."""
    if len(points) == 0:
        return np.zeros(0, np.float64)
    a = polygon[None, :, :]
    b = np.roll(polygon, -1, axis=0)[None, :, :]
    p = points[:, None, :]
    ab = b - a
    denom = np.maximum((ab**2).sum(axis=2), 1e-18)
    s = np.clip(((p - a) * ab).sum(axis=2) / denom, 0.0, 1.0)
    dist = np.sqrt((((a + s[..., None] * ab) - p) ** 2).sum(axis=2)).min(axis=1)
    # Inside (even-odd ray cast): distance 0.
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x1, y1, x2, y2 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    inside = ((((y1 > y) != (y2 > y)) & (x < x_at)).sum(axis=1) % 2) == 1
    out: np.ndarray = np.where(inside, 0.0, dist)
    out[np.isnan(points).any(axis=1)] = np.nan
    return out


@dataclass(frozen=True, slots=True)
class Calibration:
    """Normalized image points (x right, y down, 0..1) <-> floor metres, from four point pairs."""

    image: tuple[tuple[float, float], ...]
    floor: tuple[tuple[float, float], ...]
    # image -> floor, scaled so that w = 1 at the centre of the image quad. Derived from the points,
    # so left out of ==/hash (an ndarray cannot be compared as a bool; scenes are compared on change).
    matrix: np.ndarray = field(compare=False)

    @classmethod
    def from_points(cls, image: Sequence[Sequence[float]], floor: Sequence[Sequence[float]]) -> Calibration:
        """Validated calibration; ConfigError (one line) naming the problem otherwise."""
        image, floor = (p.tolist() if isinstance(p, np.ndarray) else p for p in (image, floor))
        img, flo = _validate_image(image), _validate_floor(floor)
        h = homography(img, flo)
        # Two convex quads in the same cyclic order: the horizon cannot cross the image quad, so w has
        # one sign at its corners; scale it to +1 at the centre ("in front of the camera").
        centre = np.append(img.mean(axis=0), 1.0)
        h = h / float(centre @ h[2])  # w = +1 at the quad: points in front of the camera have w > 0
        if not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12 or np.linalg.cond(h) > 1e12:
            raise ConfigError("calibration: the floor mapping is degenerate (check the points)")
        return cls(tuple((float(x), float(y)) for x, y in img), tuple((float(x), float(y)) for x, y in flo), h)

    def _w(self, points: np.ndarray) -> np.ndarray:
        out: np.ndarray = points @ self.matrix[2, :2] + self.matrix[2, 2]
        return out

    def to_floor(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) normalized image points -> (N, 2) metres; NaN where the point has no floor position."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        hom = np.c_[pts, np.ones(len(pts))] @ self.matrix.T
        w = hom[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            out: np.ndarray = hom[:, :2] / w[:, None]
        out[w < MIN_W] = np.nan
        return out

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) floor metres -> normalized image points (the inverse mapping)."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        hom = np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(self.matrix).T
        out: np.ndarray = hom[:, :2] / hom[:, 2:3]
        return out

    def distance_m(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        """Floor distance in metres between two normalized image points (NaN beyond the horizon)."""
        fa, fb = self.to_floor(np.array([a, b]))
        return float(np.hypot(*(fa - fb)))

    def floor_polygon(self, polygon: Sequence[Sequence[float]]) -> FloorPolygon | None:
        """A zone polygon (normalized) on the floor, clipped at the horizon; None when none of it is on the floor."""
        pts = np.asarray(polygon, np.float64)
        # w is linear in (x, y), so "w >= MIN_W" is a half-plane of the image: clip the polygon to it
        # (Sutherland-Hodgman with one edge). Clipped vertices lie on the zone's true edges.
        w = self._w(pts) - MIN_W
        kept: list[np.ndarray] = []
        n = len(pts)
        for i in range(n):
            p, q, wp, wq = pts[i], pts[(i + 1) % n], w[i], w[(i + 1) % n]
            if wp >= 0:
                kept.append(p)
            if (wp >= 0) != (wq >= 0):
                kept.append(p + (q - p) * (wp / (wp - wq)))
        if len(kept) < 3:
            return None
        hom = np.c_[np.asarray(kept), np.ones(len(kept))] @ self.matrix.T
        # Clipped vertices sit at w == MIN_W up to rounding: divide by at least that, never by ~0.
        return FloorPolygon(hom[:, :2] / np.maximum(hom[:, 2:3], MIN_W), bool((w < 0).any()))


def _pairs(value: object, what: str) -> list[tuple[float, float]]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 4:
        raise ConfigError(f"calibration {what}: expected exactly 4 [x, y] points")
    out = []
    for i, p in enumerate(value):
        if not isinstance(p, Sequence) or isinstance(p, str) or len(p) != 2 or not all(_number(v) for v in p):
            raise ConfigError(f"calibration {what}: point {i + 1} is not [x, y] numbers")
        out.append((float(p[0]), float(p[1])))
    return out


def _validate_quad(pts: np.ndarray, what: str) -> None:
    tri = _collinear_triple(pts)
    if tri is not None:
        a, b, c = (i + 1 for i in tri)
        raise ConfigError(f"calibration {what}: points {a}, {b} and {c} are (nearly) on one line")
    if not _convex(pts):
        raise ConfigError(f"calibration {what}: the 4 points must go around a convex quadrilateral, in order")


def _validate_image(value: object) -> np.ndarray:
    _pairs(value, "image")
    try:
        pts = np.asarray(validate_polygon(value, "calibration image"), np.float64)
    except GeometryError as err:
        raise ConfigError(str(err)) from None
    _validate_quad(pts, "image")
    if polygon_area(pts) < MIN_IMAGE_AREA:
        raise ConfigError(
            f"calibration image: the 4 points cover {polygon_area(pts):.2%} of the frame; "
            f"spread them over at least {MIN_IMAGE_AREA:.1%} for a usable mapping"
        )
    return pts


def _validate_floor(value: object) -> np.ndarray:
    pts = np.asarray(_pairs(value, "floor"), np.float64)
    for i in range(4):
        side = float(np.hypot(*(pts[(i + 1) % 4] - pts[i])))
        if not MIN_SIDE_M <= side <= MAX_SIDE_M:
            hint = " (distances are in metres: centimetres entered?)" if side > MAX_SIDE_M else ""
            raise ConfigError(
                f"calibration floor: side {i + 1}-{(i + 1) % 4 + 1} is {side:g} m, "
                f"expected {MIN_SIDE_M:g} to {MAX_SIDE_M:g} m{hint}"
            )
    _validate_quad(pts, "floor")
    return pts


def parse_calibration(data: object, zones: tuple[ZoneConfig, ...]) -> Calibration:
    """The `calibration:` scene section: {image: 4 points, floor: 4 points (m)} or {image, rectangle_m: [w, d]}."""
    del zones  # zones beyond the horizon are clipped at use, not rejected: a whole-frame zone is common
    if not isinstance(data, dict):
        raise ConfigError("calibration: expected a mapping with 'image' and 'floor' (or 'rectangle_m')")
    reject_unknown_keys(data, _KEYS, "calibration")
    if "image" not in data:
        raise ConfigError("calibration: 'image' (4 [x, y] points, normalized) is required")
    if ("floor" in data) == ("rectangle_m" in data):
        raise ConfigError("calibration: give exactly one of 'floor' (4 points in metres) or 'rectangle_m' ([width, depth])")
    floor: Any = data.get("floor")
    if "rectangle_m" in data:
        rect = data["rectangle_m"]
        if not isinstance(rect, Sequence) or isinstance(rect, str) or len(rect) != 2 or not all(_number(v) for v in rect):
            raise ConfigError("calibration rectangle_m: expected [width, depth] in metres")
        w, d = float(rect[0]), float(rect[1])
        if w <= 0 or d <= 0:
            raise ConfigError("calibration rectangle_m: width and depth must be positive (metres)")
        # Corners in the order the image points go round, starting at the floor origin.
        floor = [[0.0, 0.0], [w, 0.0], [w, d], [0.0, d]]
    return Calibration.from_points(data["image"], floor)
