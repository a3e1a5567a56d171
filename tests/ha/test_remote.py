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
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator, WebSocketGenerator

from custom_components.safecam import image as image_platform
from custom_components.safecam import remote as remote_module
from custom_components.safecam.config_flow import scene_text
from custom_components.safecam.const import (
    CONF_CAMERA_ID,
    CONF_ENGINE_ID,
    CONF_FPS,
    CONF_PAIRING_KEY,
    CONF_SCENE,
    CONF_SOURCE_TYPE,
    CONF_TOPIC_PREFIX,
    CONF_UNREACHABLE_AFTER,
    DOMAIN,
    SOURCE_MQTT,
)
from custom_components.safecam.contract import Topics
from custom_components.safecam.remote import RemoteRuntime
from tests.servers.frames import Sender
from tests.servers.mosquitto import Broker, EngineProcess, Recorder, mosquitto_missing

from .conftest import SCENE, number_of, setup_loaded, state_of, unload, wait_for

pytestmark = [
    pytest.mark.usefixtures("socket_enabled", "mock_hass_config"),  # mock_hass_config: HA's MQTT reads configuration.yaml
    pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing())),
]

# The engines' pairing keys (their configs); what the user types into the config flow.
KEY_A = "AEBA-GBAF-AYDQ-QCIK-BMGA-2DQP-CAIR-EEYU"
KEY_B = "MFRG-GZDF-MZTW-Q2LK-NNWG-23TO-OBYX-E4TT"
KEYS = {"a": KEY_A, "b": KEY_B}
STREET_SCENE = {"zones": [{"name": "pavement", "kind": "area", "polygon": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]}]}


class Site:
    def __init__(self, root: Path, data: Path) -> None:
        peds = data / "pedestrians"
        self.root = root
        self.broker = Broker(root / "broker", persistent=True)
        self.broker.start()
        mqtt_cfg = {"host": "127.0.0.1", "port": self.broker.port, "reconnect_max_s": 1, "keepalive": 5}
        common = {"state_interval_s": 2, "snapshot_interval_s": 2, "heatmap_interval_s": 2}
        self.config_a = {
            "engine_id": "a",
            "mqtt": mqtt_cfg,
            "cameras": [{"id": "campus", "name": "Campus", "url": str(peds / "tud_campus.mp4"), "fps": 5, "scene": SCENE}],
            "state_file": str(root / "a" / "state.json"),
            "pairing_key": KEY_A,
            **common,
        }
        config_b = {
            "engine_id": "b",
            "mqtt": mqtt_cfg,
            "cameras": [{"id": "street", "name": "Street", "url": str(peds / "tud_stadtmitte.mp4"), "fps": 2}],
            "state_file": str(root / "b" / "state.json"),
            "pairing_key": KEY_B,
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


async def _add_remote(
    hass: HomeAssistant, engine: str, camera: str, title: str, expect: str | None, key: str | None = None
) -> MockConfigEntry:
    """A remote camera entry as a restore would hold it: no layout yet. The engine's retained layout arrives, is
    mirrored into the options and the entry reloads with its entities (`expect`: one of them)."""
    data = {CONF_SOURCE_TYPE: SOURCE_MQTT, CONF_ENGINE_ID: engine, CONF_CAMERA_ID: camera, CONF_TOPIC_PREFIX: "safecam"}
    data[CONF_PAIRING_KEY] = key or KEYS[engine]
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
        picked = options[0]["value"]
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_CAMERA_ID: picked})
        # The engine's pairing key, checked against its signed retained info and layout before anything is kept.
        assert result["type"] is FlowResultType.FORM and result["step_id"] == "remote_key"
        engine, other = ("a", "b") if picked == "mqtt_a_campus" else ("b", "a")
        for wrong, error in (("hello", "invalid_pairing_key"), (KEYS[other], "wrong_pairing_key")):
            result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_PAIRING_KEY: wrong})
            assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": error}
        typed = KEYS[engine].lower().replace("-", " ")  # as a person may type it
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_PAIRING_KEY: typed})
        assert result["type"] is FlowResultType.CREATE_ENTRY and result["data"][CONF_PAIRING_KEY] == KEYS[engine]
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
        # A scene edited now is not sent into the void: the form says the engine is offline and keeps the input.
        text = scene_text(STREET_SCENE)
        result = await _options_scene(hass, campus, text)
        assert result["errors"] == {"base": "engine_offline"} and _kept_input(result) == text
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
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "remote_key"
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_PAIRING_KEY: KEY_B})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["title"] == "Street"
    await hass.async_block_till_done()
    await unload(hass, result["result"])


