"""Home Assistant imports no scene-section parser on the event loop (HA 2026.11 warned "Detected blocking call to
import_module ... engine/config.py": in the options flow's scene step, a section's parser module imported by a relative
name that HA's guard never finds in sys.modules; issue 20 (12): an in-process camera's setup and options update, which
parsed the stored scene, its sections included, on the loop).

Every importlib.import_module call is recorded with its thread; each one on the event loop's thread must pass
Home Assistant's own rule for that guard (`block_async_io._check_import_call_allowed`: the module is loaded). The
section parsers' modules are unloaded first, so the check does not depend on which test ran before.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant import block_async_io
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam.const import CONF_ANONYMIZATION, CONF_FPS, CONF_SCENE, CONF_SOURCE_TYPE, DOMAIN, SOURCE_URL
from custom_components.safecam.engine import config as scene_config
from custom_components.safecam.source import url_unique_id

from .conftest import setup_loaded, unload, wait_for

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
    for module in {spec.split(":")[0] for spec in scene_config.SECTION_PARSERS.values()}:
        name = importlib.util.resolve_name(module, scene_config.__package__)
        if name.endswith(".anonymize"):
            continue  # the worker's own module, loaded with the engine (local.py) before any scene is parsed
        parent, _, child = name.rpartition(".")
        monkeypatch.delitem(sys.modules, name, raising=False)  # put back after the test
        if parent in sys.modules:
            monkeypatch.delattr(sys.modules[parent], child, raising=False)
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


async def test_camera_setup_and_update_import_nothing_on_the_event_loop(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, imports_on_the_loop: list[str]
) -> None:
    # An in-process camera whose stored scene has sections: setup parses it, and so does the options update listener.
    scene = {
        "zones": [{"name": "pit", "kind": "danger", "polygon": [[0.4, 0.6], [0.6, 0.6], [0.6, 0.8], [0.4, 0.8]]}],
        "safety": {"approach_m": 3},
        "occupancy": {"pit": {}},
        "calibration": {"image": [[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]], "rectangle_m": [4, 6]},
    }
    entry = make_entry(str(clip), scene=scene)
    runtime = await setup_loaded(hass, entry)
    assert runtime.settings.scene.section("safety") is not None  # the sections were parsed (in-process)
    assert imports_on_the_loop == [], "setup"
    hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_SCENE: {**scene, "safety": {"approach_m": 2}}})
    await wait_for(hass, lambda: entry.runtime_data.settings.scene.raw_sections["safety"] == {"approach_m": 2}, what="update")
    assert imports_on_the_loop == [], "update"
    await unload(hass, entry)
