"""Image: the occupancy heatmap of the last hour, drawn over the anonymized view. Never a raw frame.

The picture is the runtime's (in-process: the engine's per-camera heatmap store drawn over the worker's
anonymized JPEG, local.py; remote: the PNG the engine renders the same way and publishes, signed, on
P/<camera>/heatmap/hour, remote.py). The picture changes at most once per REFRESH_S, so the entity's state
(image_last_updated) does not churn with every analysed frame.
"""

from __future__ import annotations

import time
from typing import Any

from homeassistant.components.image import ImageEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .contract import CameraState
from .coordinator import SafecamConfigEntry
from .entity import SafecamEntity
from .entries import is_site_entry

PARALLEL_UPDATES = 0
REFRESH_S = 60.0
DEFAULT_WINDOW = "hour"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    if is_site_entry(entry):  # a site device (site_entry.py, loaded by its entry's setup: not for cameras)
        from .site_entry import site_images

        async_add_entities(site_images(hass, entry))  # type: ignore[arg-type]
        return
    async_add_entities([HeatmapImage(hass, entry)])


class HeatmapImage(SafecamEntity, ImageEntity):
    _attr_translation_key = "heatmap"
    _attr_content_type = "image/png"
    _always_available = True  # the history stays viewable while the stream is down

    def __init__(self, hass: HomeAssistant, entry: SafecamConfigEntry) -> None:
        SafecamEntity.__init__(self, entry, "heatmap")
        ImageEntity.__init__(self, hass)
        self._refreshed = 0.0  # monotonic time of the last new picture
        self._total = -1  # the store's count at the last new picture
        self._ready = False  # whether that picture was a real heatmap (an engine camera's comes a little later)
        self._cached: tuple[Any, bytes] | None = None  # (image_last_updated, PNG)

    def _update(self, state: CameraState | None) -> None:
        total = self._runtime.heatmap_total
        ready = self._runtime.heatmap_ready(DEFAULT_WINDOW)
        now = time.monotonic()
        first = self._attr_image_last_updated is None or ready != self._ready  # the first real picture: at once
        if first or (total != self._total and now - self._refreshed >= REFRESH_S):
            self._total, self._refreshed, self._ready = total, now, ready
            self._attr_image_last_updated = dt_util.utcnow()

    def _shown_value(self) -> Any:
        return self._attr_image_last_updated

    async def async_image(self) -> bytes | None:
        stamp = self._attr_image_last_updated
        if self._cached is not None and self._cached[0] == stamp:
            return self._cached[1]
        png = await self.hass.async_add_executor_job(self._runtime.heatmap_png, DEFAULT_WINDOW)
        self._cached = (stamp, png)
        return png
