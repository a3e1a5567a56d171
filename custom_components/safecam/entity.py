"""Base entity: one device per camera, translated names, push updates from the runtime."""

from __future__ import annotations

import time
from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .contract import CameraState
from .coordinator import SafecamConfigEntry, SafecamRuntime


def device_info(entry: SafecamConfigEntry) -> DeviceInfo:
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="safecam",
        model="Camera analytics",
    )


class SafecamEntity(Entity):
    """Writes its state only when what it shows changed (the worker pushes every analysed frame)."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    # True: available without a connected stream (health entities, restored counters).
    _always_available = False
    # Seconds between state writes of fast-changing values (diagnostics); 0 = every change.
    _min_write_interval = 0.0

    def __init__(self, entry: SafecamConfigEntry, key: str) -> None:
        self._runtime: SafecamRuntime = entry.runtime_data
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = device_info(entry)
        self._runtime.expected_unique_ids.add(self._attr_unique_id)
        self._shown: tuple[bool, Any] | None = None
        self._last_write = 0.0

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._runtime.async_add_listener(self._async_state_updated))
        self._update(self._runtime.state)
        self._shown = self._fingerprint()

    @property
    def available(self) -> bool:
        state = self._runtime.state
        return self._runtime.available and (self._always_available or (state is not None and state.connected))

    def _update(self, state: CameraState | None) -> None:
        """Set the _attr_* values from the engine state (None before the first push)."""

    def _shown_value(self) -> Any:
        """What the entity shows besides availability; a state write happens when it changes."""
        return None

    def _fingerprint(self) -> tuple[bool, Any]:
        return self.available, self._shown_value()

    @callback
    def _async_state_updated(self) -> None:
        self._update(self._runtime.state)
        shown = self._fingerprint()
        if shown == self._shown:
            return
        now = time.monotonic()
        recent = now - self._last_write < self._min_write_interval
        if recent and self._shown is not None and shown[0] == self._shown[0]:
            return  # same availability, value changed too recently: a later push writes it
        self._shown, self._last_write = shown, now
        self.async_write_ha_state()


class ZoneEntity(SafecamEntity):
    """An entity about one zone of the camera (its name goes into the translated entity name)."""

    def __init__(self, entry: SafecamConfigEntry, zone: str, key: str) -> None:
        super().__init__(entry, f"zone_{zone}_{key}")
        self._zone = zone
        self._attr_translation_placeholders = {"zone": zone}

    def _zone_state(self, state: CameraState | None) -> dict[str, Any] | None:
        return state.zones.get(self._zone) if state is not None else None
