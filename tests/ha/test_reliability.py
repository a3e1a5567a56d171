"""Reliability in Home Assistant (issue #11): the stream-unreachable repair delay is a live option, a reload
re-fires no old event and doubles no counter, and a wrong or huge model file becomes a repair, not a crash.

Real engine, real model, real clip (tests/ha/conftest.py); the unreachable camera is a closed local port.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache_with_extra_data

from custom_components.safecam.const import CONF_ANONYMIZATION, CONF_FPS, CONF_UNREACHABLE_AFTER, DOMAIN
from tests.conftest import MODELS as SHARED_MODELS

from .conftest import number_of, safecam_threads, setup_loaded, state_of, unload, wait_for

EVENT = "event.demo_safety_event"
EXITS = "sensor.demo_middle_exits"


async def _detection_options(hass: HomeAssistant, entry: MockConfigEntry, values: dict[str, Any]) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": "detection"})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "detection"
    form = result
    user_input = {CONF_FPS: 5, CONF_ANONYMIZATION: "body", **values}
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    return form


async def test_stream_unreachable_repair_delay_is_a_live_option(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], closed_port: int
) -> None:
    entry = make_entry(f"rtsp://127.0.0.1:{closed_port}/stream")
    runtime = await setup_loaded(hass, entry)
    issue_id = f"stream_unreachable_{entry.entry_id}"
    issues = ir.async_get(hass)
    await wait_for(hass, lambda: runtime.state is not None and runtime.state.error_reason == "unreachable", 30, "connect failure")
    runtime._async_check_health()  # (the 30 s timer, run now)
    assert issues.async_get_issue(DOMAIN, issue_id) is None  # down for seconds, the default is 5 minutes
    worker = runtime.worker

    form = await _detection_options(hass, entry, {CONF_UNREACHABLE_AFTER: 0})
    suggested = {str(k): k.description for k in form["data_schema"].schema}
    assert suggested[CONF_UNREACHABLE_AFTER] == {"suggested_value": 5}  # the form shows the default
    assert entry.options[CONF_UNREACHABLE_AFTER] == 0
    assert runtime.worker is worker and entry.state is ConfigEntryState.LOADED  # applied live, no restart
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None and issue.translation_placeholders is not None
    assert issue.translation_placeholders["reason"] == "unreachable"

    await _detection_options(hass, entry, {CONF_UNREACHABLE_AFTER: 60})  # longer again: the repair is withdrawn
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    runtime._async_check_health()
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    await unload(hass, entry)


async def test_reload_refires_no_old_event_and_doubles_no_counter(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    """Counters restore to exactly their last value and go on by single crossings; the event entity
    restores its last event without firing it again, and every event after the reload is a new one."""
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def record(event: Event) -> None:
        new = event.data["new_state"]
        if event.data["entity_id"] in (EVENT, EXITS) and new is not None:
            seen.append((event.data["entity_id"], new.state, dict(new.attributes)))

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    await wait_for(hass, lambda: number_of(hass, EXITS) >= 2 and state_of(hass, EVENT) not in (None, STATE_UNKNOWN), 120)
    mark = len(seen)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    before_reload = seen[:mark]
    await wait_for(hass, lambda: number_of(hass, EXITS) > max(_numbers(before_reload)), 120, "a new crossing after the reload")
    await wait_for(hass, lambda: len(_event_ids(seen[mark:])) >= 2, 120, "a new event after the reload")
    unsub()
    await unload(hass, entry)

    # Counters: while unloaded the sensor is unavailable; it comes back with exactly the value it had, then
    # goes on by single crossings (a doubled or reset total would jump).
    exits = [state for entity, state, _ in seen if entity == EXITS]
    gap = exits.index("unavailable", len(_numbers(before_reload)))
    assert float(exits[gap + 1]) == float(exits[gap - 1]), exits[gap - 3 : gap + 3]
    values = _numbers(seen)
    assert all(0 <= b - a <= 3 for a, b in itertools.pairwise(values)), values
    # Events: the one restored is the last before the reload (same id, same time); no earlier one
    # comes back, and everything fired after the reload has a new id.
    old_ids, new_ids = _event_ids(before_reload), _event_ids(seen[mark:])
    last_before = next((s, a) for e, s, a in reversed(before_reload) if e == EVENT and "event_id" in a)
    again = [i for i in new_ids if i in old_ids]
    assert again in ([], [last_before[1]["event_id"]]), again
    restored = [(s, a) for e, s, a in seen[mark:] if e == EVENT and a.get("event_id") in old_ids]
    assert all(s == last_before[0] for s, _ in restored)  # the restored state, not a new firing of it
    assert len(new_ids) == len(set(new_ids))


async def test_restart_restores_the_last_event_without_firing_it(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    """HA restarts (PHCC restore cache): the event entity shows the event it had, fires it not again; the
    counter goes on from its restored total by single crossings, never from double or from zero."""
    fired = "2026-11-24T00:00:00.000+00:00"
    attrs = {"event_type": "intrusion", "event_id": "0123456789abcdef", "zone": "walkway", "camera": "Demo"}
    mock_restore_cache_with_extra_data(
        hass,
        [
            (State(EVENT, fired, attrs), {"last_event_type": "intrusion", "last_event_attributes": attrs}),
            (State(EXITS, "40"), {"native_value": 40, "native_unit_of_measurement": None}),
        ],
    )
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def record(event: Event) -> None:
        new = event.data["new_state"]
        if event.data["entity_id"] in (EVENT, EXITS) and new is not None:
            seen.append((event.data["entity_id"], new.state, dict(new.attributes)))

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    assert state_of(hass, EVENT) == dt_util.parse_datetime(fired).isoformat(timespec="milliseconds")  # type: ignore[union-attr]
    assert hass.states.get(EVENT).attributes["event_id"] == attrs["event_id"]  # type: ignore[union-attr]
    await wait_for(hass, lambda: number_of(hass, EXITS) > 40, 120, "a crossing after the restart")
    await wait_for(hass, lambda: len(_event_ids(seen)) >= 2, 120, "a new event after the restart")
    unsub()
    await unload(hass, entry)
    ids = _event_ids(seen)
    assert ids[0] == attrs["event_id"] and attrs["event_id"] not in ids[1:]  # restored once, never fired
    values = _numbers(seen)
    assert values[0] == 40 and all(0 <= b - a <= 3 for a, b in itertools.pairwise(values)), values


def _numbers(states: list[tuple[str, str, dict[str, Any]]]) -> list[float]:
    out = []
    for entity, state, _ in states:
        if entity == EXITS:
            try:
                out.append(float(state))
            except ValueError:
                continue  # unavailable while reloading
    return out


def _event_ids(states: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Distinct event ids in the order they appeared."""
    ids: list[str] = []
    for entity, _state, attrs in states:
        event_id = attrs.get("event_id")
        if entity == EVENT and event_id and event_id not in ids:
            ids.append(event_id)
    return ids


