"""Safety analytics entities (falls, safety rules, PPE, fail-closed frames).

Fast tests: the entry is set up for real (real model check, real scene parsing through the
engine's section parsers, real platforms), but the worker thread is not started; `CameraState`s
with the engine's analytics shapes are pushed through the worker's own state callback, the path
every real frame takes. Real-clip tests (further down) run the real engine on real video.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN, EntityCategory
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.safecam.const import CONF_ANONYMIZATION, CONF_FPS, CONF_SCENE
from custom_components.safecam.coordinator import SafecamRuntime
from custom_components.safecam.engine.scene.safety import NO_CALIBRATION
from custom_components.safecam.engine.types import SafetyEvent
from custom_components.safecam.engine.worker import CameraState, CameraWorker

from .conftest import safecam_threads, wait_for

SQUARE = [[0.1, 0.5], [0.5, 0.5], [0.5, 0.9], [0.1, 0.9]]
RIGHT = [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9], [0.5, 0.9]]
# Two danger/equipment zones: the safety analyzer runs. No calibration: metric rules are off.
SAFETY_SCENE: dict[str, Any] = {
    "zones": [
        {"name": "pit", "kind": "danger", "polygon": SQUARE},
        {"name": "press", "kind": "equipment", "polygon": RIGHT},
    ],
    "gates": [],
}
PLAIN_SCENE: dict[str, Any] = {"zones": [{"name": "yard", "kind": "area", "polygon": SQUARE}], "gates": []}


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return state.state if state is not None else None


def _attrs(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return dict(state.attributes)


def _registered(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, er.RegistryEntry]:
    registry = er.async_get(hass)
    return {e.entity_id: e for e in er.async_entries_for_config_entry(registry, entry.entry_id)}


@pytest.fixture
def parked_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker thread is not started: the test pushes the states."""
    monkeypatch.setattr(CameraWorker, "start", lambda self: None)


async def _setup(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, scene: dict[str, Any]
) -> MockConfigEntry:
    entry = make_entry(str(clip), scene=scene)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def _push(hass: HomeAssistant, entry: MockConfigEntry, events: list[SafetyEvent] | None = None, **changes: Any) -> None:
    """One analysed frame's state, through the worker's callback (worker thread -> event loop)."""
    runtime: SafecamRuntime = entry.runtime_data
    seq = runtime.state.seq + 1 if runtime.state is not None else 1
    state = CameraState(entry.title, seq=seq, connected=True, running=True, frames=seq, **changes)
    await _push_state(hass, entry, state, events or [])


async def _push_state(hass: HomeAssistant, entry: MockConfigEntry, state: CameraState, events: list[SafetyEvent]) -> None:
    on_state = entry.runtime_data.worker._on_state
    assert on_state is not None
    await hass.async_add_executor_job(on_state, state, events)  # from another thread, like the worker
    await hass.async_block_till_done()


def _safety(**zones: dict[str, Any]) -> dict[str, Any]:
    return {"metric_rules": NO_CALIBRATION, "zones": zones, "distancing_active": False}


