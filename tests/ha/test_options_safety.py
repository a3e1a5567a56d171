"""Options flow: ground-plane calibration and safety thresholds, validated by the engine's parsers.

Entry setup is patched out (these tests are about the flow); tests/ha/test_safety_entities.py sets
entries up for real.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam.config_flow import parse_scene_text, scene_text
from custom_components.safecam.const import CONF_ANONYMIZATION, CONF_FPS, CONF_SCENE, CONF_SOURCE_TYPE, DOMAIN, SOURCE_URL
from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.source import url_unique_id

IMAGE = [[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]
SCENE: dict[str, Any] = {
    "zones": [
        {"name": "pit", "kind": "danger", "polygon": [[0.4, 0.6], [0.6, 0.6], [0.6, 0.8], [0.4, 0.8]]},
        {"name": "hall", "kind": "area", "polygon": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]},
    ],
    "gates": [{"name": "door", "line": [[0.5, 0.3], [0.5, 1.0]]}],
    "safety": {"congestion": {"hall": {"medium": 3, "high": 6}}},
}


@pytest.fixture(autouse=True)
async def no_setup(hass: HomeAssistant) -> AsyncGenerator[None]:
    with (
        patch("custom_components.safecam.async_setup_entry", return_value=True),
        patch("custom_components.safecam.async_unload_entry", return_value=True),
    ):
        yield
        for entry in hass.config_entries.async_entries(DOMAIN):
            await hass.config_entries.async_unload(entry.entry_id)


def _entry(hass: HomeAssistant, clip: Path, scene: dict[str, Any]) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Demo",
        unique_id=url_unique_id(str(clip)),
        data={CONF_SOURCE_TYPE: SOURCE_URL, "url": str(clip)},
        options={CONF_FPS: 5, CONF_ANONYMIZATION: "body", CONF_SCENE: scene},
    )
    entry.add_to_hass(hass)
    return entry


async def _form(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert step in result["menu_options"]
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": step})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    return dict(result)


def _suggested(form: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in form["data_schema"].schema:
        if key.description and "suggested_value" in key.description:
            out[str(key)] = key.description["suggested_value"]
    return out


def _error(result: Any) -> str:
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    return str(placeholders["error"])


# --- calibration --------------------------------------------------------------------------------


async def test_calibration_rectangle_then_floor_points_then_removed(hass: HomeAssistant, clip: Path) -> None:
    entry = _entry(hass, clip, SCENE)
    form = await _form(hass, entry, "calibration")
    assert _suggested(form) == {}  # not calibrated yet
    text = "[[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]"
    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"image_points": text, "width_m": 4, "depth_m": 6}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    scene = entry.options[CONF_SCENE]
    assert scene["calibration"] == {"image": IMAGE, "rectangle_m": [4.0, 6.0]}
    assert scene["zones"] == SCENE["zones"] and scene["safety"] == SCENE["safety"]  # the rest stays
    # The engine accepts what was stored, and maps the rectangle's far corner to 4 x 6 m.
    calibration = parse_scene(scene).section("calibration")
    assert calibration.distance_m((0.2, 0.9), (0.8, 0.9)) == pytest.approx(4.0, abs=1e-6)
    assert calibration.distance_m((0.8, 0.9), (0.7, 0.5)) == pytest.approx(6.0, abs=1e-6)

    form = await _form(hass, entry, "calibration")
    assert _suggested(form) == {"image_points": text, "width_m": 4.0, "depth_m": 6.0}
    floor = "[[0, 0], [3, 0], [3, 5], [0, 5]]"
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"image_points": text, "floor_points": floor})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE]["calibration"] == {"image": IMAGE, "floor": [[0, 0], [3, 0], [3, 5], [0, 5]]}

    form = await _form(hass, entry, "calibration")
    assert _suggested(form)["floor_points"] == "[[0, 0], [3, 0], [3, 5], [0, 5]]"
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "calibration" not in entry.options[CONF_SCENE]
    assert entry.options[CONF_SCENE]["safety"] == SCENE["safety"]


@pytest.mark.parametrize(
    ("user_input", "message"),
    [
        ({"image_points": "[[0.2, 0.9], [0.8, 0.9], [0.7, 0.5]]", "width_m": 4, "depth_m": 6}, "exactly 4"),
        ({"image_points": "[[0.2, 0.9], [0.5, 0.9], [0.8, 0.9], [0.5, 0.5]]", "width_m": 4, "depth_m": 6}, "on one line"),
        ({"image_points": "[[0.2, 0.9], [0.8, 0.9], [0.5, 0.8], [0.5, 0.3]]", "width_m": 4, "depth_m": 6}, "convex"),
        ({"image_points": "[[0.2, 0.9], [0.8, 0.9", "width_m": 4, "depth_m": 6}, "[[x, y], [x, y]"),
        ({"image_points": "[[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]", "width_m": 4}, "width and depth"),
        ({"image_points": "[[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]"}, "width and depth"),
        (
            {
                "image_points": "[[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]",
                "floor_points": "[[0, 0], [400, 0], [400, 600], [0, 600]]",
            },
            "centimetres",
        ),
        (
            {
                "image_points": "[[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]",
                "width_m": 4,
                "depth_m": 6,
                "floor_points": "[[0, 0]]",
            },
            "not both",
        ),
        ({"width_m": 4, "depth_m": 6}, "image"),
    ],
)
async def test_calibration_errors(hass: HomeAssistant, clip: Path, user_input: dict[str, Any], message: str) -> None:
    entry = _entry(hass, clip, SCENE)
    form = await _form(hass, entry, "calibration")
    result = await hass.config_entries.options.async_configure(form["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_calibration"}
    assert message in _error(result)
    assert _suggested(dict(result)) == user_input  # what was typed stays in the form
    assert entry.options[CONF_SCENE] == SCENE


# --- safety thresholds --------------------------------------------------------------------------


async def test_safety_thresholds_written_into_the_section(hass: HomeAssistant, clip: Path) -> None:
    entry = _entry(hass, clip, SCENE)
    form = await _form(hass, entry, "safety")
    assert _suggested(form) == {"falls": False}  # engine defaults, falls off
    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"approach_m": 1.0, "distancing_m": 1.5, "distancing_s": 5}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    safety = entry.options[CONF_SCENE]["safety"]
    assert safety == {"congestion": {"hall": {"medium": 3, "high": 6}}, "approach_m": 1.0, "distancing_m": 1.5, "distancing_s": 5}
    parsed = parse_scene(entry.options[CONF_SCENE]).section("safety")
    assert (parsed.approach_m, parsed.distancing_m, parsed.distancing_s) == (1.0, 1.5, 5.0)

    # Shown again; clearing a field gives the engine's default back (distancing off).
    form = await _form(hass, entry, "safety")
    assert _suggested(form) == {"approach_m": 1.0, "distancing_m": 1.5, "distancing_s": 5, "falls": False}
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"approach_m": 0})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE]["safety"] == {"congestion": {"hall": {"medium": 3, "high": 6}}, "approach_m": 0}
    assert parse_scene(entry.options[CONF_SCENE]).section("safety").distancing_m is None


async def test_falls_switch_and_immobile_time(hass: HomeAssistant, clip: Path) -> None:
    entry = _entry(hass, clip, {**SCENE, "falls": {"immobile_zones": ["hall"]}})
    form = await _form(hass, entry, "safety")
    assert _suggested(form) == {"falls": True}
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"falls": True, "immobile_s": 30})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE]["falls"] == {"immobile_zones": ["hall"], "immobile_s": 30}
    falls = parse_scene(entry.options[CONF_SCENE]).section("falls")
    assert (falls.enabled, falls.immobile_s, falls.immobile_zones) == (True, 30.0, ("hall",))

    # Off: the analyzer goes, its settings stay for when it is switched on again.
    form = await _form(hass, entry, "safety")
    assert _suggested(form) == {"falls": True, "immobile_s": 30}
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"falls": False, "immobile_s": 30})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE]["falls"] == {"immobile_zones": ["hall"], "immobile_s": 30, "enabled": False}
    assert parse_scene(entry.options[CONF_SCENE]).section("falls").enabled is False
    form = await _form(hass, entry, "safety")
    assert _suggested(form)["falls"] is False

    # A camera without falls: switching them on adds the section with the engine's defaults.
    other = _entry(hass, clip.with_name("tud_stadtmitte.mp4"), {"zones": [], "gates": []})
    form = await _form(hass, other, "safety")
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"falls": True})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert other.options[CONF_SCENE]["falls"] == {}
    assert parse_scene(other.options[CONF_SCENE]).section("falls").enabled is True


async def test_immobile_time_rejected_by_the_engine(hass: HomeAssistant, clip: Path) -> None:
    entry = _entry(hass, clip, SCENE)
    form = await _form(hass, entry, "safety")
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"falls": True, "immobile_s": 0.5})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_safety"}
    assert "immobile_s" in _error(result)
    assert entry.options[CONF_SCENE] == SCENE


async def test_ppe_required_items(hass: HomeAssistant, clip: Path) -> None:
    entry = _entry(hass, clip, SCENE)
    form = await _form(hass, entry, "safety")
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"ppe_required": ["helmet", "vest"]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE]["ppe"] == {"required": ["helmet", "vest"]}
    assert parse_scene(entry.options[CONF_SCENE]).section("ppe").required == ("helmet", "vest")

    form = await _form(hass, entry, "safety")
    assert _suggested(form)["ppe_required"] == ["helmet", "vest"]
    result = await hass.config_entries.options.async_configure(form["flow_id"], {"ppe_required": []})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "ppe" not in entry.options[CONF_SCENE]  # nothing required: no PPE check, no PPE model

    # Zone rules written in YAML survive clearing the camera-wide items.
    zoned = {**SCENE, "ppe": {"required": ["vest"], "zones": {"pit": ["helmet"]}, "cooldown_s": 30}}
    entry = _entry(hass, clip.with_name("tud_stadtmitte.mp4"), zoned)
    form = await _form(hass, entry, "safety")
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE]["ppe"] == {"zones": {"pit": ["helmet"]}, "cooldown_s": 30}


async def test_safety_form_left_empty_adds_no_section(hass: HomeAssistant, clip: Path) -> None:
    scene = {"zones": SCENE["zones"][1:], "gates": []}
    entry = _entry(hass, clip, scene)
    form = await _form(hass, entry, "safety")
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "safety" not in entry.options[CONF_SCENE]  # no safety analyzer for a scene that asked for none


# --- the YAML step keeps every section -------------------------------------------------------------


def test_scene_text_keeps_sections() -> None:
    scene = {**SCENE, "calibration": {"image": IMAGE, "rectangle_m": [4.0, 6.0]}}
    assert parse_scene_text(scene_text(scene)).as_dict() == parse_scene(scene).as_dict()
    only_sections = {"zones": [], "gates": [], "calibration": {"image": IMAGE, "floor": [[0, 0], [3, 0], [3, 5], [0, 5]]}}
    assert parse_scene_text(scene_text(only_sections)).section("calibration") is not None


async def test_scene_step_roundtrip_keeps_sections(hass: HomeAssistant, clip: Path) -> None:
    scene = parse_scene({**SCENE, "calibration": {"image": IMAGE, "rectangle_m": [4.0, 6.0]}}).as_dict()
    entry = _entry(hass, clip, scene)
    form = await _form(hass, entry, "scene")
    text = _suggested(form)[CONF_SCENE]
    assert "calibration:" in text and "congestion:" in text
    result = await hass.config_entries.options.async_configure(form["flow_id"], {CONF_SCENE: text})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE] == scene
