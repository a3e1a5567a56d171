"""Remote mode: cameras of `serve` engines reached through Home Assistant's own MQTT integration.

A real Mosquitto broker and real engine processes (real model, real clips), shared by the module:
  engine "a": camera "campus" (tud_campus, the scene of tests/ha/conftest.py SCENE, owned by its config file);
  engine "b": camera "street" (tud_stadtmitte, no scene in its config: set over MQTT with set_scene).
Each test has its own Home Assistant with an MQTT config entry pointing at that broker. A recording
subscriber (tests/servers/mosquitto.py) sees what the engines publish: HA must show exactly that.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket
from homeassistant.components import mqtt
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam.const import (
    CONF_CAMERA_ID,
    CONF_ENGINE_ID,
    CONF_FPS,
    CONF_SCENE,
    CONF_SOURCE_TYPE,
    CONF_TOPIC_PREFIX,
    CONF_UNREACHABLE_AFTER,
    DOMAIN,
    SOURCE_MQTT,
)
from custom_components.safecam.contract import Topics
from custom_components.safecam.remote import RemoteRuntime
from tests.servers.mosquitto import Broker, EngineProcess, Recorder, mosquitto_missing

from .conftest import SCENE, number_of, setup_loaded, state_of, unload, wait_for

pytestmark = [
    pytest.mark.usefixtures("socket_enabled", "mock_hass_config"),  # mock_hass_config: HA's MQTT reads configuration.yaml
    pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing())),
]

STREET_SCENE = {"zones": [{"name": "pavement", "kind": "area", "polygon": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]}]}


class Site:
    def __init__(self, root: Path, data: Path) -> None:
        peds = data / "pedestrians"
        self.root = root
        self.broker = Broker(root / "broker", persistent=True)
        self.broker.start()
        mqtt_cfg = {"host": "127.0.0.1", "port": self.broker.port, "reconnect_max_s": 1, "keepalive": 5}
        common = {"state_interval_s": 2, "snapshot_interval_s": 2}
        self.config_a = {
            "engine_id": "a",
            "mqtt": mqtt_cfg,
            "cameras": [{"id": "campus", "name": "Campus", "url": str(peds / "tud_campus.mp4"), "fps": 5, "scene": SCENE}],
            "state_file": str(root / "a" / "state.json"),
            **common,
        }
        config_b = {
            "engine_id": "b",
            "mqtt": mqtt_cfg,
            "cameras": [{"id": "street", "name": "Street", "url": str(peds / "tud_stadtmitte.mp4"), "fps": 2}],
            "state_file": str(root / "b" / "state.json"),
            **common,
        }
        self.a = EngineProcess(root / "a", self.config_a)
        self.b = EngineProcess(root / "b", config_b)
        self.engines = [self.a, self.b]
        self.sub = Recorder(self.broker)
        self.ta, self.tb = Topics("safecam", "a"), Topics("safecam", "b")

    def restart_a(self) -> None:
        self.a = EngineProcess(self.root / "a", self.config_a)
        self.engines.append(self.a)

    def latest(self, topic: str) -> dict[str, Any] | None:
        return self.sub.last(topic)

    def close(self) -> None:
        for engine in self.engines:
            engine.stop()
        self.sub.close()
        self.broker.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Generator[Site]:
    pytest_socket.enable_socket()  # module setup runs before the per-test socket_enabled fixture
    s = Site(tmp_path_factory.mktemp("remote"), shared_data)
    try:
        # Both engines analysing before any test: later waits are about HA, not about engine start-up.
        for topic in (s.ta.state("campus"), s.tb.state("street")):
            assert s.sub.wait(lambda t=topic: (st := s.latest(t)) and st["health"]["frames"] > 0, 90), s.a.log()[-2000:]
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def fast_mqtt_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """HA's MQTT client retries every 10 s; 1 s keeps the broker-restart test short (same code path)."""
    monkeypatch.setattr("homeassistant.components.mqtt.client.RECONNECT_INTERVAL_SECONDS", 1)


@pytest.fixture
async def ha_mqtt(hass: HomeAssistant, site: Site) -> AsyncGenerator[MockConfigEntry]:
    """HA's MQTT integration on the site's broker; at the end everything unloaded (no lingering timers)."""
    entry = await _setup_mqtt(hass, site.broker)
    yield entry
    for other in hass.config_entries.async_entries(DOMAIN):
        if other.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(other.entry_id)
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def _setup_mqtt(hass: HomeAssistant, broker: Broker) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={"broker": "127.0.0.1", "port": broker.port},
        options={"discovery": True, "birth_message": {}, "will_message": {}},
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: mqtt.is_connected(hass), 15, "HA's MQTT client to connect")
    return entry


