"""Sensors: people present (camera and per zone), gate entries/exits (restart-safe), diagnostics."""

from __future__ import annotations

import contextlib
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
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .const import CONGESTION_LEVELS, METRIC_RULES_STATES
from .contract import CameraState, SafetyEvent
from .coordinator import SafecamConfigEntry, analytics_of, safety_zone
from .entity import SafecamEntity, ZoneEntity
from .entries import is_site_entry

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
    if is_site_entry(entry):  # a site device (site_entry.py, loaded by its entry's setup: not for cameras)
        from .site_entry import site_sensors

        async_add_entities(site_sensors(entry))  # type: ignore[arg-type]
        return
    caps = entry.runtime_data.settings.capabilities  # contract.capabilities: the engine's analyzers decide
    entities: list[SensorEntity] = [SafecamSensor(entry, d) for d in CAMERA_SENSORS]
    entities += [ZonePeopleSensor(entry, name) for name, _kind in caps.zones]
    entities += [GateCountSensor(entry, gate, direction) for gate in caps.gates for direction in ("in", "out")]
    entities += [ZoneOccupancySensor(entry, z) for z in caps.occupancy_zones]
    entities += [ZoneDwellSensor(entry, z) for z in caps.occupancy_zones]
    entities += safety_sensors(entry)
    entities += [EventCountSensor(entry, t) for t in caps.event_types if t in EVENT_COUNTERS]
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

    @property
    def suggested_object_id(self) -> str | None:
        # The name is short to fit a tile ("<gate> in"; "<gate> entries" was cut off); the entity id keeps the
        # documented long form (sensor.<camera>_<gate>_entries / _exits) that automations use.
        return f"{self._gate} {'entries' if self._direction == 'in' else 'exits'}"

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


# ---- Occupancy and dwell (analytics["occupancy"]; zones listed under the scene's `occupancy:`) ----


def _occupancy_zone(state: CameraState | None, zone: str) -> dict[str, Any] | None:
    snapshot = state.analytics.get("occupancy") if state is not None else None
    zones = snapshot.get("zones") if isinstance(snapshot, dict) else None
    found = zones.get(zone) if isinstance(zones, dict) else None
    return found if isinstance(found, dict) else None


class ZoneOccupancySensor(ZoneEntity, SensorEntity):
    """People in the zone: entries minus exits through its gates (corrected by what is seen), else the people seen."""

    _attr_translation_key = "zone_occupancy"
    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "occupancy")
        self._attr_extra_state_attributes = {}

    def _update(self, state: CameraState | None) -> None:
        zone = _occupancy_zone(state, self._zone)
        self._attr_native_value = int(zone["occupancy"]) if zone is not None else None
        self._attr_extra_state_attributes = {"source": zone["source"]} if zone is not None else {}

    def _shown_value(self) -> Any:
        return self._attr_native_value, self._attr_extra_state_attributes


class ZoneDwellSensor(ZoneEntity, SensorEntity):
    """How long the person who has been in the zone longest has been there (0 when empty)."""

    _attr_translation_key = "zone_longest_dwell"
    _attr_device_class = SensorDeviceClass.DURATION
    _attr_native_unit_of_measurement = UnitOfTime.SECONDS
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 0
    _min_write_interval = 5.0  # it grows every frame; a state write per frame would flood the recorder

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "longest_dwell")

    def _update(self, state: CameraState | None) -> None:
        zone = _occupancy_zone(state, self._zone)
        self._attr_native_value = round(float(zone["longest_dwell_s"])) if zone is not None else None

    def _shown_value(self) -> Any:
        return self._attr_native_value


# ---- Safety analytics (falls, PPE, safety rules): analytics["ppe"], analytics["safety"], fail-closed frames ----


def _ppe_without(state: CameraState) -> StateType:
    ppe = analytics_of(state, "ppe")
    return int(ppe.get("people_without_ppe") or 0) if ppe is not None else None


FAIL_CLOSED_FRAMES = SafecamSensorDescription(
    key="fail_closed_frames",
    translation_key="fail_closed_frames",
    state_class=SensorStateClass.TOTAL_INCREASING,
    entity_category=EntityCategory.DIAGNOSTIC,
    value_fn=lambda s: s.fail_closed_frames,
    always_available=True,
    min_write_interval=10.0,
)
PEOPLE_WITHOUT_PPE = SafecamSensorDescription(
    key="people_without_ppe",
    translation_key="people_without_ppe",
    state_class=SensorStateClass.MEASUREMENT,
    value_fn=_ppe_without,
)


