"""Event snapshots: the anonymized frame of each safety event, behind a signed, expiring URL.

The engine worker attaches a JPEG of the *anonymized* frame to every SafetyEvent; the event
entity keeps the last few per camera here (memory only, bounded) and publishes a path signed
with HA's own `async_sign_path`. The view requires auth, so only a valid, unexpired signature
(or a logged-in client) gets the bytes: no unauthenticated proxy. The path is relative, so the
companion apps fetch it through whatever URL they reach HA by (home network or remote access).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

from aiohttp import web
from homeassistant.components.http import KEY_HASS, HomeAssistantView
from homeassistant.components.http.auth import async_sign_path
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN
from .entries import is_site_entry

if TYPE_CHECKING:
    from .coordinator import SafecamRuntime

# Long enough for a phone that was offline for a while and for an escalation minutes later;
# short enough that a link copied out of a notification or a trace soon stops working.
SNAPSHOT_URL_TTL: Final = timedelta(hours=1)
SNAPSHOTS_KEPT: Final = 20  # per camera; ~50-150 kB each
SNAPSHOT_URL: Final = "/api/safecam/snapshot/{entry_id}/{event_id}.jpg"
EVENT_ID: Final = re.compile(r"[0-9a-f]{16}")
_VIEW_REGISTERED: Final = f"{DOMAIN}_snapshot_view"


class SnapshotStore:
    """The last `size` event snapshots of one camera, by event id (oldest dropped first)."""

    def __init__(self, size: int = SNAPSHOTS_KEPT) -> None:
        self._size = size
        self._jpegs: OrderedDict[str, bytes] = OrderedDict()

    def add(self, event_id: str, jpeg: bytes) -> None:
        self._jpegs[event_id] = jpeg
        while len(self._jpegs) > self._size:
            self._jpegs.popitem(last=False)

    def get(self, event_id: str) -> bytes | None:
        return self._jpegs.get(event_id)

    def __len__(self) -> int:
        return len(self._jpegs)


def snapshot_path(entry_id: str, event_id: str) -> str:
    return SNAPSHOT_URL.format(entry_id=entry_id, event_id=event_id)


@callback
def async_signed_snapshot_url(hass: HomeAssistant, entry_id: str, event_id: str) -> str:
    """A relative path with an `authSig` that HA's auth middleware accepts until it expires.

    Signed as HA's read-only content user, not as whoever happens to be in the call context,
    so the link does not depend on (or reveal) a person's session.
    """
    return async_sign_path(hass, snapshot_path(entry_id, event_id), SNAPSHOT_URL_TTL, use_content_user=True)


@callback
def async_register_view(hass: HomeAssistant) -> None:
    """Once per HA run, however many cameras are set up."""
    if not hass.data.get(_VIEW_REGISTERED):
        hass.http.register_view(SnapshotView())
        hass.data[_VIEW_REGISTERED] = True


class SnapshotView(HomeAssistantView):
    """GET the anonymized snapshot of one event; 401 without a valid signature, 404 when gone."""

    url = SNAPSHOT_URL
    name = "api:safecam:snapshot"
    requires_auth = True

    async def get(self, request: web.Request, entry_id: str, event_id: str) -> web.Response:
        hass = request.app[KEY_HASS]
        entry = hass.config_entries.async_get_entry(entry_id)
        loaded = entry is not None and entry.domain == DOMAIN and entry.state is ConfigEntryState.LOADED
        if entry is None or not loaded or is_site_entry(entry) or not EVENT_ID.fullmatch(event_id):
            return web.Response(status=HTTPStatus.NOT_FOUND)
        runtime: SafecamRuntime = entry.runtime_data
        if (jpeg := runtime.snapshots.get(event_id)) is None:
            return web.Response(status=HTTPStatus.NOT_FOUND)  # older than the last SNAPSHOTS_KEPT, or HA restarted
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
