"""safecam: privacy-preserving safety sensors from CCTV cameras (Home Assistant integration).

This module imports nothing from Home Assistant or the engine at import time: importing
`custom_components.safecam.engine` runs this file first, and the engine must import and run
without Home Assistant (design invariant 5, tests/engine/test_standalone.py). The setup code
lives in `entry_setup`, imported in HA's import executor so the event loop never blocks on
importing OpenCV/numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    from homeassistant.core import HomeAssistant

    from .coordinator import SafecamConfigEntry


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
