"""Sensors: people present (camera and per zone), gate entries/exits (restart-safe), diagnostics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .coordinator import SafecamConfigEntry
from .engine.worker import CameraState
from .entity import SafecamEntity, ZoneEntity

PARALLEL_UPDATES = 0  # push only


@dataclass(frozen=True, kw_only=True)
class SafecamSensorDescription(SensorEntityDescription):
    value_fn: Callable[[CameraState], StateType]
    always_available: bool = False
    min_write_interval: float = 0.0


CAMERA_SENSORS: tuple[SafecamSensorDescription, ...] = (
    SafecamSensorDescription(
        key="people",
        translation_key="people",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.people,
    ),
    SafecamSensorDescription(
        key="analysis_fps",
        translation_key="analysis_fps",
        native_unit_of_measurement="fps",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=1,
        value_fn=lambda s: round(s.analysis_fps, 1),
        always_available=True,
        min_write_interval=10.0,
    ),
    SafecamSensorDescription(
        key="inference_ms",
        translation_key="inference_time",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        suggested_display_precision=0,
        value_fn=lambda s: round(s.inference_ms),
        always_available=True,
        min_write_interval=10.0,
    ),
    SafecamSensorDescription(
        key="dropped_frames",
        translation_key="dropped_frames",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda s: s.dropped_frames,
        always_available=True,
        min_write_interval=10.0,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    scene = entry.runtime_data.settings.scene
    entities: list[SensorEntity] = [SafecamSensor(entry, d) for d in CAMERA_SENSORS]
    entities += [ZonePeopleSensor(entry, z.name) for z in scene.zones]
    entities += [GateCountSensor(entry, g.name, direction) for g in scene.gates for direction in ("in", "out")]
    async_add_entities(entities)


class SafecamSensor(SafecamEntity, SensorEntity):
    entity_description: SafecamSensorDescription

    def __init__(self, entry: SafecamConfigEntry, description: SafecamSensorDescription) -> None:
        self.entity_description = description
        self._always_available = description.always_available
        self._min_write_interval = description.min_write_interval
        super().__init__(entry, description.key)

    def _update(self, state: CameraState | None) -> None:
        self._attr_native_value = None if state is None else self.entity_description.value_fn(state)

    def _shown_value(self) -> Any:
        return self._attr_native_value


class ZonePeopleSensor(ZoneEntity, SensorEntity):
    _attr_translation_key = "zone_people"
    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "people")

    def _update(self, state: CameraState | None) -> None:
        zone = self._zone_state(state)
        self._attr_native_value = int(zone["people"]) if zone else None

    def _shown_value(self) -> Any:
        return self._attr_native_value


class GateCountSensor(SafecamEntity, RestoreSensor):
    """Cumulative crossings; the last recorded value is handed back to the engine at start."""

    _attr_state_class = SensorStateClass.TOTAL_INCREASING
    _always_available = True  # a restored total is valid while the stream is down

    def __init__(self, entry: SafecamConfigEntry, gate: str, direction: str) -> None:
        super().__init__(entry, f"gate_{gate}_{direction}")
        self._gate, self._direction = gate, direction
        self._attr_translation_key = "gate_entries" if direction == "in" else "gate_exits"
        self._attr_translation_placeholders = {"gate": gate}
        self._attr_native_value = 0

    async def async_added_to_hass(self) -> None:
        restored = await self._restored_total()
        if restored is not None:
            self._attr_native_value = restored
            await self._runtime.async_restore_gate_total(self._gate, self._direction, restored)
        await super().async_added_to_hass()

    async def _restored_total(self) -> int | None:
        value: Any = None
        if (data := await self.async_get_last_sensor_data()) is not None:
            value = data.native_value
        elif (last := await self.async_get_last_state()) is not None:
            value = last.state
        try:
            return max(0, int(float(value))) if value is not None else None
        except (TypeError, ValueError):
            return None  # unknown / unavailable

    def _update(self, state: CameraState | None) -> None:
        counts = state.gates.get(self._gate) if state is not None else None
        if counts and self._direction in counts:
            self._attr_native_value = int(counts[self._direction])

    def _shown_value(self) -> Any:
        return self._attr_native_value
