"""safecam: privacy-preserving safety sensors from CCTV cameras (Home Assistant integration).

This module imports nothing from Home Assistant or the engine at import time: importing
`custom_components.safecam.engine` runs this file first, and the engine must import and run
without Home Assistant (design invariant 5, tests/engine/test_standalone.py). The setup code
lives in `entry_setup`, imported in HA's import executor so the event loop never blocks on
importing OpenCV/numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.typing import ConfigType

    from .coordinator import SafecamConfigEntry

from .const import DOMAIN  # plain constants, no Home Assistant import


def __getattr__(name: str) -> Any:
    """CONFIG_SCHEMA, built on first use: config_validation is Home Assistant's, the engine must import without it."""
    if name == "CONFIG_SCHEMA":
        from homeassistant.helpers import config_validation as cv

        return cv.config_entry_only_config_schema(DOMAIN)  # set up from the UI only; YAML gets a warning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions (safecam.reset_counters) and the zone editor once, for every camera."""
    services = await hass.async_add_import_executor_job(importlib.import_module, f"{__name__}.services")
    services.async_setup_services(hass)
    panel = await hass.async_add_import_executor_job(importlib.import_module, f"{__name__}.panel")
    await panel.async_setup_panel(hass)  # the zone and gate editor (sidebar panel + websocket commands)
    return True


async def _entry_setup(hass: HomeAssistant) -> ModuleType:
    return await hass.async_add_import_executor_job(importlib.import_module, f"{__name__}.entry_setup")


async def async_setup_entry(hass: HomeAssistant, entry: SafecamConfigEntry) -> bool:
    """Set up one camera from a config entry."""
    return bool(await (await _entry_setup(hass)).async_setup_entry(hass, entry))


async def async_remove_entry(hass: HomeAssistant, entry: SafecamConfigEntry) -> None:
    """The camera was deleted: drop its repair issues, including ones kept across a restart."""
    await (await _entry_setup(hass)).async_remove_entry(hass, entry)


async def async_unload_entry(hass: HomeAssistant, entry: SafecamConfigEntry) -> bool:
    """Stop the camera's worker and unload its entities."""
    return bool(await (await _entry_setup(hass)).async_unload_entry(hass, entry))