# ---- heatmaps: the engine's pictures (the heat grids stay in the engine) ---------------------------------------


def _hot_below(png: bytes) -> bool:
    """Heat (red on the JET scale) in the lower half, where people walk in the campus clip."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, r = img[..., 0].astype(int), img[..., 2].astype(int)
    ys, _xs = np.nonzero((r > 170) & (r > b + 100))
    return len(ys) > 100 and ys.mean() > img.shape[0] / 2


async def test_an_engine_cameras_heatmap_shows_and_exports_the_engines_pictures(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    site: Site,
    ha_mqtt: MockConfigEntry,
    tmp_path: Path,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: the heatmap image showed only the anonymized snapshot and export_heatmap wrote that."""
    import cv2

    monkeypatch.setattr(image_platform, "REFRESH_S", 0.0)  # a new picture with every one the engine sends (60 s in use)
    hass.config.config_dir = str(tmp_path / "config")
    campus, _ids = await _campus(hass, site)
    runtime = campus.runtime_data
    entity = _entity_ids(hass, campus)["heatmap"]
    hour, day = site.ta.heatmap("campus", "hour"), site.ta.heatmap("campus", "day")

    def published(topic: str) -> set[bytes]:
        return {m.body for m in site.sub.on(topic)}

    client = await hass_client()
    shown = b""
    for _ in range(300):  # the image entity serves a picture the engine published, with heat on the walkway
        resp = await client.get(f"/api/image_proxy/{entity}")
        assert resp.status == 200 and resp.content_type == "image/png"
        shown = await resp.read()
        if shown in published(hour) and _hot_below(shown):
            break
        await asyncio.sleep(0.2)
    assert shown in published(hour) and _hot_below(shown)

    result = await hass.services.async_call(
        DOMAIN,
        "export_heatmap",
        {"config_entry_id": campus.entry_id, "window": "day", "name": "campus_day"},
        blocking=True,
        return_response=True,
    )
    written = tmp_path / "config" / "www" / "safecam" / "exports" / "campus_day.png"
    assert result == {"path": str(written), "url": "/local/safecam/exports/campus_day.png", "window": "day"}
    assert written.read_bytes() in published(day) and _hot_below(written.read_bytes())

    # Privacy: a raw frame made into a PNG and put on the heatmap topic by someone else is never shown or exported.
    capture = cv2.VideoCapture(str(shared_data / "pedestrians" / "tud_campus.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    raw = cv2.imencode(".png", frame)[1].tobytes()
    for payload in (raw, Sender(KEY_B).sign(hour, raw), Sender(KEY_A, boot=4102444800).sign(hour, raw)):
        site.sub.publish(hour, payload, retain=True)
        for _ in range(10):
            assert runtime.heatmap_png("hour") != raw
            await asyncio.sleep(0.1)
    await wait_for(hass, lambda: runtime.heatmap_png("hour") in published(hour), 10, "the engine's own picture")


async def test_export_heatmap_of_a_window_the_engine_has_not_sent_says_so(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, tmp_path: Path
) -> None:
    hass.config.config_dir = str(tmp_path / "config")
    campus, _ids = await _campus(hass, site)
    runtime = campus.runtime_data
    await wait_for(hass, lambda: runtime.heatmap_ready("week"), 20, "the engine's week picture")
    runtime._heatmaps.pop("week")  # as before the engine's first week picture reached this Home Assistant
    with pytest.raises(ServiceValidationError) as err:
        data = {"config_entry_id": campus.entry_id, "window": "week", "name": "week"}
        await hass.services.async_call(DOMAIN, "export_heatmap", data, blocking=True)
    assert err.value.translation_key == "heatmap_not_received"
    assert not (tmp_path / "config" / "www" / "safecam" / "exports" / "week.png").exists()


# ---- scene edits in Home Assistant wait for the engine's answer ---------------------------------------------


async def _options_scene(hass: HomeAssistant, entry: MockConfigEntry, text: str) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": "scene"})
    return dict(await hass.config_entries.options.async_configure(result["flow_id"], {CONF_SCENE: text}))


def _street_layout(site: Site) -> dict[str, Any]:
    """The scene of engine b's street camera as its last layout message on the broker says (the recorder's view)."""
    config = site.latest(site.tb.config("street"))
    return config["scene"] if config is not None else {}


def _kept_input(result: dict[str, Any]) -> str:
    """What the form shows in its scene field (the suggested value)."""
    return next(k.description["suggested_value"] for k in result["data_schema"].schema if k == CONF_SCENE)


async def test_the_options_flow_shows_the_engines_refusal_and_keeps_the_input(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, hass_ws_client: WebSocketGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a refused set_scene was a log line, and the options silently went back to the engine's scene."""
    street = await _add_remote(hass, "b", "street", "Street", None)
    campus = await _add_remote(hass, "a", "campus", "Campus", "zone_walkway_people")
    street_before, campus_before = dict(street.options), dict(campus.options)

    # HA does not parse the optional sections of an engine camera: the engine does, and refuses a bad one.
    bad = scene_text(STREET_SCENE) + "safety:\n  approach_metres: 3\n"
    result = await _options_scene(hass, street, bad)
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "engine_refused"}
    assert "approach_metres" in result["description_placeholders"]["error"]
    assert _kept_input(result) == bad
    # The form stays open with the input: corrected and sent again, the engine takes it.
    good = bad.replace("approach_metres", "approach_m")
    result = dict(await hass.config_entries.options.async_configure(result["flow_id"], {CONF_SCENE: good}))
    assert result["type"] is FlowResultType.CREATE_ENTRY, (result.get("errors"), result.get("description_placeholders"))
    await wait_for(hass, lambda: street.options[CONF_SCENE].get("safety") == {"approach_m": 3}, 20, "the engine's new layout")
    await wait_for(hass, lambda: _street_layout(site).get("safety") == {"approach_m": 3}, 10, "the layout on the broker")
    # The zone editor saves only what the engine took: its other sections kept, the engine's layout shows it.
    ws = await hass_ws_client(hass)
    wider = [{**STREET_SCENE["zones"][0], "polygon": [[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]]}]
    await wait_for(hass, lambda: street.state is ConfigEntryState.LOADED and not street.runtime_data._closed, 20, "the reload")
    await ws.send_json_auto_id({"type": "safecam/scene/set", "entry_id": street.entry_id, "zones": wider, "gates": []})
    msg = await ws.receive_json()
    assert msg["success"], msg
    await wait_for(hass, lambda: _street_layout(site)["zones"][0]["polygon"][0] == [0.0, 0.4], 10, "the layout on the broker")
    assert _street_layout(site)["safety"] == {"approach_m": 3} and street.options[CONF_SCENE] == _street_layout(site)
    street_before = dict(street.options)

    # A camera whose scene is in the engine's config file: the engine says so, in the form.
    text = scene_text(STREET_SCENE)
    result = await _options_scene(hass, campus, text)
    assert result["errors"] == {"base": "engine_refused"} and "config file" in result["description_placeholders"]["error"]
    assert _kept_input(result) == text

    # The zone editor: the same refusal, as the websocket error, nothing stored.
    await ws.send_json_auto_id(
        {"type": "safecam/scene/set", "entry_id": campus.entry_id, "zones": STREET_SCENE["zones"], "gates": []}
    )
    msg = await ws.receive_json()
    assert not msg["success"] and msg["error"]["code"] == "engine_refused" and "config file" in msg["error"]["message"]

    # No answer in time: said so, nothing stored.
    monkeypatch.setattr(remote_module, "COMMAND_TIMEOUT_S", 0.0)
    result = await _options_scene(hass, campus, text)
    assert result["errors"] == {"base": "engine_no_answer"} and _kept_input(result) == text
    await asyncio.sleep(1)  # (the engine's late refusal changes nothing either)
    assert dict(campus.options) == campus_before and dict(street.options) == street_before
    await unload(hass, street)
    await unload(hass, campus)


async def test_a_scene_edited_before_the_engines_first_layout_reaches_the_engine(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry
) -> None:
    """Was: an options change made before the first layout message was dropped (set_scene never sent), and the
    layout that then came overwrote it."""
    kerb = {"zones": [{"name": "kerb", "kind": "area", "polygon": [[0.0, 0.8], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]]}]}
    data = {CONF_SOURCE_TYPE: SOURCE_MQTT, CONF_ENGINE_ID: "b", CONF_CAMERA_ID: "street", CONF_TOPIC_PREFIX: "safecam"}
    entry = MockConfigEntry(
        domain=DOMAIN, title="Street", unique_id="mqtt_b_street", data={**data, CONF_PAIRING_KEY: KEY_B}, options={}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.runtime_data.engine_settings is None  # no layout from the engine yet
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_SCENE: kerb})
    await wait_for(hass, lambda: "zone_kerb_people" in _entity_ids(hass, entry), 30, "the kerb zone's entities")
    await wait_for(hass, lambda: [z["name"] for z in entry.options[CONF_SCENE]["zones"]] == ["kerb"], 10, "the options")
    await wait_for(hass, lambda: [z["name"] for z in _street_layout(site).get("zones", [])] == ["kerb"], 10, "the broker")
    await hass.async_block_till_done()
    await unload(hass, entry)


