"""The generated dashboard (websocket safecam/dashboard) and its Lovelace strategy module, on a real camera entry.

The conftest scene: a danger zone (walkway), an area (sky) and a gate (middle). The dashboard must
show exactly this camera's enabled entities: the anonymized camera and the heatmap as pictures,
counts and zone states as tiles, the event entity in a logbook, history and statistics graphs.
Site entries get their own views first: counts, floor plan, site heatmap, their cameras, history.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator, WebSocketGenerator

from custom_components.safecam import dashboard
from custom_components.safecam.const import CONF_ENTRY_KIND, CONF_SITE_CAMERAS, CONF_SITE_GATES, DOMAIN, ENTRY_KIND_SITE
from custom_components.safecam.engine.worker import CameraWorker

from .conftest import setup_loaded, unload


def _cards(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [card for section in view["sections"] for card in section["cards"]]


def _referenced(card: dict[str, Any]) -> set[str]:
    ids = {card[k] for k in ("entity", "image_entity") if k in card}
    return ids | set(card.get("entities", []))


async def test_dashboard_config_and_strategy(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_client: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(CameraWorker, "start", lambda self: None)  # the dashboard depends on entities, not frames
    assert await async_setup_component(hass, "frontend", {})
    assert await async_setup_component(hass, DOMAIN, {})
    # The camera added below registers views (camera, image, snapshots) after the client started, as in a running HA,
    # whose server keeps its router unfrozen (http/server.py); the test server's router must allow it as well.
    hass.http.app.router.freeze = lambda: None  # type: ignore[method-assign]
    ws = await hass_ws_client(hass)
    await ws.send_json({"id": 1, "type": "safecam/dashboard"})
    empty = (await ws.receive_json())["result"]
    assert [c["type"] for c in _cards(empty["views"][0])] == ["markdown"]  # no camera yet: says so

    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)
    await ws.send_json({"id": 2, "type": "safecam/dashboard"})
    config = (await ws.receive_json())["result"]
    assert config["title"] == "Safecam"
    assert [(v["title"], v["path"], v["type"]) for v in config["views"]] == [("Demo", "demo", "sections")]
    cards = _cards(config["views"][0])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for card in cards:
        by_type.setdefault(card["type"], []).append(card)

    # The pictures: the anonymized live view and the heatmap (no raw picture source exists).
    assert [(c["entity"], c["camera_view"]) for c in by_type["picture-entity"]] == [("camera.demo_anonymized_view", "live")]
    assert [c["image_entity"] for c in by_type["picture"]] == ["image.demo_heatmap"]
    tiles = {c["entity"] for c in by_type["tile"]}
    assert {
        "sensor.demo_people",
        "sensor.demo_middle_entries",
        "sensor.demo_middle_exits",
        "sensor.demo_walkway_people",
        "sensor.demo_sky_people",
        "binary_sensor.demo_walkway_occupied",
        "binary_sensor.demo_walkway_intruded",
        "binary_sensor.demo_sky_occupied",
        "event.demo_safety_event",
    } <= tiles
    names = {c["entity"]: c.get("name") for c in by_type["tile"]}
    # The heading names the camera; a gate count is "<gate> in" (issue 20 (10): "entrance entri…" was cut off),
    # its entity id keeps the documented form.
    assert (names["sensor.demo_middle_entries"], names["sensor.demo_middle_exits"]) == ("middle in", "middle out")
    [logbook] = by_type["logbook"]
    assert {"event.demo_safety_event", "binary_sensor.demo_walkway_intruded"} <= set(logbook["entities"])
    histories = {c["title"]: set(c["entities"]) for c in by_type["history-graph"]}
    assert {"sensor.demo_people", "sensor.demo_walkway_people"} <= histories["People"]
    statistics = {c["title"]: c for c in by_type["statistics-graph"]}
    gates = statistics["Entries and exits per hour"]
    assert (set(gates["entities"]), gates["stat_types"], gates["period"]) == (
        {"sensor.demo_middle_entries", "sensor.demo_middle_exits"},
        ["change"],
        "hour",
    )
    assert statistics["Events per hour"]["entities"] == ["sensor.demo_intrusion_events"]
    assert statistics["People per hour"]["stat_types"] == ["mean", "max"]

    # Every entity it shows exists; disabled ones (inference time) are left out.
    shown = set().union(*(_referenced(c) for c in cards))
    assert all(hass.states.get(e) is not None for e in shown), shown - set(hass.states.async_entity_ids())
    assert "sensor.demo_inference_time" not in shown

    # The strategy module is announced to the frontend and served (cache-busted URL).
    assert dashboard.STRATEGY_URL in hass.data[DATA_EXTRA_MODULE_URL].urls
    client = await hass_client()
    resp = await client.get(dashboard.STRATEGY_URL)
    assert resp.status == 200
    body = await resp.text()
    assert 'customElements.define("ll-strategy-dashboard-safecam"' in body and '"safecam/dashboard"' in body
    await unload(hass, entry)


async def test_dashboard_site_views(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    make_entry: Callable[..., MockConfigEntry],
    clip: Path,
    other_clip: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sites get their own views, before the cameras': counts, floor plan, site heatmap, cameras, history."""
    monkeypatch.setattr(CameraWorker, "start", lambda self: None)  # the views depend on entities, not frames
    yard, gate = make_entry(str(clip), title="Yard"), make_entry(str(other_clip), title="Gatehouse")
    sites = {
        title: MockConfigEntry(
            domain=DOMAIN,
            title=title,
            unique_id=f"site_{title}",
            data={CONF_ENTRY_KIND: ENTRY_KIND_SITE},
            options={CONF_SITE_CAMERAS: cameras, CONF_SITE_GATES: [f"{yard.entry_id}/middle/in"]},
        )
        for title, cameras in (("Yard site", [yard.entry_id]), ("Whole site", []))
    }
    for site in sites.values():
        site.add_to_hass(hass)
    assert await async_setup_component(hass, "frontend", {})
    await setup_loaded(hass, yard)  # sets up the integration: every entry of it
    assert all(e.state is ConfigEntryState.LOADED for e in (gate, *sites.values()))
    ws = await hass_ws_client(hass)
    await ws.send_json({"id": 1, "type": "safecam/dashboard"})
    config = (await ws.receive_json())["result"]

    # Sites first (title order), then the cameras; a site never gets a camera view.
    assert [(v["title"], v["path"], v["icon"]) for v in config["views"]] == [
        ("Whole site", "whole-site", "mdi:floor-plan"),
        ("Yard site", "yard-site", "mdi:floor-plan"),
        ("Gatehouse", "gatehouse", "mdi:cctv"),
        ("Yard", "yard", "mdi:cctv"),
    ]
    whole, site = config["views"][0], config["views"][1]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for card in _cards(site):
        by_type.setdefault(card["type"], []).append(card)
    assert [c["heading"] for c in by_type["heading"]] == [
        "Yard site",
        "Floor plan (people now)",
        "Site heatmap (last hour)",
        "Cameras",
        "History",
    ]
    # The two pictures: the floor plan with the people now, then the site heatmap.
    assert [c["image_entity"] for c in by_type["picture"]] == ["image.yard_site_floor_plan", "image.yard_site_heatmap"]
    tiles = [(c["entity"], c.get("name")) for c in by_type["tile"]]
    # Site counts, then the site's cameras' people named by camera (Gatehouse is not on this site).
    assert tiles == [
        ("sensor.yard_site_people", "People"),
        ("sensor.yard_site_people_on_map", "People on map"),
        ("sensor.yard_people", "Yard"),
    ]
    [history] = by_type["history-graph"]
    assert (history["title"], history["entities"]) == (
        "Site people",
        ["sensor.yard_site_people", "sensor.yard_site_people_on_map"],
    )
    [statistics] = by_type["statistics-graph"]
    assert (statistics["entities"], statistics["stat_types"], statistics["period"]) == (
        ["sensor.yard_site_people", "sensor.yard_site_people_on_map"],
        ["mean", "max"],
        "hour",
    )
    # No cameras chosen: every safecam camera, in title order.
    assert [c["entity"] for c in _cards(whole) if c["type"] == "tile"][2:] == ["sensor.gatehouse_people", "sensor.yard_people"]
    shown = set().union(*(_referenced(c) for view in config["views"] for c in _cards(view)))
    assert all(hass.states.get(e) is not None for e in shown), shown - set(hass.states.async_entity_ids())
    for entry in (*sites.values(), yard, gate):
        await unload(hass, entry)
