"""Event entity: the camera's safety events, each with a unique id and a signed link to its snapshot.

Every engine event type (engine.types.EVENT_TYPES) can fire. The attributes are what automations
and the blueprints need: where (camera, zone, track), how sure (confidence), the analyzer's details,
an `event_id` (notification actions and acknowledgements refer to it), `snapshot_url` (the
anonymized frame of the event, signed and expiring, see snapshots.py) and `since_previous_s`
(seconds since this camera's previous event of the same type in the same zone: a notification
cooldown tells a new incident from a repeat without keeping state of its own).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .contract import EVENT_TYPES, SafetyEvent
from .coordinator import SafecamConfigEntry
from .entity import SafecamEntity
from .snapshots import async_register_view, async_signed_snapshot_url

PARALLEL_UPDATES = 0

ATTR_SNAPSHOT_URL = "snapshot_url"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_register_view(hass)
    async_add_entities([SafetyEventEntity(entry)])


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    """State attributes must be JSON: numpy scalars from analyzers become plain numbers."""
    converted: dict[str, Any] = json.loads(json.dumps(details, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return converted


class SafetyEventEntity(SafecamEntity, EventEntity):
    """Fires for every engine SafetyEvent whose type is in EVENT_TYPES.

    Gate crossings are not events here: the gate entries/exits sensors count them.
    """

    _attr_translation_key = "safety"
    # A signed link is a short-lived credential: keep it out of the recorder's database.
    _unrecorded_attributes = frozenset({ATTR_SNAPSHOT_URL})
    _always_available = True  # an event that happened stays true while the stream is down

    def __init__(self, entry: SafecamConfigEntry) -> None:
        super().__init__(entry, "safety")
        self._attr_event_types = list(EVENT_TYPES)
        self._entry_id = entry.entry_id
        self._previous: dict[tuple[str, str | None], datetime] = {}

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._runtime.async_add_event_listener(self._async_handle_event))

    @callback
    def _async_handle_event(self, event: SafetyEvent) -> None:
        if event.event_type not in self.event_types:
            return
        now = dt_util.utcnow()
        key = (event.event_type, event.zone)
        previous = self._previous.get(key)
        self._previous[key] = now
        event_id = secrets.token_hex(8)
        snapshot_url: str | None = None
        if event.snapshot is not None:  # the engine's anonymized frame, in the camera's mode
            self._runtime.snapshots.add(event_id, event.snapshot)
            snapshot_url = async_signed_snapshot_url(self.hass, self._entry_id, event_id)
        attributes: dict[str, Any] = {
            "camera": event.camera,
            "zone": event.zone,
            "track_id": event.track_id,
            "confidence": round(event.confidence, 3) if event.confidence is not None else None,
            "details": _jsonable(event.details),
            "event_id": event_id,
            ATTR_SNAPSHOT_URL: snapshot_url,
            "since_previous_s": round((now - previous).total_seconds(), 1) if previous is not None else None,
        }
        self._trigger_event(event.event_type, attributes)
        self.async_write_ha_state()
