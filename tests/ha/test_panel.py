"""The zone and gate editor's backend: the sidebar panel, its static file and the websocket commands.

Real setup (engine worker on tud_campus.mp4 with the real detector): a scene saved through
`safecam/scene/set` keeps the other sections, is validated with the engine's parser, and the
running camera picks it up (new zone/gate entities appear, the engine fills the new zone).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homeassistant.components.frontend import DATA_PANELS
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator, WebSocketGenerator

from custom_components.safecam.const import CONF_SCENE, DOMAIN

from .conftest import SCENE, wait_for

# The walkway's occupancy is counted through the middle gate: a section that names a zone and a gate.
OCCUPANCY = {"walkway": {"gates": {"middle": "in"}, "empty_reset_s": 600}}
NEW_ZONE = {"name": "left half", "kind": "restricted", "polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]}
NEW_GATE = {"name": "door", "line": [[0.3, 0.4], [0.3, 1.0]]}


async def _setup(hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path) -> MockConfigEntry:
    scene = {**copy.deepcopy(SCENE), "occupancy": OCCUPANCY}
    entry = make_entry(str(clip), scene=scene)
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def test_panel_registered_and_served(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, hass_client: ClientSessionGenerator
) -> None:
    await _setup(hass, make_entry, clip)
    panel = hass.data[DATA_PANELS]["safecam"]
    assert panel.require_admin is True
    assert panel.sidebar_title
    assert panel.config is not None
    config = panel.config["_panel_custom"]
    assert config["name"] == "safecam-panel"
    assert config["embed_iframe"] is False
    client = await hass_client()
    resp = await client.get(config["module_url"])
    assert resp.status == 200
    assert 'customElements.define("safecam-panel"' in await resp.text()


async def test_get_set_round_trip(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, hass_ws_client: WebSocketGenerator
) -> None:
    entry = await _setup(hass, make_entry, clip)
    ws = await hass_ws_client(hass)

    await ws.send_json_auto_id({"type": "safecam/entries"})
    msg = await ws.receive_json()
    assert msg["success"], msg
    assert msg["result"]["entries"] == [
        {"entry_id": entry.entry_id, "title": "Demo", "camera_entity_id": "camera.demo_anonymized_view"}
    ]

    await ws.send_json_auto_id({"type": "safecam/scene/get", "entry_id": entry.entry_id})
    msg = await ws.receive_json()
    assert msg["success"], msg
    assert msg["result"]["camera_entity_id"] == "camera.demo_anonymized_view"
    assert [z["name"] for z in msg["result"]["zones"]] == ["walkway", "sky"]
    assert [g["name"] for g in msg["result"]["gates"]] == ["middle"]
    assert "occupancy" not in msg["result"]  # the editor sees only zones and gates

    # Drop the sky, add a zone and a gate; the walkway and middle stay (occupancy names them).
    zones = [SCENE["zones"][0], NEW_ZONE]
    gates = [SCENE["gates"][0], NEW_GATE]
    await ws.send_json_auto_id({"type": "safecam/scene/set", "entry_id": entry.entry_id, "zones": zones, "gates": gates})
    msg = await ws.receive_json()
    assert msg["success"], msg
    stored = entry.options[CONF_SCENE]
    assert stored["occupancy"] == OCCUPANCY
    assert [z["name"] for z in stored["zones"]] == ["walkway", "left half"]
    assert stored["zones"][1]["kind"] == "restricted"
    assert stored["gates"][1] == NEW_GATE
    assert entry.options["fps"] == 5  # the other options stay too

    # The entity layout changed: the entry reloads, the new entities appear and the old zone's go.
    await wait_for(hass, lambda: hass.states.get("sensor.demo_left_half_people") is not None, what="the new zone's sensor")
    await wait_for(hass, lambda: hass.states.get("sensor.demo_door_entries") is not None, what="the new gate's sensor")
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.demo_sky_people") is None

    # The engine fills the new zone (people walk along the bottom half of the clip, also on the left).
    def _counted() -> bool:
        state = hass.states.get("sensor.demo_left_half_people")
        return state is not None and state.state.isdigit()

    await wait_for(hass, _counted, what="a people count in the new zone")

    await ws.send_json_auto_id({"type": "safecam/scene/get", "entry_id": entry.entry_id})
    msg = await ws.receive_json()
    assert [z["name"] for z in msg["result"]["zones"]] == ["walkway", "left half"]
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_set_rejects_invalid_scenes(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, hass_ws_client: WebSocketGenerator
) -> None:
    entry = await _setup(hass, make_entry, clip)
    before = copy.deepcopy(dict(entry.options))
    ws = await hass_ws_client(hass)
    bad: list[tuple[list[Any], list[Any], str]] = [
        # removing a zone another section names: the merged scene is validated
        ([SCENE["zones"][1]], SCENE["gates"], "occupancy: unknown zone 'walkway'"),
        ([{**NEW_ZONE, "kind": "lava"}], [], "kind 'lava' is not one of"),
        ([NEW_ZONE, {**NEW_ZONE}], [], "duplicate name 'left half'"),
        ([{**NEW_ZONE, "polygon": [[0.1, 0.1], [0.2, 0.2]]}], [], "polygon"),
        ([NEW_ZONE], [{"name": "door", "line": [[0.3, 0.4], [1.7, 1.0]]}], "line"),
    ]
    for zones, gates, expected in bad:
        await ws.send_json_auto_id({"type": "safecam/scene/set", "entry_id": entry.entry_id, "zones": zones, "gates": gates})
        msg = await ws.receive_json()
        assert not msg["success"], msg
        assert msg["error"]["code"] == "invalid_scene"
        assert expected in msg["error"]["message"], msg["error"]["message"]
        assert "\n" not in msg["error"]["message"]
    assert dict(entry.options) == before

    await ws.send_json_auto_id({"type": "safecam/scene/get", "entry_id": "nope"})
    msg = await ws.receive_json()
    assert not msg["success"]
    assert msg["error"]["code"] == "not_found"
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_set_fixes_an_entry_that_failed_setup(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, hass_ws_client: WebSocketGenerator
) -> None:
    """A scene stored invalid (e.g. by an older version) fails setup; saving a valid one from the editor loads it."""
    entry = make_entry(str(clip), scene={"zones": [{**NEW_ZONE, "kind": "lava"}]})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    ws = await hass_ws_client(hass)
    await ws.send_json_auto_id({"type": "safecam/scene/set", "entry_id": entry.entry_id, "zones": [NEW_ZONE], "gates": []})
    msg = await ws.receive_json()
    assert msg["success"], msg
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED, what="the entry to load")
    await wait_for(hass, lambda: hass.states.get("sensor.demo_left_half_people") is not None, what="the zone's sensor")
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_non_admin_rejected(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
) -> None:
    entry = await _setup(hass, make_entry, clip)
    before = copy.deepcopy(dict(entry.options))
    ws = await hass_ws_client(hass, hass_read_only_access_token)
    for cmd in (
        {"type": "safecam/entries"},
        {"type": "safecam/scene/get", "entry_id": entry.entry_id},
        {"type": "safecam/scene/set", "entry_id": entry.entry_id, "zones": [NEW_ZONE], "gates": []},
    ):
        await ws.send_json_auto_id(cmd)
        msg = await ws.receive_json()
        assert not msg["success"], msg
        assert msg["error"]["code"] == "unauthorized"
    assert dict(entry.options) == before
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