async def _add_remote(hass: HomeAssistant, engine: str, camera: str, title: str, expect: str | None) -> MockConfigEntry:
    """A remote camera entry as an older version or a restore would hold it: no layout yet. The engine's retained
    layout arrives, is mirrored into the options and the entry reloads with its entities (`expect`: one of them)."""
    data = {CONF_SOURCE_TYPE: SOURCE_MQTT, CONF_ENGINE_ID: engine, CONF_CAMERA_ID: camera, CONF_TOPIC_PREFIX: "safecam"}
    entry = MockConfigEntry(domain=DOMAIN, title=title, unique_id=f"mqtt_{engine}_{camera}", data=data, options={})
    entry.add_to_hass(hass)
    await setup_loaded(hass, entry)
    await wait_for(
        hass,
        lambda: entry.state is ConfigEntryState.LOADED
        and isinstance(entry.runtime_data, RemoteRuntime)
        and entry.runtime_data.engine_settings is not None
        and (expect is None or expect in _entity_ids(hass, entry)),
        20,
        f"the layout of {engine}/{camera}",
    )
    return entry


def _entity_ids(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    """unique id without the entry id -> entity id."""
    prefix = f"{entry.entry_id}_"
    return {
        e.unique_id.removeprefix(prefix): e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }


def _entity_set(hass: HomeAssistant, entry: MockConfigEntry) -> set[tuple[Any, ...]]:
    prefix = f"{entry.entry_id}_"
    return {
        (
            e.domain,
            e.unique_id.removeprefix(prefix),
            e.translation_key,
            e.original_name,
            e.entity_category,
            e.disabled_by,
            e.original_device_class,
            e.unit_of_measurement,
            json.dumps(e.capabilities, sort_keys=True),
        )
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }


def _shown(hass: HomeAssistant, ids: dict[str, str]) -> tuple[float, ...]:
    """What HA shows of the campus counts: people, per zone people, gate entries/exits."""
    keys = ("people", "zone_walkway_people", "zone_sky_people", "gate_middle_in", "gate_middle_out")
    return tuple(number_of(hass, ids[k]) for k in keys)


def _published(state: dict[str, Any] | None) -> tuple[float, ...]:
    """The same counts in the engine's last published state (read by an independent subscriber)."""
    if state is None:
        return ()
    zones, gate = state["zones"], state["gates"]["middle"]
    return tuple(float(v) for v in (state["people"], zones["walkway"]["people"], zones["sky"]["people"], gate["in"], gate["out"]))


async def _wait_equal(hass: HomeAssistant, site: Site, ids: dict[str, str], timeout: float = 30) -> tuple[float, ...]:
    """HA shows exactly what the engine published last (polled: both change with every analysed frame)."""
    topic = site.ta.state("campus")
    await wait_for(hass, lambda: _shown(hass, ids) == _published(site.latest(topic)), timeout, "HA to show the engine's counts")
    return _shown(hass, ids)


async def test_remote_flow_needs_home_assistants_mqtt(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU and "remote" in result["menu_options"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "mqtt_not_setup"


async def test_remote_cameras_of_two_engines_have_the_embedded_entities_and_the_engines_counts(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, clip: Path, make_entry: Any
) -> None:
    # The config flow lists every camera of both engines (two shards on one broker) and adds them one by one.
    added: dict[str, MockConfigEntry] = {}
    for _ in range(2):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
        assert result["type"] is FlowResultType.FORM and result["step_id"] == "remote"
        options = result["data_schema"].schema[CONF_CAMERA_ID].config["options"]
        assert {o["value"] for o in options} == {"mqtt_a_campus", "mqtt_b_street"} - {e.unique_id for e in added.values()}
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_CAMERA_ID: options[0]["value"]})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        entry = hass.config_entries.async_get_entry(result["result"].entry_id)
        assert entry is not None
        added[entry.data[CONF_CAMERA_ID]] = entry  # type: ignore[assignment]
    await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "remote"})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "no_remote_cameras"

    campus, street = added["campus"], added["street"]
    assert campus.title == "Campus" and street.title == "Street"
    assert campus.state is ConfigEntryState.LOADED and street.state is ConfigEntryState.LOADED
    assert campus.options[CONF_SCENE]["gates"][0]["name"] == "middle"  # the engine's layout, mirrored

    # Exactly the entities (and device) of an embedded camera with the same scene.
    embedded = make_entry(str(clip), title="Campus")
    await setup_loaded(hass, embedded)
    remote_set, embedded_set = _entity_set(hass, campus), _entity_set(hass, embedded)
    await unload(hass, embedded)
    assert remote_set == embedded_set
    devices = dr.async_get(hass)
    remote_dev = dr.async_entries_for_config_entry(devices, campus.entry_id)[0]
    embedded_dev = dr.async_entries_for_config_entry(devices, embedded.entry_id)[0]
    assert (remote_dev.name, remote_dev.manufacturer, remote_dev.model) == (
        embedded_dev.name,
        embedded_dev.manufacturer,
        embedded_dev.model,
    )

    # Every state HA shows equals what the engine published; the camera view is the engine's anonymized JPEG.
    ids = _entity_ids(hass, campus)
    await _wait_equal(hass, site, ids)
    street_ids = _entity_ids(hass, street)
    await wait_for(hass, lambda: number_of(hass, street_ids["people"]) >= 0, 20, "the street camera's people count")
    assert state_of(hass, street_ids["connected"]) == "on"
    runtime = campus.runtime_data
    assert isinstance(runtime, RemoteRuntime)
    snapshot = site.sub.on(site.ta.snapshot("campus"))
    await wait_for(hass, lambda: runtime.snapshot_jpeg() in {m.body for m in site.sub.on(site.ta.snapshot("campus"))}, 10)
    assert snapshot and runtime.snapshot_jpeg().startswith(b"\xff\xd8")
    # Safety events: the engine's, with their anonymized picture served by HA.
    event_entity = ids["safety"]
    await wait_for(hass, lambda: state_of(hass, event_entity) not in (None, "unknown", STATE_UNAVAILABLE), 40, "a safety event")
    attrs = hass.states.get(event_entity).attributes  # type: ignore[union-attr]
    published = [m.json() for m in site.sub.on(site.ta.event("campus"))]
    fired = (attrs["event_type"], attrs["zone"], attrs["track_id"])
    assert fired in {(p["event_type"], p["zone"], p["track_id"]) for p in published}
    assert attrs["snapshot_url"] and len(runtime.snapshots) >= 1
    # Counting goes on, and HA follows it to the same numbers.
    before = _shown(hass, ids)
    target = before[3] + before[4] + 2
    await wait_for(hass, lambda: number_of(hass, ids["gate_middle_in"]) + number_of(hass, ids["gate_middle_out"]) >= target, 40)
    await _wait_equal(hass, site, ids)


