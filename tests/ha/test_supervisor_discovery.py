"""Supervisor discovery: the engine add-on announces its engine id and pairing key; Home Assistant offers its cameras
and pairs them with that key, nothing typed (config_flow.async_step_hassio).

The add-on runs as on a Supervisor: addon/run.sh with /data/options.json, SUPERVISOR_TOKEN and SUPERVISOR_URL, on
a real Mosquitto, two cameras on real clips. The Supervisor itself cannot run here (no Docker, no Home Assistant
OS): a stand-in takes the add-on's POST /discovery (tests/servers/supervisor.py), and each test hands what it took
to Home Assistant the way HA's hassio integration does (components/hassio/discovery.py: the message's config plus
"addon", the add-on's name, as HassioServiceInfo; a discovery flow of the service's domain).
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket
import yaml
from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_IGNORE, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam import config_flow
from custom_components.safecam.const import (
    CONF_CAMERA_ID,
    CONF_ENGINE_ID,
    CONF_PAIRING_KEY,
    CONF_SOURCE_TYPE,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    SOURCE_MQTT,
)
from custom_components.safecam.contract import Topics
from custom_components.safecam.remote import RemoteRuntime, engine_entries
from tests.servers.addon import run_sh_env
from tests.servers.mosquitto import Broker, Recorder, mosquitto_missing
from tests.servers.supervisor import StandInSupervisor

from .conftest import SCENE, number_of, wait_for
from .test_remote import _entity_ids, _published, _setup_mqtt, _shown

pytestmark = [
    pytest.mark.usefixtures("socket_enabled", "mock_hass_config"),  # mock_hass_config: HA's MQTT reads configuration.yaml
    pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing())),
]

REPO = Path(__file__).resolve().parents[2]
ADDON_NAME = "safecam engine"  # the add-on's name (addon/config.yaml), which HA's hassio discovery adds as "addon"
OTHER_KEY = "MFRG-GZDF-MZTW-Q2LK-NNWG-23TO-OBYX-E4TT"  # a valid key the engine does not sign with


class AddOn:
    """The engine add-on started by run.sh as the Supervisor starts it, and the discovery message it posted."""

    def __init__(self, root: Path, data_dir: Path) -> None:
        self.broker = Broker(root / "broker")
        self.broker.start()
        self.supervisor = StandInSupervisor().start()
        self.sub = Recorder(self.broker, ("safecam/#",))
        self.data = root / "data"
        self.data.mkdir()
        peds = data_dir / "pedestrians"
        options = {
            "engine_id": "addon",
            "cameras": [
                {"id": "campus", "name": "Campus", "url": str(peds / "tud_campus.mp4"), "fps": 3, "scene": yaml.safe_dump(SCENE)},
                {"id": "street", "name": "Street", "url": str(peds / "tud_stadtmitte.mp4"), "fps": 2},
            ],
            "scene_source": "options",
            "snapshot_interval": 30,
            "state_interval": 2,
            "provider": "auto",
            "mqtt_discovery": False,  # HA's own MQTT discovery entities are another path; these tests are about safecam's
            "log_level": "info",
            "mqtt_host": "127.0.0.1",
            "mqtt_port": self.broker.port,
        }
        (self.data / "options.json").write_text(json.dumps(options))
        env = run_sh_env(self.data, SUPERVISOR_TOKEN=self.supervisor.token, SUPERVISOR_URL=self.supervisor.url)
        self.log_path = root / "run.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(REPO / "addon" / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.topics = Topics("safecam", "addon")

    @property
    def key(self) -> str:
        """The key the engine signs with (made at its first start, kept in /data)."""
        return (self.data / "pairing_key").read_text().strip()

    def service_info(self, **config: Any) -> HassioServiceInfo:
        """The add-on's discovery message as Home Assistant's hassio integration hands it to the config flow."""
        [(uuid, message)] = self.supervisor.messages.items()
        return HassioServiceInfo(
            config={**message["config"], **config, "addon": ADDON_NAME}, name=ADDON_NAME, slug="local_safecam_engine", uuid=uuid
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.sub.close()
        self.supervisor.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def addon(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Generator[AddOn]:
    pytest_socket.enable_socket()  # module setup runs before the per-test socket_enabled fixture
    a = AddOn(tmp_path_factory.mktemp("addon"), shared_data)
    try:
        for camera in ("campus", "street"):
            topic = a.topics.state(camera)
            assert a.sub.wait(lambda t=topic: (s := a.sub.last(t)) and s["health"]["frames"] > 0, 90), a.log_path.read_text()
        assert len(a.supervisor.messages) == 1, a.log_path.read_text()  # posted once, before the engine started
        yield a
    finally:
        a.close()


@pytest.fixture
async def ha_mqtt(hass: HomeAssistant, addon: AddOn) -> AsyncGenerator[MockConfigEntry]:
    entry = await _setup_mqtt(hass, addon.broker)
    yield entry
    for other in hass.config_entries.async_entries(DOMAIN):
        if other.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(other.entry_id)
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def _flows(hass: HomeAssistant, source: str) -> list[dict[str, Any]]:
    return [f for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN) if f["context"]["source"] == source]


def _shows_what_the_engine_published(hass: HomeAssistant, addon: AddOn) -> bool:
    """Campus: people, per-zone people, gate entries/exits; street: people (both read by an independent subscriber)."""
    entries = {e.data[CONF_CAMERA_ID]: e for e in engine_entries(hass, "addon")}
    if set(entries) != {"campus", "street"} or any(e.state is not ConfigEntryState.LOADED for e in entries.values()):
        return False
    campus, street = (_entity_ids(hass, entries[c]) for c in ("campus", "street"))
    published_street = addon.sub.last(addon.topics.state("street"))
    try:  # (an entry made before its engine's layout arrived gets its zone and gate entities with it)
        return _shown(hass, campus) == _published(addon.sub.last(addon.topics.state("campus"))) and (
            published_street is not None and number_of(hass, street["people"]) == float(published_street["people"])
        )
    except KeyError:
        return False


def _remote_entry(engine: str, camera: str, title: str, key: str | None) -> MockConfigEntry:
    data = {CONF_SOURCE_TYPE: SOURCE_MQTT, CONF_ENGINE_ID: engine, CONF_CAMERA_ID: camera, CONF_TOPIC_PREFIX: "safecam"}
    if key is not None:
        data[CONF_PAIRING_KEY] = key
    return MockConfigEntry(domain=DOMAIN, title=title, unique_id=f"mqtt_{engine}_{camera}", data=data, options={})


async def test_the_add_on_card_adds_every_camera_of_its_engine_with_its_key(
    hass: HomeAssistant, addon: AddOn, ha_mqtt: MockConfigEntry
) -> None:
    # The engine's MQTT announcement made its card first (that one asks for the key).
    await wait_for(hass, lambda: any(f["context"].get("unique_id") == "mqtt_engine_addon" for f in _flows(hass, "mqtt")), 20)
    info = addon.service_info()
    assert info.config["pairing_key"] == addon.key  # the key the engine signs with went to the Supervisor
    discovery_flow.async_create_flow(
        hass,
        DOMAIN,
        context={"source": SOURCE_HASSIO},
        data=info,
        discovery_key=discovery_flow.DiscoveryKey(domain="hassio", key=info.uuid, version=1),
    )
    await hass.async_block_till_done()
    [card] = _flows(hass, SOURCE_HASSIO)
    assert card["step_id"] == "hassio_confirm" and card["context"]["title_placeholders"] == {"name": "safecam engine (addon)"}
    assert not _flows(hass, "mqtt")  # the add-on's card replaces the one that asks for the key

    result = await hass.config_entries.flow.async_configure(card["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["title"] == "Campus"
    await hass.async_block_till_done()
    entries = engine_entries(hass, "addon")
    assert sorted(e.title for e in entries) == ["Campus", "Street"]  # every camera, one entry each
    assert {e.data[CONF_PAIRING_KEY] for e in entries} == {addon.key}
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)  # no form left: nothing was typed
    await wait_for(hass, lambda: _shows_what_the_engine_published(hass, addon), 30, "the engine's counts in HA")

    # Home Assistant restarts: it reads the Supervisor's message again. Set up: nothing offered, nothing reloaded.
    runtimes = {e.entry_id: e.runtime_data for e in entries}
    again = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_HASSIO}, data=info)
    assert again["type"] is FlowResultType.ABORT and again["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert {e.entry_id: e.runtime_data for e in engine_entries(hass, "addon")} == runtimes


async def test_a_new_key_of_the_add_on_reaches_its_cameras_without_reauth(
    hass: HomeAssistant, addon: AddOn, ha_mqtt: MockConfigEntry
) -> None:
    """The cameras were paired with the add-on's earlier key (its /data/pairing_key was deleted, or a key was set in
    its options): they take nothing until the add-on's next announcement brings the key it signs with now."""
    entries = [_remote_entry("addon", "campus", "Campus", OTHER_KEY), _remote_entry("addon", "street", "Street", OTHER_KEY)]
    for entry in entries:
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    runtime = entries[0].runtime_data
    assert isinstance(runtime, RemoteRuntime) and runtime.state is None and not runtime.available  # every message refused

    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_HASSIO}, data=addon.service_info())
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert [e.data[CONF_PAIRING_KEY] for e in entries] == [addon.key, addon.key]
    assert not _flows(hass, "reauth")
    await wait_for(hass, lambda: _shows_what_the_engine_published(hass, addon), 30, "the engine's counts with the new key")


