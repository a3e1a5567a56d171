"""The automation blueprints (blueprints/automation/safecam/*.yaml) driven by real safecam entities.

Each blueprint is loaded by Home Assistant's own blueprint machinery from the repository folder,
instantiated as an automation with test inputs, and driven by the integration's entities:
- one test runs the real engine on the real clip (tud_campus.mp4): real intrusions turn the
  siren/lights on and notify phones with the event's signed, expiring snapshot link, whose bytes
  are the anonymized JPEG the engine attached to that event;
- the timing tests set the entry up for real but park the worker thread and push `CameraState`s
  and `SafetyEvent`s through the worker's own state callback (the path every real frame takes),
  with HA's clock frozen and moved (freezer + async_fire_time_changed).
Sirens, lights and phones are mocked services: the assertions are the exact service calls.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.automation.config import async_validate_config_item
from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.components.blueprint.models import DomainBlueprints
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import CoreState, Event, EventStateChangedData, HomeAssistant, ServiceCall, State, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import selector
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
    mock_restore_cache,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.safecam.const import CONF_ANONYMIZATION
from custom_components.safecam.coordinator import SafecamRuntime
from custom_components.safecam.engine.types import EVENT_TYPES, SafetyEvent
from custom_components.safecam.engine.worker import CameraState, CameraWorker
from custom_components.safecam.snapshots import SNAPSHOT_URL_TTL, SNAPSHOTS_KEPT, async_signed_snapshot_url

from .conftest import wait_for
from .test_init import _assert_not_raw, _raw_frames

REPO = Path(__file__).resolve().parents[2]
BLUEPRINT_DIR = REPO / "blueprints" / "automation" / "safecam"
BLUEPRINT_FILES = sorted(p.name for p in BLUEPRINT_DIR.glob("*.yaml"))

EVENT = "event.demo_safety_event"
INTRUDED = "binary_sensor.demo_walkway_intruded"
WALKWAY_PEOPLE = "sensor.demo_walkway_people"
SIREN, BEACON = "siren.site", "light.beacon"
SILENCE = "input_datetime.silenced_until"
PENDING, DEADLINE = "input_text.open_incidents", "input_datetime.escalate_at"
PPE_COUNTS = "input_text.ppe_counts"
SILENCE_ACTION = f"SAFECAM_SILENCE_{SILENCE}"
RED = [255, 0, 0]

type Calls = dict[str, list[ServiceCall]]


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def blueprint_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """HA loads `<config>/blueprints/<domain>/<path>`: point it at the repository's folder."""
    monkeypatch.setattr(DomainBlueprints, "blueprint_folder", property(lambda self: REPO / "blueprints" / self.domain))


@pytest.fixture(autouse=True)
async def automations_off(hass: HomeAssistant) -> AsyncGenerator[None]:
    """Turn the automations off at the end: their time triggers would outlive the test."""
    yield
    if hass.services.has_service("automation", "turn_off"):
        await hass.services.async_call("automation", "turn_off", {"entity_id": "all"}, blocking=True)


