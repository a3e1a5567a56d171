"""Zones: who is inside each polygon, an occupied flag with inertia, intrusion events.

A person's position is the bottom-centre of their box (their feet on the floor), normalized.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import ZoneConfig
from ..geometry import points_in_polygon
from ..types import SafetyEvent


@dataclass(frozen=True, slots=True)
class ZoneTiming:
    on_delay_s: float = 0.5  # someone must be inside this long before "occupied" turns on
    off_delay_s: float = 3.0  # ...and the zone empty this long before it turns off


@dataclass(slots=True)
class ZoneState:
    name: str
    kind: str
    people: int = 0
    occupied: bool = False
    track_ids: frozenset[int] = frozenset()
    _since: float | None = None  # when the raw state started to disagree with `occupied`
    _ever_inside: set[int] = field(default_factory=set)


class ZoneCounter:
    def __init__(self, zones: tuple[ZoneConfig, ...], camera: str = "", timing: ZoneTiming | None = None) -> None:
        self.zones = zones
        self.camera = camera
        self.timing = timing or ZoneTiming()
        self._polygons = [np.asarray(z.polygon, np.float64) for z in zones]
        self.states = {z.name: ZoneState(z.name, z.kind) for z in zones}

    def update(self, positions: np.ndarray, track_ids: list[int], t: float) -> list[SafetyEvent]:
        """positions: (N, 2) normalized floor points of the people counted this frame."""
        events: list[SafetyEvent] = []
        for zone, polygon in zip(self.zones, self._polygons, strict=True):
            st = self.states[zone.name]
            inside = points_in_polygon(positions, polygon) if len(positions) else np.zeros(0, bool)
            ids = frozenset(tid for tid, ok in zip(track_ids, inside, strict=True) if ok)
            st.track_ids, st.people = ids, len(ids)
            raw = st.people > 0
            if raw == st.occupied:
                st._since = None
            else:
                st._since = t if st._since is None else st._since
                delay = self.timing.on_delay_s if raw else self.timing.off_delay_s
                if t - st._since >= delay:
                    st.occupied, st._since = raw, None
        return events

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {n: {"people": s.people, "occupied": s.occupied} for n, s in self.states.items()}
