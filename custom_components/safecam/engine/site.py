"""Site fusion across cameras, without biometrics: how many people are on a site, and where.

Two independent estimates, both HA-free:

1. Gate flows (`GateFlowOccupancy`): the site's perimeter gates, each watched by one camera, with the
   gate direction that enters the site. Occupancy is sum(in) - sum(out) over all of them, never below
   zero. Flows drift (a missed exit stays counted forever), so when every camera of the site has
   reported nobody for `empty_reset_s`, the count goes back to zero.

2. Floor positions (`SiteFusion`, `fuse_positions`): cameras calibrated to one shared floor plan
   (engine/calibration.py, metres) put their people on one map. People seen by two overlapping
   cameras are one person when their floor points are within `radius_m` at about the same time; the
   merge uses position and time only (no appearance, no identity), and never merges two people
   seen by the same camera (that camera sees them apart). Greedy on distance, closest pairs first,
   with complete linkage: every member of a merged person is within `radius_m` of every other.

The camera side is `FloorAnalyzer` ("floor"): a calibrated camera reports its people's floor points
in metres (no pixels, no track ids) in CameraState.analytics["floor"], so a site can fuse cameras
whatever runs them (this host's workers or remote ones). `SiteHeatmap` and `render_floor_plan` put
the fused people on the site's floor plan (metres), drawn from geometry only: never camera pixels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .calibration import Calibration
from .scene.heatmap import STEP_S, HeatmapStore, render_heatmap

if TYPE_CHECKING:
    from .scene.base import AnalysisFrame
    from .types import SafetyEvent

DEFAULT_RADIUS_M = 1.0  # two cameras' feet points of one person: homography error plus box jitter
DEFAULT_MAX_DT_S = 0.5  # observations further apart in time are not "the same moment"
DEFAULT_MAX_AGE_S = 2.0  # a camera's last frame older than this no longer counts towards the site
DEFAULT_EMPTY_RESET_S = 30.0


# ---- gate flows -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteGate:
    camera: str
    gate: str
    inward: str  # the gate direction ("in" | "out") that enters the site

    def __post_init__(self) -> None:
        if self.inward not in ("in", "out"):
            raise ValueError(f"site gate {self.camera}/{self.gate}: inward must be 'in' or 'out', not {self.inward!r}")


class GateFlowOccupancy:
    """Site occupancy from perimeter gate totals, drift-corrected on an all-cameras-empty site.

    Feed each camera's cumulative gate totals (as the engine reports them: {"gate": {"in": n, "out": m}})
    and its current people count with `update`. Totals are turned into increments here; a counter
    reset on one camera (totals going down) counts from zero instead of producing negative flows.
    """

    def __init__(self, gates: Sequence[SiteGate], cameras: Iterable[str], empty_reset_s: float = DEFAULT_EMPTY_RESET_S) -> None:
        self.gates = tuple(gates)
        self.cameras = frozenset(cameras) | {g.camera for g in self.gates}
        self.empty_reset_s = empty_reset_s
        self.occupancy = 0
        self.entries = 0
        self.exits = 0
        self._last_totals: dict[tuple[str, str], tuple[int, int]] = {}
        self._empty_since: dict[str, float | None] = {}  # camera -> since when it has seen nobody (None: someone)

    def set_cameras(self, cameras: Iterable[str]) -> None:
        """The site's cameras now (one added, removed or disabled): exactly these decide "everyone gone".

        A gate camera left out (deleted) no longer blocks the reset; its flows count while it reports.
        """
        self.cameras = frozenset(cameras)
        self._empty_since = {c: s for c, s in self._empty_since.items() if c in self.cameras}

    def update(self, t: float, camera: str, gate_totals: Mapping[str, Mapping[str, int]], people: int | None) -> int:
        """One camera's report at time t; people None: unknown (no video), which never counts as empty."""
        for g in self.gates:
            if g.camera != camera or g.gate not in gate_totals:
                continue
            tot = gate_totals[g.gate]
            now = (int(tot.get("in", 0)), int(tot.get("out", 0)))
            last = self._last_totals.get((camera, g.gate))
            self._last_totals[(camera, g.gate)] = now
            if last is None:
                continue  # the first report is the baseline: crossings before the site existed are not ours
            # Totals going down: the camera's counters were reset; what it reports now is counted since then.
            d_in, d_out = (n - p if n >= p else n for n, p in zip(now, last, strict=True))
            inward, outward = (d_in, d_out) if g.inward == "in" else (d_out, d_in)
            self.entries += inward
            self.exits += outward
            self.occupancy = max(self.occupancy + inward - outward, 0)
        if camera in self.cameras:
            since = self._empty_since.get(camera)
            self._empty_since[camera] = (since if since is not None else t) if people == 0 else None
        if self.empty_reset_s > 0 and self._all_empty_since(t):
            self.occupancy = 0
        return self.occupancy

    def _all_empty_since(self, t: float) -> bool:
        if not self.cameras or set(self._empty_since) != set(self.cameras):
            return False  # a camera that has not reported yet may see someone; no camera vouches for nobody
        return all(s is not None and t - s >= self.empty_reset_s for s in self._empty_since.values())


