"""Safety rules: intrusion (moved here from the zone counter), approach, distancing, congestion,
machine activity, schedules and cooldowns; synthetic tracks and frames, then one real clip."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest
import yaml

from custom_components.safecam.engine.config import ConfigError, parse_scene
from custom_components.safecam.engine.scene import build_analyzers
from custom_components.safecam.engine.scene.base import AnalysisFrame
from custom_components.safecam.engine.scene.safety import SafetyAnalyzer, SafetyConfig
from custom_components.safecam.engine.types import Detections, SafetyEvent, Track

SQUARE = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]
# 10 m per normalized unit, no perspective: floor X = 10 (x - 0.1), Y = 10 (y - 0.1).
FLAT = {"image": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]], "rectangle_m": [8, 8]}
MONDAY_9 = datetime(2025, 6, 2, 9, 0)  # a Monday
SATURDAY_9 = datetime(2025, 6, 7, 9, 0)
W, H = 320, 240


class Clock:
    def __init__(self, now: datetime = MONDAY_9) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _analyzer(zones: list[dict[str, Any]], clock: Clock | None = None, **sections: Any) -> SafetyAnalyzer:
    scene = parse_scene({"zones": zones, **sections})
    return SafetyAnalyzer.from_scene(scene, "cam", clock or Clock())


def _zone(name: str, polygon: list[list[float]], kind: str = "danger") -> dict[str, Any]:
    return {"name": name, "polygon": polygon, "kind": kind}


def _frame(
    t: float,
    people: dict[int, tuple[float, float]],
    image: np.ndarray | None = None,
    boxes: dict[int, tuple[float, float, float, float]] | None = None,
) -> AnalysisFrame:
    """People at normalized feet positions; boxes (pixels) 20 x 60 above the feet unless given."""
    boxes = boxes or {}
    default = {tid: (x * W - 10, y * H - 60, x * W + 10, y * H) for tid, (x, y) in people.items()}
    tracks = [Track(tid, boxes.get(tid, default[tid]), 0.9, True, 1.0, 0) for tid in people]
    positions = np.array(list(people.values()), np.float64).reshape(-1, 2)
    img = image if image is not None else np.zeros((H, W, 3), np.uint8)
    return AnalysisFrame("cam", int(t * 10), t, img, W, H, True, Detections.empty(), tracks, tracks, positions, {})


def _run(analyzer: SafetyAnalyzer, steps: list[tuple[float, dict[int, tuple[float, float]]]]) -> list[SafetyEvent]:
    events: list[SafetyEvent] = []
    for t, people in steps:
        events += analyzer.update(_frame(t, people))
    return events


def _kinds(events: list[SafetyEvent]) -> list[tuple[str, int | None, str | None]]:
    return [(e.event_type, e.track_id, e.zone) for e in events]


# ---- intrusion (moved from tests/engine/test_scene.py) ---------------------------------------


def test_danger_zone_intrusion_once_per_entry():
    a = _analyzer([_zone("pit", SQUARE)], safety={"cooldown_s": {"intrusion": 0}})
    ev = a.update(_frame(0.0, {7: (0.4, 0.4)}))
    assert ev == [SafetyEvent("intrusion", 0.0, "cam", 7, "pit", 0.9)]  # the shape HA relies on
    assert a.update(_frame(0.2, {7: (0.45, 0.4)})) == []
    assert a.update(_frame(0.4, {7: (0.9, 0.4)})) == []
    assert len(a.update(_frame(0.6, {7: (0.4, 0.4)}))) == 1  # re-entry alerts again (no cooldown)


def test_area_zone_raises_no_intrusion():
    assert [a.name for a in build_analyzers(parse_scene({"zones": [_zone("hall", SQUARE, "area")]}), "cam")] == ["heatmap"]
    a = _analyzer([_zone("hall", SQUARE, "area")], safety={})
    assert a.update(_frame(0.0, {1: (0.4, 0.4)})) == []


def test_intrusion_cooldown_per_track_and_zone():
    a = _analyzer([_zone("pit", SQUARE)], safety={"cooldown_s": {"intrusion": 10}})
    inside, out = (0.4, 0.4), (0.9, 0.9)
    events = _run(a, [(0.0, {1: inside}), (1.0, {1: out}), (2.0, {1: inside, 2: inside}), (3.0, {1: out}), (10.5, {1: inside})])
    assert [(e.track_id, e.t) for e in events] == [(1, 0.0), (2, 2.0), (1, 10.5)]  # 1 re-entering at 2.0 is within 10 s


def test_default_intrusion_cooldown_is_30_s():
    a = _analyzer([_zone("pit", SQUARE)])
    events = _run(a, [(t, {1: (0.4, 0.4) if int(t) % 2 == 0 else (0.9, 0.9)}) for t in np.arange(0.0, 40.0, 1.0)])
    assert [e.t for e in events] == [0.0, 30.0]


def test_unarmed_zone_emits_nothing_and_arming_with_someone_inside_alerts():
    clock = Clock(SATURDAY_9)
    weekdays = [{"days": "weekdays", "from": "07:00", "to": "18:00"}]
    a = _analyzer([_zone("pit", SQUARE)], clock, safety={"schedules": {"pit": weekdays}})
    assert a.update(_frame(0.0, {1: (0.4, 0.4)})) == []
    snap = a.snapshot()["zones"]["pit"]
    assert snap["armed"] is False and snap["intruded"] is False
    clock.now = MONDAY_9
    assert _kinds(a.update(_frame(1.0, {1: (0.4, 0.4)}))) == [("intrusion", 1, "pit")]
    assert a.snapshot()["zones"]["pit"] == {
        "armed": True,
        "intruded": True,
        "congestion": None,
        "density_per_m2": None,
        "machine_active": None,
    }
    clock.now = datetime(2025, 6, 2, 18, 0)  # "to" is exclusive
    assert a.update(_frame(2.0, {2: (0.4, 0.4)})) == []
    assert a.snapshot()["zones"]["pit"]["armed"] is False


# ---- schedules -------------------------------------------------------------------------------


def _armed(windows: Any, now: datetime) -> bool:
    a = _analyzer([_zone("pit", SQUARE)], Clock(now), safety={"schedules": {"pit": windows}})
    a.update(_frame(0.0, {}))
    return bool(a.snapshot()["zones"]["pit"]["armed"])


def test_schedule_windows():
    weekdays = [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "07:00", "to": "18:00"}]
    assert _armed(weekdays, datetime(2025, 6, 2, 7, 0))
    assert not _armed(weekdays, datetime(2025, 6, 2, 6, 59))
    assert not _armed(weekdays, SATURDAY_9)
    night = {"days": ["fri"], "from": "22:00", "to": "06:00"}  # Friday night into Saturday morning
    assert _armed(night, datetime(2025, 6, 6, 23, 0))
    assert _armed(night, datetime(2025, 6, 7, 5, 59))
    assert not _armed(night, datetime(2025, 6, 6, 5, 0))  # Friday morning belongs to Thursday's night
    assert not _armed(night, datetime(2025, 6, 7, 23, 0))
    assert _armed([{"from": "00:00", "to": "24:00"}], SATURDAY_9)  # no days: every day


def test_unquoted_yaml_times_read_as_the_same_window():
    # YAML 1.1 turns an unquoted 18:30 into the integer 1110 (base 60); it must still mean 18:30.
    raw = yaml.safe_load("schedules: {pit: [{days: weekend, from: 9:15, to: 18:30}]}")
    assert raw["schedules"]["pit"][0]["to"] == 1110
    assert _armed(raw["schedules"]["pit"], datetime(2025, 6, 7, 18, 29))
    assert not _armed(raw["schedules"]["pit"], datetime(2025, 6, 7, 18, 30))
    assert not _armed(raw["schedules"]["pit"], datetime(2025, 6, 7, 9, 14))


# ---- approach --------------------------------------------------------------------------------


def test_approach_within_the_distance_of_the_zone_edge():
    a = _analyzer([_zone("pit", SQUARE)], safety={"approach_m": 2.0}, calibration=FLAT)
    # The pit is floor X 1..5 m; x = 0.85 is 7.5 m (2.5 m off), 0.75 is 6.5 m (1.5 m off).
    assert a.update(_frame(0.0, {1: (0.85, 0.4)})) == []
    ev = a.update(_frame(0.5, {1: (0.75, 0.4)}))
    assert _kinds(ev) == [("approach", 1, "pit")]
    assert ev[0].details["distance_m"] == pytest.approx(1.5)
    assert a.update(_frame(1.0, {1: (0.7, 0.4)})) == []  # still near: one alert per approach
    assert _kinds(a.update(_frame(1.5, {1: (0.5, 0.4)}))) == [("intrusion", 1, "pit")]  # inside is intrusion, not approach
    assert a.snapshot()["metric_rules"] == "enabled"


def test_metric_rules_are_off_without_calibration():
    a = _analyzer([_zone("pit", SQUARE)], safety={"approach_m": 2.0, "distancing_m": 1.5, "distancing_s": 0})
    events = _run(a, [(t, {1: (0.65, 0.4), 2: (0.66, 0.4)}) for t in (0.0, 1.0, 2.0)])
    assert events == []
    snap = a.snapshot()
    assert snap["metric_rules"] == "disabled: no ground-plane calibration"
    assert snap["zones"]["pit"]["density_per_m2"] is None and snap["distancing_active"] is False


# ---- distancing ------------------------------------------------------------------------------


def _pair_run(a: SafetyAnalyzer, gap_m: float, seconds: float, start: float = 0.0) -> list[SafetyEvent]:
    steps = [(start + t, {1: (0.3, 0.7), 2: (0.3 + gap_m / 10, 0.7)}) for t in np.arange(0.0, seconds, 0.1)]
    return _run(a, steps)


def test_workers_closer_than_the_distance_for_the_duration():
    a = _analyzer([], safety={"distancing_m": 1.5, "distancing_s": 3, "cooldown_s": {"distancing": 20}}, calibration=FLAT)
    assert _pair_run(a, 2.0, 5.0) == []  # 2 m apart: fine
    assert _pair_run(a, 1.0, 2.9, start=10.0) == []  # close, but not for 3 s
    assert a.snapshot()["distancing_active"] is False
    ev = _pair_run(a, 1.0, 0.2, start=12.9)
    assert len(ev) == 1 and ev[0].t == pytest.approx(13.0)
    assert ev[0].event_type == "distancing" and ev[0].track_id == 1
    assert ev[0].details == {"kind": "workers", "other_track_id": 2, "distance_m": 1.0}
    assert a.snapshot()["distancing_active"] is True
    assert _pair_run(a, 1.0, 5.0, start=13.1) == []  # one alert per violation
    assert _pair_run(a, 3.0, 2.0, start=18.1) == []  # apart: over
    assert a.snapshot()["distancing_active"] is False
    assert _pair_run(a, 1.0, 3.5, start=20.1) == []  # a new violation, within the 20 s cooldown
    assert len(_pair_run(a, 1.0, 3.5, start=40.0)) == 1


def test_one_missed_frame_does_not_restart_the_distancing_timer():
    a = _analyzer([], safety={"distancing_m": 1.5, "distancing_s": 3}, calibration=FLAT)
    steps = [(t, {} if abs(t - 1.5) < 0.05 else {1: (0.3, 0.7), 2: (0.4, 0.7)}) for t in np.arange(0.0, 3.05, 0.1)]
    assert len(_run(a, steps)) == 1


def test_worker_near_hazardous_equipment():
    press = [[0.7, 0.2], [0.9, 0.2], [0.9, 0.4], [0.7, 0.4]]  # floor X 6..8, Y 1..3
    a = _analyzer(
        [_zone("press", press, "equipment")],
        safety={"hazardous": ["press"], "hazard_distance_m": 1.0, "distancing_s": 2},
        calibration=FLAT,
    )
    far = [(t, {5: (0.5, 0.3)}) for t in np.arange(0.0, 3.0, 0.1)]  # 2 m off
    assert _run(a, far) == []
    near = [(3.0 + t, {5: (0.62, 0.3)}) for t in np.arange(0.0, 2.5, 0.1)]  # 0.8 m off
    ev = _run(a, near)
    assert _kinds(ev) == [("distancing", 5, "press")]
    assert ev[0].details["kind"] == "equipment" and ev[0].details["distance_m"] == pytest.approx(0.8)


# ---- congestion ------------------------------------------------------------------------------


def _crowd(n: int) -> dict[int, tuple[float, float]]:
    return {i: (0.25 + 0.03 * i, 0.4) for i in range(n)}


def test_congestion_levels_with_hysteresis_and_hold():
    a = _analyzer(
        [_zone("hall", SQUARE, "area")],
        safety={"congestion": {"hall": {"medium": 4, "high": 8}}, "congestion_hold_s": 1.0},
    )

    def run(counts: list[int], start: float) -> list[SafetyEvent]:
        return _run(a, [(start + 0.1 * i, _crowd(n)) for i, n in enumerate(counts)])

    assert run([4] * 5 + [3] * 5, 0.0) == []  # 0.5 s at 4: not held long enough
    assert a.snapshot()["zones"]["hall"]["congestion"] == "low"
    ev = run([4] * 12, 1.0)
    assert [(e.event_type, e.zone, e.details["level"], e.details["people"]) for e in ev] == [("congestion", "hall", "medium", 4)]
    # 3 is inside medium's band (>= 75 % of 4): stays medium however long.
    assert run([3] * 30, 2.2) == []
    assert a.snapshot()["zones"]["hall"]["congestion"] == "medium"
    # Swinging between medium and high counts for 1.2 s: "at least medium" held, high never held.
    assert run([8, 5] * 6, 5.2) == []
    assert a.snapshot()["zones"]["hall"]["congestion"] == "medium"
    ev = run([9] * 11, 6.4)
    assert [e.details["level"] for e in ev] == ["high"]
    run([2] * 11, 7.5)  # well below both bands for 1 s: straight to low
    assert a.snapshot()["zones"]["hall"]["congestion"] == "low"


def test_congestion_per_square_metre_needs_calibration():
    zones = [_zone("hall", SQUARE, "area")]  # 4 m x 4 m = 16 m² on FLAT
    safety = {"congestion": {"hall": {"medium": 0.2, "high": 0.5, "per_m2": True}}, "congestion_hold_s": 0}
    a = _analyzer(zones, safety=safety, calibration=FLAT)
    ev = a.update(_frame(0.0, _crowd(4)))  # 0.25 per m²
    assert [e.details["level"] for e in ev] == ["medium"]
    assert ev[0].details["density_per_m2"] == pytest.approx(0.25)
    assert a.snapshot()["zones"]["hall"]["density_per_m2"] == pytest.approx(0.25)
    uncalibrated = _analyzer(zones, safety=safety)
    assert uncalibrated.update(_frame(0.0, _crowd(12))) == []
    assert uncalibrated.snapshot()["zones"]["hall"]["congestion"] is None


# ---- machine activity ------------------------------------------------------------------------

PRESS = [[0.5, 0.2], [0.9, 0.2], [0.9, 0.6], [0.5, 0.6]]  # pixels x 160..288, y 48..144
PIT = [[0.1, 0.6], [0.4, 0.6], [0.4, 0.95], [0.1, 0.95]]
_TEXTURE = np.random.default_rng(1).integers(60, 200, (H, W), dtype=np.uint8)


def _machine_image(i: int, moving: bool, rng: np.random.Generator, brightness: float = 0.0) -> np.ndarray:
    grey = _TEXTURE.astype(np.int16) + round(brightness) + rng.normal(0, 3, (H, W)).astype(np.int16)
    if moving:  # a dark arm sweeping back and forth between x = 180 and 240
        x = 180 + abs((i * 6) % 80 - 40)
        grey[60:130, x : x + 20] = 20
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _machine_run(a: SafetyAnalyzer, seconds: float, moving: bool, people=None, boxes=None, start=0.0, flicker=False):
    rng = np.random.default_rng(2)
    events: list[SafetyEvent] = []
    for i in range(int(seconds * 10)):
        # Flicker: the whole room's brightness swings +-30 grey levels once a second.
        image = _machine_image(i, moving, rng, 30 * np.sin(2 * np.pi * i / 10) if flicker else 0.0)
        events += a.update(_frame(start + i / 10, people or {}, image=image, boxes=boxes))
    return events


def test_machine_motion_outside_its_allowed_hours():
    clock = Clock(SATURDAY_9)
    allowed = [{"days": "weekdays", "from": "06:00", "to": "22:00"}]
    a = _analyzer([_zone("press", PRESS, "equipment")], clock, safety={"machines": {"press": {"allowed": allowed}}})
    assert _machine_run(a, 3.0, moving=False, flicker=True) == []  # sensor noise and flickering light: idle
    assert a.snapshot()["zones"]["press"]["machine_active"] is False
    ev = _machine_run(a, 3.0, moving=True, start=3.0)
    assert _kinds(ev) == [("machine_activity", None, "press")]
    assert ev[0].details == {"reason": "outside_schedule"} and ev[0].t < 5.0
    assert a.snapshot()["zones"]["press"]["machine_active"] is True
    clock.now = MONDAY_9
    b = _analyzer([_zone("press", PRESS, "equipment")], clock, safety={"machines": {"press": {"allowed": allowed}}})
    assert _machine_run(b, 3.0, moving=True) == []  # running in its hours is fine
    assert b.snapshot()["zones"]["press"]["machine_active"] is True


def test_machine_running_while_someone_is_in_its_danger_zone():
    zones = [_zone("press", PRESS, "equipment"), _zone("pit", PIT)]
    safety = {"machines": {"press": {"danger_zone": "pit"}}, "cooldown_s": {"intrusion": 0}}
    a = _analyzer(zones, safety=safety)
    ev = _machine_run(a, 3.0, moving=True, people={4: (0.7, 0.9)})  # running, nobody in the pit
    assert ev == []
    ev = _machine_run(a, 1.0, moving=True, people={4: (0.25, 0.8)}, start=3.0)
    assert [k for k in _kinds(ev) if k[0] == "machine_activity"] == [("machine_activity", 4, "press")]
    assert next(e for e in ev if e.event_type == "machine_activity").details == {
        "reason": "person_in_danger_zone",
        "danger_zone": "pit",
    }
    b = _analyzer(zones, safety=safety)
    assert not [e for e in _machine_run(b, 3.0, moving=False, people={4: (0.25, 0.8)}) if e.event_type == "machine_activity"]


def test_a_person_moving_in_front_of_the_machine_is_not_the_machine():
    allowed = {"days": "weekdays", "from": "06:00", "to": "22:00"}
    a = _analyzer([_zone("press", PRESS, "equipment")], Clock(SATURDAY_9), safety={"machines": {"press": {"allowed": allowed}}})
    # The moving arm is entirely inside this person's box.
    events = _machine_run(a, 3.0, moving=True, people={9: (0.66, 0.62)}, boxes={9: (170.0, 40.0, 265.0, 150.0)})
    assert events == [] and a.snapshot()["zones"]["press"]["machine_active"] is False
    assert _machine_run(a, 3.0, moving=True, start=3.0)  # the same motion, nobody there: the machine


def test_machine_without_config_is_sensed_but_raises_nothing():
    a = _analyzer([_zone("press", PRESS, "equipment")])
    assert _machine_run(a, 3.0, moving=True) == []
    press = {"armed": True, "intruded": False, "congestion": None, "density_per_m2": None, "machine_active": True}
    assert a.snapshot() == {
        "metric_rules": "disabled: no ground-plane calibration",
        "zones": {"press": press},
        "distancing_active": False,
    }


# ---- config ----------------------------------------------------------------------------------


def test_safety_section_parses_and_builds_the_analyzer():
    scene = parse_scene(
        {
            "zones": [_zone("pit", SQUARE), _zone("press", PRESS, "equipment")],
            "calibration": FLAT,
            "safety": {
                "timezone": "Europe/Berlin",
                "approach_m": 1,
                "distancing_m": 1.5,
                "hazardous": ["press"],
                "congestion": {"pit": {"medium": 2, "high": 4}},
                "schedules": {"pit": {"days": "weekdays", "from": "07:00", "to": "18:00"}},
                "machines": {"press": {"allowed": [{"from": "06:00", "to": "22:00"}], "danger_zone": "pit"}},
                "cooldown_s": {"congestion": 300},
            },
        }
    )
    cfg = scene.section("safety")
    assert isinstance(cfg, SafetyConfig)
    assert cfg.cooldown_s["congestion"] == 300 and cfg.cooldown_s["intrusion"] == 30
    analyzers = build_analyzers(scene, "cam")
    assert [a.name for a in analyzers] == ["safety", "floor", "heatmap"]  # floor: calibrated (site positions)
    assert set(analyzers[0].snapshot()) == {"metric_rules", "zones", "distancing_active"}
    assert [a.name for a in build_analyzers(parse_scene({"zones": [_zone("pit", SQUARE)]}), "cam")] == ["safety", "heatmap"]


def test_restricted_area_raises_intrusion_but_no_approach():
    a = _analyzer([_zone("office", SQUARE, "restricted")], safety={})
    events = _run(a, [(0.0, {1: (0.9, 0.9)}), (1.0, {1: (0.4, 0.4)})])
    assert [(e.event_type, e.zone, e.track_id) for e in events] == [("intrusion", "office", 1)]
    assert a.snapshot()["zones"]["office"]["intruded"] is True
    assert parse_scene({"safety": {"distancing_m": 0}}).section("safety").distancing_m is None  # 0 turns it off


@pytest.mark.parametrize(
    ("safety", "needle"),
    [
        ({"aproach_m": 2}, "unknown key(s) aproach_m"),
        ({"approach_m": -1}, "approach_m: expected a number >= 0"),
        ({"distancing_m": "far"}, "distancing_m: expected a number"),
        ({"distancing_m": 101}, "distancing_m: expected a number >= 0 and <= 100"),
        ({"hazardous": ["pit"]}, "zone 'pit' is kind danger, expected equipment"),
        ({"hazardous": ["nope"]}, "unknown zone 'nope'"),
        ({"congestion": {"pit": {"medium": 5, "high": 5}}}, "'high' (5) must be above 'medium' (5)"),
        ({"congestion": {"pit": {"high": 5}}}, "needs both 'medium' and 'high'"),
        ({"congestion": {"pit": {"medium": 1, "high": 2, "per": "m2"}}}, "unknown key(s) per"),
        ({"machines": {"pit": {}}}, "zone 'pit' is kind danger, expected equipment"),
        ({"machines": {"press": {"danger_zone": "yard"}}}, "unknown zone 'yard'"),
        ({"schedules": {"pit": [{"from": "25:00", "to": "06:00"}]}}, "'from': expected a time \"HH:MM\""),
        ({"schedules": {"pit": [{"from": 7, "to": "18:00"}]}}, "expected a time"),
        ({"schedules": {"pit": [{"from": "07:00", "to": "07:00"}]}}, "the window would be empty"),
        ({"schedules": {"pit": [{"days": ["mon", "fun"], "from": "07:00", "to": "08:00"}]}}, "unknown day 'fun'"),
        ({"schedules": {"pit": [{"from": "07:00"}]}}, "needs both 'from' and 'to'"),
        ({"schedules": {"pit": []}}, "expected a list of windows"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"cooldown_s": {"fall": 5}}, "unknown rule 'fall'"),
        ("yes", "expected a mapping"),
    ],
)
def test_bad_safety_config_is_rejected_with_one_line(safety, needle):
    with pytest.raises(ConfigError) as err:
        parse_scene({"zones": [_zone("pit", SQUARE), _zone("press", PRESS, "equipment")], "safety": safety})
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


# ---- real clip -------------------------------------------------------------------------------


def test_person_walking_up_to_the_table_on_the_intel_clip(detector, shared_data):
    """The first visitor of the Intel clip walks in from the bottom (about 6.7 s) and stands at the
    table. A danger zone over the table and the floor in front of it sees one intrusion; a danger
    zone over the table's foot alone, which the visitor stands in front of, sees an approach only."""
    from custom_components.safecam.engine.pipeline import CameraPipeline
    from custom_components.safecam.engine.sources import open_source

    scene = parse_scene(
        {
            "zones": [
                _zone("table_area", [[0.42, 0.58], [0.78, 0.58], [0.78, 0.97], [0.42, 0.97]]),
                _zone("table", [[0.49, 0.58], [0.67, 0.58], [0.67, 0.8], [0.49, 0.8]]),
            ],
            # By eye: the wall's foot (y = 0.567) is about 4 m wide, the frame's bottom edge 2.6 m, 2.2 m nearer.
            "calibration": {"image": [[0, 0.567], [1, 0.567], [1, 1], [0, 1]], "floor": [[0, 0], [4, 0], [3.3, 2.2], [0.7, 2.2]]},
            "safety": {"approach_m": 1.0},
        }
    )
    pipeline = CameraPipeline(detector, scene)
    events: list[SafetyEvent] = []
    for frame in open_source(str(shared_data / "pedestrians" / "intel_one_by_one_person_first60s.mp4")):
        if frame.index >= 110:
            break
        events += pipeline.process(frame.image, frame.t, frame.index, render=False).events
    intrusions = [e for e in events if e.event_type == "intrusion"]
    assert [e.zone for e in intrusions] == ["table_area"]
    assert intrusions[0].track_id is not None and 6.0 <= intrusions[0].t <= 9.0
    assert any(e.event_type == "approach" and e.zone == "table" for e in events)
