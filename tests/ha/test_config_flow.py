"""Config flow (both sources, every error), options flow and reconfigure, on real video and models.

Entry setup is patched out here: these tests are about the flows (the validation in them still
opens the real source and resolves the real model). tests/ha/test_init.py runs the real setup.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncGenerator, Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant import config_entries
from homeassistant.const import CONF_ENTITY_ID, CONF_NAME, CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam.config_flow import parse_scene_text, scene_text
from custom_components.safecam.const import (
    CONF_ANONYMIZATION,
    CONF_ENTITY_REGISTRY_ID,
    CONF_FPS,
    CONF_SCENE,
    CONF_SOURCE_TYPE,
    DOMAIN,
    SOURCE_ENTITY,
    SOURCE_URL,
)
from custom_components.safecam.engine.config import SECTION_PARSERS, ZONE_KINDS, ConfigError
from custom_components.safecam.source import engine_url, url_unique_id

from .conftest import SCENE

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / "safecam"


@pytest.fixture(autouse=True)
async def no_setup(hass: HomeAssistant) -> AsyncGenerator[None]:
    with (
        patch("custom_components.safecam.async_setup_entry", return_value=True),
        patch("custom_components.safecam.async_unload_entry", return_value=True),
    ):
        yield
        for entry in hass.config_entries.async_entries(DOMAIN):  # while the patches still hold
            await hass.config_entries.async_unload(entry.entry_id)


async def _url_form(hass: HomeAssistant) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["remote", "site", "local"]  # a safecam engine first; in-process is the last
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "local"})
    assert result["type"] is FlowResultType.MENU  # the engine's requirements are there: pick the source
    assert result["menu_options"] == ["url", "entity"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "url"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "url"
    return result


def _url_input(url: str, **extra: Any) -> dict[str, Any]:
    return {CONF_NAME: "Demo", CONF_URL: url, CONF_FPS: 5, CONF_ANONYMIZATION: "body", **extra}


async def test_url_success(hass: HomeAssistant, clip: Path) -> None:
    form = await _url_form(hass)
    result = await hass.config_entries.flow.async_configure(form["flow_id"], _url_input(str(clip), **{CONF_FPS: 3.0}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Demo"
    assert result["data"] == {CONF_SOURCE_TYPE: SOURCE_URL, CONF_URL: str(clip)}
    assert result["options"] == {CONF_FPS: 3, CONF_ANONYMIZATION: "body"}
    assert result["result"].unique_id == url_unique_id(str(clip))


async def test_file_url_accepted(hass: HomeAssistant, clip: Path) -> None:
    form = await _url_form(hass)
    result = await hass.config_entries.flow.async_configure(form["flow_id"], _url_input(clip.as_uri()))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # A path and its file:// URL are the same camera.
    assert result["result"].unique_id == url_unique_id(str(clip))


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("ftp://127.0.0.1/cam.mp4", "unsupported_url"),
        ("relative/clip.mp4", "unsupported_url"),
        ("TEXT_FILE", "not_video"),
        ("/nonexistent/clip.mp4", "cannot_connect"),
        ("RTSP_CLOSED_PORT", "cannot_connect"),
    ],
)
async def test_url_errors_then_recover(
    hass: HomeAssistant, socket_enabled: None, clip: Path, text_file: Path, closed_port: int, source: str, error: str
) -> None:
    source = {"TEXT_FILE": str(text_file), "RTSP_CLOSED_PORT": f"rtsp://127.0.0.1:{closed_port}/stream"}.get(source, source)
    form = await _url_form(hass)
    result = await hass.config_entries.flow.async_configure(form["flow_id"], _url_input(source))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    result = await hass.config_entries.flow.async_configure(form["flow_id"], _url_input(str(clip)))
    assert result["type"] is FlowResultType.CREATE_ENTRY


class _AuthHandler(BaseHTTPRequestHandler):
    """An HTTP camera that wants a login: 401 without (or with wrong) credentials."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="cam"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def auth_camera(socket_enabled: None) -> Generator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/snapshot.jpg"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_url_invalid_auth(hass: HomeAssistant, auth_camera: str) -> None:
    form = await _url_form(hass)
    result = await hass.config_entries.flow.async_configure(
        form["flow_id"], _url_input(auth_camera, **{CONF_USERNAME: "admin", CONF_PASSWORD: "wrong"})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}


async def test_url_model_missing(hass: HomeAssistant, no_model: None, clip: Path) -> None:
    form = await _url_form(hass)
    result = await hass.config_entries.flow.async_configure(form["flow_id"], _url_input(str(clip)))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "model_missing"}