# ---- floor positions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloorObservation:
    camera: str
    t: float
    x: float  # metres on the shared floor plan
    y: float
    track_id: int | None = None


@dataclass(frozen=True, slots=True)
class FusedPerson:
    x: float
    y: float
    observations: tuple[FloorObservation, ...]

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(sorted({o.camera for o in self.observations}))


def fuse_positions(
    observations: Sequence[FloorObservation], radius_m: float = DEFAULT_RADIUS_M, max_dt_s: float = DEFAULT_MAX_DT_S
) -> list[FusedPerson]:
    """One FusedPerson per real person: observations from different cameras within radius_m and max_dt_s merge."""
    obs = [o for o in observations if math.isfinite(o.x) and math.isfinite(o.y)]
    n = len(obs)
    if n == 0:
        return []
    xy = np.array([(o.x, o.y) for o in obs], np.float64)
    ts = np.array([o.t for o in obs], np.float64)
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    close = (dist <= radius_m) & (np.abs(ts[:, None] - ts[None, :]) <= max_dt_s)
    cluster = list(range(n))  # observation -> cluster id
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    candidates = itertools.combinations(range(n), 2)
    pairs = sorted((float(dist[i, j]), i, j) for i, j in candidates if close[i, j] and obs[i].camera != obs[j].camera)
    for _, i, j in pairs:
        a, b = cluster[i], cluster[j]
        if a == b:
            continue
        merged = members[a] + members[b]
        cams = [obs[k].camera for k in merged]
        if len(set(cams)) != len(cams):
            continue  # one camera's two people are never one person
        if not all(close[p, q] for p, q in itertools.combinations(merged, 2)):
            continue  # complete linkage: no chaining of people walking in a line
        for k in members.pop(b):
            cluster[k] = a
        members[a] = merged
    out = []
    for idx in members.values():
        pts = xy[idx]
        out.append(FusedPerson(float(pts[:, 0].mean()), float(pts[:, 1].mean()), tuple(obs[k] for k in idx)))
    out.sort(key=lambda p: (p.x, p.y))
    return out


@dataclass
class _CameraView:
    calibration: Calibration | None  # None: the camera reports floor points itself (update_floor)
    observations: list[FloorObservation] = field(default_factory=list)
    t: float | None = None


class SiteFusion:
    """Cameras on one floor plan; `update`/`update_floor` per camera frame, `people(t)` the fused view.

    All cameras' `t` must be on one clock (wall or monotonic time of the host fusing them).
    """

    def __init__(
        self,
        calibrations: Mapping[str, Calibration] | None = None,
        radius_m: float = DEFAULT_RADIUS_M,
        max_dt_s: float = DEFAULT_MAX_DT_S,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.views = {cam: _CameraView(cal) for cam, cal in (calibrations or {}).items()}
        self.radius_m, self.max_dt_s, self.max_age_s = radius_m, max_dt_s, max_age_s

    def update(self, camera: str, t: float, image_points: np.ndarray, track_ids: Sequence[int] | None = None) -> None:
        """A camera's people this frame: (N, 2) normalized floor points (box bottom-centres)."""
        calibration = self.views[camera].calibration
        if calibration is None:
            raise ValueError(f"camera {camera!r} has no calibration here: it reports floor points (update_floor)")
        floor = calibration.to_floor(np.asarray(image_points, np.float64).reshape(-1, 2))
        self.update_floor(camera, t, floor, track_ids)

    def update_floor(self, camera: str, t: float, floor_points: np.ndarray, track_ids: Sequence[int] | None = None) -> None:
        """A camera's people this frame as (N, 2) floor points in metres (a camera joins on its first report)."""
        view = self.views.setdefault(camera, _CameraView(None))
        floor = np.asarray(floor_points, np.float64).reshape(-1, 2)
        ids: Sequence[int | None] = list(track_ids) if track_ids is not None else [None] * len(floor)
        view.observations = [
            FloorObservation(camera, t, float(x), float(y), tid)
            for (x, y), tid in zip(floor, ids, strict=True)
            if math.isfinite(x) and math.isfinite(y)  # beyond the horizon: no floor position
        ]
        view.t = t

    def forget(self, camera: str) -> None:
        """The camera left the site (removed, or no longer calibrated)."""
        self.views.pop(camera, None)

    def people(self, t: float) -> list[FusedPerson]:
        """Fused people from every camera whose last frame is at most max_age_s old at time t."""
        obs = [o for v in self.views.values() if v.t is not None and t - v.t <= self.max_age_s for o in v.observations]
        return fuse_positions(obs, self.radius_m, self.max_dt_s)

    def naive_count(self, t: float) -> int:
        return sum(len(v.observations) for v in self.views.values() if v.t is not None and t - v.t <= self.max_age_s)


# ---- the camera side: floor points of a calibrated camera ----------------------------------------


class FloorAnalyzer:
    """analytics["floor"]: the counted people's floor points in metres, through the camera's `calibration:`.

    Built only for calibrated cameras. Points beyond the floor's horizon are left out. Geometry only:
    no pixels and no track ids (a site merges by position and time, never by identity).
    """

    name = "floor"

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration
        self._points: list[list[float]] = []

    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]:
        floor = self.calibration.to_floor(np.asarray(frame.positions, np.float64).reshape(-1, 2))
        self._points = [[round(float(x), 2), round(float(y), 2)] for x, y in floor if math.isfinite(x) and math.isfinite(y)]
        return []

    def snapshot(self) -> dict[str, Any]:
        return {"people": [list(p) for p in self._points]}


