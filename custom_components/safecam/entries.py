"""Which safecam config entries are cameras and which are sites. Light: imported at start-up (services)."""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers.service import async_extract_config_entry_ids

from .const import CONF_ENTRY_KIND, CONF_SOURCE_TYPE, DOMAIN, ENTRY_KIND_SITE, SOURCE_MQTT


def is_remote_entry(entry: ConfigEntry) -> bool:
    """A camera of an engine service (the add-on, a container, `serve`), reached over MQTT (remote.py)."""
    return entry.data.get(CONF_SOURCE_TYPE) == SOURCE_MQTT


def is_site_entry(entry: ConfigEntry) -> bool:
    """A site device over several cameras (site_entry.py), not a camera."""
    return entry.data.get(CONF_ENTRY_KIND) == ENTRY_KIND_SITE


def camera_entries(hass: HomeAssistant) -> list[ConfigEntry]:
    """The safecam camera entries (embedded or remote), not the sites; disabled ones watch nothing."""
    return [
        e for e in hass.config_entries.async_entries(DOMAIN, include_ignore=False, include_disabled=False) if not is_site_entry(e)
    ]


ATTR_CONFIG_ENTRY_ID = "config_entry_id"  # actions' field naming cameras by entry id (besides the target)

# HA up to 2025.x takes (hass, call); current HA takes (call). Typed Any: mypy sees only one of the two.
_extract_entry_ids: Any = async_extract_config_entry_ids
_EXTRACT_TAKES_HASS = next(iter(inspect.signature(_extract_entry_ids).parameters)) == "hass"


async def async_targeted_entry_ids(call: ServiceCall) -> set[str]:
    """The config entries an action targets: through its target (devices, entities, areas, ...) and by config_entry_id."""
    args = (call.hass, call) if _EXTRACT_TAKES_HASS else (call,)
    return set(await _extract_entry_ids(*args)) | set(call.data.get(ATTR_CONFIG_ENTRY_ID, []))


def site_camera_entries(hass: HomeAssistant, chosen: Collection[str]) -> list[ConfigEntry]:
    """The cameras of a site: those chosen by entry id, or every safecam camera when none is chosen."""
    return [e for e in camera_entries(hass) if not chosen or e.entry_id in chosen]
