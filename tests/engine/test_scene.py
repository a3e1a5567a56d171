"""Zones (counts, inertia) and gates (direction, hysteresis, jumps, re-entries)."""

from __future__ import annotations

import numpy as np

from custom_components.safecam.engine.config import GateConfig, ZoneConfig
from custom_components.safecam.engine.scene.gates import GateCounter
from custom_components.safecam.engine.scene.zones import ZoneCounter, ZoneTiming

SQUARE = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))


def _zone(kind="area"):
    return ZoneCounter((ZoneConfig("pit", SQUARE, kind),), "cam", ZoneTiming(on_delay_s=0.5, off_delay_s=2.0))


def test_zone_counts_people_by_their_feet():
    z = _zone()
    z.update(np.array([[0.4, 0.4], [0.5, 0.59], [0.9, 0.9]]), [1, 2, 3], 0.0)
    assert z.snapshot()["pit"]["people"] == 2


def test_zone_occupied_has_inertia_both_ways():
    z = _zone()
    inside, nobody = np.array([[0.4, 0.4]]), np.zeros((0, 2))
    z.update(inside, [1], 0.0)
    assert not z.states["pit"].occupied  # not yet: on delay
    z.update(inside, [1], 0.6)
    assert z.states["pit"].occupied
    z.update(nobody, [], 1.0)
    z.update(inside, [1], 1.2)  # one missed frame does not clear it
    z.update(nobody, [], 1.4)
    z.update(nobody, [], 3.0)
    assert z.states["pit"].occupied  # empty for 1.6 s only
    z.update(nobody, [], 3.5)
    assert not z.states["pit"].occupied


def test_brief_flicker_does_not_occupy():
    z = _zone()
    z.update(np.array([[0.4, 0.4]]), [1], 0.0)
    z.update(np.zeros((0, 2)), [], 0.2)
    z.update(np.zeros((0, 2)), [], 1.0)
    assert not z.states["pit"].occupied


def _gate():
    # Vertical line at x = 0.5 from top to bottom: p2 - p1 = (0, 0.8); s > 0 means x < 0.5.
    return GateCounter((GateConfig("door", ((0.5, 0.1), (0.5, 0.9))),))


def _walk(g, track, xs, y=0.5):
    out = []
    for x in xs:
        out += g.update(np.array([[x, y]]), [track])
    return out


def test_gate_direction_follows_the_cross_product():
    g = _gate()
    # (p2-p1) x (q-p1) = 0*(qy-0.1) - 0.8*(qx-0.5): positive for x < 0.5.
    assert _walk(g, 1, [0.7, 0.6, 0.4, 0.3]) == [("door", 1, "in")]
    assert _walk(g, 2, [0.3, 0.7]) == [("door", 2, "out")]
    assert g.snapshot() == {"door": {"in": 1, "out": 1, "net": 0}}


def test_jitter_on_the_line_never_counts():
    g = _gate()
    _walk(g, 1, [0.6, 0.505, 0.497, 0.503, 0.496, 0.504, 0.6])
    assert g.snapshot()["door"] == {"in": 0, "out": 0, "net": 0}


def test_fast_walker_jumping_over_the_line_counts():
    g = _gate()
    assert _walk(g, 1, [0.9, 0.1]) == [("door", 1, "in")]


def test_passing_beside_the_segment_does_not_count():
    g = _gate()
    assert _walk(g, 1, [0.9, 0.1], y=0.95) == []


def test_re_entry_counts_again_and_simultaneous_crossings_each_count():
    g = _gate()
    _walk(g, 1, [0.7, 0.3, 0.7, 0.3])
    assert g.snapshot()["door"] == {"in": 2, "out": 1, "net": 1}
    g.update(np.array([[0.7, 0.3], [0.7, 0.6]]), [5, 6])
    out = g.update(np.array([[0.3, 0.3], [0.3, 0.6]]), [5, 6])
    assert sorted(out) == [("door", 5, "in"), ("door", 6, "in")]


def test_ended_tracks_are_pruned():
    g = _gate()
    _walk(g, 1, [0.7])
    g.prune(set())
    assert g.states["door"]._side == {}
