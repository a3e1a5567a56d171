"""Long-term statistics: state classes of the safecam sensors and the per-type event counters.

Real engine on tud_campus.mp4 with the conftest scene (the walkway is a danger zone): people walking
along the bottom enter it, so the safety analyzer fires intrusions. The intrusion counter must count
exactly the intrusions the event entity fired, continue from its restored total after a restart,
and exist only for the event types the camera's scene can raise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.sensor import ATTR_STATE_CLASS, SensorStateClass
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache_with_extra_data

from custom_components.safecam.contract import capabilities
from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.worker import CameraWorker

from .conftest import SCENE, number_of, setup_loaded, unload, wait_for

COUNTER = "sensor.demo_intrusion_events"
EVENT = "event.demo_safety_event"
DANGER = {"name": "pit", "kind": "danger", "polygon": [[0.1, 0.5], [0.5, 0.5], [0.5, 0.9], [0.1, 0.9]]}
PRESS = {"name": "press", "kind": "equipment", "polygon": [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4], [0.6, 0.4]]}
CALIBRATION = {"image": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]], "rectangle_m": [8.0, 5.0]}


def event_types_of(scene: dict[str, Any]) -> tuple[str, ...]:
    """The event types of a scene as the engine validated it (one event counter sensor each)."""
    return capabilities(parse_scene(scene).as_dict()).event_types


def test_event_types_follow_the_scene() -> None:
    assert event_types_of({}) == ()
    assert event_types_of({"zones": [DANGER]}) == ("intrusion",)  # approach needs a calibration
    assert event_types_of({"zones": [DANGER], "calibration": CALIBRATION}) == ("intrusion", "approach")
    restricted = {**DANGER, "kind": "restricted"}
    assert event_types_of({"zones": [restricted], "calibration": CALIBRATION}) == ("intrusion",)
    everything = {
        "zones": [DANGER, PRESS],
        "calibration": CALIBRATION,
        "safety": {
            "distancing_m": 1.5,
            "congestion": {"pit": {"medium": 2, "high": 4}},
            "machines": {"press": {"danger_zone": "pit"}},
        },
        "falls": {},
        "ppe": {"required": ["helmet"]},
    }
    assert set(event_types_of(everything)) == {
        "intrusion",
        "approach",
        "fall",
        "immobile",
        "distancing",
        "congestion",
        "machine_activity",
        "ppe_violation",
    }
    # Distancing is metric: without a calibration it never fires; falls switched off fire nothing.
    no_calibration = {k: v for k, v in everything.items() if k != "calibration"} | {"falls": False}
    assert set(event_types_of(no_calibration)) == {"intrusion", "congestion", "machine_activity", "ppe_violation"}


async def test_state_classes_and_event_counter(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    # A restart: the counter's last total comes back from the restore cache.
    mock_restore_cache_with_extra_data(hass, [(State(COUNTER, "7"), {"native_value": 7, "native_unit_of_measurement": None})])
    fired: list[str] = []

    @callback
    def _on_change(event: Event[Any]) -> None:
        new = event.data["new_state"]
        if event.data["entity_id"] == EVENT and new is not None and new.attributes.get("event_type") == "intrusion":
            fired.append(new.state)

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, _on_change)
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    assert number_of(hass, COUNTER) >= 7

    counters = {
        e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id) if "_events" in e.entity_id
    }
    assert counters == {COUNTER}  # the scene has a danger zone and nothing else that fires events

    await wait_for(hass, lambda: len(fired) >= 2, 90, "two intrusion events")
    await hass.async_block_till_done()
    assert number_of(hass, COUNTER) == 7 + len(fired)
    unsub()

    # What the recorder needs to keep hourly statistics (counts as totals, people as measurements); counts have no
    # unit: the name says what is counted, and HA shows a translated unit in English in every language ("1 people").
    expected = {
        COUNTER: (SensorStateClass.TOTAL_INCREASING, None),
        "sensor.demo_middle_entries": (SensorStateClass.TOTAL_INCREASING, None),
        "sensor.demo_middle_exits": (SensorStateClass.TOTAL_INCREASING, None),
        "sensor.demo_people": (SensorStateClass.MEASUREMENT, None),
        "sensor.demo_walkway_people": (SensorStateClass.MEASUREMENT, None),
    }
    for entity_id, (state_class, unit) in expected.items():
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        assert (state.attributes.get(ATTR_STATE_CLASS), state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)) == (state_class, unit)
    await unload(hass, entry)


async def test_counters_follow_options(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turning falls on in the options adds the fall and immobile counters (the entry reloads)."""
    monkeypatch.setattr(CameraWorker, "start", lambda self: None)  # entities only: no analysis needed
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    hass.config_entries.async_update_entry(entry, options={**entry.options, "scene": {**SCENE, "falls": {}}})
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    counters = {e.entity_id for e in er.async_entries_for_config_entry(registry, entry.entry_id) if "_events" in e.entity_id}
    assert counters == {COUNTER, "sensor.demo_fall_events", "sensor.demo_immobile_events"}
    await unload(hass, entry)
