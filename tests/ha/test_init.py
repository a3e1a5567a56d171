"""Real setup: engine worker on tud_campus.mp4 with the real detector; entities, privacy, options, unload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from homeassistant.components.camera import async_get_image
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache_with_extra_data
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.safecam import coordinator
from custom_components.safecam.const import (
    CONF_ANONYMIZATION,
    CONF_ENTITY_REGISTRY_ID,
    CONF_FPS,
    CONF_SCENE,
    CONF_SOURCE_TYPE,
    DOMAIN,
    SOURCE_ENTITY,
)

from ..engine.mot import frames
from .conftest import SCENE, camera_device, camera_workers, number_of, safecam_threads, setup_loaded, state_of, unload, wait_for

CAMERA = "camera.demo_anonymized_view"
EXPECTED_ENTITIES = {
    "binary_sensor.demo_camera_connected",
    "binary_sensor.demo_sky_occupied",
    "binary_sensor.demo_walkway_intruded",
    "binary_sensor.demo_walkway_occupied",
    CAMERA,
    "event.demo_safety_event",
    "image.demo_heatmap",
    "sensor.demo_analysis_rate",
    "sensor.demo_dropped_frames",
    "sensor.demo_fail_closed_frames",
    "sensor.demo_inference_time",
    "sensor.demo_intrusion_events",  # the walkway (danger) can fire intrusions: their counter
    "sensor.demo_metric_rules",  # the walkway is a danger zone: the safety rules run
    "sensor.demo_middle_entries",
    "sensor.demo_middle_exits",
    "sensor.demo_people",
    "sensor.demo_sky_people",
    "sensor.demo_walkway_people",
}


def _raw_frames(path: Path) -> np.ndarray:
    return np.stack(frames(path)).astype(np.int16)


def _assert_not_raw(jpeg: bytes, raw: np.ndarray) -> None:
    """Privacy invariant: a served image is never (close to) a raw frame of the clip."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == raw.shape[1:]
    closest = float(np.abs(raw - image.astype(np.int16)).mean(axis=(1, 2, 3)).min())
    assert closest >= 2.0, f"served image is within {closest:.2f} grey levels of a raw frame"


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await unload(hass, entry)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert not safecam_threads(), "the worker thread must be joined on unload"


