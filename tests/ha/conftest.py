"""Fixtures for the Home Assistant tests (PHCC). Real engine, real models, real video.

tests/conftest.py points SAFECAM_MODEL_MIRROR at ../shared/models and provides `shared_data`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.camera import Camera, CameraEntityFeature
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, setup_test_component_platform

from custom_components.safecam.const import (
    CONF_ANONYMIZATION,
    CONF_FPS,
    CONF_SCENE,
    CONF_SOURCE_TYPE,
    DOMAIN,
    SOURCE_URL,
)
from custom_components.safecam.coordinator import SafecamRuntime
from custom_components.safecam.source import url_unique_id

# tud_campus.mp4: people walk left/right along the bottom half (feet at y 0.7-0.96).
SCENE: dict[str, Any] = {
    "zones": [
        {"name": "walkway", "kind": "danger", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]},
        {"name": "sky", "kind": "area", "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 0.3], [0.0, 0.3]]},
    ],
    "gates": [{"name": "middle", "line": [[0.5, 0.5], [0.5, 1.0]]}],
}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load custom_components/safecam."""


@pytest.fixture
def clip(shared_data: Path) -> Path:
    return shared_data / "pedestrians" / "tud_campus.mp4"


@pytest.fixture
def other_clip(shared_data: Path) -> Path:
    return shared_data / "pedestrians" / "tud_stadtmitte.mp4"


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a video\n" * 50, encoding="utf-8")
    return path


@pytest.fixture
def closed_port(socket_enabled: None) -> int:
    """A localhost TCP port with nothing listening (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def make_entry(hass: HomeAssistant) -> Callable[..., MockConfigEntry]:
    def make(url: str, *, title: str = "Demo", scene: dict[str, Any] | None = None, fps: int = 5, **data: Any) -> MockConfigEntry:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=title,
            unique_id=url_unique_id(url),
            data={CONF_SOURCE_TYPE: SOURCE_URL, "url": url, **data},
            options={CONF_FPS: fps, CONF_ANONYMIZATION: "body", CONF_SCENE: SCENE if scene is None else scene},
        )
        entry.add_to_hass(hass)
        return entry

    return make


def state_of(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return state.state if state is not None else None


def number_of(hass: HomeAssistant, entity_id: str) -> float:
    """The entity's numeric state, -1 when it has none (missing, unknown, unavailable)."""
    try:
        return float(state_of(hass, entity_id))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1.0


def camera_device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry | None:
    """The camera entry's device. Current HA looks identifiers up per config entry (async_get_device is gone)."""
    registry = dr.async_get(hass)
    if hasattr(registry, "async_get_device_by_identifier"):
        return registry.async_get_device_by_identifier((DOMAIN, entry.entry_id), entry.entry_id)
    return registry.async_get_device(identifiers={(DOMAIN, entry.entry_id)})  # HA up to 2025.x


async def setup_loaded(hass: HomeAssistant, entry: MockConfigEntry) -> SafecamRuntime:
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry.runtime_data


async def unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def wait_for(hass: HomeAssistant, predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll (the worker pushes from its thread) until predicate() holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_port: int, socket_enabled: None) -> Generator[None]:
    """No model anywhere, and the download fails fast: the mirror is a URL on a closed local port."""
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", f"http://127.0.0.1:{closed_port}/")
    monkeypatch.setenv("SAFECAM_CACHE_DIR", str(empty))
    yield


# --- cameras of another integration, for the "existing HA camera entity" source -----------------


class _StreamCamera(Camera):
    """A camera entity of some other integration, with (or without) a stream source."""

    _attr_supported_features = CameraEntityFeature.STREAM

    def __init__(self, name: str, source: str | None) -> None:
        super().__init__()
        self._attr_name = name
        self._attr_unique_id = f"test_{name}"
        self._source = source

    async def stream_source(self) -> str | None:
        return self._source

    async def async_camera_image(self, width: int | None = None, height: int | None = None) -> bytes | None:
        return None


@pytest.fixture
async def cameras(hass: HomeAssistant, clip: Path) -> None:
    setup_test_component_platform(hass, "camera", [_StreamCamera("Yard", str(clip)), _StreamCamera("Doorbell", None)])
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()


def safecam_threads() -> list[threading.Thread]:
    """Every thread the engine runs in Home Assistant (camera workers and their decode threads): none after unload."""
    return [t for t in threading.enumerate() if t.name.startswith("safecam-")]


def camera_workers() -> list[threading.Thread]:
    """One per loaded camera; a worker starts its own decode thread when it likes (not counted here)."""
    return [t for t in safecam_threads() if not t.name.startswith("safecam-decode-")]
