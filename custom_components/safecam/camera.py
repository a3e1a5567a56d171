"""Camera: the anonymized live view (still image + MJPEG). Never a raw frame."""

from __future__ import annotations

from typing import Any

from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .contract import CameraState
from .coordinator import SafecamConfigEntry
from .entity import SafecamEntity

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_entities([AnonymizedCamera(entry)])


class AnonymizedCamera(SafecamEntity, Camera):
    """Serves the worker's anonymized JPEG, or an obscured placeholder when there is none.

    MJPEG: Camera.handle_async_mjpeg_stream -> async_get_still_stream polls async_camera_image
    every frame_interval (the analysis rate); unchanged frames are not resent.
    """

    _attr_translation_key = "anonymized"
    _always_available = True  # the placeholder says when there is no picture

    def __init__(self, entry: SafecamConfigEntry) -> None:
        SafecamEntity.__init__(self, entry, "anonymized")
        Camera.__init__(self)
        self.content_type = "image/jpeg"
        self._attr_frame_interval = 1.0 / max(self._runtime.settings.fps, 1)

    def camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        """Runs in the executor (Camera.async_camera_image): reading the frame takes the worker's lock."""
        return self._runtime.snapshot_jpeg()

    def _update(self, state: CameraState | None) -> None:
        self._attr_is_streaming = state is not None and state.connected
        self._attr_frame_interval = 1.0 / max(self._runtime.settings.fps, 1)

    def _shown_value(self) -> Any:
        return self._attr_is_streaming, self._runtime.settings.anonymization
