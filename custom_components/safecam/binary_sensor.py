"""Binary sensors: zone occupied, danger zone intruded, person down, PPE violation, congestion, camera connected."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .contract import CameraState
from .coordinator import SafecamConfigEntry, analytics_of, safety_zone
from .entity import SafecamEntity, ZoneEntity

PARALLEL_UPDATES = 0  # push only


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    caps = entry.runtime_data.settings.capabilities  # contract.capabilities: the engine's analyzers decide
    entities: list[BinarySensorEntity] = [ConnectedBinarySensor(entry)]
    entities += [ZoneOccupiedBinarySensor(entry, name) for name, _kind in caps.zones]
    entities += [ZoneIntrudedBinarySensor(entry, zone) for zone in caps.intrusion_zones]
    if caps.runs("falls"):
        entities.append(PersonDownBinarySensor(entry))
    if caps.runs("ppe"):
        entities.append(PpeViolationBinarySensor(entry))
    if caps.distancing:
        entities.append(DistancingBinarySensor(entry))
    entities += [ZoneCongestionHighBinarySensor(entry, zone) for zone in caps.congestion_zones]
    entities += [ZoneMachineActiveBinarySensor(entry, zone) for zone in caps.machine_zones]
    async_add_entities(entities)


class _StateBinarySensor(SafecamEntity, BinarySensorEntity):
    def _shown_value(self) -> Any:
        return self._attr_is_on, getattr(self, "_attr_extra_state_attributes", None)


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
    """Danger zones: on (unsafe) while someone is inside.

    With the safety analyzer running, its `intruded` state decides (it knows the zone's arming
    schedule: a disarmed zone is not intruded) and `armed` is an attribute; without it, anyone
    inside the zone counts.
    """

    _attr_translation_key = "zone_intruded"
    _attr_device_class = BinarySensorDeviceClass.SAFETY

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "intruded")
        self._attr_extra_state_attributes = {}

    def _update(self, state: CameraState | None) -> None:
        if (safety := safety_zone(state, self._zone)) is not None and "intruded" in safety:
            self._attr_is_on = bool(safety["intruded"])
            armed = safety.get("armed")
            self._attr_extra_state_attributes = {} if armed is None else {"armed": bool(armed)}
            return
        zone = self._zone_state(state)
        self._attr_is_on = int(zone["people"]) > 0 if zone else None
        self._attr_extra_state_attributes = {}


class PersonDownBinarySensor(_StateBinarySensor):
    """On (unsafe) while the fall analyzer sees someone down; attributes count the down and the immobile."""

    _attr_translation_key = "person_down"
    _attr_device_class = BinarySensorDeviceClass.SAFETY

    def __init__(self, entry: SafecamConfigEntry) -> None:
        super().__init__(entry, "person_down")
        self._attr_extra_state_attributes = {}

    def _update(self, state: CameraState | None) -> None:
        falls = analytics_of(state, "falls")
        if falls is None:
            self._attr_is_on, self._attr_extra_state_attributes = None, {}
            return
        down, immobile = falls.get("down") or [], falls.get("immobile") or []
        self._attr_is_on = bool(falls.get("person_down"))
        zones = sorted({str(p["zone"]) for p in (*down, *immobile) if isinstance(p, dict) and p.get("zone")})
        self._attr_extra_state_attributes = {"people_down": len(down), "people_immobile": len(immobile), "zones": zones}


class PpeViolationBinarySensor(_StateBinarySensor):
    """On (unsafe) while someone lacks the PPE the scene's `ppe:` section requires."""

    _attr_translation_key = "ppe_violation"
    _attr_device_class = BinarySensorDeviceClass.SAFETY

    def __init__(self, entry: SafecamConfigEntry) -> None:
        super().__init__(entry, "ppe_violation")

    def _update(self, state: CameraState | None) -> None:
        ppe = analytics_of(state, "ppe")
        self._attr_is_on = bool(ppe.get("violation_active")) if ppe is not None else None


class DistancingBinarySensor(_StateBinarySensor):
    """On (unsafe) while people stay closer than the configured distance (needs a calibration)."""

    _attr_translation_key = "distancing"
    _attr_device_class = BinarySensorDeviceClass.SAFETY

    def __init__(self, entry: SafecamConfigEntry) -> None:
        super().__init__(entry, "distancing")

    def _update(self, state: CameraState | None) -> None:
        safety = analytics_of(state, "safety")
        active = safety.get("distancing_active") if safety is not None else None
        self._attr_is_on = None if active is None else bool(active)


class ZoneCongestionHighBinarySensor(ZoneEntity, _StateBinarySensor):
    """On while the zone's congestion level is high (unknown while the engine cannot tell)."""

    _attr_translation_key = "zone_congestion_high"
    _attr_device_class = BinarySensorDeviceClass.PROBLEM

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "congestion_high")

    def _update(self, state: CameraState | None) -> None:
        level = (safety_zone(state, self._zone) or {}).get("congestion")
        self._attr_is_on = None if level is None else level == "high"


class ZoneMachineActiveBinarySensor(ZoneEntity, _StateBinarySensor):
    """Equipment zones: on while the safety analyzer sees the machine working."""

    _attr_translation_key = "zone_machine_active"
    _attr_device_class = BinarySensorDeviceClass.RUNNING

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "machine_active")

    def _update(self, state: CameraState | None) -> None:
        active = (safety_zone(state, self._zone) or {}).get("machine_active")
        self._attr_is_on = None if active is None else bool(active)
