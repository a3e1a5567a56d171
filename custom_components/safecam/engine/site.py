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
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .calibration import Calibration

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

    def update(self, t: float, camera: str, gate_totals: Mapping[str, Mapping[str, int]], people: int) -> int:
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
        if set(self._empty_since) != set(self.cameras):
            return False  # a camera that has not reported yet may see someone
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
    calibration: Calibration
    observations: list[FloorObservation] = field(default_factory=list)
    t: float | None = None


class SiteFusion:
    """Cameras calibrated to one floor plan; `update` per camera frame, `people(t)` the fused view.

    All cameras' `t` must be on one clock (wall or monotonic time of the host running them).
    """

    def __init__(
        self,
        calibrations: Mapping[str, Calibration],
        radius_m: float = DEFAULT_RADIUS_M,
        max_dt_s: float = DEFAULT_MAX_DT_S,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.views = {cam: _CameraView(cal) for cam, cal in calibrations.items()}
        self.radius_m, self.max_dt_s, self.max_age_s = radius_m, max_dt_s, max_age_s

    def update(self, camera: str, t: float, image_points: np.ndarray, track_ids: Sequence[int] | None = None) -> None:
        """A camera's people this frame: (N, 2) normalized floor points (box bottom-centres)."""
        view = self.views[camera]
        floor = view.calibration.to_floor(np.asarray(image_points, np.float64).reshape(-1, 2))
        ids: Sequence[int | None] = list(track_ids) if track_ids is not None else [None] * len(floor)
        view.observations = [
            FloorObservation(camera, t, float(x), float(y), tid)
            for (x, y), tid in zip(floor, ids, strict=True)
            if math.isfinite(x) and math.isfinite(y)  # beyond the horizon: no floor position
        ]
        view.t = t

    def people(self, t: float) -> list[FusedPerson]:
        """Fused people from every camera whose last frame is at most max_age_s old at time t."""
        obs = [o for v in self.views.values() if v.t is not None and t - v.t <= self.max_age_s for o in v.observations]
        return fuse_positions(obs, self.radius_m, self.max_dt_s)

    def naive_count(self, t: float) -> int:
        return sum(len(v.observations) for v in self.views.values() if v.t is not None and t - v.t <= self.max_age_s)