async def test_url_duplicate_aborts(hass: HomeAssistant) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id=url_unique_id("rtsp://cam.local:554/live"), data={}).add_to_hass(hass)
    form = await _url_form(hass)
    # Same camera with credentials and a different host case: still the same camera.
    result = await hass.config_entries.flow.async_configure(
        form["flow_id"], _url_input("rtsp://CAM.local:554/live", **{CONF_USERNAME: "u", CONF_PASSWORD: "p"})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def test_credentials_are_injected_and_encoded() -> None:
    assert engine_url("rtsp://cam/live", "ad min", "p@ss:w/rd") == "rtsp://ad%20min:p%40ss%3Aw%2Frd@cam/live"
    assert engine_url("rtsp://old:creds@cam/live", "new", None) == "rtsp://new@cam/live"
    assert engine_url("rtsp://cam/live") == "rtsp://cam/live"
    assert engine_url("file:///tmp/a%20b.mp4", "ignored", "x") == "/tmp/a b.mp4"
    assert url_unique_id("rtsp://u:p@cam/live") == url_unique_id("rtsp://cam/live") != url_unique_id("rtsp://cam/other")


# --- HA camera entity branch --------------------------------------------------------------------


async def _entity_form(hass: HomeAssistant) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "local"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "entity"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "entity"
    return result


async def test_entity_success_and_duplicate(hass: HomeAssistant, cameras: None) -> None:
    form = await _entity_form(hass)
    result = await hass.config_entries.flow.async_configure(
        form["flow_id"], {CONF_ENTITY_ID: "camera.yard", CONF_FPS: 5, CONF_ANONYMIZATION: "full_frame"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Yard"
    assert result["data"][CONF_SOURCE_TYPE] == SOURCE_ENTITY
    assert result["data"][CONF_ENTITY_ID] == "camera.yard"
    assert result["data"][CONF_ENTITY_REGISTRY_ID]
    assert result["options"] == {CONF_FPS: 5, CONF_ANONYMIZATION: "full_frame"}

    form = await _entity_form(hass)
    result = await hass.config_entries.flow.async_configure(
        form["flow_id"], {CONF_ENTITY_ID: "camera.yard", CONF_FPS: 5, CONF_ANONYMIZATION: "body"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_entity_without_stream_source(hass: HomeAssistant, cameras: None) -> None:
    form = await _entity_form(hass)
    result = await hass.config_entries.flow.async_configure(
        form["flow_id"], {CONF_ENTITY_ID: "camera.doorbell", CONF_NAME: "Door", CONF_FPS: 5, CONF_ANONYMIZATION: "body"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_stream_source"}


# --- options ------------------------------------------------------------------------------------


@pytest.fixture
def entry(hass: HomeAssistant, clip: Path) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Demo",
        unique_id=url_unique_id(str(clip)),
        data={CONF_SOURCE_TYPE: SOURCE_URL, CONF_URL: str(clip)},
        options={CONF_FPS: 5, CONF_ANONYMIZATION: "body"},
    )
    entry.add_to_hass(hass)
    return entry


async def test_options_detection(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": "detection"})
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(result["flow_id"], {CONF_FPS: 10, CONF_ANONYMIZATION: "head"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_FPS: 10, CONF_ANONYMIZATION: "head"}


async def _scene_form(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": "scene"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "scene"
    return result


@pytest.mark.parametrize("language", ["en", "ko"])
async def test_options_scene_form_explains_itself(hass: HomeAssistant, entry: MockConfigEntry, language: str) -> None:
    # issue 20 (7): the YAML box never mentioned the zone editor, its example was cut off ("..., occupancy, pp")
    # and its list of kinds left out equipment.
    form = await _scene_form(hass, entry)
    strings = json.loads((COMPONENT / "translations" / f"{language}.json").read_text(encoding="utf-8"))
    description = strings["options"]["step"]["scene"]["description"]
    shown = description.format(**form["description_placeholders"])  # as the frontend fills it in
    assert "**Safecam zones**" in shown  # the sidebar panel that draws zones on the picture
    assert {kind for kind in ZONE_KINDS if re.search(rf"\b{kind}\b", description)} == set(ZONE_KINDS)
    example = form["description_placeholders"]["example"]
    assert all(kind in example for kind in ZONE_KINDS) and all(key in example for key in SECTION_PARSERS)
    assert max(len(line) for line in example.splitlines()) <= 60  # the form does not wrap it: 70 were cut off
    assert example in shown and parse_scene_text(example).zones  # what it shows is a scene the form takes


BOW_TIE = "zones:\n  - name: bad\n    polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOW_TIE, "self-intersect"),
        ("zones:\n  - name: a\n    polygon: [[0, 0], [1, 0], [1, 1]]\n    colour: red\n", "unknown key"),
        ("zones: [\n", "not valid YAML or JSON at line"),
        ('{"gates": [{"name": "g", "line": [[0, 0], [2, 0]]}]}', "gate 'g'"),
    ],
)
async def test_options_scene_invalid(hass: HomeAssistant, entry: MockConfigEntry, text: str, message: str) -> None:
    form = await _scene_form(hass, entry)
    result = await hass.config_entries.options.async_configure(form["flow_id"], {CONF_SCENE: text})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_scene"}
    assert message in result["description_placeholders"]["error"]
    assert "\n" not in result["description_placeholders"]["error"]
    assert CONF_SCENE not in entry.options


async def test_options_scene_valid_roundtrip(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    form = await _scene_form(hass, entry)
    result = await hass.config_entries.options.async_configure(form["flow_id"], {CONF_SCENE: scene_text(SCENE)})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE] == parse_scene_text(scene_text(SCENE)).as_dict()
    assert entry.options[CONF_FPS] == 5  # the other options are kept

    # The form shows the stored scene; clearing it removes every zone and gate.
    form = await _scene_form(hass, entry)
    suggested = next(k.description["suggested_value"] for k in form["data_schema"].schema if k == CONF_SCENE)
    assert parse_scene_text(suggested).as_dict() == entry.options[CONF_SCENE]
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_SCENE] == {"zones": [], "gates": []}


def test_scene_text_is_valid_yaml_for_odd_names() -> None:
    scene = {"zones": [{"name": 'Gate #1: "north" 출입구', "kind": "area", "polygon": [[0, 0], [1, 0], [1, 1]]}], "gates": []}
    assert parse_scene_text(scene_text(scene)).zones[0].name == 'Gate #1: "north" 출입구'
    with pytest.raises(ConfigError):
        parse_scene_text("- just\n- a list\n")


# --- reconfigure --------------------------------------------------------------------------------


async def test_reconfigure_url(hass: HomeAssistant, entry: MockConfigEntry, text_file: Path, other_clip: Path) -> None:
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_URL: str(text_file)})
    assert result["errors"] == {"base": "not_video"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_URL: str(other_clip)})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_URL] == str(other_clip)
    assert entry.unique_id == url_unique_id(str(other_clip))
    assert entry.options[CONF_FPS] == 5


async def test_reconfigure_keeps_password_and_refuses_duplicates(
    hass: HomeAssistant, entry: MockConfigEntry, clip: Path, other_clip: Path
) -> None:
    secured = MockConfigEntry(
        domain=DOMAIN,
        title="Secured",
        unique_id=url_unique_id(str(other_clip)),
        data={CONF_SOURCE_TYPE: SOURCE_URL, CONF_URL: str(other_clip), CONF_USERNAME: "admin", CONF_PASSWORD: "s3cret"},
        options={CONF_FPS: 5, CONF_ANONYMIZATION: "body"},
    )
    secured.add_to_hass(hass)
    result = await secured.start_reconfigure_flow(hass)
    # The stored password is never sent back to the browser.
    assert all(k.description is None or "s3cret" not in str(k.description) for k in result["data_schema"].schema)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_URL: str(clip), CONF_USERNAME: "admin"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"  # `entry` has that camera

    result = await secured.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: str(other_clip), CONF_USERNAME: "admin2"}
    )
    assert result["reason"] == "reconfigure_successful"
    assert secured.data[CONF_USERNAME] == "admin2"
    assert secured.data[CONF_PASSWORD] == "s3cret"

    # Moved to another camera without typing a password: the old one is not sent there.
    third = clip.parent / "intel_one_by_one_person_first60s.mp4"
    result = await secured.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_URL: str(third), CONF_USERNAME: "admin2"})
    assert result["reason"] == "reconfigure_successful"
    assert CONF_PASSWORD not in secured.data


