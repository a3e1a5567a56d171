"""Zone occupancy (from gate flows where gates close the zone) and dwell times: the "occupancy" analyzer.

Scene config, optional; the zones listed get occupancy and dwell figures:

    occupancy:
      shop:                            # a zone name
        gates: {door: in, back: out}   # per gate, the crossing direction that ENTERS the zone
        empty_reset_s: 30              # zone seen empty this long -> flow count back to 0 (0: never)
      lobby: {}                        # no gates: occupancy is the people seen in the zone

Occupancy of a zone closed by gates is entries minus exits through its gates, corrected both ways
by what the camera sees: never below the people seen inside (an entry the tracker missed), and back
to zero once the zone has been seen empty for `empty_reset_s` (an exit it missed; flows drift, the
empty room does not). Set empty_reset_s to 0 where the camera does not see the whole zone (a shop
behind the door it watches). Without gates, occupancy is the people seen inside.

Dwell: how long each person (track) has been in the zone. It lives while the tracker keeps the
track and does not see it outside the zone, so a person hidden for a moment keeps their time.
`longest_dwell_s` is the longest current dwell.

The flows come from a GateCounter of its own fed with exactly what the pipeline's gates get
(the counted people), so the numbers agree with the gate totals. State starts afresh when the scene
changes or the engine restarts (the counts then start from the people seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ConfigError, GateConfig, ZoneConfig, reject_unknown_keys
from ..geometry import points_in_polygon
from .gates import GateCounter

if TYPE_CHECKING:
    from ..config import SceneConfig
    from ..types import SafetyEvent
    from .base import AnalysisFrame

DEFAULT_EMPTY_RESET_S = 30.0
MAX_EMPTY_RESET_S = 7 * 24 * 3600.0
_ZONE_KEYS = {"gates", "empty_reset_s"}


@dataclass(frozen=True, slots=True)
class ZoneOccupancyConfig:
    gates: tuple[tuple[str, str], ...] = ()  # (gate name, the direction that enters the zone: "in" | "out")
    empty_reset_s: float = DEFAULT_EMPTY_RESET_S


@dataclass(frozen=True, slots=True)
class OccupancyConfig:
    zones: dict[str, ZoneOccupancyConfig] = field(default_factory=dict)

    def check_gates(self, gates: tuple[GateConfig, ...]) -> None:
        """Gate names must exist (the section parser sees only the zones; config.parse_scene calls this)."""
        names = [g.name for g in gates]
        for zone, cfg in self.zones.items():
            for gate, _ in cfg.gates:
                if gate not in names:
                    known = ", ".join(names) or "none"
                    raise ConfigError(f"occupancy zone '{zone}': unknown gate '{gate}' (gates: {known})")


def parse_occupancy(data: object, zones: tuple[ZoneConfig, ...]) -> OccupancyConfig:
    """The `occupancy:` section -> OccupancyConfig; ConfigError (one line) on the first problem."""
    if not isinstance(data, dict):
        raise ConfigError("occupancy: expected a mapping of zone name -> {gates: {gate: in|out}, empty_reset_s: seconds}")
    zone_names = [z.name for z in zones]
    parsed: dict[str, ZoneOccupancyConfig] = {}
    for zone, item in data.items():
        if zone not in zone_names:
            raise ConfigError(f"occupancy: unknown zone '{zone}' (zones: {', '.join(zone_names) or 'none'})")
        what = f"occupancy zone '{zone}'"
        item = {} if item is None else item
        if not isinstance(item, dict):
            raise ConfigError(f"{what}: expected a mapping with gates and/or empty_reset_s")
        reject_unknown_keys(item, _ZONE_KEYS, what)
        gates = item.get("gates") or {}
        if not isinstance(gates, dict):
            raise ConfigError(f"{what}: 'gates' must map gate names to in or out (the direction that enters the zone)")
        for gate, direction in gates.items():
            if direction not in ("in", "out"):
                raise ConfigError(
                    f"{what}: gate '{gate}' must be 'in' or 'out' (the direction entering the zone), not {direction!r}"
                )
        reset = item.get("empty_reset_s", DEFAULT_EMPTY_RESET_S)
        if isinstance(reset, bool) or not isinstance(reset, int | float) or not 0 <= reset <= MAX_EMPTY_RESET_S:
            raise ConfigError(f"{what}: empty_reset_s must be a number of seconds from 0 (never) to {MAX_EMPTY_RESET_S:.0f}")
        parsed[str(zone)] = ZoneOccupancyConfig(tuple((str(g), str(d)) for g, d in gates.items()), float(reset))
    return OccupancyConfig(parsed)


@dataclass(slots=True)
class _ZoneState:
    flow: int = 0  # entries minus exits, corrected by what is seen (flow zones only)
    people: int = 0
    empty_since: float | None = None
    entered: dict[int, float] = field(default_factory=dict)  # track id -> when it entered (dwell)


class OccupancyAnalyzer:
    """Per configured zone: occupancy (flows or people present) and dwell times."""

    name = "occupancy"

    def __init__(self, config: OccupancyConfig, zones: tuple[ZoneConfig, ...], gates: tuple[GateConfig, ...]) -> None:
        self.config = config
        polygons = {z.name: np.asarray(z.polygon, np.float64) for z in zones}
        self._polygons = {name: polygons[name] for name in config.zones}
        used = {g for cfg in config.zones.values() for g, _ in cfg.gates}
        self._gates = GateCounter(tuple(g for g in gates if g.name in used))
        # gate -> [(zone, the crossing direction that enters it)], to turn crossings into flows
        self._flows: dict[str, list[tuple[str, str]]] = {}
        for zone, cfg in config.zones.items():
            for gate, entering in cfg.gates:
                self._flows.setdefault(gate, []).append((zone, entering))
        self.states = {name: _ZoneState() for name in config.zones}
        self._t = 0.0

    @classmethod
    def from_scene(cls, scene: SceneConfig, config: OccupancyConfig) -> OccupancyAnalyzer:
        return cls(config, scene.zones, scene.gates)

    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]:
        t = self._t = frame.t
        ids = [tr.track_id for tr in frame.tracks]
        # Flows first, so a person who walked in through the door this frame is inside and counted once.
        self._gates.hold(frame.all_tracks, frame.width, frame.height, t)  # as the pipeline's gates do
        for gate, _track, direction in self._gates.update(frame.positions, ids):
            for zone, entering in self._flows.get(gate, ()):
                self.states[zone].flow += 1 if direction == entering else -1
        alive = {tr.track_id for tr in frame.all_tracks}
        self._gates.prune(alive)
        for zone, polygon in self._polygons.items():
            st, cfg = self.states[zone], self.config.zones[zone]
            inside = points_in_polygon(frame.positions, polygon) if len(ids) else np.zeros(0, bool)
            here = {tid for tid, ok in zip(ids, inside, strict=True) if ok}
            seen_outside = set(ids) - here
            st.people = len(here)
            for tid in here:
                st.entered.setdefault(tid, t)
            for tid in list(st.entered):
                if tid in seen_outside or tid not in alive:
                    del st.entered[tid]  # left the zone, or the tracker let go of them
            if cfg.gates:
                st.flow = max(st.flow, st.people, 0)  # someone seen inside is inside, counted or not
                if st.people:
                    st.empty_since = None
                else:
                    st.empty_since = t if st.empty_since is None else st.empty_since
                    if cfg.empty_reset_s > 0 and t - st.empty_since >= cfg.empty_reset_s:
                        st.flow = 0
        return []

    def occupancy(self, zone: str) -> int:
        st = self.states[zone]
        return st.flow if self.config.zones[zone].gates else st.people

    def dwell(self, zone: str) -> dict[int, float]:
        """Seconds each person has been in the zone."""
        return {tid: max(0.0, self._t - since) for tid, since in self.states[zone].entered.items()}

    def snapshot(self) -> dict[str, Any]:
        zones: dict[str, Any] = {}
        for zone in self.config.zones:
            dwell = self.dwell(zone)
            zones[zone] = {
                "occupancy": self.occupancy(zone),
                "source": "flows" if self.config.zones[zone].gates else "people",
                "people": self.states[zone].people,
                "longest_dwell_s": round(max(dwell.values(), default=0.0), 1),
                "dwell_s": {str(tid): round(s, 1) for tid, s in sorted(dwell.items())},
            }
        return {"zones": zones}
