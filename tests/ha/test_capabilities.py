"""One derivation of what a camera analyses (contract.capabilities): the engine builds its analyzers from it, the
engine announces it, and Home Assistant builds its entities from it. The copies it replaced disagreed: a scene with
only restricted zones ran the safety analyzer, but Home Assistant never created its sensor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam.contract import Capabilities, capabilities, config_payload
from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.scene import build_analyzers
from custom_components.safecam.remote import options_of, remote_settings, settings_from_config

from .conftest import setup_loaded, unload

RESTRICTED = {"name": "yard", "kind": "restricted", "polygon": [[0.1, 0.5], [0.5, 0.5], [0.5, 0.9], [0.1, 0.9]]}
PRESS = {"name": "press", "kind": "equipment", "polygon": [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4], [0.6, 0.4]]}
DOOR = {"name": "door", "line": [[0.5, 0.2], [0.5, 1.0]]}
CALIBRATION = {"image": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]], "rectangle_m": [8.0, 5.0]}
SCENES: dict[str, dict[str, Any]] = {
    "empty": {},
    "restricted only": {"zones": [RESTRICTED]},
    "area and gate": {"zones": [{**RESTRICTED, "kind": "area"}], "gates": [DOOR]},
    "occupancy": {"zones": [{**RESTRICTED, "kind": "area"}], "gates": [DOOR], "occupancy": {"yard": {"gates": {"door": "in"}}}},
    "equipment, calibrated": {"zones": [PRESS], "calibration": CALIBRATION},
    "safety rules": {"zones": [RESTRICTED, PRESS], "safety": {"congestion": {"yard": {"medium": 2, "high": 4}}}},
}


@pytest.mark.parametrize("scene", SCENES.values(), ids=SCENES.keys())
def test_the_engine_builds_the_analyzers_the_capabilities_name(scene: dict[str, Any]) -> None:
    parsed = parse_scene(scene)
    built = tuple(analyzer.name for analyzer in build_analyzers(parsed, f"caps-{id(scene)}"))
    assert built == capabilities(parsed.as_dict()).analyzers


def test_the_config_message_announces_the_capabilities() -> None:
    scene = parse_scene(SCENES["safety rules"]).as_dict()
    message = config_payload(camera="c", name="C", fps=5, scene=scene, scene_source="config", anonymization="body")
    announced = Capabilities.from_dict(message["capabilities"])
    assert announced == capabilities(scene)
    assert announced.intrusion_zones == ("yard",)
    assert announced.congestion_zones == ("yard",)
    assert announced.machine_zones == ("press",)
    assert "safety" in announced.analyzers
    with pytest.raises(ValueError):
        Capabilities.from_dict({"zones": [], "gates": "door"})


def test_a_remote_camera_builds_what_its_engine_announced() -> None:
    """The announcement decides (an engine of another version may derive more), and it is kept in the options."""
    scene = parse_scene(SCENES["restricted only"]).as_dict()
    announced = Capabilities(zones=(("yard", "restricted"),), analyzers=("safety", "heatmap"), intrusion_zones=("yard",))
    config = {"camera": "c", "fps": 5, "scene": scene, "capabilities": announced.as_dict()}
    settings = settings_from_config(config)
    assert settings.capabilities == announced != capabilities(scene)  # (this version also counts intrusion events)
    assert remote_settings(options_of(settings)).capabilities == announced  # a restart builds the same
    # An engine that announces nothing: derived here with the same function; sections are the engine's to parse.
    with_sections = {**scene, "safety": {"congestion": {"yard": {"medium": 2, "high": 4}}}}
    derived = settings_from_config({"camera": "c", "fps": 5, "scene": with_sections})
    assert derived.capabilities == capabilities(with_sections) and derived.scene.section("safety") is None


async def test_restricted_zone_only_gets_the_safety_entities(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    """The safety analyzer runs for a restricted zone (the engine), so its sensors exist (Home Assistant)."""
    entry = make_entry(str(clip), scene=SCENES["restricted only"])
    await setup_loaded(hass, entry)
    unique_ids = {
        e.unique_id.removeprefix(f"{entry.entry_id}_")
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }
    assert {"zone_yard_intruded", "metric_rules", "events_intrusion"} <= unique_ids
    await unload(hass, entry)