def floor_points(analytics: Mapping[str, Any] | None) -> np.ndarray | None:
    """(N, 2) metres from a camera's analytics["floor"] snapshot; None when the camera reports none (uncalibrated)."""
    snapshot = analytics.get("floor") if analytics is not None else None
    people = snapshot.get("people") if isinstance(snapshot, Mapping) else None
    if not isinstance(people, list):
        return None
    pts = [p for p in people if isinstance(p, list | tuple) and len(p) == 2]
    return np.asarray(pts, np.float64).reshape(-1, 2)


# ---- the site's floor plan: extent, heatmap, picture ----------------------------------------------

PLAN_LONG_SIDE_PX = 800  # the plan picture's longer side
LEGEND_PX = 28  # the strip under the plan: count and scale bar
SITE_CELL_M = 0.5  # heatmap cell size on the floor


@dataclass(frozen=True, slots=True)
class FloorPlan:
    """The mapped floor: x from 0 to width_m (right), y from 0 to depth_m (down), in metres."""

    width_m: float
    depth_m: float

    def __post_init__(self) -> None:
        if not (0 < self.width_m <= 10_000 and 0 < self.depth_m <= 10_000):
            raise ValueError(f"floor plan size {self.width_m:g} x {self.depth_m:g} m: both sides must be 0 to 10000 m")

    @property
    def px_per_m(self) -> float:
        return PLAN_LONG_SIDE_PX / max(self.width_m, self.depth_m)

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the plan area in pixels (the legend strip comes below it)."""
        return max(round(self.width_m * self.px_per_m), 1), max(round(self.depth_m * self.px_per_m), 1)

    def contains(self, x: float, y: float) -> bool:
        return 0.0 <= x <= self.width_m and 0.0 <= y <= self.depth_m

    def to_px(self, points: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(points, np.float64).reshape(-1, 2) * self.px_per_m).astype(np.int64)


class SiteHeatmap:
    """Where the site's fused people were, on the floor plan (SITE_CELL_M cells), in HeatmapStore buckets.

    Sampled once per STEP_S: each fused person counts once per time step, in one cell, however many
    cameras see them and however often the cameras report (two cameras never heat a cell twice).
    """

    def __init__(self, plan: FloorPlan, cell_m: float = SITE_CELL_M) -> None:
        self.plan = plan
        self.store = HeatmapStore(max(math.ceil(plan.width_m / cell_m), 1), max(math.ceil(plan.depth_m / cell_m), 1))
        self._step: int | None = None

    def add(self, t: float, people: Sequence[FusedPerson]) -> int:
        step = math.floor(t / STEP_S)
        if step == self._step:
            return 0
        self._step = step
        pts = np.array([[p.x / self.plan.width_m, p.y / self.plan.depth_m] for p in people], np.float64).reshape(-1, 2)
        return self.store.add(t, list(range(len(pts))), pts)  # outside the plan: not counted

    def grid(self, window: str = "hour") -> np.ndarray:
        return self.store.grid(window)


# BGR; drawn without anti-aliasing, so the picture holds these colours only (plus the plan picture's).
PLAN_BG = (236, 236, 236)
PLAN_GRID = (205, 205, 205)
PLAN_GRID_MAJOR = (160, 160, 160)
PLAN_INK = (40, 40, 40)
PLAN_LEGEND_BG = (255, 255, 255)
DOT_ONE_CAMERA = (200, 110, 20)  # blue: seen by one camera
DOT_MERGED = (30, 150, 30)  # green: seen by several cameras, merged into one person
DOT_RADIUS_M = 0.25


def plan_background(plan: FloorPlan, picture_bgr: np.ndarray | None = None) -> np.ndarray:
    """The plan area: the site's floor plan picture stretched to the mapped extent, or a grid in metres."""
    w, h = plan.size_px
    if picture_bgr is not None:
        return np.ascontiguousarray(cv2.resize(np.asarray(picture_bgr, np.uint8)[..., :3], (w, h), interpolation=cv2.INTER_AREA))
    out = np.full((h, w, 3), PLAN_BG, np.uint8)
    step = 1 if max(plan.width_m, plan.depth_m) <= 40 else 5  # a line per metre, or per 5 m on big sites
    for i in range(0, math.floor(max(plan.width_m, plan.depth_m) / step) + 1):
        m = i * step
        colour = PLAN_GRID_MAJOR if m % (5 * step) == 0 else PLAN_GRID
        px = round(m * plan.px_per_m)
        if m <= plan.width_m:
            cv2.line(out, (px, 0), (px, h - 1), colour, 1, cv2.LINE_8)
        if m <= plan.depth_m:
            cv2.line(out, (0, px), (w - 1, px), colour, 1, cv2.LINE_8)
    return out


