"""Site fusion across cameras, without biometrics: how many people are on a site, and where. Pure Python + Pillow.

It runs in Home Assistant (site_entry.py), where no numpy or OpenCV may be needed (HA OS / Container are musl:
neither has wheels there); Pillow is a requirement of Home Assistant itself. The cameras' side, their people's
floor points in metres, is computed by the engine (engine/site.py FloorAnalyzer) and arrives in each camera's
state as analytics["floor"], whatever runs the camera (an engine service or this host's worker).

Two independent estimates:

1. Gate flows (`GateFlowOccupancy`): the site's perimeter gates, each watched by one camera, with the
   gate direction that enters the site. Occupancy is sum(in) - sum(out) over all of them, never below
   zero. Flows drift (a missed exit stays counted forever), so when every camera of the site has
   reported nobody for `empty_reset_s`, the count goes back to zero.

2. Floor positions (`SiteFusion`, `fuse_positions`): cameras calibrated to one shared floor plan put
   their people on one map. People seen by two overlapping cameras are one person when their floor
   points are within `radius_m` at about the same time; the merge uses position and time only (no
   appearance, no identity), and never merges two people seen by the same camera (that camera sees
   them apart). Greedy on distance, closest pairs first, with complete linkage: every member of a
   merged person is within `radius_m` of every other.

`SiteHeatmap`, `render_floor_plan` and `render_site_heatmap` put the fused people on the site's floor
plan (metres), drawn from geometry only: never camera pixels.
"""

from __future__ import annotations

import functools
import io
import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image, ImageDraw, ImageFont

DEFAULT_RADIUS_M = 1.0  # two cameras' feet points of one person: homography error plus box jitter
DEFAULT_MAX_DT_S = 0.5  # observations further apart in time are not "the same moment"
DEFAULT_MAX_AGE_S = 2.0  # a camera's last frame older than this no longer counts towards the site
DEFAULT_EMPTY_RESET_S = 30.0

type Point = tuple[float, float]


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
    # The pairs that may be one person (close in space and time), with their distance; a site holds tens of people.
    close: dict[tuple[int, int], float] = {}
    for i, first in enumerate(obs):
        for j in range(i + 1, len(obs)):
            other = obs[j]
            d = math.hypot(first.x - other.x, first.y - other.y)
            if d <= radius_m and abs(first.t - other.t) <= max_dt_s:
                close[i, j] = d
    cluster = list(range(len(obs)))  # observation -> cluster id
    members: dict[int, list[int]] = {i: [i] for i in range(len(obs))}
    for _, i, j in sorted((d, i, j) for (i, j), d in close.items() if obs[i].camera != obs[j].camera):
        a, b = cluster[i], cluster[j]
        if a == b:
            continue
        merged = members[a] + members[b]
        cams = [obs[k].camera for k in merged]
        if len(set(cams)) != len(cams):
            continue  # one camera's two people are never one person
        if not all((min(p, q), max(p, q)) in close for p in merged for q in merged if p != q):
            continue  # complete linkage: no chaining of people walking in a line
        for k in members.pop(b):
            cluster[k] = a
        members[a] = merged
    out = []
    for idx in members.values():
        xs, ys = [obs[k].x for k in idx], [obs[k].y for k in idx]
        out.append(FusedPerson(math.fsum(xs) / len(idx), math.fsum(ys) / len(idx), tuple(obs[k] for k in idx)))
    out.sort(key=lambda p: (p.x, p.y))
    return out


class ToFloor(Protocol):
    """A camera's image-to-floor mapping (engine/calibration.py Calibration): (N, 2) normalized -> (N, 2) metres."""

    def to_floor(self, points: Any) -> Iterable[Sequence[float]]: ...


@dataclass
class _CameraView:
    calibration: ToFloor | None  # None: the camera reports floor points itself (update_floor)
    observations: list[FloorObservation] = field(default_factory=list)
    t: float | None = None


