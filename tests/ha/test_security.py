"""Credentials never leave the config entry; the anonymized view needs Home Assistant auth.

A camera URL with credentials holding special characters (an encoded '@' and a ':') that cannot
be reached: the worker fails to connect and keeps retrying, the stream_unreachable repair is
raised, and the password appears in no log line, diagnostics, repair placeholder or entity
attribute. The camera proxy refuses requests without auth (403) or with a wrong token (401).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.safecam import coordinator
from custom_components.safecam.const import DOMAIN

from .conftest import wait_for

CAMERA = "camera.demo_anonymized_view"
# Every form the password could leak in: as typed (percent-encoded), decoded, and its tail alone
# (a redactor that cuts at the first '@' would leak "ss:w0rd").
SECRETS = ("p%40ss:w0rd", "p@ss:w0rd", "ss:w0rd", "w0rd", "extra-s3cret")


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


async def test_credentials_never_leak_and_camera_proxy_needs_auth(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
    make_entry: Callable[..., MockConfigEntry],
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # everything any logger says, debug included
    monkeypatch.setattr(coordinator, "STREAM_UNREACHABLE_AFTER_S", 0)
    url = f"rtsp://user:p%40ss:w0rd@127.0.0.1:{closed_port}/x"
    entry = make_entry(url, username="user", password="extra-s3cret")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    runtime = entry.runtime_data
    issue_id = f"stream_unreachable_{entry.entry_id}"
    issues = ir.async_get(hass)
    await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, issue_id) is not None, 30, "stream_unreachable repair")
    # Let the worker fail a few more times (each failure is logged and pushed).
    await wait_for(hass, lambda: runtime.state is not None and runtime.state.error_reason == "unreachable", 30)

    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert not _leaks(repr(issue.translation_placeholders))

    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(hass, hass_client, entry)  # type: ignore[assignment]
    assert diagnostics["state"]["error_reason"] == "unreachable"  # the diagnostics do describe the failure
    assert not _leaks(repr(diagnostics))

    entity_ids = [e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)]
    assert CAMERA in entity_ids
    for entity_id in entity_ids:
        state = hass.states.get(entity_id)
        if state is not None:
            assert not _leaks(repr(state.as_dict())), entity_id

    # The engine did log the failure (so the grep below looks at real lines), naming the host only.
    engine_lines = [r.getMessage() for r in caplog.records if r.name.startswith("custom_components.safecam")]
    assert any(f"127.0.0.1:{closed_port}" in line for line in engine_lines)
    assert not _leaks(caplog.text)
    assert not _leaks("\n".join(repr(r.args) + repr(r.exc_text) for r in caplog.records))

    # The anonymized view needs Home Assistant auth: HA answers 403 to a request without any
    # credentials, 401 to a wrong bearer token; the entity's own rotating access token works.
    anonymous = await hass_client_no_auth()
    for path in (f"/api/camera_proxy/{CAMERA}", f"/api/camera_proxy_stream/{CAMERA}"):
        resp = await anonymous.get(path)
        assert resp.status == 403, path
        resp = await anonymous.get(path, headers={"Authorization": "Bearer not-a-token"})
        assert resp.status == 401, path
    resp = await anonymous.get(f"/api/camera_proxy/{CAMERA}?token=not-the-token")
    assert resp.status == 403
    token_url = hass.states.get(CAMERA).attributes["entity_picture"]  # type: ignore[union-attr]
    assert "token=" in token_url
    resp = await anonymous.get(token_url)
    assert resp.status == 200 and (await resp.read())[:2] == b"\xff\xd8"
    authed = await hass_client()
    resp = await authed.get(f"/api/camera_proxy/{CAMERA}")
    assert resp.status == 200 and (await resp.read())[:2] == b"\xff\xd8"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert not _leaks(caplog.text)