def _scale_bar_m(plan: FloorPlan) -> float:
    target = max(plan.width_m, plan.depth_m) / 5  # about a fifth of the plan
    return next((m for m in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if m >= target), 1000.0)


def _text(image: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    """Text in PLAN_INK without anti-aliasing (some OpenCV builds smooth text whatever the line type)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.putText(mask, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_8)
    image[mask >= 128] = PLAN_INK


def _with_legend(area: np.ndarray, plan: FloorPlan, text: str) -> np.ndarray:
    h, w = area.shape[:2]
    out = np.full((h + LEGEND_PX, max(w, 240), 3), PLAN_LEGEND_BG, np.uint8)
    out[:h, :w] = area
    bar = _scale_bar_m(plan)
    x0, y = 8, h + LEGEND_PX // 2
    x1 = x0 + max(round(bar * plan.px_per_m), 1)
    cv2.line(out, (x0, y), (x1, y), PLAN_INK, 2, cv2.LINE_8)
    for x in (x0, x1):
        cv2.line(out, (x, y - 5), (x, y + 5), PLAN_INK, 1, cv2.LINE_8)
    _text(out, f"{bar:g} m", (x1 + 6, y + 5))
    _text(out, text, (x1 + 70, y + 5))
    return out


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("could not encode the floor plan PNG")
    return bytes(buf.tobytes())


def render_floor_plan(plan: FloorPlan, people: Sequence[FusedPerson], picture_bgr: np.ndarray | None = None) -> bytes:
    """PNG: the plan with one dot per fused person (green: merged from several cameras), count and scale below."""
    area = plan_background(plan, picture_bgr)
    radius = max(round(DOT_RADIUS_M * plan.px_per_m), 3)
    for p in people:
        (x, y), colour = plan.to_px(np.array([[p.x, p.y]]))[0], DOT_MERGED if len(p.cameras) > 1 else DOT_ONE_CAMERA
        cv2.circle(area, (int(x), int(y)), radius, colour, -1, cv2.LINE_8)
        cv2.circle(area, (int(x), int(y)), radius, PLAN_INK, 1, cv2.LINE_8)
    merged = sum(len(p.cameras) > 1 for p in people)
    return _png(_with_legend(area, plan, f"{len(people)} on map, {merged} seen by 2+ cameras"))


def render_site_heatmap(plan: FloorPlan, grid: np.ndarray, picture_bgr: np.ndarray | None = None) -> bytes:
    """PNG: the site heatmap over the plan (render_heatmap's colours), scale below."""
    area = plan_background(plan, picture_bgr)
    heat = cv2.imdecode(np.frombuffer(render_heatmap(grid, area, size=plan.size_px), np.uint8), cv2.IMREAD_COLOR)
    if heat is None:
        raise RuntimeError("could not decode the heatmap PNG")
    return _png(_with_legend(np.asarray(heat, np.uint8), plan, f"{float(np.asarray(grid).sum()):.0f} person-steps"))