async def test_engine_killed_makes_entities_unavailable_until_it_is_back(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry
) -> None:
    campus = await _add_remote(hass, "a", "campus", "Campus", "zone_walkway_people")
    ids = _entity_ids(hass, campus)
    await _wait_equal(hass, site, ids)

    shown = [e for e in ids.values() if hass.states.get(e) is not None]  # (some diagnostics are disabled by default)
    assert len(shown) >= 15
    killed_run = site.latest(site.ta.state("campus"))
    assert killed_run is not None
    site.a.kill()  # no clean stop: only the broker's last will tells
    try:
        for entity_id in shown:
            await wait_for(hass, lambda e=entity_id: state_of(hass, e) == STATE_UNAVAILABLE, 20, f"{entity_id} unavailable")
        assert site.sub.on(site.ta.availability)[-1].body == b"offline"
    finally:
        site.restart_a()
    await wait_for(hass, lambda: state_of(hass, ids["connected"]) == "on", 60, "the camera back after the engine restart")
    # Not the retained state of the killed run: what the new run publishes.
    new_run = lambda: (s := site.latest(site.ta.state("campus"))) is not None and s["boot"] != killed_run["boot"]  # noqa: E731
    await wait_for(hass, new_run, 60, "a state of the restarted engine")
    await _wait_equal(hass, site, ids)
    assert state_of(hass, ids["gate_middle_in"]) not in (None, STATE_UNAVAILABLE)


