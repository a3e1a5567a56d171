"""A ready Lovelace dashboard of the safecam cameras, generated from their current entities.

One view per site (site_entry.py), first: people on the site (gate flows) and on the floor map, the
floor plan with its dots, the site heatmap, the site's cameras' people, a history graph and hourly
statistics of the site's counts. Then one view per camera: the anonymized live view and the heatmap,
counts (people, gate entries/exits, people per zone), zone and safety states, recent events
(logbook), history graphs and hourly long-term statistics (entries/exits, events per type, people).
Never a raw frame: the only pictures are the anonymized camera entity and the heatmap image
entities, and a site's floor plan (drawn from floor positions only).

How it reaches a dashboard (HA 2025.4 has no Python API for an integration to create a storage
dashboard: the dashboards collection lives inside the lovelace integration and is reachable only
through its websocket commands, which act for a logged-in user):
- the websocket command `safecam/dashboard` returns the generated config;
- a Lovelace dashboard strategy `custom:safecam` (www/safecam-dashboard-strategy.js, loaded on every
  frontend page through frontend.add_extra_js_url) asks for it each time the dashboard opens, so a
  dashboard whose config is `strategy: {type: custom:safecam}` follows new zones, gates and cameras;
  "Take control" in its edit menu turns it into editable cards;
- docs/dashboard.md shows the YAML and how to install it; scripts/ha/run_ha.py installs the strategy
  dashboard through the public lovelace websocket commands (lovelace/dashboards/create, lovelace/config/save).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from homeassistant.components import frontend, websocket_api
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.util import slugify

from .const import CONF_SCENE, CONF_SITE_CAMERAS, DOMAIN
from .entries import is_site_entry, site_camera_entries
from .validation import vol

STRATEGY_JS = Path(__file__).parent / "www" / "safecam-dashboard-strategy.js"
# Served by panel.py's static path (/safecam_static -> www/); the hash busts the browser cache.
# Read at import, which HA runs in its import executor (never in the event loop).
STRATEGY_URL = f"/safecam_static/{STRATEGY_JS.name}?v={hashlib.sha256(STRATEGY_JS.read_bytes()).hexdigest()[:12]}"
WS_DASHBOARD = f"{DOMAIN}/dashboard"
TITLE = "Safecam"
HISTORY_HOURS = 24  # the logbook: today's events
GRAPH_HOURS = 6  # history graphs: a few hours keep minutes readable
STATISTICS_DAYS = 2
EVENT_STATISTICS_DAYS = 7
# Safety states shown as tiles and followed in the logbook, camera-wide and per zone (unique id keys).
CAMERA_STATES = ("person_down", "ppe_violation", "distancing")
ZONE_STATES = ("occupied", "intruded", "congestion", "congestion_high", "machine_active")
ZONE_COUNTS = ("people", "occupancy", "longest_dwell")
LOGGED_STATES = ("intruded", "congestion_high", "machine_active")
_DATA_KEY = f"{DOMAIN}_dashboard"


@callback
def async_setup_dashboard(hass: HomeAssistant) -> None:
    """Register the websocket command and the strategy module (once per HA run)."""
    if hass.data.get(_DATA_KEY):
        return
    hass.data[_DATA_KEY] = True
    websocket_api.async_register_command(hass, ws_dashboard)
    frontend.add_extra_js_url(hass, STRATEGY_URL)


@websocket_api.websocket_command({vol.Required("type"): WS_DASHBOARD})
@callback
def ws_dashboard(hass: HomeAssistant, connection: websocket_api.ActiveConnection, msg: dict[str, Any]) -> None:
    """The generated dashboard config (entity ids only: what any logged-in user's dashboard shows anyway)."""
    connection.send_result(msg["id"], dashboard_config(hass))


def dashboard_config(hass: HomeAssistant) -> dict[str, Any]:
    """The whole dashboard: one view per site, then one per safecam camera, each in title order."""
    entries = sorted(hass.config_entries.async_entries(DOMAIN), key=lambda e: e.title.casefold())
    sites = [e for e in entries if is_site_entry(e)]
    views = [site_view(hass, e) for e in sites] + [camera_view(hass, e) for e in entries if not is_site_entry(e)]
    if not views:
        markdown = {
            "type": "markdown",
            "content": "No safecam camera is set up yet: add one under Settings > Devices & services.",
        }
        views = [{"title": TITLE, "path": "safecam", "type": "sections", "sections": [{"type": "grid", "cards": [markdown]}]}]
    return {"title": TITLE, "views": views}


def _entities_by_key(hass: HomeAssistant, entry: ConfigEntry) -> tuple[dict[str, str], dict[str, str]]:
    """unique id key (entity.SafecamEntity: "<entry_id>_<key>") -> entity id, for the enabled entities;
    and entity id -> its name without the camera's (the view's heading says which camera)."""
    prefix = f"{entry.entry_id}_"
    by_key, names = {}, {}
    for reg in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        if reg.disabled_by is None and reg.unique_id.startswith(prefix):
            by_key[reg.unique_id.removeprefix(prefix)] = reg.entity_id
            if name := reg.name or reg.original_name:
                names[reg.entity_id] = name
    return by_key, names


def _names(entry: ConfigEntry, section: str) -> list[str]:
    """Zone or gate names of the stored scene (options[scene], as engine.config.SceneConfig.as_dict())."""
    items = (entry.options.get(CONF_SCENE) or {}).get(section) or []
    return [str(item["name"]) for item in items if isinstance(item, dict) and "name" in item]


def _view_path(entry: ConfigEntry) -> str:
    return slugify(entry.title, separator="-") or entry.entry_id.lower()


def _heading(text: str, icon: str) -> dict[str, Any]:
    return {"type": "heading", "heading": text, "icon": icon}


def _tiles(entity_ids: list[str], names: dict[str, str]) -> list[dict[str, Any]]:
    return [{"type": "tile", "entity": e, **({"name": names[e]} if e in names else {})} for e in entity_ids]


def camera_view(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, Any]:
    """One camera's view (a sections view); cards only for the entities the camera has."""
    by_key, names = _entities_by_key(hass, entry)
    zones, gates = _names(entry, "zones"), _names(entry, "gates")

    def ids(*keys: str) -> list[str]:
        return [by_key[k] for k in keys if k in by_key]

    people = ids("people")
    gate_counts = ids(*(f"gate_{g}_{d}" for g in gates for d in ("in", "out")))
    zone_people = ids(*(f"zone_{z}_people" for z in zones))
    zone_counts = ids(*(f"zone_{z}_{k}" for z in zones for k in ZONE_COUNTS if k != "people"))
    states = ids(*CAMERA_STATES, *(f"zone_{z}_{k}" for z in zones for k in ZONE_STATES))
    event_counters = [by_key[k] for k in sorted(by_key) if k.startswith("events_")]
    events = ids("safety")
    logged = events + ids(*CAMERA_STATES, *(f"zone_{z}_{k}" for z in zones for k in LOGGED_STATES))
    full = {"grid_options": {"columns": "full"}}

    live: list[dict[str, Any]] = [_heading(entry.title, "mdi:cctv")]
    for camera in ids("anonymized"):
        name = {"name": names[camera]} if camera in names else {}
        live.append({"type": "picture-entity", "entity": camera, "camera_view": "live", "show_state": False, **name, **full})
    live += _tiles(ids("connected", "analysis_fps"), names)
    heat: list[dict[str, Any]] = [_heading("Heatmap (last hour)", "mdi:fire")]
    heat += [{"type": "picture", "image_entity": image, **full} for image in ids("heatmap")]
    counts = [
        _heading("Counts", "mdi:counter"),
        *_tiles(people + gate_counts + zone_people + zone_counts + ids("people_without_ppe"), names),
    ]
    zone_cards = [_heading("Zones and safety", "mdi:shield-alert-outline"), *_tiles(states + ids("metric_rules"), names)]
    recent = [_heading("Recent events", "mdi:alert-circle-outline"), *_tiles(events, names)]
    if logged:
        recent.append({"type": "logbook", "entities": logged, "hours_to_show": HISTORY_HOURS, **full})
    history: list[dict[str, Any]] = [_heading("History", "mdi:chart-line")]
    if people + zone_people:
        history.append(
            {"type": "history-graph", "title": "People", "entities": people + zone_people, "hours_to_show": GRAPH_HOURS, **full}
        )
    if states:
        history.append(
            {"type": "history-graph", "title": "Zone states", "entities": states, "hours_to_show": GRAPH_HOURS, **full}
        )
    statistics: list[dict[str, Any]] = [_heading("Hourly statistics", "mdi:chart-bar")]
    for title, entities, stat_types, chart, days in (
        ("Entries and exits per hour", gate_counts, ["change"], "bar", STATISTICS_DAYS),
        ("Events per hour", event_counters, ["change"], "bar", EVENT_STATISTICS_DAYS),
        ("People per hour", people + zone_people, ["mean", "max"], "line", STATISTICS_DAYS),
    ):
        if entities:
            statistics.append(
                {
                    "type": "statistics-graph",
                    "title": title,
                    "entities": entities,
                    "stat_types": stat_types,
                    "period": "hour",
                    "chart_type": chart,
                    "days_to_show": days,
                    **full,
                }
            )
    sections = [live, heat, counts, zone_cards, recent, history, statistics]
    return {
        "title": entry.title,
        "path": _view_path(entry),
        "icon": "mdi:cctv",
        "type": "sections",
        "max_columns": 3,
        "sections": [{"type": "grid", "cards": cards} for cards in sections if len(cards) > 1],
    }


def site_view(hass: HomeAssistant, site: ConfigEntry) -> dict[str, Any]:
    """One site's view: its counts, the floor plan with the people on it, the site heatmap, its cameras'
    people, history and hourly statistics; cards only for the entities the site has (site_entry.py keys)."""
    by_key, names = _entities_by_key(hass, site)

    def ids(*keys: str) -> list[str]:
        return [by_key[k] for k in keys if k in by_key]

    counts = ids("site_people", "site_people_on_map")
    full = {"grid_options": {"columns": "full"}}
    overview: list[dict[str, Any]] = [_heading(site.title, "mdi:floor-plan"), *_tiles(counts, names)]
    plan: list[dict[str, Any]] = [_heading("Floor plan (people now)", "mdi:map-marker-account")]
    plan += [{"type": "picture", "image_entity": image, **full} for image in ids("site_floor_plan")]
    heat: list[dict[str, Any]] = [_heading("Site heatmap (last hour)", "mdi:fire")]
    heat += [{"type": "picture", "image_entity": image, **full} for image in ids("site_heatmap")]
    # The site's cameras (none chosen: every safecam camera), their people counts named by camera.
    cameras: list[dict[str, Any]] = [_heading("Cameras", "mdi:cctv")]
    chosen = site.options.get(CONF_SITE_CAMERAS) or []
    for camera in sorted(site_camera_entries(hass, chosen), key=lambda e: e.title.casefold()):
        if people := _entities_by_key(hass, camera)[0].get("people"):
            cameras.append({"type": "tile", "entity": people, "name": camera.title})
    history: list[dict[str, Any]] = [_heading("History", "mdi:chart-line")]
    if counts:
        history.append(
            {"type": "history-graph", "title": "Site people", "entities": counts, "hours_to_show": GRAPH_HOURS, **full}
        )
        history.append(
            {
                "type": "statistics-graph",
                "title": "Site people per hour",
                "entities": counts,
                "stat_types": ["mean", "max"],
                "period": "hour",
                "chart_type": "line",
                "days_to_show": STATISTICS_DAYS,
                **full,
            }
        )
    sections = [overview, plan, heat, cameras, history]
    return {
        "title": site.title,
        "path": _view_path(site),
        "icon": "mdi:floor-plan",
        "type": "sections",
        "max_columns": 3,
        "sections": [{"type": "grid", "cards": cards} for cards in sections if len(cards) > 1],
    }
