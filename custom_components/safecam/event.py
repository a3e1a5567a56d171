"""Event entity: the camera's safety events (intrusion now; fall, ppe_violation, ... later)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import EVENT_TYPES
from .coordinator import SafecamConfigEntry
from .engine.types import SafetyEvent
from .entity import SafecamEntity

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_entities([SafetyEventEntity(entry)])


class SafetyEventEntity(SafecamEntity, EventEntity):
    """Fires for every engine SafetyEvent whose type is in EVENT_TYPES, with zone and track id.

    Gate crossings are not events here: the gate entries/exits sensors count them.
    """

    _attr_translation_key = "safety"
    _attr_event_types = EVENT_TYPES
    _always_available = True  # an event that happened stays true while the stream is down

    def __init__(self, entry: SafecamConfigEntry) -> None:
        super().__init__(entry, "safety")

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._runtime.async_add_event_listener(self._async_handle_event))

    @callback
    def _async_handle_event(self, event: SafetyEvent) -> None:
        if event.event_type not in self.event_types:
            return
        attributes: dict[str, Any] = {"zone": event.zone, "track_id": event.track_id}
        if event.confidence is not None:
            attributes["confidence"] = round(event.confidence, 3)
        self._trigger_event(event.event_type, attributes)
        self.async_write_ha_state()