@pytest.fixture
def parked_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker thread is not started: the test pushes the states and events."""
    monkeypatch.setattr(CameraWorker, "start", lambda self: None)


def _phones(hass: HomeAssistant, *names: str) -> list[str]:
    """Companion-app devices (device registry entries of mobile_app) and their notify services."""
    entry = MockConfigEntry(domain="mobile_app")
    entry.add_to_hass(hass)
    registry = dr.async_get(hass)
    ids = []
    for name in names:
        device = registry.async_get_or_create(config_entry_id=entry.entry_id, identifiers={("mobile_app", name)}, name=name)
        ids.append(device.id)
    return ids


def _mock(hass: HomeAssistant, *services: str) -> Calls:
    return {s: async_mock_service(hass, *s.split(".", 1)) for s in services}


async def _helpers(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {"armed": {"initial": True}}})
    assert await async_setup_component(
        hass,
        "input_datetime",
        {
            "input_datetime": {
                "silenced_until": {"has_date": True, "has_time": True},
                "escalate_at": {"has_date": True, "has_time": True},
            }
        },
    )
    assert await async_setup_component(
        hass, "input_text", {"input_text": {"open_incidents": {"max": 255}, "ppe_counts": {"max": 255}}}
    )


def _automation_config(alias: str, path: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"id": alias, "alias": alias, "use_blueprint": {"path": f"safecam/{path}", "input": inputs}}


async def _automations(hass: HomeAssistant, **automations: tuple[str, dict[str, Any]]) -> None:
    config = [_automation_config(alias, path, inputs) for alias, (path, inputs) in automations.items()]
    assert await async_setup_component(hass, "automation", {"automation": config})
    await hass.async_block_till_done()
    for alias in automations:
        state = hass.states.get(f"automation.{alias}")
        assert state is not None and state.state == "on", f"{alias}: {state}"


async def _settle(hass: HomeAssistant, block: bool = True) -> None:
    """Let the pushed state reach the automations.

    block=False where an automation run is waiting (the siren waits for the zones to clear):
    async_block_till_done would wait for that run to end, i.e. for the time the test controls.
    The extra loop turns flush callbacks scheduled as the last task ended (a time trigger
    re-arming for a helper's new value) before the test moves the clock.
    """
    for _ in range(5 if block else 50):
        if block:
            await hass.async_block_till_done()
        await asyncio.sleep(0)


async def _restart_automations(hass: HomeAssistant, block: bool = True) -> None:
    """As at a Home Assistant start: runs are gone, automations attach at start and see the start trigger."""
    await hass.services.async_call("automation", "turn_off", {"entity_id": "all"}, blocking=True)
    hass.set_state(CoreState.not_running)
    await hass.services.async_call("automation", "turn_on", {"entity_id": "all"}, blocking=True)
    await hass.async_start()  # (current HA arms automations enabled before start only in its start-up jobs)
    await _settle(hass, block)


async def _setup(hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path) -> MockConfigEntry:
    entry = make_entry(str(clip))  # conftest SCENE: "walkway" (danger), "sky" (area), gate "middle"
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


class Camera:
    """Pushes analysed frames through the parked worker's state callback (worker thread -> loop)."""

    def __init__(self, hass: HomeAssistant, entry: MockConfigEntry) -> None:
        self.hass = hass
        self.runtime: SafecamRuntime = entry.runtime_data
        self.seq = 0
        self.jpeg = self.runtime.worker.placeholder_jpeg("event snapshot")  # an obscured frame, as fail-closed

    async def push(
        self, walkway: int = 0, events: list[SafetyEvent] | None = None, *, connected: bool = True, block: bool = True
    ) -> None:
        self.seq += 1
        zones = {"walkway": {"people": walkway, "occupied": walkway > 0}, "sky": {"people": 0, "occupied": False}}
        state = CameraState("Demo", seq=self.seq, connected=connected, running=True, people=walkway, zones=zones, frames=self.seq)
        on_state = self.runtime.worker._on_state
        assert on_state is not None
        await self.hass.async_add_executor_job(on_state, state, events or [])
        await _settle(self.hass, block)

    async def event(
        self, event_type: str, zone: str | None = "walkway", walkway: int = 0, track_id: int = 7, block: bool = True
    ) -> dict[str, Any]:
        """Push one safety event; return the event entity's attributes for it."""
        event = SafetyEvent(event_type, float(self.seq), "Demo", track_id, zone, 0.87, {"rule": "test"}, snapshot=self.jpeg)
        await self.push(walkway, [event], block=block)
        state = self.hass.states.get(EVENT)
        assert state is not None and state.attributes["event_type"] == event_type
        return dict(state.attributes)


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float, block: bool = True) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await _settle(hass, block)


async def _tap(hass: HomeAssistant, action: str) -> None:
    """A button of a notification tapped on a phone (what the companion apps fire)."""
    hass.bus.async_fire("mobile_app_notification_action", {"action": action})
    await _settle(hass)


def _running(hass: HomeAssistant, automation: str) -> int:
    state = hass.states.get(automation)
    assert state is not None
    return int(state.attributes["current"])


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _timestamp(hass: HomeAssistant, entity_id: str) -> float:
    state = hass.states.get(entity_id)
    assert state is not None
    return float(state.attributes["timestamp"])


def _entity_ids(call: ServiceCall) -> list[str]:
    ids = call.data["entity_id"]
    return [ids] if isinstance(ids, str) else list(ids)


# --- the blueprint files ----------------------------------------------------------------------

DEVICE_A, DEVICE_B = "0" * 32, "1" * 32
TEST_INPUTS: dict[str, dict[str, Any]] = {
    "danger_zone_siren.yaml": {
        "zones": [INTRUDED],
        "event_entities": [EVENT],
        "event_types": ["approach"],
        "sirens": [SIREN],
        "lights": [BEACON],
        "clear_seconds": 30,
        "max_seconds": 300,
        "arm_conditions": [{"condition": "state", "entity_id": "input_boolean.armed", "state": "on"}],
    },
    "safety_notification.yaml": {
        "event_entities": [EVENT],
        "event_types": ["fall", "intrusion", "ppe_violation"],
        "zones": ["walkway"],
        "notify_devices": [DEVICE_A, DEVICE_B],
        "silence_helper": SILENCE,
        "cooldown": 120,
    },
    "fall_escalation.yaml": {
        "event_entities": [EVENT],
        "ack_minutes": 5,
        "pending_helper": PENDING,
        "deadline_helper": DEADLINE,
        "escalation_devices": [DEVICE_B],
        "sirens": [SIREN],
    },
    "occupancy_light.yaml": {
        "level_sensor": WALKWAY_PEOPLE,
        "lights": ["light.walkway"],
        "amber_at": 2,
        "red_at": 4,
        "off_when_empty": True,
    },
    "ppe_digest.yaml": {
        "event_entities": [EVENT],
        "counts_helper": PPE_COUNTS,
        "digest_times": ["17:00:00"],
        "notify_devices": [DEVICE_B],
    },
}
# Inputs that pick safecam entities must offer only safecam's (the integration filter).
SAFECAM_DOMAINS = {"event", "binary_sensor", "sensor"}