async def test_broker_restart_recovers_with_the_engines_counts(hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry) -> None:
    campus = await _add_remote(hass, "a", "campus", "Campus", "zone_walkway_people")
    ids = _entity_ids(hass, campus)
    await _wait_equal(hass, site, ids)
    gates = (ids["gate_middle_in"], ids["gate_middle_out"])
    seen: dict[str, list[float]] = {e: [] for e in gates}

    def record(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if new is not None and new.entity_id in seen and new.state not in (STATE_UNAVAILABLE, "unknown"):
            seen[new.entity_id].append(float(new.state))

    unsub = hass.bus.async_listen("state_changed", record)
    try:
        frames_before = site.latest(site.ta.state("campus"))["health"]["frames"]  # type: ignore[index]
        site.broker.kill()
        await wait_for(hass, lambda: not mqtt.is_connected(hass), 15, "HA to notice the broker is gone")
        await asyncio.sleep(4)  # the engine keeps analysing and counting meanwhile (20 frames at 5 fps)
        site.broker.start()
        await wait_for(hass, lambda: mqtt.is_connected(hass), 20, "HA's MQTT client to reconnect")
        after = site.sub.wait(
            lambda: (s := site.latest(site.ta.state("campus"))) and s["health"]["frames"] > frames_before + 10, 30
        )
        assert after, "the engine did not come back to the restarted broker"
        await _wait_equal(hass, site, ids)
    finally:
        unsub()
    # The counters never went back (a total_increasing meter that drops means a lost count to the recorder).
    for entity_id, values in seen.items():
        assert values == sorted(values), (entity_id, values)
    assert state_of(hass, ids["connected"]) == "on"


async def test_scene_edited_in_home_assistant_goes_to_the_engine(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry
) -> None:
    street = await _add_remote(hass, "b", "street", "Street", None)
    campus = await _add_remote(hass, "a", "campus", "Campus", "zone_walkway_people")
    assert street.runtime_data.scene_source == "mqtt" and "zone_pavement_people" not in _entity_ids(hass, street)

    # The engine owns nothing in its config for "street": the new zone is set there, and its entities appear.
    hass.config_entries.async_update_entry(street, options={**street.options, CONF_SCENE: STREET_SCENE})
    await wait_for(hass, lambda: "zone_pavement_people" in _entity_ids(hass, street), 30, "the pavement zone entities")
    await wait_for(hass, lambda: street.state is ConfigEntryState.LOADED)
    config = site.latest(site.tb.config("street"))
    assert config is not None and [z["name"] for z in config["scene"]["zones"]] == ["pavement"]
    pavement = _entity_ids(hass, street)["zone_pavement_people"]
    await wait_for(hass, lambda: number_of(hass, pavement) >= 0, 20, "the pavement zone's count")

    # Frame rate is the engine's: shown as it runs it. The repair delay is HA's own: kept and applied.
    hass.config_entries.async_update_entry(street, options={**street.options, CONF_FPS: 9, CONF_UNREACHABLE_AFTER: 2})
    await wait_for(hass, lambda: street.options[CONF_FPS] == 2, 10, "the engine's frame rate back in the options")
    assert street.options[CONF_UNREACHABLE_AFTER] == 2 and street.runtime_data.settings.unreachable_after_s == 120

    # "campus" has its scene in the engine's config file: the engine refuses, HA's options go back to it.
    hass.config_entries.async_update_entry(campus, options={**campus.options, CONF_SCENE: STREET_SCENE})
    await wait_for(
        hass, lambda: campus.options[CONF_SCENE].get("gates") == SCENE["gates"], 20, "the refused scene to be reverted"
    )
    assert "zone_walkway_people" in _entity_ids(hass, campus)

    # The reset_counters action reaches the engine: the gate totals drop (and count on from zero).
    ids = _entity_ids(hass, campus)

    def crossings() -> float:
        return number_of(hass, ids["gate_middle_in"]) + number_of(hass, ids["gate_middle_out"])

    before = crossings()
    assert before > 2
    await hass.services.async_call(DOMAIN, "reset_counters", {"config_entry_id": campus.entry_id}, blocking=True)
    await wait_for(hass, lambda: 0 <= crossings() < before, 15, "the reset gate totals")
    results = [m.json() for m in site.sub.on(site.ta.command_result("campus"))]
    assert any(r["command"] == "reset_counters" and r["ok"] for r in results)
    await unload(hass, street)
    await unload(hass, campus)


async def test_an_engine_on_the_broker_is_discovered(hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry) -> None:
    await wait_for(
        hass,
        lambda: {f["context"].get("unique_id") for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)}
        >= {"mqtt_engine_a", "mqtt_engine_b"},
        20,
        "discovered flows for both engines",
    )
    flow = next(
        f for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN) if f["context"].get("unique_id") == "mqtt_engine_b"
    )
    assert flow["context"]["source"] == "mqtt" and flow["step_id"] == "remote"
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CAMERA_ID: "mqtt_b_street"})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["title"] == "Street"
    await hass.async_block_till_done()
    await unload(hass, result["result"])
