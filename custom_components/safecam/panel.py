"""The zone and gate editor: a sidebar panel (admins only) plus its websocket commands.

The panel is a plain web component served from www/ by HA's own HTTP server; it reads and writes
a camera's zones and gates through the websocket API (HA's authentication, admin only). Saving
stores the entry options exactly as the options flow does, so the update listener applies the
change live (or reloads when entities come or go). Only `zones` and `gates` are edited: every
other scene section is kept as stored, and the merged scene is validated with parse_scene (for a remote
camera, zones and gates here and the sections by its engine).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from homeassistant.components import panel_custom, websocket_api
from homeassistant.components.http import StaticPathConfig
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

from .const import CONF_SCENE, DOMAIN, PANEL_TITLE
from .engine.config import ConfigError, import_section_parsers, parse_scene
from .entries import is_remote_entry, is_site_entry
from .remote import async_engine_takes_scene
from .validation import vol

WWW_DIR = Path(__file__).parent / "www"
STATIC_URL = "/safecam_static"
PANEL_URL_PATH = "safecam"
PANEL_COMPONENT = "safecam-panel"
PANEL_JS = "safecam-panel.js"
_DATA_KEY = f"{DOMAIN}_panel"


async def async_setup_panel(hass: HomeAssistant) -> None:
    """Register the static files, the sidebar panel and the websocket commands (once per HA run)."""
    if hass.data.get(_DATA_KEY):
        return
    hass.data[_DATA_KEY] = True
    # Cache busting: the browser caches static files, the URL changes when the file does.
    version = await hass.async_add_executor_job(_file_hash, WWW_DIR / PANEL_JS)
    await hass.http.async_register_static_paths([StaticPathConfig(STATIC_URL, str(WWW_DIR), cache_headers=True)])
    await panel_custom.async_register_panel(
        hass,
        frontend_url_path=PANEL_URL_PATH,
        webcomponent_name=PANEL_COMPONENT,
        sidebar_title=PANEL_TITLE,
        sidebar_icon="mdi:vector-polygon",
        module_url=f"{STATIC_URL}/{PANEL_JS}?v={version}",
        embed_iframe=False,
        require_admin=True,
    )
    websocket_api.async_register_command(hass, ws_entries)
    websocket_api.async_register_command(hass, ws_scene_get)
    websocket_api.async_register_command(hass, ws_scene_set)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _entry(hass: HomeAssistant, connection: websocket_api.ActiveConnection, msg: dict[str, Any]) -> ConfigEntry | None:
    entry = hass.config_entries.async_get_entry(msg["entry_id"])
    if entry is None or entry.domain != DOMAIN or is_site_entry(entry):
        connection.send_error(msg["id"], websocket_api.ERR_NOT_FOUND, f"no safecam camera with entry id {msg['entry_id']}")
        return None
    return entry


def _camera_entity_id(hass: HomeAssistant, entry: ConfigEntry) -> str | None:
    """The camera's anonymized view (the only picture the editor shows; never a raw frame)."""
    return er.async_get(hass).async_get_entity_id("camera", DOMAIN, f"{entry.entry_id}_anonymized")


def _scene(entry: ConfigEntry) -> dict[str, Any]:
    return dict(entry.options.get(CONF_SCENE) or {})


@websocket_api.websocket_command({vol.Required("type"): "safecam/entries"})
@websocket_api.require_admin
@callback
def ws_entries(hass: HomeAssistant, connection: websocket_api.ActiveConnection, msg: dict[str, Any]) -> None:
    """The safecam cameras: entry id, title and the anonymized camera entity."""
    entries = [
        {"entry_id": e.entry_id, "title": e.title, "camera_entity_id": _camera_entity_id(hass, e)}
        for e in hass.config_entries.async_entries(DOMAIN)
        if not is_site_entry(e)
    ]
    connection.send_result(msg["id"], {"entries": entries})


@websocket_api.websocket_command({vol.Required("type"): "safecam/scene/get", vol.Required("entry_id"): str})
@websocket_api.require_admin
@callback
def ws_scene_get(hass: HomeAssistant, connection: websocket_api.ActiveConnection, msg: dict[str, Any]) -> None:
    if (entry := _entry(hass, connection, msg)) is None:
        return
    scene = _scene(entry)
    connection.send_result(
        msg["id"],
        {
            "zones": scene.get("zones") or [],
            "gates": scene.get("gates") or [],
            "camera_entity_id": _camera_entity_id(hass, entry),
            "title": entry.title,
        },
    )


@websocket_api.websocket_command(
    {
        vol.Required("type"): "safecam/scene/set",
        vol.Required("entry_id"): str,
        vol.Required("zones"): list,
        vol.Required("gates"): list,
    }
)
@websocket_api.require_admin
@websocket_api.async_response
async def ws_scene_set(hass: HomeAssistant, connection: websocket_api.ActiveConnection, msg: dict[str, Any]) -> None:
    """Validate the new zones/gates together with the stored sections, then store them (applied live). A remote
    camera's engine must take them first: its refusal (or silence) is the error, and nothing is stored."""
    if (entry := _entry(hass, connection, msg)) is None:
        return
    scene = {**_scene(entry), "zones": msg["zones"], "gates": msg["gates"]}
    sections = not is_remote_entry(entry)
    try:
        # A remote camera's engine validates the other sections (set_scene); HA checks zones and gates, numpy-free.
        if sections:  # their parsers import analyzer modules (numpy): in the import executor, not on the loop
            await hass.async_add_import_executor_job(import_section_parsers, scene)
        parsed = parse_scene(scene, sections=sections)
    except ConfigError as err:
        connection.send_error(msg["id"], "invalid_scene", str(err))
        return
    stored = parsed.as_dict()
    if (problem := await async_engine_takes_scene(entry, stored)) is not None:
        connection.send_error(msg["id"], problem.key, str(problem))  # the panel shows "Not saved: <this>"
        return
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_SCENE: stored})
    if entry.state is ConfigEntryState.SETUP_ERROR:
        # Setup failed (e.g. on a scene stored invalid): no update listener runs, so retry here.
        hass.config_entries.async_schedule_reload(entry.entry_id)
    connection.send_result(msg["id"], {"zones": stored["zones"], "gates": stored["gates"]})
