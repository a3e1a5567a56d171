"""Integration actions (registered once in async_setup, for every camera): safecam.reset_counters, export_heatmap.

Imports nothing of the engine at module level (the package __init__ imports this in the import
executor at HA start, before any camera is set up); each camera's runtime does the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import DOMAIN
from .contract import HEATMAP_WINDOWS
from .dashboard import async_setup_dashboard
from .entries import ATTR_CONFIG_ENTRY_ID, async_targeted_entry_ids, is_site_entry
from .exports import async_check_admin, export_folder, export_name, export_url, write_exports
from .report import async_setup_report
from .validation import vol

if TYPE_CHECKING:
    from .coordinator import SafecamConfigEntry, SafecamRuntime

SERVICE_RESET_COUNTERS = "reset_counters"
ATTR_GATE = "gate"

RESET_COUNTERS_SCHEMA = vol.Schema(
    {
        **cv.ENTITY_SERVICE_FIELDS,  # target: safecam camera devices (or any of their entities, or areas)
        vol.Optional(ATTR_CONFIG_ENTRY_ID): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_GATE): cv.string,
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    hass.services.async_register(DOMAIN, SERVICE_RESET_COUNTERS, _async_reset_counters, schema=RESET_COUNTERS_SCHEMA)
    _async_setup_export_heatmap(hass)
    async_setup_report(hass)  # safecam.export_report (report.py)
    async_setup_dashboard(hass)  # websocket safecam/dashboard + the Lovelace strategy custom:safecam (dashboard.py)


def _targeted_entries(hass: HomeAssistant, entry_ids: set[str]) -> list[SafecamConfigEntry]:
    entries: list[SafecamConfigEntry] = []
    for entry_id in sorted(entry_ids):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN or is_site_entry(entry):
            continue  # a device or area also holds other integrations' entries (and sites are not cameras)
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="camera_not_loaded", translation_placeholders={"name": entry.title}
            )
        entries.append(entry)
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_camera_targeted")
    return entries


async def _async_reset_counters(call: ServiceCall) -> None:
    """Gate entries/exits of the targeted cameras back to zero (engine totals and the sensors' restored values)."""
    hass = call.hass
    entry_ids = await async_targeted_entry_ids(call)
    entries = _targeted_entries(hass, entry_ids)
    gate: str | None = call.data.get(ATTR_GATE)
    if gate is not None:
        from .engine.config import shown

        for entry in entries:
            names = [g.name for g in entry.runtime_data.settings.scene.gates]
            if gate not in names:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="unknown_gate",
                    # The caller's text, bounded on one line (an error message is also a log line).
                    translation_placeholders={"gate": shown(gate), "name": entry.title, "gates": ", ".join(names) or "-"},
                )
    for entry in entries:
        await entry.runtime_data.async_reset_counters(None if gate is None else {gate})


# ---- safecam.export_heatmap -------------------------------------------------------------------

SERVICE_EXPORT_HEATMAP = "export_heatmap"
ATTR_WINDOW = "window"
ATTR_NAME = "name"

EXPORT_HEATMAP_SCHEMA = vol.Schema(
    {
        **cv.ENTITY_SERVICE_FIELDS,
        vol.Optional(ATTR_CONFIG_ENTRY_ID): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_WINDOW, default="hour"): vol.In(HEATMAP_WINDOWS),
        vol.Optional(ATTR_NAME): cv.string,  # checked by export_name: a refusal is a ServiceValidationError
    }
)


@callback
def _async_setup_export_heatmap(hass: HomeAssistant) -> None:
    hass.services.async_register(
        DOMAIN,
        SERVICE_EXPORT_HEATMAP,
        _async_export_heatmap,
        schema=EXPORT_HEATMAP_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


def _write_heatmap(hass: HomeAssistant, runtime: SafecamRuntime, window: str, path: Path) -> None:
    write_exports(hass, {path: runtime.heatmap_png(window)})


async def _async_export_heatmap(call: ServiceCall) -> ServiceResponse:
    """PNG of one camera's occupancy heatmap for the last hour, day or week, over its anonymized view, written to
    <config>/www/safecam/exports/<name>.png (admins only: /local is public)."""
    await async_check_admin(call)
    hass = call.hass
    window: str = call.data[ATTR_WINDOW]
    name = export_name(call.data.get(ATTR_NAME), f"heatmap_{window}")
    entry_ids = await async_targeted_entry_ids(call)
    entries = _targeted_entries(hass, entry_ids)
    if len(entries) != 1:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="heatmap_one_camera")
    if not entries[0].runtime_data.heatmap_ready(window):
        # An engine camera whose engine has not sent this window's picture yet: no heat-less picture passed off as one.
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="heatmap_not_received",
            translation_placeholders={"name": entries[0].title, "window": window},
        )
    path = export_folder(hass) / f"{name}.png"
    await hass.async_add_executor_job(_write_heatmap, hass, entries[0].runtime_data, window, path)
    return {"path": str(path), "url": export_url(path), "window": window}