class SiteFusion:
    """Cameras on one floor plan; `update`/`update_floor` per camera frame, `people(t)` the fused view.

    All cameras' `t` must be on one clock (wall or monotonic time of the host fusing them). In Home Assistant
    every camera reports floor points (update_floor); `update` maps image points through a calibration given here.
    """

    def __init__(
        self,
        calibrations: Mapping[str, ToFloor] | None = None,
        radius_m: float = DEFAULT_RADIUS_M,
        max_dt_s: float = DEFAULT_MAX_DT_S,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.views = {cam: _CameraView(cal) for cam, cal in (calibrations or {}).items()}
        self.radius_m, self.max_dt_s, self.max_age_s = radius_m, max_dt_s, max_age_s

    def update(self, camera: str, t: float, image_points: Any, track_ids: Sequence[int] | None = None) -> None:
        """A camera's people this frame: (N, 2) normalized floor points (box bottom-centres)."""
        calibration = self.views[camera].calibration
        if calibration is None:
            raise ValueError(f"camera {camera!r} has no calibration here: it reports floor points (update_floor)")
        self.update_floor(camera, t, calibration.to_floor(image_points), track_ids)

    def update_floor(
        self, camera: str, t: float, floor_points: Iterable[Sequence[float]], track_ids: Sequence[int] | None = None
    ) -> None:
        """A camera's people this frame as (x, y) floor points in metres (a camera joins on its first report)."""
        view = self.views.setdefault(camera, _CameraView(None))
        floor = [(float(p[0]), float(p[1])) for p in floor_points]
        ids: Sequence[int | None] = list(track_ids) if track_ids is not None else [None] * len(floor)
        view.observations = [
            FloorObservation(camera, t, x, y, tid)
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


def floor_points(analytics: Mapping[str, Any] | None) -> list[Point] | None:
    """A camera's analytics["floor"] snapshot (engine FloorAnalyzer) as (x, y) metres; None when it reports none
    (uncalibrated). Malformed points are left out: the state comes over the network."""
    snapshot = analytics.get("floor") if analytics is not None else None
    people = snapshot.get("people") if isinstance(snapshot, Mapping) else None
    if not isinstance(people, list):
        return None
    return [
        (float(p[0]), float(p[1]))
        for p in people
        if isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
    ]


# ---- the site's floor plan: extent, heatmap ---------------------------------------------------------

PLAN_LONG_SIDE_PX = 800  # the plan picture's longer side
LEGEND_PX = 28  # the strip under the plan: count and scale bar
SITE_CELL_M = 0.5  # heatmap cell size on the floor
STEP_S = 1.0  # a fused person heats one cell once per step
MINUTES, HOURS = 60, 168  # buckets kept: the last hour by minute, the last week by hour
WINDOWS = ("hour", "day", "week")

type Grid = list[list[float]]  # rows (y) of cells (x)


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

    def to_px(self, x: float, y: float) -> tuple[int, int]:
        return round(x * self.px_per_m), round(y * self.px_per_m)


class SiteHeatmap:
    """Where the site's fused people were, on the floor plan (SITE_CELL_M cells), in exact time buckets.

    Sampled once per STEP_S: each fused person counts once per time step, in one cell, however many
    cameras see them and however often the cameras report (two cameras never heat a cell twice). The
    windows are sums of what was counted: "hour" (the last 60 minute buckets), "day" and "week" (hour buckets).
    Sparse counts (cell -> n): a site's people cover few of its cells.
    """

    def __init__(self, plan: FloorPlan, cell_m: float = SITE_CELL_M) -> None:
        self.plan = plan
        self.width, self.height = max(math.ceil(plan.width_m / cell_m), 1), max(math.ceil(plan.depth_m / cell_m), 1)
        self.total = 0
        self._minutes: OrderedDict[int, Counter[tuple[int, int]]] = OrderedDict()
        self._hours: OrderedDict[int, Counter[tuple[int, int]]] = OrderedDict()
        self._step: int | None = None
        self._last_t: float | None = None

    def add(self, t: float, people: Sequence[FusedPerson]) -> int:
        """Count the people at time t (once per step; people off the plan are not counted); returns the counts added."""
        step = math.floor(t / STEP_S)
        if step == self._step:
            return 0
        self._step, self._last_t = step, t
        added = 0
        for p in people:
            x, y = p.x / self.plan.width_m, p.y / self.plan.depth_m
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # (NaN fails too)
                continue
            cell = (min(int(x * self.width), self.width - 1), min(int(y * self.height), self.height - 1))
            self._bucket(self._minutes, math.floor(t / 60.0), MINUTES)[cell] += 1
            self._bucket(self._hours, math.floor(t / 3600.0), HOURS)[cell] += 1
            added += 1
        self.total += added
        return added

    @staticmethod
    def _bucket(ring: OrderedDict[int, Counter[tuple[int, int]]], key: int, keep: int) -> Counter[tuple[int, int]]:
        if (bucket := ring.get(key)) is None:
            bucket = ring[key] = Counter()
            while next(iter(ring)) <= key - keep:
                ring.popitem(last=False)
        return bucket

    def grid(self, window: str = "hour") -> Grid:
        """height x width counts of a window: hour | day | week."""
        if window not in WINDOWS:
            raise ValueError(f"unknown site heatmap window {window!r} (one of {', '.join(WINDOWS)})")
        out = [[0.0] * self.width for _ in range(self.height)]
        if self._last_t is None:
            return out
        if window == "hour":
            ring, first = self._minutes, math.floor(self._last_t / 60.0) - MINUTES + 1
        else:
            ring, first = self._hours, math.floor(self._last_t / 3600.0) - (24 if window == "day" else HOURS) + 1
        for key, bucket in ring.items():
            if key >= first:
                for (cx, cy), n in bucket.items():
                    out[cy][cx] += n
        return out


# ---- pictures (Pillow; blocking: run them in the executor) -------------------------------------------

# RGB; drawn without anti-aliasing, so the picture holds these colours only (plus the plan picture's).
PLAN_BG = (236, 236, 236)
PLAN_GRID = (205, 205, 205)
PLAN_GRID_MAJOR = (160, 160, 160)
PLAN_INK = (40, 40, 40)
PLAN_LEGEND_BG = (255, 255, 255)
DOT_ONE_CAMERA = (20, 110, 200)  # blue: seen by one camera
DOT_MERGED = (30, 150, 30)  # green: seen by several cameras, merged into one person
DOT_RADIUS_M = 0.25
FONT_PX = 13
PNG_COMPRESS_LEVEL = 1  # fast: the floor plan is redrawn up to once a second


def load_picture(path: str) -> Image.Image:
    """A floor plan picture (any format Pillow reads) as RGB; OSError or ValueError if it is not a readable picture."""
    with Image.open(path) as picture:
        return picture.convert("RGB")  # (reads it whole: a truncated file fails here, not when drawing)


def plan_background(plan: FloorPlan, picture: Image.Image | None = None) -> Image.Image:
    """The plan area (RGB): the site's floor plan picture stretched to the mapped extent, or a grid in metres."""
    w, h = plan.size_px
    if picture is not None:
        return picture.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)  # (area-averaging when it shrinks)
    out = Image.new("RGB", (w, h), PLAN_BG)
    draw = ImageDraw.Draw(out)
    step = 1 if max(plan.width_m, plan.depth_m) <= 40 else 5  # a line per metre, or per 5 m on big sites
    for i in range(0, math.floor(max(plan.width_m, plan.depth_m) / step) + 1):
        m = i * step
        colour = PLAN_GRID_MAJOR if m % (5 * step) == 0 else PLAN_GRID
        px = round(m * plan.px_per_m)
        if m <= plan.width_m:
            draw.line([(px, 0), (px, h - 1)], fill=colour, width=1)
        if m <= plan.depth_m:
            draw.line([(0, px), (w - 1, px)], fill=colour, width=1)
    return out


def _scale_bar_m(plan: FloorPlan) -> float:
    target = max(plan.width_m, plan.depth_m) / 5  # about a fifth of the plan
    return next((m for m in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if m >= target), 1000.0)


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_PX)
    except ImportError:  # a Pillow without FreeType: its bitmap font (no anchors)
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, text: str, left: int, baseline: int) -> None:
    """Text in PLAN_INK without anti-aliasing (fontmode "1"), sitting on the baseline."""
    draw.fontmode = "1"
    font = _font()
    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text((left, baseline), text, fill=PLAN_INK, font=font, anchor="ls")
    else:
        draw.text((left, baseline - FONT_PX + 3), text, fill=PLAN_INK, font=font)