async def test_safety_zone_entities(
    hass: HomeAssistant, parked_worker: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = await _setup(hass, make_entry, clip, SAFETY_SCENE)
    registered = _registered(hass, entry)
    for entity_id in (
        "binary_sensor.demo_pit_intruded",
        "binary_sensor.demo_press_machine_running",
        "sensor.demo_metric_rules",
        "sensor.demo_fail_closed_frames",
    ):
        assert entity_id in registered, entity_id
    # Nothing the scene did not ask for.
    assert not {"binary_sensor.demo_person_down", "binary_sensor.demo_ppe_violation", "sensor.demo_people_without_ppe"} & set(
        registered
    )
    assert registered["sensor.demo_metric_rules"].entity_category is EntityCategory.DIAGNOSTIC
    assert registered["sensor.demo_fail_closed_frames"].entity_category is EntityCategory.DIAGNOSTIC
    assert registered["binary_sensor.demo_pit_intruded"].unique_id == f"{entry.entry_id}_zone_pit_intruded"
    # Before the first frame: analytics unavailable, configuration facts not yet known.
    assert _state(hass, "binary_sensor.demo_pit_intruded") == STATE_UNAVAILABLE
    assert _state(hass, "sensor.demo_metric_rules") == STATE_UNKNOWN

    zones = {"pit": {"people": 1, "occupied": True}, "press": {"people": 0, "occupied": False}}
    # Armed and someone inside: intruded.
    press = {"armed": True, "intruded": False, "congestion": None, "density_per_m2": None, "machine_active": True}
    pit = {"armed": True, "intruded": True, "congestion": None, "density_per_m2": None, "machine_active": None}
    await _push(hass, entry, zones=zones, analytics={"safety": _safety(pit=pit, press=press)})
    assert _state(hass, "binary_sensor.demo_pit_intruded") == STATE_ON
    assert _attrs(hass, "binary_sensor.demo_pit_intruded")["armed"] is True
    assert _state(hass, "binary_sensor.demo_press_machine_running") == STATE_ON
    assert _state(hass, "sensor.demo_metric_rules") == "disabled"
    assert _attrs(hass, "sensor.demo_metric_rules")["reason"] == "no ground-plane calibration"

    # Disarmed by its schedule: someone is still inside, but the zone is not intruded.
    disarmed = {**pit, "armed": False, "intruded": False}
    await _push(hass, entry, zones=zones, analytics={"safety": _safety(pit=disarmed, press={**press, "machine_active": False})})
    assert _state(hass, "binary_sensor.demo_pit_intruded") == STATE_OFF
    assert _attrs(hass, "binary_sensor.demo_pit_intruded")["armed"] is False
    assert _state(hass, "binary_sensor.demo_press_machine_running") == STATE_OFF

    # Without the safety analyzer's word (older engine, add-on payload): anyone inside counts.
    await _push(hass, entry, zones=zones)
    assert _state(hass, "binary_sensor.demo_pit_intruded") == STATE_ON
    assert "armed" not in _attrs(hass, "binary_sensor.demo_pit_intruded")
    assert _state(hass, "binary_sensor.demo_press_machine_running") == STATE_UNKNOWN

    # Calibrated: metric rules run; the status survives frames that do not repeat it.
    calibrated = {**_safety(pit=pit, press=press), "metric_rules": "enabled"}
    await _push(hass, entry, zones=zones, analytics={"safety": calibrated})
    assert _state(hass, "sensor.demo_metric_rules") == "enabled"
    assert "reason" not in _attrs(hass, "sensor.demo_metric_rules")

    # The stream drops: analytics unavailable, diagnostics stay.
    await _push_state(hass, entry, CameraState(entry.title, seq=99, connected=False), [])
    assert _state(hass, "binary_sensor.demo_pit_intruded") == STATE_UNAVAILABLE
    assert _state(hass, "sensor.demo_metric_rules") == "enabled"
    assert _state(hass, "sensor.demo_fail_closed_frames") not in (None, STATE_UNAVAILABLE)


RULES_SCENE: dict[str, Any] = {
    "zones": [{"name": "hall", "kind": "area", "polygon": SQUARE}, {"name": "yard", "kind": "area", "polygon": RIGHT}],
    "gates": [],
    "safety": {"distancing_m": 1.5, "congestion": {"hall": {"medium": 3, "high": 6}}},
}


async def test_congestion_and_distancing_entities(
    hass: HomeAssistant, parked_worker: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = await _setup(hass, make_entry, clip, RULES_SCENE)
    registered = set(_registered(hass, entry))
    assert {"sensor.demo_hall_congestion", "binary_sensor.demo_hall_congestion_high"} <= registered
    assert "binary_sensor.demo_distancing_violation" in registered
    assert not {"sensor.demo_yard_congestion", "binary_sensor.demo_yard_congestion_high"} & registered  # not configured
    state = hass.states.get("sensor.demo_hall_congestion")
    assert state is not None and state.attributes["options"] == ["low", "medium", "high"]

    hall = {"armed": True, "intruded": False, "congestion": "medium", "density_per_m2": None, "machine_active": None}
    await _push(hass, entry, analytics={"safety": _safety(hall=hall)})
    assert _state(hass, "sensor.demo_hall_congestion") == "medium"
    assert _state(hass, "binary_sensor.demo_hall_congestion_high") == STATE_OFF
    assert _state(hass, "binary_sensor.demo_distancing_violation") == STATE_OFF
    assert "density_per_m2" not in _attrs(hass, "sensor.demo_hall_congestion")

    high = {**hall, "congestion": "high", "density_per_m2": 2.125}
    await _push(hass, entry, analytics={"safety": {**_safety(hall=high), "distancing_active": True}})
    assert _state(hass, "sensor.demo_hall_congestion") == "high"
    assert _attrs(hass, "sensor.demo_hall_congestion")["density_per_m2"] == 2.12
    assert _state(hass, "binary_sensor.demo_hall_congestion_high") == STATE_ON
    assert _state(hass, "binary_sensor.demo_distancing_violation") == STATE_ON

    # Per-m² levels without a usable calibration: the engine reports no level.
    await _push(hass, entry, analytics={"safety": _safety(hall={**hall, "congestion": None})})
    assert _state(hass, "sensor.demo_hall_congestion") == STATE_UNKNOWN
    assert _state(hass, "binary_sensor.demo_hall_congestion_high") == STATE_UNKNOWN

    # Dropping congestion for the hall and distancing from the config removes their entities (reload).
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_SCENE: {**RULES_SCENE, "safety": {}}})
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    registered = set(_registered(hass, entry))
    assert "sensor.demo_metric_rules" in registered  # an empty safety section still runs the safety rules
    assert not {"sensor.demo_hall_congestion", "binary_sensor.demo_distancing_violation"} & registered
    assert hass.states.get("sensor.demo_hall_congestion") is None