async def test_live_camera(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = make_entry(str(clip))
    runtime = await setup_loaded(hass, entry)
    assert len(camera_workers()) == 1

    # Entities and device -----------------------------------------------------------------------
    entity_registry = er.async_get(hass)
    registered = {e.entity_id: e for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)}
    assert set(registered) == EXPECTED_ENTITIES
    assert {e.entity_id for e in registered.values() if e.disabled_by} == {
        "sensor.demo_inference_time",
        "sensor.demo_dropped_frames",
    }
    assert registered["sensor.demo_people"].unique_id == f"{entry.entry_id}_people"
    device = camera_device(hass, entry)
    assert device is not None
    assert (device.name, device.manufacturer, device.model) == ("Demo", "safecam", "Camera analytics")

    # The real detector finds the people walking along the bottom of the clip -------------------
    await wait_for(hass, lambda: number_of(hass, "sensor.demo_people") > 0, what="people > 0")
    await wait_for(hass, lambda: state_of(hass, "binary_sensor.demo_walkway_occupied") == STATE_ON, what="walkway occupied")
    assert state_of(hass, "binary_sensor.demo_walkway_intruded") == STATE_ON
    assert number_of(hass, "sensor.demo_walkway_people") > 0
    assert state_of(hass, "binary_sensor.demo_sky_occupied") == STATE_OFF
    assert state_of(hass, "sensor.demo_sky_people") == "0"
    assert state_of(hass, "binary_sensor.demo_camera_connected") == STATE_ON
    await wait_for(hass, lambda: state_of(hass, "event.demo_safety_event") not in (None, STATE_UNKNOWN), what="intrusion event")
    event = hass.states.get("event.demo_safety_event")
    assert event is not None
    assert event.attributes["event_type"] == "intrusion"
    assert event.attributes["zone"] == "walkway"
    assert isinstance(event.attributes["track_id"], int)

    # Camera: the worker's anonymized JPEG, never a raw frame ---------------------------------
    raw = await hass.async_add_executor_job(_raw_frames, clip)
    assert len(raw) == 71
    matched = 0
    for _ in range(6):
        before = await hass.async_add_executor_job(runtime.worker.latest_jpeg)
        served = (await async_get_image(hass, CAMERA)).content
        after = await hass.async_add_executor_job(runtime.worker.latest_jpeg)
        matched += served in (before, after)
        _assert_not_raw(served, raw)
        await hass.async_block_till_done()
    assert matched >= 5  # a new frame may land between the reads once in a while

    client = await hass_client()
    resp = await client.get(f"/api/camera_proxy/{CAMERA}")
    assert resp.status == 200
    _assert_not_raw(await resp.read(), raw)
    resp = await client.get(f"/api/camera_proxy_stream/{CAMERA}")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    buf = b""
    while b"\xff\xd9" not in buf[buf.find(b"\xff\xd8") :] or b"\xff\xd8" not in buf:
        buf += await resp.content.readany()
    start = buf.find(b"\xff\xd8")
    _assert_not_raw(buf[start : buf.find(b"\xff\xd9", start) + 2], raw)
    resp.close()

    # Full-frame anonymization: the mode reaches the running engine; still never a raw frame -------
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_ANONYMIZATION: "full_frame"})
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    assert runtime.worker._anonymizer.mode == "full_frame"
    _assert_not_raw((await async_get_image(hass, CAMERA)).content, raw)
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_ANONYMIZATION: "body"})
    await hass.async_block_till_done()

    # Options applied live: new geometry -> set_scene, same worker; new fps -> only the worker restarts
    worker = runtime.worker
    moved = {**SCENE, "zones": [SCENE["zones"][0], {**SCENE["zones"][1], "polygon": [[0, 0], [1, 0], [1, 0.2]]}]}
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_SCENE: moved})
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime and runtime.worker is worker
    assert runtime.settings.scene.zones[1].polygon == ((0.0, 0.0), (1.0, 0.0), (1.0, 0.2))
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_FPS: 4})
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime and runtime.worker is not worker
    assert runtime.worker.fps == 4
    assert len(camera_workers()) == 1
    await wait_for(hass, lambda: runtime.worker.state.frames > 0, what="restarted worker analysing")

    # New zone, removed gate -> reload: entities appear and disappear ----------------------------
    changed = {"zones": [*moved["zones"], {"name": "left", "polygon": [[0, 0.5], [0.3, 0.5], [0.3, 1], [0, 1]]}], "gates": []}
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_SCENE: changed})
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not runtime
    registered_now = {e.entity_id for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)}
    assert "sensor.demo_left_people" in registered_now
    assert "binary_sensor.demo_left_occupied" in registered_now
    assert "sensor.demo_middle_entries" not in registered_now
    assert hass.states.get("sensor.demo_middle_entries") is None
    assert len(camera_workers()) == 1
    await wait_for(hass, lambda: number_of(hass, "sensor.demo_left_people") >= 0, what="new zone sensor")

    # Reload, then unload: the worker thread is joined, entities become unavailable --------------
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert len(camera_workers()) == 1
    await _unload(hass, entry)
    assert state_of(hass, "sensor.demo_people") == STATE_UNAVAILABLE


async def test_gate_totals_survive_restart(hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (State("sensor.demo_middle_entries", "7"), {"native_value": 7, "native_unit_of_measurement": None}),
            (State("sensor.demo_middle_exits", "3"), {}),  # no sensor extra data: falls back to the state
        ],
    )
    entry = make_entry(str(clip))
    runtime = await setup_loaded(hass, entry)
    assert state_of(hass, "sensor.demo_middle_entries") == "7"
    assert state_of(hass, "sensor.demo_middle_exits") == "3"
    # The engine continues from the restored totals.
    await wait_for(hass, lambda: runtime.state is not None and runtime.state.frames > 2, what="frames")
    assert runtime.state is not None
    assert runtime.state.gates["middle"]["in"] >= 7
    assert runtime.state.gates["middle"]["out"] >= 3
    await wait_for(hass, lambda: number_of(hass, "sensor.demo_people") > 0, what="people")
    assert number_of(hass, "sensor.demo_middle_entries") >= 7
    last_in = number_of(hass, "sensor.demo_middle_entries")

    # HA restarts: the sensors' last states are restored, the counts continue.
    await _unload(hass, entry)
    runtime = await setup_loaded(hass, entry)
    assert number_of(hass, "sensor.demo_middle_entries") >= last_in
    await wait_for(hass, lambda: runtime.state is not None and runtime.state.frames > 0, what="frames after restart")
    assert runtime.state is not None
    assert runtime.state.gates["middle"]["in"] >= last_in
    await _unload(hass, entry)