# ---- the broker attacks of issue 17: each was reproduced against the code before messages were signed ----------


def _forged_state(site: Site, **changes: Any) -> bytes:
    """Engine a's latest state with `changes`: what someone on the broker publishes in its name."""
    state = site.latest(site.ta.state("campus"))
    assert state is not None
    return json.dumps({**state, **changes}).encode()


def _refusals(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if "refused a message" in r.getMessage())


async def _campus(hass: HomeAssistant, site: Site) -> tuple[MockConfigEntry, dict[str, str]]:
    campus = await _add_remote(hass, "a", "campus", "Campus", "zone_walkway_people")
    ids = _entity_ids(hass, campus)
    await _wait_equal(hass, site, ids)
    return campus, ids


async def test_attack_retained_forged_state_with_a_far_boot_is_refused(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: a retained state with boot 4102444800 and in 999999 showed 999999 and locked the real engine out."""
    _campus_entry, ids = await _campus(hass, site)
    topic = site.ta.state("campus")
    body = _forged_state(site, boot=4102444800, seq=10**9, gates={"middle": {"in": 999999, "out": 0, "net": 999999}})
    forgeries = {
        "unsigned": body,
        "signed with another key": Sender(KEY_B, boot=4102444800).sign(topic, body),
        "the right key, a boot in the future": Sender(KEY_A, boot=4102444800).sign(topic, body),
    }
    for payload in forgeries.values():
        site.sub.publish(topic, payload, retain=True)
    for _ in range(20):
        assert number_of(hass, ids["gate_middle_in"]) < 999999
        await asyncio.sleep(0.1)
    refusals = _refusals(caplog)
    for reason in ("unsigned", "signed with another pairing key", "from the future"):
        assert reason in refusals
    assert b"999999" not in refusals.encode()  # rejections never echo the payload
    await _wait_equal(hass, site, ids)  # the engine's own states are still taken


async def test_attack_nan_and_malformed_numbers_keep_the_last_good_state(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: a "NaN" count left the entities unavailable; boot Infinity, deeply nested JSON or "in": "NaN" raised
    in the state callback. Now refused (unsigned, or signed but invalid), nothing raised, the last good state shown."""
    _campus_entry, ids = await _campus(hass, site)
    topic = site.ta.state("campus")
    boot = site.latest(topic)["boot"]  # type: ignore[index]
    bodies = [
        _forged_state(site, people="NaN"),
        _forged_state(site, gates={"middle": {"in": "NaN", "out": 0, "net": 0}}),
        _forged_state(site).replace(b'"boot":', b'"boot": Infinity, "was":', 1),
        _forged_state(site, people=-5),
        b'{"camera": "campus", "zones": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ]
    signed = Sender(KEY_A, boot=boot)  # a message that passes the MAC must still be valid: the body is checked
    for body in bodies:
        site.sub.publish(topic, body, retain=True)
        site.sub.publish(topic, signed.sign(topic, body, seq=10**12), retain=True)
    for _ in range(20):
        assert all(state_of(hass, ids[k]) not in (None, STATE_UNAVAILABLE) for k in ("people", "gate_middle_in"))
        await asyncio.sleep(0.1)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") and "safecam" in r.name]
    assert "invalid state" in _refusals(caplog) and "not JSON" in _refusals(caplog)
    await _wait_equal(hass, site, ids)  # the invalid signed ones moved the order on by nothing


async def test_attack_a_raw_jpeg_on_the_snapshot_topic_is_never_shown(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, shared_data: Path
) -> None:
    """Was: any JPEG published to .../snapshot was served by camera_proxy as the "anonymized view"."""
    import cv2

    campus, _ids = await _campus(hass, site)
    runtime = campus.runtime_data
    capture = cv2.VideoCapture(str(shared_data / "pedestrians" / "tud_campus.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    raw = cv2.imencode(".jpg", frame)[1].tobytes()  # a raw, un-anonymized frame
    topic = site.ta.snapshot("campus")
    for payload in (raw, Sender(KEY_B).sign(topic, raw)):  # unsigned; signed with another key
        site.sub.publish(topic, payload, retain=True)
        for _ in range(15):
            assert raw not in runtime.snapshot_jpeg()
            await asyncio.sleep(0.1)
    await wait_for(hass, lambda: runtime.snapshot_jpeg() in {m.body for m in site.sub.on(topic)}, 10, "the engine's picture")


async def test_attack_a_fake_engine_on_the_broker_makes_no_discovery_flow(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry
) -> None:
    """Was: a retained fake safecam/evil/info (and a layout) produced a discovery flow that added a camera."""
    info = {"contract": 1, "engine_id": "evil", "version": "0", "boot": 1, "started": 1, "cameras": ["cam"], "http": None}
    config = {"contract": 1, "camera": "cam", "name": "Evil", "fps": 5, "anonymization": "full_frame", "scene": {}}
    topics = Topics("safecam", "evil")
    try:
        site.sub.publish(topics.info, info, retain=True)
        site.sub.publish(topics.config("cam"), config, retain=True)
        await asyncio.sleep(3)
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert "mqtt_engine_evil" not in {f["context"].get("unique_id") for f in flows}

        # Framed and signed with the forger's own key: a card can appear, but the key of a real engine is refused.
        evil = Sender("NBSW-Y3DP-EB3W-64TM-MQQG-S3TF-MVXW-Y2LF")
        site.sub.publish(topics.config("cam"), evil.sign(topics.config("cam"), json.dumps(config).encode()), retain=True)
        site.sub.publish(topics.info, evil.sign(topics.info, json.dumps({**info, "contract": 2}).encode()), retain=True)
        await wait_for(
            hass,
            lambda: "mqtt_engine_evil"
            in {f["context"].get("unique_id") for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)},
            20,
            "the framed announcement's flow",
        )
        flow = next(
            f
            for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
            if f["context"].get("unique_id") == "mqtt_engine_evil"
        )
        result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_CAMERA_ID: "mqtt_evil_cam"})
        assert result["step_id"] == "remote_key"
        for key in (KEY_A, KEY_B):
            result = await hass.config_entries.flow.async_configure(flow["flow_id"], {CONF_PAIRING_KEY: key})
            assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "wrong_pairing_key"}
        assert not [e for e in hass.config_entries.async_entries(DOMAIN) if e.data.get(CONF_ENGINE_ID) == "evil"]
        hass.config_entries.flow.async_abort(flow["flow_id"])
    finally:
        for topic in (topics.info, topics.config("cam")):
            site.sub.publish(topic, b"", retain=True)