def safety_sensors(entry: SafecamConfigEntry) -> list[SensorEntity]:
    """The safety analytics sensors this camera's scene makes meaningful."""
    caps = entry.runtime_data.settings.capabilities
    entities: list[SensorEntity] = [SafecamSensor(entry, FAIL_CLOSED_FRAMES)]
    if caps.runs("ppe"):
        entities.append(SafecamSensor(entry, PEOPLE_WITHOUT_PPE))
    if caps.runs("safety"):
        entities.append(MetricRulesSensor(entry))
    entities += [ZoneCongestionSensor(entry, zone) for zone in caps.congestion_zones]
    return entities


class MetricRulesSensor(SafecamEntity, SensorEntity):
    """Whether the metre-based safety rules run (they need a ground-plane calibration); `reason` says why not."""

    _attr_translation_key = "metric_rules"
    _attr_device_class = SensorDeviceClass.ENUM
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _always_available = True  # a configuration fact, true while the stream is down

    def __init__(self, entry: SafecamConfigEntry) -> None:
        super().__init__(entry, "metric_rules")
        self._attr_options = list(METRIC_RULES_STATES)
        self._attr_extra_state_attributes = {}

    def _update(self, state: CameraState | None) -> None:
        status = (analytics_of(state, "safety") or {}).get("metric_rules")
        if not isinstance(status, str):
            return  # keep the last known status (the analyzer reports it with every frame)
        state_, _, reason = status.partition(":")
        self._attr_native_value = state_.strip() if state_.strip() in METRIC_RULES_STATES else None
        self._attr_extra_state_attributes = {"reason": reason.strip()} if reason.strip() else {}

    def _shown_value(self) -> Any:
        return self._attr_native_value, self._attr_extra_state_attributes


class ZoneCongestionSensor(ZoneEntity, SensorEntity):
    """The zone's congestion level (low/medium/high; thresholds in people or people per m²); `density_per_m2` attribute."""

    _attr_translation_key = "zone_congestion"
    _attr_device_class = SensorDeviceClass.ENUM

    def __init__(self, entry: SafecamConfigEntry, zone: str) -> None:
        super().__init__(entry, zone, "congestion")
        self._attr_options = list(CONGESTION_LEVELS)
        self._attr_extra_state_attributes = {}

    def _update(self, state: CameraState | None) -> None:
        zone = safety_zone(state, self._zone) or {}
        level, density = zone.get("congestion"), zone.get("density_per_m2")
        self._attr_native_value = level if level in CONGESTION_LEVELS else None
        self._attr_extra_state_attributes = {} if density is None else {"density_per_m2": round(float(density), 2)}

    def _shown_value(self) -> Any:
        return self._attr_native_value, self._attr_extra_state_attributes


# ---- Safety event counters (long-term statistics of events per type) ----


# Spelled out (not built from the type) so each name is a plain translation key.
EVENT_COUNTERS = {
    d.key: d
    for d in (
        SensorEntityDescription(key="intrusion", translation_key="events_intrusion"),
        SensorEntityDescription(key="approach", translation_key="events_approach"),
        SensorEntityDescription(key="fall", translation_key="events_fall"),
        SensorEntityDescription(key="immobile", translation_key="events_immobile"),
        SensorEntityDescription(key="distancing", translation_key="events_distancing"),
        SensorEntityDescription(key="congestion", translation_key="events_congestion"),
        SensorEntityDescription(key="machine_activity", translation_key="events_machine_activity"),
        SensorEntityDescription(key="ppe_violation", translation_key="events_ppe_violation"),
    )
}


class EventCountSensor(SafecamEntity, RestoreSensor):
    """How many events of one type the camera fired, ever: hourly statistics give events per hour.

    Counted from the events the event entity fires (the same push); restored across restarts like
    the gate counters. Only for the types this camera's analyzers can raise (contract.capabilities).
    """

    _attr_state_class = SensorStateClass.TOTAL_INCREASING
    _always_available = True  # a count of past events is valid while the stream is down

    def __init__(self, entry: SafecamConfigEntry, event_type: str) -> None:
        super().__init__(entry, f"events_{event_type}")
        self._event_type = event_type
        self._attr_translation_key = EVENT_COUNTERS[event_type].translation_key
        self._count = 0
        self._attr_native_value = 0

    async def async_added_to_hass(self) -> None:
        if (data := await self.async_get_last_sensor_data()) is not None:
            with contextlib.suppress(TypeError, ValueError):  # unknown: start from zero
                self._count = max(0, int(float(data.native_value)))  # type: ignore[arg-type]
            self._attr_native_value = self._count
        await super().async_added_to_hass()
        self.async_on_remove(self._runtime.async_add_event_listener(self._async_handle_event))

    @callback
    def _async_handle_event(self, event: SafetyEvent) -> None:
        if event.event_type == self._event_type:
            self._count += 1
            self._attr_native_value = self._count
            self._shown = self._fingerprint()
            self.async_write_ha_state()

    def _shown_value(self) -> Any:
        return self._attr_native_value
