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

Tentative tracks (`hold`): where a new person was seen before the tracker confirmed them counts.
Their sides are followed from their first detection and a crossing made while tentative is held,
then counted (and reported, a few frames late) when the track is confirmed; dropped if it never is.
Without this, whoever crosses while being confirmed (their first looks: 2-3 frames, at 5 fps the
first 0.2-0.4 s) is lost, and every gate misses people who appear right beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..config import GateConfig
from ..geometry import segments_intersect, side_of_line
from ..types import Track


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
        self._held: dict[int, list[tuple[str, str]]] = {}  # tentative track -> crossings (gate, direction) not yet counted
        self._holding: set[int] = set()  # tentative tracks alive at the last hold() (kept by prune)

    def _crossings(self, positions: np.ndarray, track_ids: list[int]) -> list[tuple[str, int, str]]:
        """Side changes through each gate (updates the per-track sides; counts nothing)."""
        out: list[tuple[str, int, str]] = []
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
                out.append((gate.name, tid, "in" if side > 0 else "out"))
        return out

    def _count(self, gate: str, direction: str) -> None:
        st = self.states[gate]
        if direction == "in":
            st.entries += 1
        else:
            st.exits += 1

    def hold(self, tracks: Iterable[Track], width: int, height: int) -> None:
        """This frame's tracks (all of them): the tentative ones are followed, their crossings wait for confirmation."""
        tentative = [tr for tr in tracks if not tr.confirmed]
        self._holding = {tr.track_id for tr in tentative}
        seen = [tr for tr in tentative if tr.lost_frames == 0]  # a missed one keeps its last seen side
        if not seen:
            return
        feet = np.array([((tr.box[0] + tr.box[2]) / 2 / width, tr.box[3] / height) for tr in seen], np.float64)
        for gate, tid, direction in self._crossings(np.clip(feet, 0.0, 1.0), [tr.track_id for tr in seen]):
            self._held.setdefault(tid, []).append((gate, direction))

    def update(self, positions: np.ndarray, track_ids: list[int]) -> list[tuple[str, int, str]]:
        """Returns the crossings this frame as (gate, track_id, 'in'|'out'), held ones of newly confirmed tracks first."""
        crossings: list[tuple[str, int, str]] = []
        for tid in track_ids:
            crossings += [(gate, tid, direction) for gate, direction in self._held.pop(tid, ())]
        crossings += self._crossings(positions, track_ids)
        for gate, _tid, direction in crossings:
            self._count(gate, direction)
        return crossings

    def prune(self, live_track_ids: set[int]) -> None:
        """Forget ended tracks so per-track state stays bounded (tentative ones being held stay)."""
        live = live_track_ids | self._holding
        for st in self.states.values():
            for tid in list(st._side):
                if tid not in live:
                    del st._side[tid]
        for tid in list(self._held):
            if tid not in live:
                del self._held[tid]  # never confirmed: its crossings never happened

    def reset(self, names: set[str] | None = None) -> None:
        """Totals back to zero (all gates, or the named ones); where people stand is kept."""
        for name, st in self.states.items():
            if names is None or name in names:
                st.entries = st.exits = 0
        for tid, held in list(self._held.items()):  # crossings made before the reset are not counted after it
            self._held[tid] = [(g, d) for g, d in held if names is not None and g not in names]

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {n: {"in": s.entries, "out": s.exits, "net": s.entries - s.exits} for n, s in self.states.items()}