async def test_a_captured_genuine_message_played_back_is_refused(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    _campus_entry, ids = await _campus(hass, site)
    topic = site.ta.state("campus")
    captured = site.sub.on(topic)[-6].payload  # the engine's own, signed, some states ago
    await asyncio.sleep(1)
    site.sub.publish(topic, captured, retain=True)
    await wait_for(hass, lambda: "replayed" in _refusals(caplog), 10, "the played-back state to be refused")
    await _wait_equal(hass, site, ids)


async def test_a_message_of_an_earlier_engine_run_stays_refused_after_home_assistant_restarts(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    campus, ids = await _campus(hass, site)
    topic = site.ta.state("campus")
    # Genuine messages, signed by this run of the engine: the last of every retained topic HA reads of it.
    with site.sub._lock:
        captured = {m.topic: m.payload for m in site.sub.messages if m.topic.startswith("safecam/a/")}
    captured = {t: p for t, p in captured.items() if "/command" not in t and not t.endswith("/event")}
    old_boot = site.latest(topic)["boot"]
    site.a.stop()
    site.restart_a()  # a new run: a higher boot
    new_run = lambda: (st := site.latest(topic)) is not None and st["boot"] != old_boot  # noqa: E731
    await wait_for(hass, new_run, 60, "a state of the restarted engine")
    await _wait_equal(hass, site, ids)
    # Home Assistant restarts (the entry is set up afresh, nothing in memory) while the engine is stopped, and someone
    # plays the old run back as the retained messages: it must not be shown (old counters, an 'online' engine).
    assert await hass.config_entries.async_unload(campus.entry_id)
    site.a.stop()
    try:
        for t, payload in captured.items():  # the whole earlier run played back as the retained picture
            site.sub.publish(t, payload, retain=True)
        await setup_loaded(hass, campus)
        await wait_for(hass, lambda: "earlier run" in _refusals(caplog), 20, "the earlier run's state to be refused")
        old_state = json.loads(captured[topic].split(b"\n", 2)[2])
        taken = campus.runtime_data.state  # none, or the newer run's last (its stop): never the earlier run's
        assert taken is None or taken.seq != old_state["seq"]
    finally:
        site.restart_a()
    await _wait_equal(hass, site, ids, 60)


async def test_a_camera_paired_with_another_key_takes_nothing(
    hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    data = {CONF_SOURCE_TYPE: SOURCE_MQTT, CONF_ENGINE_ID: "a", CONF_CAMERA_ID: "campus", CONF_TOPIC_PREFIX: "safecam"}
    entry = MockConfigEntry(domain=DOMAIN, title="Campus", unique_id="mqtt_a_campus", data={**data, CONF_PAIRING_KEY: KEY_B})
    entry.add_to_hass(hass)
    await setup_loaded(hass, entry)
    await wait_for(hass, lambda: "signed with another pairing key" in _refusals(caplog), 10, "the refusal")
    runtime = entry.runtime_data
    assert isinstance(runtime, RemoteRuntime) and runtime.state is None and not runtime.available
    assert runtime.engine_settings is None
    from custom_components.safecam.diagnostics import async_get_config_entry_diagnostics

    diagnostics = json.dumps(await async_get_config_entry_diagnostics(hass, entry), default=str)
    assert KEY_B not in diagnostics and "pairing_key" in diagnostics  # redacted, not left out
    await unload(hass, entry)


async def test_a_remote_camera_without_a_key_asks_for_it(hass: HomeAssistant, site: Site, ha_mqtt: MockConfigEntry) -> None:
    """An entry from before messages were signed: setup fails with auth, the reauth flow takes the engine's key."""
    data = {CONF_SOURCE_TYPE: SOURCE_MQTT, CONF_ENGINE_ID: "a", CONF_CAMERA_ID: "campus", CONF_TOPIC_PREFIX: "safecam"}
    entry = MockConfigEntry(domain=DOMAIN, title="Campus", unique_id="mqtt_a_campus", data=data)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = [f for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN) if f["context"]["source"] == "reauth"]
    assert len(flows) == 1 and flows[0]["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {CONF_PAIRING_KEY: KEY_B})
    assert result["errors"] == {"base": "wrong_pairing_key"}
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {CONF_PAIRING_KEY: KEY_A})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_PAIRING_KEY] == KEY_A
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED, 20, "the entry to load with its key")
