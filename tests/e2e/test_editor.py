"""End to end: the zone and gate editor panel in a real Home Assistant, driven by real Chromium.

The same setup as test_browser.py (scripts/ha/run_ha.py: real hass, safecam on a looping RTSP
camera, the demo zone 'table' and gate 'entrance'). The browser opens the safecam sidebar panel,
draws a new zone with mouse clicks and a gate with a mouse drag, flips the gate, names both and
saves. Then: the stored scene (read back through the panel's websocket command) holds them where
they were drawn, the old zone and gate are kept, the new entities appear, and the engine counts
people in the new zone. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, logged_in_page, run_ha

pytestmark = pytest.mark.e2e

# Where the test clicks, as fractions of the picture: the floor around the demo's standing table
# (people stand there for a while on every pass of the clip), and a gate across the lower part.
ZONE = [(0.40, 0.60), (0.82, 0.60), (0.82, 0.98), (0.40, 0.98)]
GATE_DRAG = [(0.25, 0.90), (0.75, 0.90)]  # drawn left to right, then flipped: stored right to left
TOL = 0.01  # normalized: a pixel or two of the picture as shown


LOG_PREFIX = "e2e_editor_"  # the shared `ha` fixture (conftest.py) keeps its logs under this name


def _by_name(inst: Any) -> dict[str, dict[str, Any]]:
    return {s["attributes"].get("friendly_name", ""): s for s in inst.api("GET", "/api/states")}


def _wait_state(inst: Any, name: str, ok: Any, timeout_s: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = _by_name(inst).get(name)
        if last is not None and ok(last["state"]):
            return last
        time.sleep(1)
    pytest.fail(f"{what}: {name!r} not there after {timeout_s:.0f} s (last: {last})")


def test_draw_zone_and_gate(ha: Any) -> None:
    from playwright.sync_api import expect

    inst = ha
    cam = run_ha.CAMERA_NAME
    assert f"{cam} desk people" not in _by_name(inst)
    with logged_in_page(inst, 1400, 1000) as page:
        page.goto(f"{inst.url}/safecam", wait_until="load")
        panel = page.locator("safecam-panel")
        overlay = panel.locator("#overlay")
        expect(overlay).to_be_visible(timeout=30_000)
        # The existing zone and gate are listed, and the anonymized view is the background.
        expect(panel.locator("#zones input.name").first).to_have_value("table", timeout=15_000)
        expect(panel.locator("#gates input.name").first).to_have_value("entrance")
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0", arg=panel.locator("#snapshot").element_handle(), timeout=15_000
        )
        box = overlay.bounding_box()
        assert box is not None and box["width"] > 300, box

        def at(p: tuple[float, float]) -> tuple[float, float]:
            return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

        # A zone: click its corners, then Finish; name it and pick its kind.
        panel.locator("#add-zone").click()
        for p in ZONE:
            page.mouse.click(*at(p))
        panel.locator("#finish").click()
        zone_row = panel.locator("#zones .item").last
        zone_row.locator("input.name").fill("desk")
        zone_row.locator("select.kind").select_option("restricted")

        # A gate: press, drag, release; the in-arrow shows; flip it and name it.
        panel.locator("#add-gate").click()
        page.mouse.move(*at(GATE_DRAG[0]))
        page.mouse.down()
        page.mouse.move(*at(GATE_DRAG[1]), steps=8)
        page.mouse.up()
        expect(panel.locator("#gates .item")).to_have_count(2)
        expect(overlay.locator("line.in-arrow")).to_have_count(2)
        gate_row = panel.locator("#gates .item").last
        gate_row.locator("button.flip").click()
        gate_row.locator("input.name").fill("doorway")
        page.screenshot(path=str(ARTIFACTS / "e2e_editor_drawn.png"))

        panel.locator("#save").click()
        expect(panel.locator("#message")).to_have_text("Saved: the camera uses the new zones and gates.", timeout=15_000)

        # What the integration stored, read back through the websocket API the panel uses.
        scene = page.evaluate(
            "id => document.querySelector('home-assistant').hass.callWS({type: 'safecam/scene/get', entry_id: id})",
            inst.entry_id,
        )
        zones = {z["name"]: z for z in scene["zones"]}
        gates = {g["name"]: g for g in scene["gates"]}
        assert set(zones) == {"table", "desk"} and set(gates) == {"entrance", "doorway"}, scene
        assert zones["desk"]["kind"] == "restricted"
        assert len(zones["desk"]["polygon"]) == len(ZONE)
        for got, want in zip(zones["desk"]["polygon"], ZONE, strict=True):
            assert abs(got[0] - want[0]) < TOL and abs(got[1] - want[1]) < TOL, (got, want)
        # Flipped: stored from the drag's end to its start.
        for got, want in zip(gates["doorway"]["line"], reversed(GATE_DRAG), strict=True):
            assert abs(got[0] - want[0]) < TOL and abs(got[1] - want[1]) < TOL, (got, want)

        # The new entities appear (the entry reloaded without a restart) and the engine fills the zone.
        _wait_state(inst, f"{cam} doorway in", lambda s: s.isdigit(), 60, "the new gate's sensor")
        _wait_state(inst, f"{cam} desk occupied", lambda s: s in ("on", "off"), 60, "the new zone's binary sensor")
        _wait_state(inst, f"{cam} desk people", lambda s: s.isdigit() and int(s) >= 1, 120, "someone counted in the new zone")
        assert _by_name(inst)[f"{cam} table people"]["state"].isdigit()  # the old zone still runs

        page.reload(wait_until="load")
        expect(panel.locator("#zones input.name")).to_have_count(2, timeout=30_000)
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0", arg=panel.locator("#snapshot").element_handle(), timeout=15_000
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "e2e_editor_saved.png"))
        page.close()