async def test_person_down(
    hass: HomeAssistant, parked_worker: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = await _setup(hass, make_entry, clip, {**PLAIN_SCENE, "falls": {}})
    registered = _registered(hass, entry)
    assert registered["binary_sensor.demo_person_down"].unique_id == f"{entry.entry_id}_person_down"
    assert _state(hass, "binary_sensor.demo_person_down") == STATE_UNAVAILABLE

    await _push(hass, entry, analytics={"falls": {"person_down": False, "down": [], "immobile": []}})
    assert _state(hass, "binary_sensor.demo_person_down") == STATE_OFF
    assert _attrs(hass, "binary_sensor.demo_person_down")["people_down"] == 0

    down = [{"track_id": 7, "since": 12.5, "zone": "yard"}]
    await _push(hass, entry, analytics={"falls": {"person_down": True, "down": down, "immobile": []}})
    assert _state(hass, "binary_sensor.demo_person_down") == STATE_ON
    attrs = _attrs(hass, "binary_sensor.demo_person_down")
    assert (attrs["people_down"], attrs["people_immobile"], attrs["zones"]) == (1, 0, ["yard"])
    assert attrs["device_class"] == "safety"

    # Immobile (standing still in an immobile zone, not down) is "person down" too.
    immobile = [{"track_id": 9, "since": 3.0, "zone": None}]
    await _push(hass, entry, analytics={"falls": {"person_down": True, "down": [], "immobile": immobile}})
    assert _state(hass, "binary_sensor.demo_person_down") == STATE_ON
    assert _attrs(hass, "binary_sensor.demo_person_down")["people_immobile"] == 1

    # Falls switched off in the options: the entity goes (reload), nothing else changes.
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_SCENE: {**PLAIN_SCENE, "falls": {"enabled": False}}}
    )
    await hass.async_block_till_done()
    assert "binary_sensor.demo_person_down" not in _registered(hass, entry)
    assert "binary_sensor.demo_yard_occupied" in _registered(hass, entry)


