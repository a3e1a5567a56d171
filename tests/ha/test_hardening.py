"""issue 19: who may act, what a form can make Home Assistant do, what a name may contain.

Each test reproduces one row of the issue's table against real Home Assistant (PHCC: its HTTP API, websocket
API and flows), and fails on the code before the fix:
- row 1: a non-admin called the export actions and chose file names under the public www folder;
- rows 2, 3: a huge or deeply nested scene was parsed without caps (RecursionError, thousands of entities);
- row 4: camera and site names took control and bidi characters;
- row 6: a 100 kB stream URL was taken.
Cameras here point at a closed local port (set up, nothing analysed): these tests are about the integration.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components import api as api_component
from homeassistant.components.recorder import Recorder
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_NAME, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator, WebSocketGenerator

from custom_components.safecam.const import (
    CONF_ANONYMIZATION,
    CONF_EMPTY_RESET_S,
    CONF_FPS,
    CONF_FUSION_RADIUS_M,
    CONF_PLAN_DEPTH_M,
    CONF_PLAN_WIDTH_M,
    CONF_SCENE,
    DOMAIN,
)
from custom_components.safecam.engine.config import MAX_NAME_LENGTH, MAX_ZONES

from .conftest import SCENE, setup_loaded, unload

UNPRINTABLE_NAMES = ("\x1b[31mred", "evil\u202egnp.exe", "two\nlines", "tab\there")


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder's test database must exist before hass does (the custom-integrations fixture asks for hass)."""


def _zone(name: str, i: int = 0) -> dict[str, Any]:
    x = (i % 100) / 100
    return {"name": name, "kind": "area", "polygon": [[x, 0.0], [x + 0.01, 0.0], [x + 0.01, 0.5]]}


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


# ---- row 1 ------------------------------------------------------------------------------------------------------------


async def test_exports_are_admin_only_and_named_by_the_integration(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_read_only_access_token: str,
    make_entry: Callable[..., MockConfigEntry],
    closed_port: int,
    tmp_path: Path,
) -> None:
    hass.config.config_dir = str(tmp_path / "config")
    www = tmp_path / "config" / "www"
    (www / "safecam").mkdir(parents=True)
    plan = www / "safecam" / "plan.png"  # the site's floor plan, where docs/site.md suggests it
    plan.write_bytes(b"the floor plan")
    entry = make_entry(f"rtsp://127.0.0.1:{closed_port}/x", scene={})
    await setup_loaded(hass, entry)
    heatmap = {"config_entry_id": entry.entry_id, "window": "hour"}

    # A non-admin user (HA's read-only user) is refused (401) and writes nothing.
    guest = await hass_client(hass_read_only_access_token)
    for service, data in (("export_report", {"hours": 1, "name": "guest"}), ("export_heatmap", {**heatmap, "name": "guest"})):
        resp = await guest.post(f"/api/services/{DOMAIN}/{service}", json=data)
        assert resp.status == HTTPStatus.UNAUTHORIZED, (service, resp.status, await resp.text())
    assert _files(www) == {"safecam/plan.png"}

    # An admin: a refused name is a ServiceValidationError with the reason, which HA's REST API answers with 400 (from
    # HA 2025.5 on; 2025.4 answered 500 to any ServiceValidationError), never an OSError (a 300-character name was).
    admin = await hass_client()
    rest_400 = hasattr(api_component, "ServiceValidationError")
    for bad in ("../escape", "/etc/passwd", "safecam/plan", "plan.png/x", ".hidden", "x" * 300, "a b", "\u202eexe"):
        for service, data in (("export_heatmap", {**heatmap, "name": bad}), ("export_report", {"hours": 1, "name": bad})):
            with pytest.raises(ServiceValidationError) as err:
                await hass.services.async_call(DOMAIN, service, data, blocking=True, return_response=True)
            assert err.value.translation_key == "export_name_invalid"
            assert len(err.value.translation_placeholders["name"]) <= 120  # bounded when shown
            if rest_400:
                resp = await admin.post(f"/api/services/{DOMAIN}/{service}", json=data)
                assert resp.status == HTTPStatus.BAD_REQUEST, (service, bad, resp.status, await resp.text())
    assert _files(www) == {"safecam/plan.png"}

    # Accepted: only into www/safecam/exports; "plan" there leaves the floor plan alone.
    resp = await admin.post(f"/api/services/{DOMAIN}/export_heatmap?return_response", json={**heatmap, "name": "plan"})
    assert resp.status == HTTPStatus.OK, await resp.text()
    body = await resp.json()
    assert body["service_response"]["url"] == "/local/safecam/exports/plan.png"
    assert (www / "safecam" / "exports" / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plan.read_bytes() == b"the floor plan"
    result = await hass.services.async_call(DOMAIN, "export_heatmap", heatmap, blocking=True, return_response=True)
    assert result is not None
    default = Path(str(result["path"]))
    assert default.parent == www / "safecam" / "exports" and default.name.startswith("heatmap_hour_")
    assert len(default.stem.removeprefix("heatmap_hour_")) == 16  # a random part nobody guesses
    result = await hass.services.async_call(DOMAIN, "export_report", {"hours": 2}, blocking=True, return_response=True)
    assert result is not None
    assert {Path(p).parent for p in result["files"].values()} == {www / "safecam" / "exports"}  # type: ignore[union-attr]
    assert all(u.startswith("/local/safecam/exports/report_") for u in result["urls"].values())  # type: ignore[union-attr]
    assert {p for p in _files(www) if not p.startswith("safecam/exports/")} == {"safecam/plan.png"}
    await unload(hass, entry)


# ---- rows 2 and 3 -------------------------------------------------------------------------------------------------------


async def _scene_form(hass: HomeAssistant, entry: MockConfigEntry, text: str) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": "scene"})
    assert result["step_id"] == "scene"
    return await hass.config_entries.options.async_configure(result["flow_id"], {CONF_SCENE: text})


async def test_scene_text_is_capped_with_one_line_errors(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], closed_port: int
) -> None:
    entry = make_entry(f"rtsp://127.0.0.1:{closed_port}/x")
    await setup_loaded(hass, entry)
    entities = len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id))
    stored = dict(entry.options)
    zones = "".join(f"  - {{name: z{i}, polygon: [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]}}\n" for i in range(30_001))
    refused = {
        "nested deeper than": "zones: " + "[" * 5000 + "]" * 5000,  # was RecursionError (only YAMLError was caught)
        "at most 262144": "zones:\n" + zones,  # 2 MB, 30,001 zones: was parsed, blocking the loop for 38.5 s
        f"at most {MAX_ZONES} are allowed": "zones:\n" + "".join(zones.splitlines(keepends=True)[: MAX_ZONES + 1]),
        "is longer than": f"zones:\n  - {{name: {'n' * 10_000}, polygon: [[0, 0], [1, 0], [1, 1]]}}\n",
    }
    for needle, text in refused.items():
        result = await _scene_form(hass, entry, text)
        assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "invalid_scene"}, needle
        error = result["description_placeholders"]["error"]
        assert needle in error and "\n" not in error and len(error) < 300, (needle, error[:300])
    assert dict(entry.options) == stored
    assert len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)) == entities
    # At the caps it is taken.
    most = [_zone(f"zone {i:03d} " + "x" * (MAX_NAME_LENGTH - 9), i) for i in range(MAX_ZONES)]
    result = await _scene_form(hass, entry, f"zones: {most}".replace("'", '"'))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("description_placeholders")
    assert len(entry.options[CONF_SCENE]["zones"]) == MAX_ZONES
    await hass.async_block_till_done()
    await unload(hass, entry)


