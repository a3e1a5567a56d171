"""Counting in Home Assistant on a real engine run (tud_campus.mp4, real detector): zone occupancy and
longest-dwell sensors, gate counters restored after a restart, and the safecam.reset_counters action."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache_with_extra_data

from custom_components.safecam.const import DOMAIN

from .conftest import camera_device, number_of, setup_loaded, unload, wait_for

# People walk left and right along the bottom of the clip; "middle" and "east" cross their path.
SCENE: dict[str, Any] = {
    "zones": [{"name": "walkway", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}],
    "gates": [{"name": "middle", "line": [[0.5, 0.5], [0.5, 1.0]]}, {"name": "east", "line": [[0.8, 0.5], [0.8, 1.0]]}],
    "occupancy": {"walkway": {}},
}
ENTRIES, EXITS = "sensor.demo_middle_entries", "sensor.demo_middle_exits"
EAST_EXITS = "sensor.demo_east_exits"
OCCUPANCY, DWELL = "sensor.demo_walkway_occupancy", "sensor.demo_walkway_longest_dwell"


async def test_occupancy_dwell_and_resetting_restored_counters(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (State(ENTRIES, "100"), {"native_value": 100, "native_unit_of_measurement": None}),
            (State(EXITS, "50"), {"native_value": 50, "native_unit_of_measurement": None}),
            (State(EAST_EXITS, "40"), {"native_value": 40, "native_unit_of_measurement": None}),
        ],
    )
    entry = make_entry(str(clip), scene=SCENE)
    runtime = await setup_loaded(hass, entry)
    assert hass.services.has_service(DOMAIN, "reset_counters")

    # Occupancy (no gates close the walkway: the people seen in it) and the longest dwell ---------
    await wait_for(hass, lambda: number_of(hass, OCCUPANCY) > 0, what="walkway occupancy")
    await wait_for(hass, lambda: number_of(hass, DWELL) >= 1, what="a dwell of a second or more")
    occupancy = hass.states.get(OCCUPANCY)
    assert occupancy is not None and occupancy.attributes["source"] == "people"
    dwell = hass.states.get(DWELL)
    assert dwell is not None and dwell.attributes["unit_of_measurement"] == "s"
    assert dwell.attributes["device_class"] == "duration"

    # Restored totals, and the engine counting on from them ------------------------------------------
    await wait_for(hass, lambda: runtime.state is not None and runtime.state.gates.get("middle", {}).get("out", 0) > 50)
    assert number_of(hass, ENTRIES) >= 100 and number_of(hass, EXITS) > 50 and number_of(hass, EAST_EXITS) >= 40

    # Reset through the device: zero in HA at once, and the old totals never come back ---------------
    device = camera_device(hass, entry)
    assert device is not None
    seen: list[dict[str, dict[str, int]]] = []
    unsub = runtime.async_add_listener(lambda: seen.append(runtime.state.gates if runtime.state else {}))
    await hass.services.async_call(DOMAIN, "reset_counters", target={"device_id": device.id}, blocking=True)
    assert (hass.states.get(ENTRIES).state, hass.states.get(EXITS).state) == ("0", "0")  # type: ignore[union-attr]
    assert hass.states.get(EAST_EXITS).state == "0"  # type: ignore[union-attr]
    frames = runtime.worker.state.frames
    await wait_for(hass, lambda: runtime.worker.state.frames >= frames + 15, what="frames after the reset")
    unsub()
    assert seen
    assert all(g.get("middle", {}).get("in", 0) < 100 and g.get("middle", {}).get("out", 0) < 50 for g in seen)
    assert all(g.get("east", {}).get("out", 0) < 40 for g in seen)
    assert runtime.worker.state.gates["middle"]["in"] < 100
    assert number_of(hass, ENTRIES) < 100 and 0 <= number_of(hass, EXITS) < 50
    after_reset = number_of(hass, EXITS)

    # Home Assistant restarts: the sensors restore the post-reset totals, the engine continues from them
    await unload(hass, entry)
    runtime = await setup_loaded(hass, entry)
    assert 0 <= number_of(hass, EXITS) < 50
    assert number_of(hass, EXITS) >= after_reset
    await wait_for(hass, lambda: runtime.state is not None and runtime.state.frames > 3, what="frames after restart")
    assert runtime.state is not None
    assert runtime.state.gates["middle"]["out"] < 50
    assert runtime.state.gates["east"]["out"] < 40
    await unload(hass, entry)


async def test_reset_one_gate_by_entry_and_validation(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (State(ENTRIES, "100"), {"native_value": 100, "native_unit_of_measurement": None}),
            (State(EAST_EXITS, "40"), {"native_value": 40, "native_unit_of_measurement": None}),
        ],
    )
    entry = make_entry(str(clip), scene=SCENE)
    runtime = await setup_loaded(hass, entry)
    await hass.services.async_call(DOMAIN, "reset_counters", {"config_entry_id": entry.entry_id, "gate": "east"}, blocking=True)
    assert hass.states.get(EAST_EXITS).state == "0"  # type: ignore[union-attr]
    assert number_of(hass, ENTRIES) >= 100  # the other gate keeps its total
    await wait_for(hass, lambda: runtime.state is not None and runtime.state.frames > 3, what="frames")
    assert runtime.state is not None and runtime.state.gates["middle"]["in"] >= 100

    with pytest.raises(ServiceValidationError) as err:
        data = {"config_entry_id": entry.entry_id, "gate": "nope"}
        await hass.services.async_call(DOMAIN, "reset_counters", data, blocking=True)
    assert err.value.translation_key == "unknown_gate"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "reset_counters", {}, blocking=True)
    assert err.value.translation_key == "no_camera_targeted"
    await unload(hass, entry)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "reset_counters", {"config_entry_id": entry.entry_id}, blocking=True)
    assert err.value.translation_key == "camera_not_loaded"