def _with_legend(area: Image.Image, plan: FloorPlan, text: str) -> Image.Image:
    w, h = area.size
    out = Image.new("RGB", (max(w, 240), h + LEGEND_PX), PLAN_LEGEND_BG)
    out.paste(area, (0, 0))
    draw = ImageDraw.Draw(out)
    bar = _scale_bar_m(plan)
    x0, y = 8, h + LEGEND_PX // 2
    x1 = x0 + max(round(bar * plan.px_per_m), 1)
    draw.line([(x0, y), (x1, y)], fill=PLAN_INK, width=2)
    for x in (x0, x1):
        draw.line([(x, y - 5), (x, y + 5)], fill=PLAN_INK, width=1)
    _text(draw, f"{bar:g} m", x1 + 6, y + 5)
    _text(draw, text, x1 + 70, y + 5)
    return out


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def render_floor_plan(plan: FloorPlan, people: Sequence[FusedPerson], picture: Image.Image | None = None) -> bytes:
    """PNG: the plan with one dot per fused person (green: merged from several cameras), count and scale below."""
    area = plan_background(plan, picture)
    draw = ImageDraw.Draw(area)
    r = max(round(DOT_RADIUS_M * plan.px_per_m), 3)
    for p in people:
        x, y = plan.to_px(p.x, p.y)
        colour = DOT_MERGED if len(p.cameras) > 1 else DOT_ONE_CAMERA
        draw.ellipse([(x - r, y - r), (x + r, y + r)], fill=colour, outline=PLAN_INK, width=1)
    merged = sum(len(p.cameras) > 1 for p in people)
    return _png(_with_legend(area, plan, f"{len(people)} on map, {merged} seen by 2+ cameras"))


