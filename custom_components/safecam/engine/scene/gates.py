"""Directional gates: entries and exits through a line segment p1 -> p2.

Direction: s(q) = (p2 - p1) x (q - p1) in normalized image coordinates (x right, y down);
`in` is a crossing from s < 0 to s > 0, `out` from s > 0 to s < 0.

Position: the bottom-centre of the person's box (their feet), normalized; the pipeline passes the
people it counts (confirmed tracks, incl. a few frames of prediction through a missed detection),
so unconfirmed tracks never count.

Hysteresis: a track's side only changes once its position is clearly away from the line
(more than `margin`, a distance in normalized units), so jitter on the line never counts; the
crossing is checked on the path from the last clearly-sided position, so a jump over the line
between analysed frames (low fps, a fast walker, a few frames hidden) still counts, and a walk round
the end of the segment does not. Re-entries count again; people crossing in the same frame each
count; per-track state lives while the tracker keeps the track (`prune`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import GateConfig
from ..geometry import segments_intersect, side_of_line


@dataclass(slots=True)
class GateState:
    name: str
    entries: int = 0
    exits: int = 0
    _side: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict)  # track -> (side, position)


class GateCounter:
    def __init__(self, gates: tuple[GateConfig, ...], margin: float = 0.01) -> None:
        self.gates = gates
        self.margin = margin
        self._lines = [(np.asarray(g.line[0]), np.asarray(g.line[1])) for g in gates]
        self.states = {g.name: GateState(g.name) for g in gates}

    def update(self, positions: np.ndarray, track_ids: list[int]) -> list[tuple[str, int, str]]:
        """Returns the crossings this frame as (gate, track_id, 'in'|'out')."""
        crossings: list[tuple[str, int, str]] = []
        for gate, (p1, p2) in zip(self.gates, self._lines, strict=True):
            st = self.states[gate.name]
            length = float(np.hypot(*(p2 - p1)))
            dist = side_of_line(positions, p1, p2) / length if len(positions) else np.zeros(0)
            for tid, pos, d in zip(track_ids, positions, dist, strict=True):
                if abs(d) <= self.margin:
                    continue  # on the line: undecided, keep the last clear side
                side = 1 if d > 0 else -1
                prev = st._side.get(tid)
                st._side[tid] = (side, pos.copy())
                if prev is None or prev[0] == side:
                    continue
                if not segments_intersect(prev[1], pos, p1, p2):
                    continue  # went round the end of the segment, not through it
                if side > 0:
                    st.entries += 1
                    crossings.append((gate.name, tid, "in"))
                else:
                    st.exits += 1
                    crossings.append((gate.name, tid, "out"))
        return crossings

    def prune(self, live_track_ids: set[int]) -> None:
        """Forget ended tracks so per-track state stays bounded."""
        for st in self.states.values():
            for tid in list(st._side):
                if tid not in live_track_ids:
                    del st._side[tid]

    def reset(self, names: set[str] | None = None) -> None:
        """Totals back to zero (all gates, or the named ones); where people stand is kept."""
        for name, st in self.states.items():
            if names is None or name in names:
                st.entries = st.exits = 0

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {n: {"in": s.entries, "out": s.exits, "net": s.entries - s.exits} for n, s in self.states.items()}