def test_every_blueprint_has_test_inputs() -> None:
    assert set(BLUEPRINT_FILES) == set(TEST_INPUTS)
    assert len(BLUEPRINT_FILES) == 5


@pytest.mark.parametrize("name", BLUEPRINT_FILES)
async def test_blueprint_schema_and_automation_config(hass: HomeAssistant, name: str) -> None:
    blueprint = await async_get_blueprints(hass).async_get_blueprint(f"safecam/{name}")
    assert blueprint.domain == "automation"
    assert blueprint.validate() is None  # this HA version is supported (min_version)
    assert blueprint.metadata["description"].strip()
    assert "docs/blueprints.md" in blueprint.metadata["description"]
    inputs = blueprint.inputs
    for key, spec in inputs.items():
        assert spec.get("name"), key
        config = spec["selector"]
        validate: Callable[[Any], Any] = selector.selector(config)  # type: ignore[assignment]
        if "default" in spec and spec["default"] not in ("", []):
            validate(spec["default"])  # defaults are valid values of their own selector
        if key in TEST_INPUTS[name]:
            validate(TEST_INPUTS[name][key])
        if "entity" in config:
            for entity_filter in config["entity"]["filter"]:
                if set(entity_filter["domain"]) & SAFECAM_DOMAINS:
                    assert entity_filter.get("integration") == "safecam", key
        if "device" in config:
            assert [f["integration"] for f in config["device"]["filter"]] == ["mobile_app"], key
    required = {key for key, spec in inputs.items() if "default" not in spec}
    assert required <= set(TEST_INPUTS[name]), required - set(TEST_INPUTS[name])

    # What the automation editor runs on save: raises on any invalid trigger/condition/action.
    # With the test inputs, and with only the required ones (every default must make a valid automation).
    minimal = {key: TEST_INPUTS[name][key] for key in required}
    for inputs in (TEST_INPUTS[name], minimal):
        config = await async_validate_config_item(hass, name, _automation_config("check", name, inputs))
        assert config is not None
        assert config.validation_error is None


# --- real engine, real clip -------------------------------------------------------------------


