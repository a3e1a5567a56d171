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

Hand-off (in `hold`): a crossing split across two track ids. A confirmed track lost
on one side of a gate (hidden behind someone while crossing) and a new track born on the other side
shortly after, where the lost one would be by now, is one person: the crossing counts once, in the
direction of travel, for the new track. Position and time only (no appearance): the birth must lie
within `handoff_radius` of the lost track's constant-velocity prediction (in the lost person's box
heights, growing with the time hidden), within `handoff_s` of the loss, with a box of about the same
height, and the path from where the lost track last stood clearly on its side to the birth must pass
through the gate. It waits until the tracker drops the lost track: if the lost track is matched again,
the new one is someone else (it may continue the next best-placed lost track instead). One hand-off
per lost track, to the birth placed best (nearest its prediction, relative to the radius allowed then), each
birth continues at most one lost track. The lost track's last position, height and velocity come from its
recent boxes of the person's usual height (a box merged with someone passing in front, often the last one
before a loss, would misplace it). A gate the lost track's own (predicted) position crosses while it is
still counted is left out of its hand-off: that crossing is counted already.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import median

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


@dataclass(slots=True)
class _Lost:
    """A confirmed track out of sight: where and when it was last seen, and where it was heading."""

    t: float
    feet: np.ndarray  # pixels
    height: float  # pixels
    velocity: np.ndarray  # pixels / s


@dataclass(slots=True)
class _Handoff:
    """A lost track's crossing handed to the track born where it went: counted when the lost track ends unmatched."""

    born: int
    crossings: list[tuple[str, str]]  # (gate, direction)
    confirmed: bool = False  # the new track was confirmed (it may be out of sight, or gone, when this is counted)
    # The other lost tracks the birth could continue, best placed first: tried in turn if this one comes back
    # or a better-placed birth takes it. Each with how far the birth is from where it would be (see miss).
    alternatives: list[tuple[int, list[tuple[str, str]], float]] = field(default_factory=list)
    miss: float = 0.0  # distance from the lost track's prediction, as a fraction of the radius allowed then


# Hand-off defaults, from a walker's motion rather than from any clip (bench/counting.py reports neighbours):
# - HANDOFF_S: the tracker keeps a moving person it cannot see for 1.5 s (TrackerConfig.max_lost_s); a new
#   track later than that is not the continuation of a person the tracker itself would give up on.
# - HANDOFF_RADIUS (box heights, + per second hidden): the feet of a fresh detection lie within about half
#   a body height of where they are (box jitter, a body's width, a partly hidden box), and a walker (about
#   0.8 heights/s) changes speed by at most about half a height per second in the time they are hidden.
# - HANDOFF_HEIGHT_RATIO: the same person at the same depth has the same box height, give or take a
#   partly hidden or merged box.
HANDOFF_S = 1.5
HANDOFF_RADIUS = (0.5, 0.5)
HANDOFF_HEIGHT_RATIO = 1.5
_VELOCITY_WINDOW_S = 1.0  # velocity over the last second of observations (steps of a stride average out)


_BOX_CONSISTENT_RATIO = 1.25  # a box this much taller or shorter than the person's usual one is merged or partly hidden


def _lost_record(seen: deque[tuple[float, np.ndarray, float]]) -> _Lost:
    """Where a track went out of sight, from its last boxes of the person's usual height (median of the recent ones).

    People are often lost just after a box that merged with someone passing in front (taller, feet on the
    other person's) or was cut by them (shorter): that box would put the lost person at the wrong height and,
    through the velocity, somewhere else entirely, and no hand-off would find their continuation.
    """
    usual = median(h for _, _, h in seen)
    kept = [o for o in seen if max(o[2], usual) <= _BOX_CONSISTENT_RATIO * max(min(o[2], usual), 1.0)] or list(seen)
    t0, p0, _ = kept[0]
    t1, p1, h1 = kept[-1]
    v = (p1 - p0) / (t1 - t0) if t1 - t0 >= 0.2 - 1e-9 else np.zeros(2)  # (two looks at 5 fps: 0.6 - 0.4 < 0.2)
    return _Lost(t1, p1, h1, v)