async def test_reconfigure_camera_entity(hass: HomeAssistant, cameras: None) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Yard",
        unique_id="entity_old",
        data={CONF_SOURCE_TYPE: SOURCE_ENTITY, CONF_ENTITY_ID: "camera.old", CONF_ENTITY_REGISTRY_ID: None},
        options={CONF_FPS: 5, CONF_ANONYMIZATION: "body"},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_ENTITY_ID: "camera.doorbell"})
    assert result["errors"] == {"base": "no_stream_source"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_ENTITY_ID: "camera.yard"})
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_ENTITY_ID] == "camera.yard"
    assert entry.unique_id == f"entity_{entry.data[CONF_ENTITY_REGISTRY_ID]}"


async def test_unexpected_error_is_reported_without_credentials(
    hass: HomeAssistant, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    form = await _url_form(hass)
    with patch(
        "custom_components.safecam.config_flow.probe_source",
        side_effect=RuntimeError("boom at rtsp://admin:hunter2@cam/live"),
    ):
        result = await hass.config_entries.flow.async_configure(
            form["flow_id"], _url_input("rtsp://cam/live", **{CONF_USERNAME: "admin", CONF_PASSWORD: "hunter2"})
        )
    assert result["errors"] == {"base": "unknown"}
    assert "boom" in caplog.text
    assert "hunter2" not in caplog.text
