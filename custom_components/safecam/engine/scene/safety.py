"""Safety rules on tracked people: intrusion, approach, distancing, congestion, machine activity.

The `safety:` scene section tunes them (all optional; a danger zone alone gives intrusion):

    safety:
      timezone: Europe/Berlin        # wall clock of the schedules (default: the host's local time)
      approach_m: 2.0                # approach: a person this close to a danger zone's edge (0 = off)
      distancing_m: 1.5              # workers closer than this ... (absent or 0 = off)
      distancing_s: 3                # ... for this long; also for people near hazardous equipment
      hazardous: [press]             # equipment zones people must keep away from ...
      hazard_distance_m: 2.0         # ... by this much
      congestion:                    # levels per zone: people, or people per m² (needs calibration)
        hall: {medium: 4, high: 8}
        yard: {medium: 0.5, high: 1.0, per_m2: true}
      congestion_hold_s: 3           # a level must hold this long before it changes
      schedules:                     # when a zone is armed (default: always); unarmed zones emit nothing
        pit: [{days: weekdays, from: "07:00", to: "18:00"}]
      machines:                      # equipment zones: when the machine may run, and whose danger zone
        press: {allowed: [{days: weekdays, from: "06:00", to: "22:00"}], danger_zone: pit}
      cooldown_s: {intrusion: 30}    # per rule, per track/zone: the same alert is not repeated sooner

Metric rules (approach, distancing, per-m² congestion and densities) need the scene's ground-plane
`calibration:`; without it they are off and the snapshot says so in `metric_rules`.
Cooldowns and durations run on the camera's timeline (`frame.t`); schedules on the wall clock
(an injectable `clock`, so tests can drive it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from ...contract import DEFAULT_APPROACH_M, INTRUSION_ZONE_KINDS
from ..config import ConfigError, ZoneConfig, reject_unknown_keys
from ..geometry import points_in_polygon
from ..types import SafetyEvent
from .congestion import CongestionLevels, CongestionState
from .machine import MachineMotion
from .schedule import Schedule, parse_schedule

if TYPE_CHECKING:
    from ..calibration import Calibration, FloorPolygon
    from ..config import SceneConfig
    from .base import AnalysisFrame

RULES = ("intrusion", "approach", "distancing", "congestion", "machine_activity")
DEFAULT_COOLDOWN_S = {"intrusion": 30.0, "approach": 30.0, "distancing": 60.0, "congestion": 120.0, "machine_activity": 120.0}
GRACE_S = 1.0  # a pair/track may miss this long (a lost detection) without restarting its distancing timer
NO_CALIBRATION = "disabled: no ground-plane calibration"
_KEYS = {
    "timezone",
    "approach_m",
    "distancing_m",
    "distancing_s",
    "hazardous",
    "hazard_distance_m",
    "congestion",
    "congestion_hold_s",
    "schedules",
    "machines",
    "cooldown_s",
}
_MACHINE_KEYS = {"allowed", "danger_zone"}
_CONGESTION_KEYS = {"medium", "high", "per_m2"}


@dataclass(frozen=True, slots=True)
class MachineConfig:
    allowed: Schedule | None = None  # when it may run (None: any time)
    danger_zone: str | None = None  # it must not run while someone is in this zone


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    timezone: str | None = None
    approach_m: float = DEFAULT_APPROACH_M
    distancing_m: float | None = None
    distancing_s: float = 3.0
    hazardous: tuple[str, ...] = ()
    hazard_distance_m: float = 2.0
    congestion: dict[str, CongestionLevels] = field(default_factory=dict)
    congestion_hold_s: float = 3.0
    schedules: dict[str, Schedule] = field(default_factory=dict)
    machines: dict[str, MachineConfig] = field(default_factory=dict)
    cooldown_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_COOLDOWN_S))


# ---- config ----------------------------------------------------------------------------------


def _num(value: object, what: str, *, low: float = 0.0, high: float = 1e6, allow_zero: bool = False) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        v = float(value)
        if (v > low or (allow_zero and v == low)) and v <= high:
            return v
    bound = f"{'>=' if allow_zero else '>'} {low:g} and <= {high:g}"
    raise ConfigError(f"safety {what}: expected a number {bound}, got {value!r}")


def _zone_ref(name: object, zones: dict[str, ZoneConfig], what: str, kinds: tuple[str, ...] | None = None) -> str:
    if not isinstance(name, str) or name not in zones:
        known = ", ".join(zones) or "none"
        raise ConfigError(f"safety {what}: unknown zone {name!r} (zones: {known})")
    if kinds is not None and zones[name].kind not in kinds:
        raise ConfigError(f"safety {what}: zone '{name}' is kind {zones[name].kind}, expected {' or '.join(kinds)}")
    return name


def _mapping(value: object, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"safety {what}: expected a mapping")
    return value


def _unknown(item: dict[Any, Any], allowed: set[str], what: str) -> None:
    reject_unknown_keys(item, allowed, f"safety {what}")


def _congestion(value: object, zones: dict[str, ZoneConfig]) -> dict[str, CongestionLevels]:
    out = {}
    for name, spec in _mapping(value, "congestion").items():
        zone = _zone_ref(name, zones, "congestion")
        spec = _mapping(spec, f"congestion '{zone}'")
        _unknown(spec, _CONGESTION_KEYS, f"congestion '{zone}'")
        per_m2 = spec.get("per_m2", False)
        if not isinstance(per_m2, bool):
            raise ConfigError(f"safety congestion '{zone}': per_m2 must be true or false")
        if "medium" not in spec or "high" not in spec:
            raise ConfigError(f"safety congestion '{zone}': needs both 'medium' and 'high' thresholds")
        unit = "people per m²" if per_m2 else "people"
        medium = _num(spec["medium"], f"congestion '{zone}' medium ({unit})")
        high = _num(spec["high"], f"congestion '{zone}' high ({unit})")
        if high <= medium:
            raise ConfigError(f"safety congestion '{zone}': 'high' ({high:g}) must be above 'medium' ({medium:g})")
        out[zone] = CongestionLevels(medium, high, per_m2)
    return out


def _machines(value: object, zones: dict[str, ZoneConfig]) -> dict[str, MachineConfig]:
    out = {}
    for name, spec in _mapping(value, "machines").items():
        zone = _zone_ref(name, zones, "machines", ("equipment",))
        spec = _mapping(spec, f"machines '{zone}'")
        _unknown(spec, _MACHINE_KEYS, f"machines '{zone}'")
        allowed = parse_schedule(spec["allowed"], f"safety machines '{zone}' allowed") if "allowed" in spec else None
        danger = spec.get("danger_zone")
        if danger is not None:
            danger = _zone_ref(danger, zones, f"machines '{zone}' danger_zone")
        out[zone] = MachineConfig(allowed, danger)
    return out


def parse_safety(data: object, zones: tuple[ZoneConfig, ...]) -> SafetyConfig:
    """The `safety:` scene section (see the module docstring); ConfigError naming the first problem."""
    by_name = {z.name: z for z in zones}
    cfg = _mapping(data, "")
    _unknown(cfg, _KEYS, "")
    tz = cfg.get("timezone")
    if tz is not None:
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"safety timezone: unknown time zone {tz!r} (e.g. Europe/Berlin)") from None
    hazardous = cfg.get("hazardous", [])
    if not isinstance(hazardous, list):
        raise ConfigError("safety hazardous: expected a list of equipment zone names")
    cooldown = dict(DEFAULT_COOLDOWN_S)
    for rule, seconds in _mapping(cfg.get("cooldown_s", {}), "cooldown_s").items():
        if rule not in RULES:
            raise ConfigError(f"safety cooldown_s: unknown rule {rule!r} (rules: {', '.join(RULES)})")
        cooldown[rule] = _num(seconds, f"cooldown_s {rule}", high=86400, allow_zero=True)
    distancing_m = cfg.get("distancing_m")
    return SafetyConfig(
        timezone=None if tz is None else str(tz),
        approach_m=_num(cfg.get("approach_m", DEFAULT_APPROACH_M), "approach_m", high=100, allow_zero=True),
        distancing_m=None if distancing_m is None else _num(distancing_m, "distancing_m", high=100, allow_zero=True) or None,
        distancing_s=_num(cfg.get("distancing_s", 3.0), "distancing_s", high=3600, allow_zero=True),
        hazardous=tuple(_zone_ref(n, by_name, "hazardous", ("equipment",)) for n in hazardous),
        hazard_distance_m=_num(cfg.get("hazard_distance_m", 2.0), "hazard_distance_m", high=100, allow_zero=True),
        congestion=_congestion(cfg.get("congestion", {}), by_name),
        congestion_hold_s=_num(cfg.get("congestion_hold_s", 3.0), "congestion_hold_s", high=3600, allow_zero=True),
        schedules={
            _zone_ref(n, by_name, "schedules"): parse_schedule(s, f"safety schedules '{n}'")
            for n, s in _mapping(cfg.get("schedules", {}), "schedules").items()
        },
        machines=_machines(cfg.get("machines", {}), by_name),
        cooldown_s=cooldown,
    )


# ---- analyzer --------------------------------------------------------------------------------


class Cooldowns:
    """Per rule and key (track, zone, pair): an alert is not repeated within the rule's cooldown."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self._last: dict[tuple[str, Any], float] = {}

    def ready(self, rule: str, key: Any, t: float) -> bool:
        """True (and the alert counted) unless the same rule/key alerted less than its cooldown ago."""
        last = self._last.get((rule, key))
        if last is not None and 0 <= t - last < self.seconds[rule]:
            return False  # (t < last: the timeline restarted, e.g. a looping file: alert again)
        self._last[(rule, key)] = t
        if len(self._last) > 4096:  # bound memory on long runs: forget expired entries
            self._last = {k: v for k, v in self._last.items() if 0 <= t - v < self.seconds[k[0]]}
        return True


