"""Run by test_thin_start.py in a fresh interpreter with tests.thin.heavy_blocker installed first (`-p`).

Home Assistant (PHCC) with its MQTT integration on a real Mosquitto and a real `serve` engine: safecam is set up
with a remote camera and every platform, the config flow is opened (HA preloads it), diagnostics are read and the
camera and heatmap pictures are fetched; then a site device over that camera is added through the config flow (its
gate and the floor points the engine computes from the camera's calibration, fused in HA) and its sensors and
pictures are read. Nothing of that may import cv2, onnxruntime or openvino, and no safecam module may import numpy.
Not collected on its own (its name): it needs the blocker installed before anything.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Generator

import pytest
import pytest_socket
from homeassistant.components import mqtt
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

import custom_components.safecam  # noqa: F401 - ours, before PHCC's testing_config/custom_components shadows it
from custom_components.safecam.const import (
    CONF_EMPTY_RESET_S,
    CONF_FUSION_RADIUS_M,
    CONF_PLAN_DEPTH_M,
    CONF_PLAN_WIDTH_M,
    CONF_SITE_GATES,
)
from custom_components.safecam.site_fusion import LEGEND_PX
from tests.conftest import DATA
from tests.servers.mosquitto import Broker, EngineProcess, Recorder
from tests.thin import heavy_blocker

# Zones of every kind the entities depend on, a gate, and optional sections HA must not parse (the engine does).
# The calibration puts the walkway (feet at y 0.7-0.96) on a 20 m x 10 m floor: the engine reports floor points.
SCENE = {
    "calibration": {"image": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]], "floor": [[0, 0], [20, 0], [20, 10], [0, 10]]},
    "zones": [
        {"name": "yard", "kind": "restricted", "polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]},
        {"name": "press", "kind": "equipment", "polygon": [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4], [0.6, 0.4]]},
    ],
    "gates": [{"name": "door", "line": [[0.5, 0.2], [0.5, 1.0]]}],
    "safety": {"congestion": {"yard": {"medium": 2, "high": 4}}},
    "occupancy": {"yard": {"gates": {"door": "in"}}},
}
KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # the engine's pairing key (its config), typed into HA as a user would
pytestmark = pytest.mark.usefixtures("socket_enabled", "mock_hass_config")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Generator[Broker]:
    """A broker and one engine analysing a real clip (its own process: its OpenCV is not Home Assistant's)."""
    pytest_socket.enable_socket()
    root = tmp_path_factory.mktemp("thin")
    broker = Broker(root / "broker")
    broker.start()
    clip = DATA / "pedestrians" / "tud_campus.mp4"
    config = {
        "engine_id": "t",
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "cameras": [{"id": "yard", "name": "Yard", "url": str(clip), "fps": 2, "scene": SCENE}],
        "state_file": str(root / "state.json"),
        "pairing_key": KEY,
        "state_interval_s": 2,
        "snapshot_interval_s": 2,
    }
    process = EngineProcess(root / "engine", config)
    sub = Recorder(broker)
    try:
        assert sub.wait(lambda: (st := sub.last("safecam/t/yard/state")) and st["health"]["frames"] > 0, 90), process.log()
        yield broker
    finally:
        process.stop()
        sub.close()
        broker.stop()


async def _wait(hass: HomeAssistant, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)
            await hass.async_block_till_done()
    assert predicate(), what


async def test_remote_camera_loads_nothing_heavy(
    hass: HomeAssistant, engine: Broker, hass_client: ClientSessionGenerator
) -> None:
    broker = engine
    mqtt_entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={"broker": "127.0.0.1", "port": broker.port},
        options={"discovery": True, "birth_message": {}, "will_message": {}},
        version=1,
        minor_version=2,
    )
    mqtt_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
    await _wait(hass, lambda: mqtt.is_connected(hass), "HA's MQTT client to connect")

    data = {"source_type": "mqtt", "engine_id": "t", "camera_id": "yard", "topic_prefix": "safecam", "pairing_key": KEY}
    entry = MockConfigEntry(domain="safecam", title="Yard", unique_id="mqtt_t_yard", data=data, options={})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id), heavy_blocker.REFUSED
    registry = er.async_get(hass)

    def unique_ids() -> set[str]:
        entities = er.async_entries_for_config_entry(registry, entry.entry_id)
        return {e.unique_id.removeprefix(f"{entry.entry_id}_") for e in entities}

    # The engine's announced layout reloads the entry with its entities (restricted zone: intruded + safety sensors).
    await _wait(hass, lambda: "zone_yard_intruded" in unique_ids(), "the engine's layout")
    await _wait(hass, lambda: entry.state is ConfigEntryState.LOADED and entry.runtime_data.state is not None, "a state")
    expected = {"metric_rules", "zone_yard_congestion", "zone_yard_occupancy", "zone_press_machine_active", "gate_door_in"}
    assert expected <= unique_ids(), unique_ids()
    domains = {e.domain for e in er.async_entries_for_config_entry(registry, entry.entry_id)}
    assert domains == {"binary_sensor", "camera", "event", "image", "sensor"}

    # What else HA loads of safecam: its config flow, diagnostics, the pictures (Pillow placeholder / snapshot).
    flow = await hass.config_entries.flow.async_init("safecam", context={"source": SOURCE_USER})
    assert flow["menu_options"][0] == "remote"
    hass.config_entries.flow.async_abort(flow["flow_id"])
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["engine"]["engine_id"] == "t"
    runtime = entry.runtime_data
    assert (await hass.async_add_executor_job(runtime.snapshot_jpeg))[:2] == b"\xff\xd8"
    assert (await hass.async_add_executor_job(runtime.heatmap_png, "hour"))[:4] == b"\x89PNG"

    await _site_over_the_engine_camera(hass, hass_client, entry)

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()

    assert heavy_blocker.REFUSED == []
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in heavy_blocker.ANYONE)
    assert loaded == []


