"""The options flow imports nothing on the event loop (HA 2026.11 warned "Detected blocking call to import_module ...
engine/config.py" in the scene step: a section's parser module was imported there, by a relative name that
Home Assistant's guard never finds in sys.modules).

Every importlib.import_module call is recorded with its thread; each one on the event loop's thread must pass
Home Assistant's own rule for that guard (`block_async_io._check_import_call_allowed`: the module is loaded).
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import pytest
from homeassistant import block_async_io
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam.const import CONF_ANONYMIZATION, CONF_FPS, CONF_SCENE, CONF_SOURCE_TYPE, DOMAIN, SOURCE_URL
from custom_components.safecam.source import url_unique_id

SCENE_TEXT = """zones:
  - name: pit
    kind: danger
    polygon: [[0.4, 0.6], [0.6, 0.6], [0.6, 0.8], [0.4, 0.8]]
safety:
  approach_m: 3
falls:
  immobile_s: 20
occupancy:
  pit: {}
calibration:
  image: [[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]
  rectangle_m: [4, 6]
"""


@pytest.fixture
def imports_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names passed to importlib.import_module on the event loop's thread that HA's guard would report."""
    loop_thread = threading.get_ident()  # the test runs on the loop's thread
    reported: list[str] = []
    original = importlib.import_module

    def recording(name: str, package: str | None = None) -> Any:
        if threading.get_ident() == loop_thread and not block_async_io._check_import_call_allowed({"args": (name, package)}):
            reported.append(name)
        return original(name, package)

    monkeypatch.setattr(importlib, "import_module", recording)
    return reported


@pytest.mark.parametrize("step", ["scene", "safety", "calibration"])
async def test_options_steps_import_nothing_on_the_event_loop(
    hass: HomeAssistant, clip: Path, imports_on_the_loop: list[str], step: str
) -> None:
    # An in-process camera (HA parses every section itself); not set up: the flow is what is checked.
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Demo",
        unique_id=url_unique_id(str(clip)),
        data={CONF_SOURCE_TYPE: SOURCE_URL, "url": str(clip)},
        options={CONF_FPS: 5, CONF_ANONYMIZATION: "body", CONF_SCENE: {}},
    )
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": "scene"})
    result = await hass.config_entries.options.async_configure(result["flow_id"], {CONF_SCENE: SCENE_TEXT})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    assert {"safety", "falls", "occupancy", "calibration"} <= set(entry.options[CONF_SCENE])
    if step != "scene":  # the form steps parse the stored scene, its sections included, again
        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": step})
        user_input = {"falls": True} if step == "safety" else {"image_points": ""}  # (no calibration: removed)
        result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
        assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    assert imports_on_the_loop == []