def _jet(level: float) -> tuple[int, int, int]:
    """The JET colour map (OpenCV's COLORMAP_JET within one step) of a level 0..1: blue, green, red."""
    return tuple(round(255 * min(max(1.5 - abs(4 * level - k), 0.0), 1.0)) for k in (3, 2, 1))  # type: ignore[return-value]


JET_PALETTE = [c for i in range(256) for c in _jet(i / 255)]


def heat_overlay(grid: Grid, background: Image.Image) -> Image.Image:
    """The grid colour-mapped over a dimmed background (RGB), sized like the background.

    Cells with no counts stay transparent; the hottest cell is full red, the rest scale with the square
    root of their count (so a busy corridor does not hide everything else)."""
    dimmed = background.convert("RGB").point(lambda v: int(v * 0.6))  # dimmed, so the heat reads
    peak = max((v for row in grid for v in row if math.isfinite(v)), default=0.0)
    if peak <= 0:
        return dimmed
    levels = Image.new("F", (len(grid[0]), len(grid)))
    levels.putdata([math.sqrt(v / peak) if math.isfinite(v) and v > 0 else 0.0 for row in grid for v in row])
    level = levels.resize(dimmed.size, Image.Resampling.BILINEAR).point(lambda v: v * 255).convert("L")
    # JET up to 0.875: blue -> green -> bright red (above it JET darkens to maroon, which reads as cold).
    colour = level.point([int(i * 0.875) for i in range(256)])
    colour.putpalette(JET_PALETTE)  # (an "L" picture becomes "P": its values index the palette)
    alpha = level.point([0 if i <= 0.01 * 255 else round(min(i * 1.5, 0.75 * 255)) for i in range(256)])
    return Image.composite(colour.convert("RGB"), dimmed, alpha)


def render_site_heatmap(plan: FloorPlan, grid: Grid, picture: Image.Image | None = None) -> bytes:
    """PNG: the site heatmap over the plan, scale below."""
    heat = heat_overlay(grid, plan_background(plan, picture))
    total = math.fsum(v for row in grid for v in row if math.isfinite(v))
    return _png(_with_legend(heat, plan, f"{total:.0f} person-steps"))