async def test_a_key_its_engine_does_not_sign_with_never_reaches_the_entries(
    hass: HomeAssistant, addon: AddOn, ha_mqtt: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Supervisor takes a `safecam` message from any add-on that declares the service, not only ours: another
    add-on announcing our engine's id with its own key must not re-key (and so cut off, or impersonate) the engine."""
    monkeypatch.setattr(config_flow, "KEY_CHECK_ATTEMPTS", 2)  # the engine has long been up: no need to wait 30 s
    monkeypatch.setattr(config_flow, "KEY_CHECK_INTERVAL_S", 0.2)
    entries = [_remote_entry("addon", "campus", "Campus", addon.key), _remote_entry("addon", "street", "Street", addon.key)]
    for entry in entries:
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: _shows_what_the_engine_published(hass, addon), 30, "the engine's counts")
    forged = addon.service_info(pairing_key=OTHER_KEY)
    forged.slug = "1a2b3c4d_other"  # another repository's add-on
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_HASSIO}, data=forged)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "hassio_wrong_key"
    await hass.async_block_till_done()
    assert [e.data[CONF_PAIRING_KEY] for e in entries] == [addon.key, addon.key]
    assert all(e.state is ConfigEntryState.LOADED for e in entries) and not _flows(hass, "reauth")