async def test_zone_editor_refuses_too_many_zones_and_long_names(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], closed_port: int, hass_ws_client: WebSocketGenerator
) -> None:
    entry = make_entry(f"rtsp://127.0.0.1:{closed_port}/x")
    await setup_loaded(hass, entry)
    entities = len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id))
    ws = await hass_ws_client(hass)
    refused = {
        "is longer than": [_zone("n" * 1_000_000)],  # was stored (recorder: "attributes exceed maximum size")
        "10000 zones, at most 100": [_zone(f"z{i}", i) for i in range(10_000)],  # was 20,006 entities
    }
    for needle, zones in refused.items():
        await ws.send_json_auto_id({"type": "safecam/scene/set", "entry_id": entry.entry_id, "zones": zones, "gates": []})
        msg = await ws.receive_json()
        assert not msg["success"], needle
        assert msg["error"]["code"] == "invalid_scene" and needle in msg["error"]["message"], msg["error"]["message"][:300]
        assert len(msg["error"]["message"]) < 300
    assert entry.options[CONF_SCENE] == SCENE
    assert len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)) == entities
    await unload(hass, entry)


# ---- rows 4 and 6 -------------------------------------------------------------------------------------------------------


async def _flow(hass: HomeAssistant, *steps: str) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    for step in steps:
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": step})
    return result


async def test_camera_and_site_names_are_one_line_of_printable_characters(hass: HomeAssistant, clip: Path) -> None:
    """A camera (its source good), a site: a name with control or bidi characters is refused like a zone's."""
    settings = {CONF_FPS: 5, CONF_ANONYMIZATION: "body"}
    for name in (*UNPRINTABLE_NAMES, "n" * (MAX_NAME_LENGTH + 1)):
        form = await _flow(hass, "local", "url")
        result = await hass.config_entries.flow.async_configure(
            form["flow_id"], {CONF_NAME: name, CONF_URL: str(clip), **settings}
        )
        assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "invalid_name"}, (name, result)
        hass.config_entries.flow.async_abort(form["flow_id"])

        form = await _flow(hass, "site")
        site = {CONF_NAME: name, CONF_EMPTY_RESET_S: 30, CONF_FUSION_RADIUS_M: 1.0, CONF_PLAN_WIDTH_M: 20, CONF_PLAN_DEPTH_M: 10}
        result = await hass.config_entries.flow.async_configure(form["flow_id"], site)
        assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "invalid_site"}, (name, result)
        assert "site: name" in result["description_placeholders"]["error"]
        hass.config_entries.flow.async_abort(form["flow_id"])

    assert not hass.config_entries.async_entries(DOMAIN)


async def test_a_100_kb_stream_url_is_refused(hass: HomeAssistant, closed_port: int) -> None:
    """Refused before anything opens it (the code before the fix tried to connect: cannot_connect)."""
    settings = {CONF_FPS: 5, CONF_ANONYMIZATION: "body"}
    form = await _flow(hass, "local", "url")
    url = f"rtsp://127.0.0.1:{closed_port}/{'x' * 100_000}"
    result = await hass.config_entries.flow.async_configure(form["flow_id"], {CONF_NAME: "Long", CONF_URL: url, **settings})
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "url_too_long"}
    assert not hass.config_entries.async_entries(DOMAIN)