async def test_ppe_entities(
    hass: HomeAssistant, parked_worker: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = await _setup(hass, make_entry, clip, {**PLAIN_SCENE, "ppe": {"required": ["helmet"]}})
    registered = _registered(hass, entry)
    assert registered["binary_sensor.demo_ppe_violation"].unique_id == f"{entry.entry_id}_ppe_violation"
    assert registered["sensor.demo_people_without_ppe"].unique_id == f"{entry.entry_id}_people_without_ppe"

    persons: dict[str, Any] = {"3": {"helmet": True, "vest": None, "missing": []}}
    await _push(
        hass, entry, people=1, analytics={"ppe": {"violation_active": False, "people_without_ppe": 0, "persons": persons}}
    )
    assert _state(hass, "binary_sensor.demo_ppe_violation") == STATE_OFF
    assert _state(hass, "sensor.demo_people_without_ppe") == "0"

    persons = {
        **persons,
        "4": {"helmet": False, "vest": None, "missing": ["helmet"]},
        "5": {"helmet": False, "vest": True, "missing": ["helmet"]},
    }
    await _push(hass, entry, people=3, analytics={"ppe": {"violation_active": True, "people_without_ppe": 2, "persons": persons}})
    assert _state(hass, "binary_sensor.demo_ppe_violation") == STATE_ON
    assert _state(hass, "sensor.demo_people_without_ppe") == "2"
    assert hass.states.get("sensor.demo_people_without_ppe").attributes["state_class"] == "measurement"  # type: ignore[union-attr]

    # Before the analyzer's first snapshot (e.g. right after a restart of the loop): unknown, not "no violation".
    await _push(hass, entry, people=3)
    assert _state(hass, "binary_sensor.demo_ppe_violation") == STATE_UNKNOWN
    assert _state(hass, "sensor.demo_people_without_ppe") == STATE_UNKNOWN


async def test_fail_closed_frames_and_anonymization_reach_the_engine(
    hass: HomeAssistant, parked_worker: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = await _setup(hass, make_entry, clip, PLAIN_SCENE)
    runtime: SafecamRuntime = entry.runtime_data
    assert runtime.worker._anonymizer.mode == "body"  # the option, not the engine's own default
    await _push(hass, entry, fail_closed_frames=4)
    assert _state(hass, "sensor.demo_fail_closed_frames") == "4"
    attrs = _attrs(hass, "sensor.demo_fail_closed_frames")
    assert (attrs["state_class"], attrs.get("unit_of_measurement")) == ("total_increasing", None)

    worker = runtime.worker
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_ANONYMIZATION: "head"})
    await hass.async_block_till_done()
    assert runtime.worker is worker and worker._anonymizer.mode == "head"  # live, same worker
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_ANONYMIZATION: "full_frame", CONF_FPS: 3})
    await hass.async_block_till_done()
    assert runtime.worker is not worker and runtime.worker._anonymizer.mode == "full_frame"  # new worker, new mode