async def test_a_key_typed_in_reauth_pairs_every_camera_of_its_engine(
    hass: HomeAssistant, addon: AddOn, ha_mqtt: MockConfigEntry
) -> None:
    """Entries without a key (made before messages were signed) each ask for it; one answer is the engine's key for
    all its cameras (remote.py stores it once per engine), and the other camera's question goes away."""
    entries = [_remote_entry("addon", "campus", "Campus", None), _remote_entry("addon", "street", "Street", None)]
    for entry in entries:
        entry.add_to_hass(hass)
        assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    flows = _flows(hass, "reauth")
    assert len(flows) == 2 and all(e.state is ConfigEntryState.SETUP_ERROR for e in entries)
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {CONF_PAIRING_KEY: addon.key.lower()})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert [e.data[CONF_PAIRING_KEY] for e in entries] == [addon.key, addon.key]
    await wait_for(hass, lambda: _shows_what_the_engine_published(hass, addon), 30, "both cameras with the typed key")
    assert not _flows(hass, "reauth")


async def test_announcements_that_cannot_pair_are_refused(hass: HomeAssistant, addon: AddOn, ha_mqtt: MockConfigEntry) -> None:
    async def hassio(info: HassioServiceInfo) -> Any:
        return await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_HASSIO}, data=info)

    # Not an engine's message: no card.
    for bad in ({"pairing_key": "not a key"}, {"engine_id": "Not/An/Id"}, {"topic_prefix": "safecam/#"}):
        result = await hassio(addon.service_info(**bad))
        assert result["type"] is FlowResultType.ABORT and result["reason"] == "invalid_discovery_info", bad
    # An engine id nobody publishes (the add-on not started yet): the card stays and says so.
    result = await hassio(addon.service_info(engine_id="ghost"))
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "hassio_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "hassio_engine_not_found"}
    hass.config_entries.flow.async_abort(result["flow_id"])
    # A key the engine on the broker does not sign with: nothing is added.
    result = await hassio(addon.service_info(pairing_key=OTHER_KEY))
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "hassio_wrong_key"}
    hass.config_entries.flow.async_abort(result["flow_id"])
    assert not engine_entries(hass, "addon")
    # An engine the user chose to ignore stays ignored.
    MockConfigEntry(domain=DOMAIN, source=SOURCE_IGNORE, unique_id="mqtt_engine_addon", data={}).add_to_hass(hass)
    result = await hassio(addon.service_info())
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"