async def test_unreachable_stream_diagnostics_and_repair(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
    make_entry: Callable[..., MockConfigEntry],
    closed_port: int,
) -> None:
    monkeypatch.setattr(coordinator, "STREAM_UNREACHABLE_AFTER_S", 0)
    url = f"rtsp://cam-admin:in-url-secret@127.0.0.1:{closed_port}/stream?token=tok3n"
    entry = make_entry(url, username="admin9x", password="s3cretpw")
    runtime = await setup_loaded(hass, entry)
    issue_id = f"stream_unreachable_{entry.entry_id}"
    issues = ir.async_get(hass)
    await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, issue_id) is not None, 30, "stream_unreachable repair")
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None and issue.translation_placeholders is not None
    assert issue.translation_placeholders["reason"] == "unreachable"
    assert state_of(hass, "binary_sensor.demo_camera_connected") == STATE_OFF
    assert state_of(hass, "sensor.demo_people") == STATE_UNAVAILABLE
    assert state_of(hass, CAMERA) not in (None, STATE_UNAVAILABLE)  # serves the obscured placeholder
    assert runtime.state is not None
    assert runtime.state.error_reason == "unreachable"

    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(hass, hass_client, entry)  # type: ignore[assignment]
    dump = repr(diagnostics)
    for secret in ("admin9x", "s3cretpw", "cam-admin", "in-url-secret", "tok3n"):
        assert secret not in dump, secret
    assert diagnostics["entry"]["data"]["password"] == "**REDACTED**"
    assert diagnostics["state"]["error_reason"] == "unreachable"
    assert diagnostics["settings"]["scene"]["zones"][0]["name"] == "walkway"

    await _unload(hass, entry)
    assert issues.async_get_issue(DOMAIN, issue_id) is None


async def test_model_missing_repair(
    hass: HomeAssistant, no_model: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = make_entry(str(clip))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY  # HA retries: the model may be placed or downloaded
    assert ir.async_get(hass).async_get_issue(DOMAIN, "model_missing") is not None
    assert not safecam_threads()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_model_corrupt_repair(
    hass: HomeAssistant, no_model: None, make_entry: Callable[..., MockConfigEntry], clip: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty-cache" / "yolox_nano.onnx").write_bytes(b"not a model" * 100)
    entry = make_entry(str(clip))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR  # the user must replace the file, then reload
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "model_corrupt")
    assert issue is not None and issue.translation_placeholders is not None
    assert "yolox_nano.onnx" in issue.translation_placeholders["error"]


async def test_model_issue_cleared_when_model_found(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    ir.async_create_issue(
        hass, DOMAIN, "model_missing", is_fixable=False, severity=ir.IssueSeverity.ERROR, translation_key="model_missing"
    )
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    assert ir.async_get(hass).async_get_issue(DOMAIN, "model_missing") is None
    await _unload(hass, entry)


async def test_camera_entity_source(hass: HomeAssistant, cameras: None) -> None:
    """A safecam camera reading another integration's camera entity through its stream source."""
    registry_id = er.async_get(hass).async_get("camera.yard").id  # type: ignore[union-attr]
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Yard analytics",
        unique_id=f"entity_{registry_id}",
        data={CONF_SOURCE_TYPE: SOURCE_ENTITY, "entity_id": "camera.yard", CONF_ENTITY_REGISTRY_ID: registry_id},
        options={CONF_FPS: 5, CONF_ANONYMIZATION: "body"},
    )
    entry.add_to_hass(hass)
    await setup_loaded(hass, entry)
    await wait_for(hass, lambda: number_of(hass, "sensor.yard_analytics_people") > 0, what="people via the camera entity")
    await _unload(hass, entry)

    # A camera without a stream source: not ready (its integration may provide one later).
    doorbell = MockConfigEntry(
        domain=DOMAIN,
        title="Door",
        unique_id="entity_door",
        data={CONF_SOURCE_TYPE: SOURCE_ENTITY, "entity_id": "camera.doorbell", CONF_ENTITY_REGISTRY_ID: None},
        options={CONF_FPS: 5, CONF_ANONYMIZATION: "body"},
    )
    doorbell.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(doorbell.entry_id)
    assert doorbell.state is ConfigEntryState.SETUP_RETRY
    assert await hass.config_entries.async_unload(doorbell.entry_id)


async def test_engine_behind_repair_and_shutdown(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    # Pretend the machine is far too slow: any analysis rate is "behind", at once.
    monkeypatch.setattr(coordinator, "BEHIND_AFTER_S", 0)
    monkeypatch.setattr(coordinator, "BEHIND_FACTOR", 100.0)
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    issues = ir.async_get(hass)
    issue_id = f"engine_behind_{entry.entry_id}"
    await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, issue_id) is not None, 30, "engine_behind repair")
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None and issue.translation_placeholders is not None
    assert issue.translation_placeholders["configured"] == "5"
    monkeypatch.setattr(coordinator, "BEHIND_FACTOR", 0.0)  # keeping up again: the repair goes away
    await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, issue_id) is None, 30, "engine_behind cleared")

    # Home Assistant stopping releases the camera even without an unload.
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert not safecam_threads()
    await _unload(hass, entry)


async def test_removing_the_camera_removes_its_repairs(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    issue_id = f"stream_unreachable_{entry.entry_id}"
    # As if kept across a restart: raised before, not by this runtime.
    ir.async_create_issue(
        hass, DOMAIN, issue_id, is_fixable=False, severity=ir.IssueSeverity.WARNING, translation_key="stream_unreachable"
    )
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert not safecam_threads()
