"""strings.json, translations/en.json and translations/ko.json agree with each other and with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from custom_components.safecam.const import ANONYMIZATION_MODES, DEFAULT_ANONYMIZATION
from custom_components.safecam.remote import SCENE_NOT_TAKEN
from custom_components.safecam.source import SOURCE_ERRORS

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / "safecam"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _load(name: str) -> dict[str, Any]:
    return json.loads((COMPONENT / name).read_text(encoding="utf-8"))


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def test_strings_is_english() -> None:
    assert _load("strings.json") == _load("translations/en.json")


@pytest.mark.parametrize("language", ["ko"])
def test_translation_complete_with_same_placeholders(language: str) -> None:
    en, other = _leaves(_load("translations/en.json")), _leaves(_load(f"translations/{language}.json"))
    assert set(en) == set(other)
    for key, text in en.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(other[key])), key
        assert other[key].strip(), key


def test_every_flow_error_and_issue_is_translated() -> None:
    strings = _load("strings.json")
    errors = set(strings["config"]["error"])
    assert set(SOURCE_ERRORS.values()) | {"model_missing", "no_stream_source", "unknown", "unsupported_url"} <= errors
    assert {"already_configured", "reconfigure_successful"} <= set(strings["config"]["abort"])
    invalid = {"invalid_scene", "invalid_calibration", "invalid_safety", "invalid_site"}
    assert set(strings["options"]["error"]) == invalid | set(SCENE_NOT_TAKEN)  # (the engine's answer to a scene edit)
    issues = {"model_missing", "model_corrupt", "stream_unreachable", "engine_behind", "engine_unavailable"}
    assert set(strings["issues"]) == issues
    assert {"invalid_scene", "model_missing", "model_corrupt", "camera_unavailable", "no_stream_source"} <= set(
        strings["exceptions"]
    )


SITE_KEYS = {"sensor": {"site_people", "site_people_on_map"}, "image": {"site_floor_plan", "site_heatmap"}}


@pytest.mark.parametrize("platform", ["binary_sensor", "camera", "event", "sensor"])
def test_every_entity_name_is_translated(platform: str) -> None:
    code = (COMPONENT / f"{platform}.py").read_text(encoding="utf-8")
    keys = set(re.findall(r'translation_key\s*=\s*"(\w+)"', code)) | set(re.findall(r'"(gate_(?:entries|exits))"', code))
    site = (COMPONENT / "site_entry.py").read_text(encoding="utf-8")  # the site device's entities (keys "site_*")
    keys |= {k for k in re.findall(r'entry, "(site_\w+)"\)', site) if k in SITE_KEYS.get(platform, set())}
    assert keys
    entity = _load("strings.json")["entity"][platform]
    icons = _load("icons.json")["entity"].get(platform, {})
    for key in keys:
        assert entity[key]["name"], key
    assert set(entity) == keys
    assert set(icons) <= keys


@pytest.mark.parametrize(("language", "default"), [("en", "(default)"), ("ko", "(기본값)")])
def test_anonymization_texts_name_the_real_default(language: str, default: str) -> None:
    # issue 20 (3): the help called Body the default and Full frame "show nothing", while Full frame is the default.
    strings = _load(f"translations/{language}.json")
    labels = strings["selector"]["anonymization"]["options"]
    assert set(labels) == set(ANONYMIZATION_MODES)
    assert [mode for mode, label in labels.items() if default in label] == [DEFAULT_ANONYMIZATION]
    names = {mode: label.split(":")[0] for mode, label in labels.items()}  # "Full frame (default)", "Body", "Head"
    helps = [text for key, text in _leaves(strings).items() if key.endswith("data_description.anonymization")]
    assert len(helps) == 3  # the source forms (URL, camera entity) and the detection options
    for text in helps:  # each mode explained under the name its option shows; "default" only with the default one
        assert all(f"{name}:" in text for name in names.values()), text
        assert text.count(default) == 1 and f"{names[DEFAULT_ANONYMIZATION]}:" in text, text


def test_counts_have_no_unit_repeating_their_name() -> None:
    # issue 20 (10): "People 1 people". HA shows a translated unit in English in every language, after any number;
    # a count whose name says what it counts needs none.
    for key, entity in _load("strings.json")["entity"]["sensor"].items():
        unit = entity.get("unit_of_measurement")
        assert unit is None or unit.lower() not in entity["name"].lower(), key


@pytest.mark.parametrize(("language", "events"), [("en", "events"), ("ko", "이벤트")])
def test_one_term_per_safety_concept(language: str, events: str) -> None:
    # issue 20 (11): Korean said "거리 두기 위반" / "거리두기 위반" / "거리 유지 위반 이벤트" and "기계 가동" /
    # "기계 작동" for one concept each. An event counter is its event type's name plus "events"; the distancing sensor is the
    # distancing event's name (ko), the machine sensor its zone plus the machine-activity event's name (ko).
    entity = _load(f"translations/{language}.json")["entity"]
    types = entity["event"]["safety"]["state_attributes"]["event_type"]["state"]
    counters = {k.removeprefix("events_"): v["name"] for k, v in entity["sensor"].items() if k.startswith("events_")}
    assert counters and set(counters) <= set(types)
    assert {t: name.lower() for t, name in counters.items()} == {t: f"{types[t]} {events}".lower() for t in counters}
    if language == "ko":  # (English says "Distancing violation" / "machine running" for the states on purpose)
        assert entity["binary_sensor"]["distancing"]["name"] == types["distancing"]
        assert entity["binary_sensor"]["zone_machine_active"]["name"] == f"{{zone}} {types['machine_activity']}"