async def test_no_safety_entities_without_safety_config(
    hass: HomeAssistant, parked_worker: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = await _setup(hass, make_entry, clip, PLAIN_SCENE)
    registered = set(_registered(hass, entry))
    assert "sensor.demo_fail_closed_frames" in registered  # every camera can fail closed
    keys = (
        "_intruded",
        "_metric_rules",
        "_person_down",
        "_ppe_violation",
        "_without_ppe",
        "_congestion",
        "_congestion_high",
        "_machine_running",
    )
    assert not {e for e in registered if e.endswith(keys)}


async def test_diagnostics_carry_analytics_without_pixels(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    entry = await _setup(hass, make_entry, clip, SAFETY_SCENE)
    pit = {"armed": True, "intruded": True, "congestion": "high", "density_per_m2": 2.5, "machine_active": None}
    # A careless analyzer leaking an image into its snapshot: diagnostics must not pass it on.
    leaky = {"crop": b"\xff\xd8 raw jpeg bytes \xff\xd9"}
    await _push(hass, entry, analytics={"safety": _safety(pit=pit), "leaky": leaky})
    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["state"]["analytics"]["safety"]["zones"]["pit"]["congestion"] == "high"
    assert diagnostics["state"]["analytics"]["leaky"]["crop"] == "<omitted>"
    assert "safety" in diagnostics["settings"]["capabilities"]["analyzers"]  # (contract.Capabilities)
    assert diagnostics["settings"]["capabilities"]["machine_zones"] == ["press"]
    assert "raw jpeg" not in repr(diagnostics)


async def _wait_state(hass: HomeAssistant, entity_id: str, value: str, timeout: float = 30.0) -> None:
    await wait_for(hass, lambda: _state(hass, entity_id) == value, timeout, f"{entity_id} == {value}")


# --- real engine on real video -------------------------------------------------------------------


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert not safecam_threads(), "the worker thread must be joined on unload"


# intel_one_by_one: people walk up to a standing table (its foot at x 0.5-0.65, y 0.6-0.8) one at a
# time; the first one stands at it from about 8 s on. The danger zone covers the floor around it.
TABLE_SCENE: dict[str, Any] = {
    "zones": [{"name": "table", "kind": "danger", "polygon": [[0.4, 0.55], [0.8, 0.55], [0.8, 1.0], [0.4, 1.0]]}],
    "gates": [],
}


async def test_intrusion_on_real_video(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], shared_data: Path
) -> None:
    clip = shared_data / "pedestrians" / "intel_one_by_one_person_first60s.mp4"
    entry = make_entry(str(clip), scene=TABLE_SCENE)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _state(hass, "binary_sensor.demo_table_intruded") == STATE_UNAVAILABLE  # no frame yet

    # The safety analyzer runs (a danger zone brings it) and reports its rules and zones.
    runtime: SafecamRuntime = entry.runtime_data
    await wait_for(hass, lambda: runtime.state is not None and "safety" in runtime.state.analytics, 60, "safety analytics")
    assert _state(hass, "sensor.demo_metric_rules") == "disabled"  # no calibration
    await _wait_state(hass, "binary_sensor.demo_table_intruded", STATE_ON, timeout=60)
    assert _attrs(hass, "binary_sensor.demo_table_intruded")["armed"] is True
    await wait_for(hass, lambda: _state(hass, "event.demo_safety_event") not in (None, STATE_UNKNOWN), 30, "intrusion event")
    event = _attrs(hass, "event.demo_safety_event")
    assert (event["event_type"], event["zone"]) == ("intrusion", "table")
    assert runtime.state is not None and runtime.state.analytics["safety"]["zones"]["table"]["intruded"] is True
    await _unload(hass, entry)


async def test_fall_on_real_video(hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], shared_data: Path) -> None:
    """GMDCSA24 subject 1, fall 13: a backward fall from standing at 0.4 s; the person then lies until the end (4.3 s)."""
    clip = shared_data / "falls" / "gmdcsa24_s1_fall_13.mp4"
    entry = make_entry(str(clip), scene={"zones": [], "gates": [], "falls": {}})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    fired = _record_events(hass, "event.demo_safety_event")
    await _wait_state(hass, "binary_sensor.demo_person_down", STATE_ON, timeout=60)
    assert _attrs(hass, "binary_sensor.demo_person_down")["people_down"] >= 1
    await wait_for(hass, lambda: any(e["event_type"] == "fall" for e in fired), 30, "fall event")
    await _unload(hass, entry)


async def test_ppe_on_real_video(hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], shared_data: Path) -> None:
    """A rig worker in an orange hard hat and a harness, no hi-vis vest (shared/data/DATA.md)."""
    clip = shared_data / "construction" / "drilling_rig_worker_hardhat_vertical.mp4"
    entry = make_entry(str(clip), scene={"zones": [], "gates": [], "ppe": {"required": ["helmet", "vest"]}})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    fired = _record_events(hass, "event.demo_safety_event")
    await _wait_state(hass, "binary_sensor.demo_ppe_violation", STATE_ON, timeout=60)
    assert _state(hass, "sensor.demo_people_without_ppe") == "1"
    await wait_for(hass, lambda: any(e["event_type"] == "ppe_violation" for e in fired), 30, "ppe_violation event")
    # The vest is what is missing; the hard hat is seen.
    assert all(e["details"]["missing"] == ["vest"] for e in fired if e["event_type"] == "ppe_violation")
    await _unload(hass, entry)


def _record_events(hass: HomeAssistant, entity_id: str) -> list[dict[str, Any]]:
    """The attributes of every event the event entity fires from now on (a later event replaces the state)."""
    fired: list[dict[str, Any]] = []

    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and new.state not in (STATE_UNKNOWN, STATE_UNAVAILABLE):
            fired.append(dict(new.attributes))

    async_track_state_change_event(hass, entity_id, record)
    return fired