class GateCounter:
    def __init__(
        self,
        gates: tuple[GateConfig, ...],
        margin: float = 0.01,
        handoff_s: float = HANDOFF_S,
        handoff_radius: tuple[float, float] = HANDOFF_RADIUS,
        handoff_height_ratio: float = HANDOFF_HEIGHT_RATIO,
    ) -> None:
        self.gates = gates
        self.margin = margin
        self.handoff_s = handoff_s  # 0 turns the hand-off off
        self.handoff_radius = handoff_radius
        self.handoff_height_ratio = handoff_height_ratio
        self._lines = [(np.asarray(g.line[0]), np.asarray(g.line[1])) for g in gates]
        self.states = {g.name: GateState(g.name) for g in gates}
        self._held: dict[int, list[tuple[str, str]]] = {}  # tentative track -> crossings (gate, direction) not yet counted
        self._holding: set[int] = set()  # tentative tracks alive at the last hold() (kept by prune)
        # Hand-off state, all of it bounded by the tracker's live tracks.
        self._seen: dict[int, deque[tuple[float, np.ndarray, float]]] = {}  # track -> recent (t, feet px, height px)
        self._lost: dict[int, _Lost] = {}  # confirmed tracks out of sight
        self._pending: dict[int, _Handoff] = {}  # lost track -> its continuation
        self._ready: list[tuple[str, int, str]] = []  # hand-offs to count at the next update()

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

    def _handoff_crossings(self, lost_id: int, feet: np.ndarray, scale: np.ndarray) -> list[tuple[str, str]]:
        """Crossings implied by the lost track continuing as a track born at `feet` (pixels)."""
        out: list[tuple[str, str]] = []
        b = np.clip(feet / scale, 0.0, 1.0)
        for gate, (p1, p2) in zip(self.gates, self._lines, strict=True):
            prev = self.states[gate.name]._side.get(lost_id)
            if prev is None:
                continue  # the lost track never stood clearly on a side of this gate
            d = float(side_of_line(b[None, :], p1, p2)[0]) / float(np.hypot(*(p2 - p1)))
            if abs(d) <= self.margin or (d > 0) == (prev[0] > 0):
                continue
            if segments_intersect(prev[1], b, p1, p2):
                out.append((gate.name, "in" if d > 0 else "out"))
        return out

    def _handoff(self, tracks: list[Track], width: int, height: int, t: float) -> None:
        """Follow lost tracks and births; a lost track that ended unmatched hands its crossing to its continuation."""
        scale = np.array([width, height], np.float64)
        alive = {tr.track_id for tr in tracks}
        confirmed = {tr.track_id for tr in tracks if tr.confirmed}
        for tid, handoff in list(self._pending.items()):
            handoff.confirmed = handoff.confirmed or handoff.born in confirmed
            if handoff.born not in alive and not handoff.confirmed and tid in alive:
                del self._pending[tid]  # the continuation was noise after all: the lost track may pair again
        for tid in [tid for tid in self._lost if tid not in alive]:  # ended without being matched again
            del self._lost[tid]
            ended = self._pending.pop(tid, None)
            if ended is None:
                continue
            if ended.confirmed:
                self._ready += [(gate, ended.born, direction) for gate, direction in ended.crossings]
            elif ended.born in alive:
                self._held.setdefault(ended.born, []).extend(ended.crossings)  # counted if it is confirmed
        for tid in [tid for tid in self._seen if tid not in alive]:
            del self._seen[tid]
        births: list[Track] = []
        for tr in tracks:
            if tr.lost_frames == 0:
                box = tr.box
                obs = (t, np.array([(box[0] + box[2]) / 2, box[3]], np.float64), float(box[3] - box[1]))
                if tr.track_id not in self._seen:
                    births.append(tr)
                    self._seen[tr.track_id] = deque()
                seen = self._seen[tr.track_id]
                seen.append(obs)
                while len(seen) > 2 and t - seen[0][0] > _VELOCITY_WINDOW_S:
                    seen.popleft()
                if self._lost.pop(tr.track_id, None) is not None:
                    returned = self._pending.pop(tr.track_id, None)  # matched again: the birth was someone else
                    if returned is not None:
                        self._pair(returned.born, returned.alternatives, returned.confirmed)
            elif tr.confirmed and tr.track_id not in self._lost and tr.track_id in self._seen:
                self._lost[tr.track_id] = _lost_record(self._seen[tr.track_id])
        if self.handoff_s <= 0:
            return
        r0, r1 = self.handoff_radius
        for tr in births:
            feet, h = self._seen[tr.track_id][-1][1], self._seen[tr.track_id][-1][2]
            candidates: list[tuple[int, list[tuple[str, str]], float]] = []
            for tid, lost in self._lost.items():
                dt = t - lost.t
                if not 0 < dt <= self.handoff_s:
                    continue
                if max(h, lost.height) > self.handoff_height_ratio * max(min(h, lost.height), 1.0):
                    continue
                miss = float(np.hypot(*(feet - lost.feet - lost.velocity * dt))) / max(lost.height, 1.0) / (r0 + r1 * dt)
                if miss > 1.0:
                    continue
                crossings = self._handoff_crossings(tid, feet, scale)
                if crossings:
                    candidates.append((tid, crossings, miss))
            self._pair(tr.track_id, sorted(candidates, key=lambda c: c[2]), False)

    def _pair(self, born: int, candidates: list[tuple[int, list[tuple[str, str]], float]], confirmed: bool) -> None:
        """Make the birth the continuation of the first candidate lost track still lost and not taken by a birth
        placed at least as well. An earlier birth is not preferred for being earlier: someone walking into view
        near a hidden person (at low rates, before the lost track has a velocity) would otherwise take the hand-off
        from the hidden person's true reappearance; the birth displaced tries its own next candidates."""
        for k, (tid, crossings, miss) in enumerate(candidates):
            if tid not in self._lost:
                continue
            taken = self._pending.get(tid)
            if taken is not None and taken.miss <= miss:
                continue  # one hand-off per lost track: to the birth placed best
            self._pending[tid] = _Handoff(born, crossings, confirmed, candidates[k + 1 :], miss)
            if taken is not None:
                self._pair(taken.born, taken.alternatives, taken.confirmed)
            return

    def hold(self, tracks: Iterable[Track], width: int, height: int, t: float) -> None:
        """This frame's tracks (all of them) at time `t`: the tentative ones are followed, their crossings
        wait for confirmation; lost tracks and births are followed for the hand-off."""
        tracks = list(tracks)
        self._handoff(tracks, width, height, t)
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
        crossings, self._ready = self._ready, []
        for tid in track_ids:
            crossings += [(gate, tid, direction) for gate, direction in self._held.pop(tid, ())]
        own = self._crossings(positions, track_ids)
        for gate, tid, _direction in own:
            # A lost track still counted at its predicted position crossed here: its hand-off must not count it again.
            if (pending := self._pending.get(tid)) is not None:
                pending.crossings = [(g, d) for g, d in pending.crossings if g != gate]
        crossings += own
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
        for handoff in self._pending.values():
            handoff.crossings = [(g, d) for g, d in handoff.crossings if names is not None and g not in names]
            handoff.alternatives = [
                (tid, [(g, d) for g, d in crossings if names is not None and g not in names], miss)
                for tid, crossings, miss in handoff.alternatives
            ]
        self._ready = [(g, tid, d) for g, tid, d in self._ready if names is not None and g not in names]

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {n: {"in": s.entries, "out": s.exits, "net": s.entries - s.exits} for n, s in self.states.items()}