async def test_face_model_in_place_of_the_detector_is_a_repair(
    hass: HomeAssistant, no_model: None, make_entry: Callable[..., MockConfigEntry], clip: Path, tmp_path: Path
) -> None:
    shutil.copyfile(SHARED_MODELS / "face_yunet_2023mar.onnx", tmp_path / "empty-cache" / "yolox_nano.onnx")
    entry = make_entry(str(clip))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "model_corrupt")
    assert issue is not None and issue.translation_placeholders is not None
    error = issue.translation_placeholders["error"]
    assert "face_yunet_2023mar" in error and "yolox_nano" in error and "fetch yolox_nano" in error
    assert not safecam_threads()


async def test_huge_file_at_the_model_path_is_a_repair(
    hass: HomeAssistant, no_model: None, make_entry: Callable[..., MockConfigEntry], clip: Path, tmp_path: Path
) -> None:
    with (tmp_path / "empty-cache" / "yolox_nano.onnx").open("wb") as fh:
        fh.truncate(8 * 2**30)  # sparse: 8 GiB that take no disk
    entry = make_entry(str(clip))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "model_corrupt")
    assert issue is not None and issue.translation_placeholders is not None
    assert "far larger than any model" in issue.translation_placeholders["error"]
    assert not safecam_threads()