class SafetyAnalyzer:
    """The "safety" analyzer (engine/scene/base.py contract)."""

    name = "safety"

    def __init__(
        self,
        zones: tuple[ZoneConfig, ...],
        camera: str,
        config: SafetyConfig | None = None,
        calibration: Calibration | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.camera = camera
        self.config = cfg = config or SafetyConfig()
        self.calibration = calibration
        tz: tzinfo | None = ZoneInfo(cfg.timezone) if cfg.timezone else None
        self._clock = clock or (lambda: datetime.now(tz).astimezone(tz))
        self._cooldowns = Cooldowns(cfg.cooldown_s)
        self._zones = {z.name: z for z in zones}
        self._polygons = {z.name: np.asarray(z.polygon, np.float64) for z in zones}
        self._danger = [z.name for z in zones if z.kind == "danger"]
        # Entering a danger zone or a restricted area is an intrusion; approach applies to danger zones.
        self._guarded = [z.name for z in zones if z.kind in INTRUSION_ZONE_KINDS]
        self._equipment = [z.name for z in zones if z.kind == "equipment"]
        # Every zone a rule looks at is in the snapshot.
        used = {*self._guarded, *self._equipment, *cfg.congestion, *cfg.schedules}
        self._reported = [z.name for z in zones if z.name in used]
        self._floor: dict[str, FloorPolygon | None] = {}
        if calibration is not None:
            self._floor = {n: calibration.floor_polygon(self._zones[n].polygon) for n in self._reported}
        self._congestion = {n: CongestionState(lv, cfg.congestion_hold_s) for n, lv in cfg.congestion.items()}
        self._machines = {n: MachineMotion(self._zones[n].polygon) for n in self._equipment}
        # State between frames.
        self._armed: dict[str, bool] = {n: True for n in self._reported}
        self._inside: dict[str, set[int]] = {n: set() for n in self._guarded}
        self._near: dict[str, set[int]] = {n: set() for n in self._danger}
        self._close: dict[tuple[Any, ...], tuple[float, float]] = {}  # key -> (first seen close, last seen close)
        self._violating: set[tuple[Any, ...]] = set()  # distancing keys currently past their duration
        self._machine_violation: dict[str, bool] = {n: False for n in self._equipment}
        self._density: dict[str, float | None] = {n: None for n in self._reported}

    @classmethod
    def from_scene(cls, scene: SceneConfig, camera: str, clock: Callable[[], datetime] | None = None) -> SafetyAnalyzer:
        return cls(scene.zones, camera, scene.section("safety"), scene.section("calibration"), clock)

    @property
    def metric_rules(self) -> str:
        return "enabled" if self.calibration is not None else NO_CALIBRATION

    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]:
        now = self._clock()
        cfg = self.config
        for name in self._reported:
            schedule = cfg.schedules.get(name)
            self._armed[name] = schedule is None or schedule.active(now)
        t = frame.t
        ids = [tr.track_id for tr in frame.tracks]
        scores = {tr.track_id: tr.score for tr in frame.tracks}
        pos = np.asarray(frame.positions, np.float64).reshape(-1, 2)
        inside = {n: points_in_polygon(pos, self._polygons[n]) for n in self._reported}
        floor = self.calibration.to_floor(pos) if self.calibration is not None else None

        events = self._intrusion(t, ids, scores, inside)
        if floor is not None:
            events += self._approach(t, ids, scores, inside, floor)
            events += self._distancing(t, ids, scores, floor)
        events += self._congestion_events(t, ids, scores, inside)
        events += self._machine_events(frame, now, ids, scores, inside)
        return events

    # -- rules -------------------------------------------------------------------------------

    def _event(self, rule: str, t: float, track: int | None, zone: str | None, conf: float | None, **details: Any) -> SafetyEvent:
        return SafetyEvent(rule, t, self.camera, track, zone, conf, details)

    def _intrusion(self, t: float, ids: list[int], scores: dict[int, float], inside: dict[str, np.ndarray]) -> list[SafetyEvent]:
        events = []
        for zone in self._guarded:
            now_inside = {tid for tid, ok in zip(ids, inside[zone], strict=True) if ok} if self._armed[zone] else set()
            # Entering (or being inside when the zone arms) alerts; an unarmed zone forgets who was in.
            for tid in sorted(now_inside - self._inside[zone]):
                if self._cooldowns.ready("intrusion", (zone, tid), t):
                    events.append(SafetyEvent("intrusion", t, self.camera, tid, zone, scores[tid]))
            self._inside[zone] = now_inside
        return events

    def _approach(
        self, t: float, ids: list[int], scores: dict[int, float], inside: dict[str, np.ndarray], floor: np.ndarray
    ) -> list[SafetyEvent]:
        events: list[SafetyEvent] = []
        limit = self.config.approach_m
        for zone in self._danger:
            polygon = self._floor.get(zone)
            if limit <= 0 or polygon is None or not self._armed[zone]:
                self._near[zone] = set()
                continue
            dist = polygon.distance(floor)
            near = {tid for tid, d, ins in zip(ids, dist, inside[zone], strict=True) if not ins and d <= limit}
            for tid in sorted(near - self._near[zone]):
                if self._cooldowns.ready("approach", (zone, tid), t):
                    d = float(dist[ids.index(tid)])
                    events.append(self._event("approach", t, tid, zone, scores[tid], distance_m=round(d, 2)))
            self._near[zone] = near
        return events

    def _distancing(self, t: float, ids: list[int], scores: dict[int, float], floor: np.ndarray) -> list[SafetyEvent]:
        cfg = self.config
        close: dict[tuple[Any, ...], float] = {}  # key -> distance now
        if cfg.distancing_m is not None and len(ids) > 1:
            diff = floor[:, None, :] - floor[None, :, :]
            dist = np.sqrt((diff**2).sum(axis=2))
            for i, j in zip(*np.nonzero(np.triu(dist <= cfg.distancing_m, k=1)), strict=True):
                a, b = sorted((ids[i], ids[j]))
                close[("pair", a, b)] = float(dist[i, j])
        for zone in cfg.hazardous:
            polygon = self._floor.get(zone)
            if polygon is None or not self._armed[zone]:
                continue
            for tid, d in zip(ids, polygon.distance(floor), strict=True):
                if d <= cfg.hazard_distance_m:
                    close[("equipment", zone, tid)] = float(d)
        events = []
        for key, d in close.items():
            first, last = self._close.get(key, (t, t))
            if t - last > GRACE_S or t < last:  # apart (or unseen) for longer than a missed detection: a new episode
                first = t
                self._violating.discard(key)
            self._close[key] = (first, t)
            if t - first < cfg.distancing_s:
                continue
            fresh = key not in self._violating
            self._violating.add(key)
            if not fresh or not self._cooldowns.ready("distancing", key, t):
                continue
            if key[0] == "pair":
                _, a, b = key
                events.append(
                    self._event(
                        "distancing",
                        t,
                        a,
                        None,
                        min(scores[a], scores[b]),
                        kind="workers",
                        other_track_id=b,
                        distance_m=round(d, 2),
                    )
                )
            else:
                _, zone, tid = key
                events.append(self._event("distancing", t, tid, zone, scores[tid], kind="equipment", distance_m=round(d, 2)))
        for key, (_first, last) in list(self._close.items()):
            if key not in close and (t - last > GRACE_S or t < last):
                del self._close[key]  # apart for longer than a missed detection: the violation is over
                self._violating.discard(key)
        return events

    def _congestion_events(
        self, t: float, ids: list[int], scores: dict[int, float], inside: dict[str, np.ndarray]
    ) -> list[SafetyEvent]:
        events = []
        for zone in self._reported:
            people = int(inside[zone].sum())
            polygon = self._floor.get(zone)
            area = polygon.area_m2 if polygon is not None else None
            self._density[zone] = people / area if area else None
            state = self._congestion.get(zone)
            if state is None:
                continue
            value = self._density[zone] if state.levels.per_m2 else people
            if value is None:
                continue  # per m² without (usable) calibration: no level
            rose = state.update(float(value), t)
            if rose is None or not self._armed[zone] or not self._cooldowns.ready("congestion", (zone, rose), t):
                continue
            zone_scores = [scores[tid] for tid, ok in zip(ids, inside[zone], strict=True) if ok]
            conf = float(np.mean(zone_scores)) if zone_scores else None
            density = None if self._density[zone] is None else round(float(self._density[zone] or 0.0), 3)
            events.append(self._event("congestion", t, None, zone, conf, level=rose, people=people, density_per_m2=density))
        return events

    def _machine_events(
        self, frame: AnalysisFrame, now: datetime, ids: list[int], scores: dict[int, float], inside: dict[str, np.ndarray]
    ) -> list[SafetyEvent]:
        if not self._machines:
            return []
        people = [tr.box for tr in frame.all_tracks] + [tuple(b) for b in frame.detections.boxes.tolist()]
        boxes = np.asarray(people, np.float64).reshape(-1, 4)
        events = []
        for zone, motion in self._machines.items():
            active = motion.update(frame.image, boxes, frame.t)
            spec = self.config.machines.get(zone)
            reason, track = None, None
            if active and spec is not None:
                if spec.allowed is not None and not spec.allowed.active(now):
                    reason = "outside_schedule"
                elif spec.danger_zone is not None:
                    poly = self._polygons[spec.danger_zone]
                    within = inside[spec.danger_zone] if spec.danger_zone in inside else points_in_polygon(frame.positions, poly)
                    hit = [tid for tid, ok in zip(ids, within, strict=True) if ok]
                    if hit:
                        reason, track = "person_in_danger_zone", min(hit)
            violating = reason is not None and self._armed[zone]
            if violating and not self._machine_violation[zone] and self._cooldowns.ready("machine_activity", zone, frame.t):
                details: dict[str, Any] = {"reason": reason}
                if track is not None and spec is not None:
                    details["danger_zone"] = spec.danger_zone
                events.append(self._event("machine_activity", frame.t, track, zone, round(motion.share, 3), **details))
            self._machine_violation[zone] = violating
        return events

    # -- state -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        zones: dict[str, dict[str, Any]] = {}
        for name in self._reported:
            state = self._congestion.get(name)
            level = None
            if state is not None and (not state.levels.per_m2 or self._floor.get(name) is not None):
                level = state.level
            density = self._density[name]
            motion = self._machines.get(name)
            zones[name] = {
                "armed": self._armed[name],
                "intruded": bool(self._inside.get(name)),
                "congestion": level,
                "density_per_m2": None if density is None else round(density, 3),
                "machine_active": None if motion is None else motion.active,
            }
        return {"metric_rules": self.metric_rules, "zones": zones, "distancing_active": bool(self._violating)}
