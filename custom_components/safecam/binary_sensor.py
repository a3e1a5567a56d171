"""Binary sensors: zone occupied, danger zone intruded, camera stream connected."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import SafecamConfigEntry
from .engine.worker import CameraState
from .entity import SafecamEntity, ZoneEntity

PARALLEL_UPDATES = 0  # push only


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    scene = entry.runtime_data.settings.scene
    entities: list[BinarySensorEntity] = [ConnectedBinarySensor(entry)]
    entities += [ZoneOccupiedBinarySensor(entry, z.name) for z in scene.zones]
    entities += [ZoneIntrudedBinarySensor(entry, z.name) for z in scene.zones if z.kind == "danger"]
    async_add_entities(entities)


class _StateBinarySensor(SafecamEntity, BinarySensorEntity):
    def _shown_value(self) -> Any:
        return self._attr_is_on


class ConnectedBinarySensor(_StateBinarySensor):
    _attr_translation_key = "connected"
    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _always_available = True

    def __init__(self, entry: SafecamConfigEntry) -> None:
        super().__init__(entry, "connected")

    def _update(self, state: CameraState | None) -> None:
        self._attr_is_on = state is not None and state.connected


class ZoneOccupiedBinarySensor(ZoneEntity, _StateBinarySensor):
    """On while the engine's zone is occupied (with its on/off delays against flicker)."""

    _attr_translation_key = "zone_occupied"
    _attr_device_class = BinarySensorDeviceClass.OCCUPANCY

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "occupied")

    def _update(self, state: CameraState | None) -> None:
        zone = self._zone_state(state)
        self._attr_is_on = bool(zone["occupied"]) if zone else None


class ZoneIntrudedBinarySensor(ZoneEntity, _StateBinarySensor):
    """Danger zones only: on (unsafe) while anyone is inside."""

    _attr_translation_key = "zone_intruded"
    _attr_device_class = BinarySensorDeviceClass.SAFETY

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "intruded")

    def _update(self, state: CameraState | None) -> None:
        zone = self._zone_state(state)
        self._attr_is_on = int(zone["people"]) > 0 if zone else None