async def test_real_intrusions_siren_notification_and_signed_snapshot(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    pixel, iphone = _phones(hass, "Pixel 9", "iPhone 15")
    calls = _mock(
        hass,
        "notify.mobile_app_pixel_9",
        "notify.mobile_app_iphone_15",
        "siren.turn_on",
        "siren.turn_off",
        "light.turn_on",
        "light.turn_off",
    )
    await _helpers(hass)
    siren_inputs = {**TEST_INPUTS["danger_zone_siren.yaml"], "clear_seconds": 0}
    notify_inputs = {**TEST_INPUTS["safety_notification.yaml"], "notify_devices": [pixel, iphone]}
    await _automations(hass, siren=("danger_zone_siren.yaml", siren_inputs), notify=("safety_notification.yaml", notify_inputs))

    entry = await _setup(hass, make_entry, clip)
    runtime: SafecamRuntime = entry.runtime_data
    captured: list[SafetyEvent] = []  # after the event entity's listener: same order, same events

    def _capture(event: SafetyEvent) -> None:
        if event.event_type in EVENT_TYPES:  # internal gate crossings never reach the event entity
            captured.append(event)

    unsub_capture = runtime.async_add_event_listener(_capture)
    states: list[State] = []

    @callback
    def _on_event_state(event: Event[EventStateChangedData]) -> None:
        if (new := event.data["new_state"]) is not None and new.attributes.get("event_id"):
            states.append(new)

    unsub_states = async_track_state_change_event(hass, EVENT, _on_event_state)
    # People walk through the walkway (a danger zone): the engine reports intrusions.
    await wait_for(hass, lambda: len(captured) >= 2 and bool(calls["siren.turn_on"]), what="two real intrusions")
    await hass.async_add_executor_job(runtime.worker.stop)
    await _settle(hass, block=False)  # the siren run waits for the walkway to clear
    unsub_capture()
    unsub_states()
    assert len(states) == len(captured)
    assert [s.attributes["event_type"] for s in states] == [e.event_type for e in captured] == ["intrusion"] * len(captured)

    # The event entity: every engine event type, and the attributes the blueprints use ---------------
    first = states[0].attributes
    assert first["event_types"] == list(EVENT_TYPES)
    assert (first["camera"], first["zone"]) == ("Demo", "walkway")
    assert first["track_id"] == captured[0].track_id
    assert re.fullmatch(r"[0-9a-f]{16}", first["event_id"])
    assert len({s.attributes["event_id"] for s in states}) == len(states)  # unique
    assert first["since_previous_s"] is None  # the first intrusion in this zone
    assert all(s.attributes["since_previous_s"] is not None for s in states[1:])
    path = f"/api/safecam/snapshot/{entry.entry_id}/{first['event_id']}.jpg"
    assert first["snapshot_url"].startswith(f"{path}?authSig=")

    # Siren and lights: on at the real intrusion, red and flashing --------------------------------
    on = calls["siren.turn_on"][0]
    assert _entity_ids(on) == [SIREN]
    light = calls["light.turn_on"][0]
    assert _entity_ids(light) == [BEACON]
    assert (light.data["rgb_color"], light.data["brightness"], light.data["flash"]) == (RED, 255, "long")

    # Phones: exactly one notification each for the first intrusion; the repeats are cooled down ----
    for service in ("notify.mobile_app_pixel_9", "notify.mobile_app_iphone_15"):
        assert len(calls[service]) == 1, service
        data = calls[service][0].data
        assert data["title"] == "Intrusion - Demo"
        assert data["message"].startswith("Intrusion in walkway on Demo at ")
        push = data["data"]
        assert push["image"] == first["snapshot_url"]
        assert push["tag"] == f"safecam_{first['event_id']}"
        assert push["actions"] == [
            {"action": f"SAFECAM_ACK_{first['event_id']}", "title": "Acknowledge"},
            {"action": SILENCE_ACTION, "title": "Silence 30 min"},
        ]
        assert push["push"] == {"interruption-level": "time-sensitive"}
        assert (push["ttl"], push["priority"]) == (0, "high")

    # The signed link serves exactly the anonymized snapshot of its event, to a client without login --
    raw = await hass.async_add_executor_job(_raw_frames, clip)
    anonymous = await hass_client_no_auth()
    for state, event in ((states[0], captured[0]), (states[-1], captured[-1])):
        resp = await anonymous.get(state.attributes["snapshot_url"])
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/jpeg"
        body = await resp.read()
        assert event.snapshot is not None and body == event.snapshot
        _assert_not_raw(body, raw)  # the engine's anonymized frame, never a raw one

    # ... and nothing else: unsigned, signed for another path, altered, or expired -> 401 ------------
    url = first["snapshot_url"]
    signature = url.split("authSig=", 1)[1]
    other = states[-1].attributes["snapshot_url"].split("?", 1)[0]
    for bad in (path, f"{other}?authSig={signature}", f"{url}&width=1&x=1", url[:-3] + "abc"):
        assert (await anonymous.get(bad)).status == 401, bad
    claims = jwt.decode(signature, options={"verify_signature": False})
    assert claims["path"] == path
    assert claims["exp"] - claims["iat"] == SNAPSHOT_URL_TTL.total_seconds() == 3600
    now = dt_util.utcnow()
    with freeze_time(now - SNAPSHOT_URL_TTL - timedelta(minutes=1)):  # signed 61 min ago: expired
        expired = async_signed_snapshot_url(hass, entry.entry_id, first["event_id"])
    with freeze_time(now - SNAPSHOT_URL_TTL + timedelta(minutes=1)):  # signed 59 min ago: still valid
        fresh = async_signed_snapshot_url(hass, entry.entry_id, first["event_id"])
    assert (await anonymous.get(expired)).status == 401
    assert (await anonymous.get(fresh)).status == 200

    # Logged in, but no such snapshot -> 404 ---------------------------------------------------------
    client = await hass_client()
    assert (await client.get(f"/api/safecam/snapshot/{entry.entry_id}/0123456789abcdef.jpg")).status == 404
    assert (await client.get(f"/api/safecam/snapshot/{entry.entry_id}/not-an-id.jpg")).status == 404
    assert (await client.get(f"/api/safecam/snapshot/nosuchentry/{first['event_id']}.jpg")).status == 404

    # The walkway clears: sirens and lights off (clear time 0 in this test) ------------------------
    await Camera(hass, entry).push(walkway=0, block=False)
    await hass.async_block_till_done()  # the siren run has ended
    assert _state(hass, INTRUDED) == "off"
    assert calls["siren.turn_off"] and _entity_ids(calls["siren.turn_off"][-1]) == [SIREN]
    assert calls["light.turn_off"] and _entity_ids(calls["light.turn_off"][-1]) == [BEACON]
    assert len(calls["siren.turn_off"]) == len(calls["siren.turn_on"])  # every activation ended

    # Unloaded: the snapshots are gone with the runtime --------------------------------------------
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert (await anonymous.get(url)).status == 404


# --- snapshot store ---------------------------------------------------------------------------


async def test_snapshot_store_is_bounded(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    entry = await _setup(hass, make_entry, clip)
    camera = Camera(hass, entry)
    client = await hass_client_no_auth()
    first = await camera.event("fall")
    assert (await client.get(first["snapshot_url"])).status == 200
    urls = [(await camera.event("intrusion", track_id=i))["snapshot_url"] for i in range(SNAPSHOTS_KEPT)]
    assert len(camera.runtime.snapshots) == SNAPSHOTS_KEPT
    assert (await client.get(first["snapshot_url"])).status == 404  # the oldest was dropped
    for url in (urls[0], urls[-1]):
        resp = await client.get(url)
        assert resp.status == 200
        assert await resp.read() == camera.jpeg

    # In "full frame" mode the engine's snapshot is the full-frame abstraction: it is sent like any other.
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_ANONYMIZATION: "full_frame"})
    await hass.async_block_till_done()
    attributes = await camera.event("fall")
    assert camera.runtime.snapshots.get(attributes["event_id"]) == camera.jpeg
    assert len(camera.runtime.snapshots) == SNAPSHOTS_KEPT