async def _site_over_the_engine_camera(hass: HomeAssistant, hass_client: ClientSessionGenerator, camera: MockConfigEntry) -> None:
    """A site added through the config flow (nothing installed) over the engine camera: gate flows and the map."""
    flow = await hass.config_entries.flow.async_init("safecam", context={"source": SOURCE_USER})
    flow = await hass.config_entries.flow.async_configure(flow["flow_id"], {"next_step_id": "site"})
    assert flow["type"] is FlowResultType.FORM and flow["step_id"] == "site", flow
    gate = f"{camera.entry_id}/door/in"  # offered from the engine's announced gates
    offered = next(v for k, v in flow["data_schema"].schema.items() if k == CONF_SITE_GATES).config["options"]
    assert gate in {o["value"] for o in offered}
    form = {"name": "Plant", CONF_SITE_GATES: [gate], CONF_EMPTY_RESET_S: 30, CONF_FUSION_RADIUS_M: 1.0}
    form |= {CONF_PLAN_WIDTH_M: 20, CONF_PLAN_DEPTH_M: 10}
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], form)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    site = result["result"]
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED

    def on_map() -> State | None:
        return hass.states.get("sensor.plant_people_on_map")

    # The engine's floor points (analytics["floor"] over MQTT) put the camera on the map, with its walkers.
    await _wait(hass, lambda: (st := on_map()) is not None and st.attributes.get("cameras_on_map") == 1, "the camera on the map")
    await _wait(hass, lambda: (st := on_map()) is not None and st.state.isdigit() and int(st.state) > 0, "people on the map")
    people = hass.states.get("sensor.plant_people")
    assert people is not None and people.state.isdigit() and {"entries", "exits"} <= set(people.attributes)
    assert site.runtime_data.flows.gates[0].camera == camera.entry_id
    client = await hass_client()
    for image in ("image.plant_floor_plan", "image.plant_heatmap"):
        resp = await client.get(f"/api/image_proxy/{image}")
        assert resp.status == 200 and resp.content_type == "image/png", image
        with Image.open(io.BytesIO(await resp.read())) as picture:
            assert picture.size == (800, 400 + LEGEND_PX), image  # the plan (40 px/m) and its legend
    assert await hass.config_entries.async_unload(site.entry_id)
