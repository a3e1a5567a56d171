"""Diagnostics: settings, engine state (with the analytics snapshots) and health. Credentials redacted, no pixels."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .const import CONF_PAIRING_KEY
from .coordinator import SafecamConfigEntry
from .engine.redact import redact_url
from .entries import is_site_entry

TO_REDACT = {CONF_URL, CONF_USERNAME, CONF_PASSWORD, CONF_PAIRING_KEY, "source_url", "unique_id"}


def _scrub(value: Any) -> Any:
    """Credentials inside any URL-looking string (error messages, ...) go too; never pixels or bytes."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return "<omitted>"  # an analyzer snapshot must not carry images; if one does, it stops here
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # a numpy array or scalar (in-process analyzers)
        return "<omitted>" if getattr(value, "size", 1) > 16 else _scrub(value.tolist())
    return value


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: SafecamConfigEntry) -> dict[str, Any]:
    if is_site_entry(entry):
        return _site_diagnostics(entry)
    runtime = entry.runtime_data
    state = runtime.state
    data = {
        "entry": entry.as_dict(),
        "settings": {
            "fps": runtime.settings.fps,
            "anonymization": runtime.settings.anonymization,
            "scene": runtime.settings.scene.as_dict(),
            "capabilities": runtime.settings.capabilities.as_dict(),  # which analytics entities exist
        },
        **runtime.diagnostics(),
        "state": dataclasses.asdict(state) if state is not None else None,
    }
    return _scrub(async_redact_data(data, TO_REDACT))


def _site_diagnostics(entry: Any) -> dict[str, Any]:
    """A site: its settings and what it fuses now (floor positions in metres; no pictures, no identities)."""
    site = entry.runtime_data
    flows = site.flows
    return _scrub(
        {
            "entry": async_redact_data(entry.as_dict(), TO_REDACT),
            "cameras": sorted(site.site_cameras()),
            "occupancy": {"people": flows.occupancy, "entries": flows.entries, "exits": flows.exits},
            "people_on_map": [{"x_m": round(p.x, 2), "y_m": round(p.y, 2), "cameras": list(p.cameras)} for p in site.people],
            "seen_by_cameras": site.seen_by_cameras,
        }
    )