# --- danger-zone siren ------------------------------------------------------------------------


async def test_siren_clear_time_max_duration_arming_and_start(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    calls = _mock(hass, "siren.turn_on", "siren.turn_off", "light.turn_on", "light.turn_off")
    await _helpers(hass)
    await _automations(hass, siren=("danger_zone_siren.yaml", TEST_INPUTS["danger_zone_siren.yaml"]))
    camera = Camera(hass, await _setup(hass, make_entry, clip))

    def counts() -> tuple[int, ...]:
        return tuple(len(calls[s]) for s in ("siren.turn_on", "siren.turn_off", "light.turn_on", "light.turn_off"))

    # Someone enters: on. Leaves: off only after 30 s clear; re-entering restarts the 30 s.
    await camera.push(walkway=1, block=False)
    assert counts() == (1, 0, 1, 0)
    assert calls["light.turn_on"][0].data["rgb_color"] == RED
    assert calls["light.turn_on"][0].data["flash"] == "long"
    await camera.push(walkway=0, block=False)
    await _tick(hass, freezer, 20, block=False)
    assert counts() == (1, 0, 1, 0)
    await camera.push(walkway=1, block=False)
    await _tick(hass, freezer, 5, block=False)
    await camera.push(walkway=0, block=False)
    await _tick(hass, freezer, 20, block=False)  # 45 s since the first exit, 20 s since the last
    assert counts() == (1, 0, 1, 0)
    await _tick(hass, freezer, 11, block=False)
    assert counts() == (1, 1, 1, 1)
    assert _entity_ids(calls["siren.turn_off"][0]) == [SIREN]
    assert _entity_ids(calls["light.turn_off"][0]) == [BEACON]

    # Still inside after the maximum duration: off anyway.
    await camera.push(walkway=2, block=False)
    assert counts() == (2, 1, 2, 1)
    await _tick(hass, freezer, 299, block=False)
    assert counts() == (2, 1, 2, 1)
    await _tick(hass, freezer, 2, block=False)
    assert counts() == (2, 2, 2, 2)
    assert _state(hass, INTRUDED) == "on"
    assert _running(hass, "automation.siren") == 0

    # Disarmed (the extra condition): nothing.
    await camera.push(walkway=0, block=False)
    await hass.services.async_call("input_boolean", "turn_off", {"entity_id": "input_boolean.armed"}, blocking=True)
    await camera.push(walkway=1, block=False)
    await camera.push(walkway=0, block=False)
    assert counts() == (2, 2, 2, 2)
    await hass.services.async_call("input_boolean", "turn_on", {"entity_id": "input_boolean.armed"}, blocking=True)

    # An "approach" event triggers too (the zone itself stays clear); other event types do not.
    await camera.event("ppe_violation", block=False)
    assert counts() == (2, 2, 2, 2)
    await camera.event("approach", block=False)
    assert counts() == (3, 2, 3, 2)
    await _tick(hass, freezer, 31, block=False)
    assert counts() == (3, 3, 3, 3)

    # Home Assistant starts with the zone clear: the sirens are switched off (not the lights).
    await _restart_automations(hass, block=False)
    assert counts() == (3, 4, 3, 3)
    # ... and with someone inside while armed: on, as for a new intrusion.
    await camera.push(walkway=1, block=False)
    assert counts() == (4, 4, 4, 3)
    await _tick(hass, freezer, 301, block=False)
    await _restart_automations(hass, block=False)
    assert counts() == (5, 5, 5, 4)


# --- notifications ----------------------------------------------------------------------------


async def test_notification_types_zones_cooldown_critical_silence_ack(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    pixel, iphone = _phones(hass, "Pixel 9", "iPhone 15")
    calls = _mock(hass, "notify.mobile_app_pixel_9", "notify.mobile_app_iphone_15")
    await _helpers(hass)
    inputs = {**TEST_INPUTS["safety_notification.yaml"], "notify_devices": [pixel, iphone]}
    await _automations(hass, notify=("safety_notification.yaml", inputs))
    camera = Camera(hass, await _setup(hass, make_entry, clip))
    pixel_calls, iphone_calls = calls["notify.mobile_app_pixel_9"], calls["notify.mobile_app_iphone_15"]

    def sent() -> list[str]:
        """Event ids notified so far (each to both phones, in the same order)."""
        tags = [c.data["data"]["tag"].removeprefix("safecam_") for c in pixel_calls if c.data["message"] != "clear_notification"]
        assert tags == [
            c.data["data"]["tag"].removeprefix("safecam_") for c in iphone_calls if c.data["message"] != "clear_notification"
        ]
        return tags

    first = await camera.event("intrusion")
    assert sent() == [first["event_id"]]
    assert pixel_calls[0].data["data"]["image"] == first["snapshot_url"]
    await _tick(hass, freezer, 10)
    await camera.event("intrusion", track_id=8)  # a repeat 10 s later: cooled down
    await camera.event("intrusion", zone="sky")  # not a chosen zone
    await camera.event("approach")  # not a chosen type
    assert sent() == [first["event_id"]]

    # A fall is critical: never cooled down, sent as a critical alert.
    fall = await camera.event("fall")
    assert sent() == [first["event_id"], fall["event_id"]]
    push = pixel_calls[-1].data["data"]
    assert pixel_calls[-1].data["title"] == "Fall - Demo"
    assert push["push"] == {"interruption-level": "critical", "sound": {"name": "default", "critical": 1, "volume": 1.0}}
    assert push["channel"] == "alarm_stream"
    # A PPE violation right after: a new kind of event, so its first alert is never dropped.
    ppe = await camera.event("ppe_violation")
    assert sent()[-1] == ppe["event_id"]
    assert "channel" not in pixel_calls[-1].data["data"]

    # The walkway quiet for the cooldown: the next intrusion is a new incident.
    await _tick(hass, freezer, 125)
    again = await camera.event("intrusion")
    assert again["since_previous_s"] >= 120
    assert sent()[-1] == again["event_id"]
    # An ongoing incident (an intrusion every 30 s): at most one alert per cooldown of silence.
    ongoing = []
    for _ in range(5):
        await _tick(hass, freezer, 30)
        ongoing.append((await camera.event("intrusion"))["event_id"])
    assert [i for i in sent() if i in ongoing] == [ongoing[3]]  # 120 s after the last alert

    # Silence tapped on a phone: the helper holds the end time; no automation run waits for it.
    n = len(sent())
    await _tap(hass, SILENCE_ACTION)
    assert _timestamp(hass, SILENCE) == pytest.approx(dt_util.utcnow().timestamp() + 30 * 60, abs=1)
    assert _running(hass, "automation.notify") == 0
    await _tap(hass, "SAFECAM_SILENCE_input_datetime.some_other_helper")  # another automation's button
    assert _timestamp(hass, SILENCE) == pytest.approx(dt_util.utcnow().timestamp() + 30 * 60, abs=1)
    await _tick(hass, freezer, 200)
    await camera.event("intrusion")
    await camera.event("ppe_violation", zone="walkway", track_id=9)
    assert len(sent()) == n
    silenced_fall = await camera.event("fall")  # critical: not silenced
    assert sent()[-1] == silenced_fall["event_id"]

    # Acknowledge tapped: that notification is cleared on every phone.
    await _tap(hass, f"SAFECAM_ACK_{silenced_fall['event_id']}")
    for phone in (pixel_calls, iphone_calls):
        assert phone[-1].data == {"message": "clear_notification", "data": {"tag": f"safecam_{silenced_fall['event_id']}"}}

    # The silence ends: notifications resume.
    await _tick(hass, freezer, 30 * 60)
    after = await camera.event("intrusion")
    assert sent()[-1] == after["event_id"]


async def test_silence_survives_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    """The silence end time is a helper's state: Home Assistant restores it at start."""
    until = dt_util.as_local(dt_util.utcnow() + timedelta(minutes=20)).replace(microsecond=0)
    mock_restore_cache(hass, [State(SILENCE, until.strftime("%Y-%m-%d %H:%M:%S"))])
    hass.set_state(CoreState.not_running)
    (pixel,) = _phones(hass, "Pixel 9")
    calls = _mock(hass, "notify.mobile_app_pixel_9")
    await _helpers(hass)
    await _automations(
        hass, notify=("safety_notification.yaml", {**TEST_INPUTS["safety_notification.yaml"], "notify_devices": [pixel]})
    )
    await hass.async_start()
    await hass.async_block_till_done()
    assert _timestamp(hass, SILENCE) == until.timestamp()
    camera = Camera(hass, await _setup(hass, make_entry, clip))

    await camera.event("intrusion")
    assert calls["notify.mobile_app_pixel_9"] == []
    fall = await camera.event("fall")  # critical events ignore the silence
    assert [c.data["data"]["tag"] for c in calls["notify.mobile_app_pixel_9"]] == [f"safecam_{fall['event_id']}"]
    await _tick(hass, freezer, 21 * 60)
    after = await camera.event("intrusion")
    assert calls["notify.mobile_app_pixel_9"][-1].data["data"]["tag"] == f"safecam_{after['event_id']}"


# --- escalation -------------------------------------------------------------------------------


async def test_escalation_timing_and_acknowledge(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    freezer.move_to("2025-06-02 08:00:00+00:00")  # whole seconds: the helper keeps whole seconds
    worker_phone, manager = _phones(hass, "Worker", "Manager")
    calls = _mock(hass, "notify.mobile_app_worker", "notify.mobile_app_manager", "siren.turn_on")
    await _helpers(hass)
    await _automations(
        hass,
        notify=("safety_notification.yaml", {**TEST_INPUTS["safety_notification.yaml"], "notify_devices": [worker_phone]}),
        escalate=("fall_escalation.yaml", {**TEST_INPUTS["fall_escalation.yaml"], "escalation_devices": [manager]}),
    )
    camera = Camera(hass, await _setup(hass, make_entry, clip))
    escalations = calls["notify.mobile_app_manager"]

    # A fall nobody acknowledges: the manager and the siren after 5 minutes, not before.
    fall = await camera.event("fall")
    assert calls["notify.mobile_app_worker"][-1].data["data"]["actions"][0]["action"] == f"SAFECAM_ACK_{fall['event_id']}"
    assert _state(hass, PENDING).startswith(f"{fall['event_id']}|")
    assert _timestamp(hass, DEADLINE) == pytest.approx(dt_util.utcnow().timestamp() + 300, abs=1)
    assert _running(hass, "automation.escalate") == 0  # kept in the helpers, not in a waiting run
    await _tick(hass, freezer, 299)
    assert escalations == [] and calls["siren.turn_on"] == []
    await _tick(hass, freezer, 2)
    assert len(escalations) == 1
    assert escalations[0].data["title"] == "Unacknowledged: Fall on Demo"
    assert escalations[0].data["message"] == "Nobody acknowledged within 5 min: Fall on Demo in walkway"
    assert escalations[0].data["data"]["push"]["interruption-level"] == "critical"
    assert [_entity_ids(c) for c in calls["siren.turn_on"]] == [[SIREN]]
    assert _state(hass, PENDING) == ""

    # Acknowledged in time: no escalation.
    fall = await camera.event("fall")
    await _tick(hass, freezer, 120)
    await _tap(hass, f"SAFECAM_ACK_{fall['event_id']}")
    assert _state(hass, PENDING) == ""
    await _tick(hass, freezer, 600)
    assert len(escalations) == 1

    # Two open incidents: acknowledging the first leaves the second's own deadline.
    first = await camera.event("fall", track_id=1)
    await _tick(hass, freezer, 120)
    second = await camera.event("immobile", track_id=2)  # a person down
    await _tick(hass, freezer, 60)
    await _tap(hass, f"SAFECAM_ACK_{first['event_id']}")
    assert _state(hass, PENDING).startswith(f"{second['event_id']}|")
    assert _timestamp(hass, DEADLINE) == pytest.approx(dt_util.utcnow().timestamp() + 240, abs=1)
    await _tick(hass, freezer, 239)
    assert len(escalations) == 1
    await _tick(hass, freezer, 2)
    assert len(escalations) == 2
    assert escalations[1].data["message"] == "Nobody acknowledged within 5 min: Person down on Demo in walkway"
    # Intrusions are not escalated (not a chosen type).
    await camera.event("intrusion")
    assert _state(hass, PENDING) == ""


async def test_escalation_survives_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    """Open incidents are helper states: a deadline that passed while HA was down escalates at start."""
    now = dt_util.utcnow()
    overdue, later = int((now - timedelta(minutes=2)).timestamp()), int((now + timedelta(minutes=3)).timestamp())
    pending = f"aaaaaaaaaaaaaaaa|{overdue}|fall|Demo|walkway;bbbbbbbbbbbbbbbb|{later}|immobile|Yard|"
    deadline = dt_util.as_local(dt_util.utc_from_timestamp(overdue)).strftime("%Y-%m-%d %H:%M:%S")
    mock_restore_cache(hass, [State(PENDING, pending), State(DEADLINE, deadline)])
    hass.set_state(CoreState.not_running)
    (manager,) = _phones(hass, "Manager")
    calls = _mock(hass, "notify.mobile_app_manager", "siren.turn_on")
    await _helpers(hass)
    await _automations(
        hass, escalate=("fall_escalation.yaml", {**TEST_INPUTS["fall_escalation.yaml"], "escalation_devices": [manager]})
    )
    assert _state(hass, PENDING) == pending
    await hass.async_start()
    await hass.async_block_till_done()

    escalations = calls["notify.mobile_app_manager"]
    assert [c.data["message"] for c in escalations] == ["Nobody acknowledged within 5 min: Fall on Demo in walkway"]
    assert _state(hass, PENDING) == f"bbbbbbbbbbbbbbbb|{later}|immobile|Yard|"
    assert _timestamp(hass, DEADLINE) == later
    await _tick(hass, freezer, 181)
    assert escalations[-1].data["message"] == "Nobody acknowledged within 5 min: Person down on Yard"
    assert _state(hass, PENDING) == ""
    # The camera's entities are not needed for this; a new fall still opens an incident.
    camera = Camera(hass, await _setup(hass, make_entry, clip))
    fall = await camera.event("fall")
    assert _state(hass, PENDING).startswith(fall["event_id"])


async def test_escalation_full_helper_escalates_everything(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    """When the text helper cannot hold another open incident, nothing is dropped: all escalate now."""
    (manager,) = _phones(hass, "Manager")
    calls = _mock(hass, "notify.mobile_app_manager", "siren.turn_on")
    await _helpers(hass)
    await _automations(
        hass, escalate=("fall_escalation.yaml", {**TEST_INPUTS["fall_escalation.yaml"], "escalation_devices": [manager]})
    )
    camera = Camera(hass, await _setup(hass, make_entry, clip))
    ids: list[str] = []
    while not calls["notify.mobile_app_manager"]:
        ids.append((await camera.event("fall", track_id=len(ids)))["event_id"])
        assert len(ids) < 20
    message = calls["notify.mobile_app_manager"][0].data["message"]
    assert message.count("Fall on Demo in walkway") == len(ids) >= 3  # a 255-character helper holds a few
    assert _state(hass, PENDING) == ""


# --- occupancy light --------------------------------------------------------------------------


async def test_occupancy_light_levels(
    hass: HomeAssistant, parked_worker: None, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    calls = _mock(hass, "light.turn_on", "light.turn_off")
    congestion = "sensor.demo_walkway_congestion"  # low/medium/high (the congestion sensor's states)
    await _automations(
        hass,
        people_light=("occupancy_light.yaml", TEST_INPUTS["occupancy_light.yaml"]),
        congestion_light=("occupancy_light.yaml", {"level_sensor": congestion, "lights": ["light.gate"]}),
    )
    camera = Camera(hass, await _setup(hass, make_entry, clip))

    log: list[tuple[str, str, list[int] | None, Any]] = []
    recorded: set[int] = set()

    def record() -> None:
        """Append the light calls made since the last record() (each service keeps its call order)."""
        for service in ("turn_on", "turn_off"):
            for c in calls[f"light.{service}"]:
                if id(c) not in recorded:
                    recorded.add(id(c))
                    log.append((service, _entity_ids(c)[0], c.data.get("rgb_color"), c.data.get("brightness_pct")))

    for people, expected in (
        (1, ("turn_on", "light.walkway", [0, 200, 0], 80)),  # green below amber_at=2
        (2, ("turn_on", "light.walkway", [255, 150, 0], 80)),  # amber
        (3, None),  # another count, still amber: no command
        (5, ("turn_on", "light.walkway", [255, 0, 0], 80)),  # red from red_at=4
        (4, None),  # still red
        (0, ("turn_off", "light.walkway", None, None)),  # empty, off_when_empty
        (1, ("turn_on", "light.walkway", [0, 200, 0], 80)),
    ):
        before = len(log)
        await camera.push(walkway=people)
        assert _state(hass, WALKWAY_PEOPLE) == str(people)
        record()
        assert log[before:] == ([expected] if expected else []), people
    # The camera goes away: unavailable leaves the light as it is.
    await camera.push(walkway=3, connected=False)
    assert _state(hass, WALKWAY_PEOPLE) == "unavailable"
    record()
    assert len(log) == 5

    # A congestion level sensor (low / medium / high) maps straight to the colours.
    for level, colour in (("low", [0, 200, 0]), ("high", [255, 0, 0]), ("medium", [255, 150, 0])):
        hass.states.async_set(congestion, level)
        await hass.async_block_till_done()
        record()
        assert log[-1] == ("turn_on", "light.gate", colour, 80), level


# --- PPE digest -------------------------------------------------------------------------------


async def test_ppe_digest(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    parked_worker: None,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
) -> None:
    freezer.move_to(dt_util.as_utc(datetime(2025, 6, 2, 16, 0, 0, tzinfo=dt_util.get_default_time_zone())))
    (manager,) = _phones(hass, "Manager")
    calls = _mock(hass, "notify.mobile_app_manager", "persistent_notification.create")
    await _helpers(hass)
    await _automations(hass, digest=("ppe_digest.yaml", {**TEST_INPUTS["ppe_digest.yaml"], "notify_devices": [manager]}))
    camera = Camera(hass, await _setup(hass, make_entry, clip))

    await camera.event("ppe_violation")
    await camera.event("ppe_violation", track_id=8)
    await camera.event("ppe_violation", zone="sky")
    await camera.event("ppe_violation", zone=None)
    await camera.event("intrusion")  # not counted
    state = hass.states.get(PPE_COUNTS)
    assert state is not None
    assert json.loads(state.state) == {"Demo / walkway": 2, "Demo / sky": 1, "Demo": 1}

    freezer.move_to(dt_util.as_utc(datetime(2025, 6, 2, 17, 0, 0, tzinfo=dt_util.get_default_time_zone())))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    (sent,) = calls["notify.mobile_app_manager"]
    assert sent.data["title"] == "PPE violations: 4"
    lines = sent.data["message"].split("\n")
    assert lines[0] == "Demo / walkway: 2"
    assert sorted(lines[1:]) == ["Demo / sky: 1", "Demo: 1"]
    (note,) = calls["persistent_notification.create"]
    assert (note.data["title"], note.data["message"]) == (sent.data["title"], sent.data["message"])
    assert _state(hass, PPE_COUNTS) == "{}"

    # A day without violations: no digest (send_when_zero is off).
    freezer.move_to(dt_util.as_utc(datetime(2025, 6, 3, 17, 0, 0, tzinfo=dt_util.get_default_time_zone())))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(calls["notify.mobile_app_manager"]) == 1
