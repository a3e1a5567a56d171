"""End to end: what ./scripts/demo.sh starts, checked through the REST API and in real Chromium.

scripts/ha/run_ha.py's default shape (the deployed one) on free ports in a temp config dir: a real Home
Assistant 2026.11 (.venv-hass), Mosquitto, the engine as its own process on a looping RTSP camera, the camera
added from the discovered flow with the engine's pairing key, the demo zone, gate, site, area and the Safecam
dashboard. The test checks the entities (camera, zone, gate and site), the entry's origin (discovery), the
installed dashboard, and that the camera serves an anonymized picture (never a raw frame of the clip); then a
real browser (Playwright + Debian's /usr/bin/chromium) shows the device page, the camera's more-info dialog and
the overview, which on 2026.11 is built from areas: the camera's area, opened from its tile. Screenshots into
test-artifacts/. Synchronous on purpose (no asyncio), and every process is stopped by PID.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import pytest

from tests.e2e.conftest import (
    ARTIFACTS,
    RAW_DIFF_MIN,
    anonymized_picture_with_people,
    logged_in_page,
    min_diff_to_raw_frames,
    run_ha,
)

pytestmark = pytest.mark.e2e


def _states(inst: Any) -> dict[str, dict[str, Any]]:
    return {s["entity_id"]: s for s in inst.api("GET", "/api/states")}


def test_real_ha_and_browser(demo: Any) -> None:
    t0 = time.monotonic()
    inst = demo

    # ---- the entities, through the REST API ------------------------------------------------------
    states = _states(inst)
    people = states[inst.entities["people"]]
    assert people["state"].isdigit(), people
    assert people["attributes"]["friendly_name"] == "Demo camera People"
    assert inst.entities["camera"] in states
    for role in ("zone_people", "zone_occupied", "gate_entries", "gate_exits"):
        assert role in inst.entities, f"missing {role}: {inst.all_entities}"
    assert inst.device_id and inst.device_id != "None"
    for role in ("site_people", "site_on_map", "site_floor_plan", "site_heatmap"):
        assert role in inst.entities, f"missing {role}: {inst.all_entities}"
    # The camera came from the engine's discovery (no address typed) and is loaded.
    camera_entry = next(e for e in inst.api("GET", "/api/config/config_entries/entry") if e["entry_id"] == inst.entry_id)
    assert camera_entry["source"] == "mqtt" and camera_entry["state"] == "loaded", camera_entry
    # The Safecam dashboard holds the cards the integration generates now.
    dashboards, config, generated = run_ha.websocket_calls(
        inst,
        [
            {"type": "lovelace/dashboards/list"},
            {"type": "lovelace/config", "url_path": run_ha.DASHBOARD_URL_PATH},
            {"type": "safecam/dashboard"},
        ],
    )
    assert any(d["url_path"] == run_ha.DASHBOARD_URL_PATH for d in dashboards), dashboards
    assert config == generated
    assert [v["title"] for v in generated["views"]] == [run_ha.SITE_NAME, run_ha.CAMERA_NAME]

    # ---- the camera: an anonymized picture, never a raw frame -----------------------------------
    jpeg, count = anonymized_picture_with_people(inst)
    (ARTIFACTS / "e2e_camera_proxy.jpg").write_bytes(jpeg)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the camera did not serve a decodable JPEG"
    diff, frame_index = min_diff_to_raw_frames(image, run_ha.DEMO_CLIP)
    print(f"camera picture with {count} people: min mean abs diff to a raw frame {diff:.2f} (frame {frame_index})")
    assert diff > RAW_DIFF_MIN, f"the camera served (nearly) raw frame {frame_index} of the clip: diff {diff:.2f}"

    # ---- a real browser ------------------------------------------------------------------------
    from playwright.sync_api import expect

    camera_id = inst.entities["camera"]
    with logged_in_page(inst) as page:
        # The safecam device page: the device name and its entities.
        page.goto(f"{inst.url}/config/devices/device/{inst.device_id}", wait_until="load")
        expect(page.get_by_text("Demo camera").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("People", exact=True).first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("table people", exact=True).first).to_be_visible()
        expect(page.get_by_text("entrance in", exact=True).first).to_be_visible()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "e2e_device.png"))

        # The camera's more-info dialog (what clicking the camera shows): the live anonymized view.
        page.evaluate(
            "id => document.querySelector('home-assistant').dispatchEvent(new CustomEvent('hass-more-info',"
            " {detail: {entityId: id}, bubbles: true, composed: true}))",
            camera_id,
        )
        dialog = page.locator("ha-more-info-dialog")
        expect(dialog.get_by_text("Anonymized view").first).to_be_visible(timeout=15_000)
        picture = dialog.locator("img").first
        expect(picture).to_be_visible(timeout=15_000)
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=picture.element_handle(), timeout=15_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "e2e_camera_more_info.png"))

        # The overview (auto-generated; on 2026.11 built from areas): the camera's area, opened from its
        # tile as a user does, shows the device with its anonymized picture and its sensors.
        page.goto(f"{inst.url}/lovelace/0", wait_until="load")
        area_tile = page.locator("hui-area-card").filter(has_text=run_ha.AREA_NAME).first
        expect(area_tile).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)  # the launch screen fades out over the tiles
        area_tile.click()
        page.wait_for_url(f"**/areas-{inst.area_id}", timeout=30_000)
        expect(page.get_by_text("Demo camera").first).to_be_visible(timeout=30_000)
        for name in ("People", "table people", "entrance in"):
            expect(page.locator("hui-tile-card").filter(has_text=name).first).to_be_visible(timeout=15_000)
        overview_picture = page.locator(f"img[src*='{camera_id}']").first
        expect(overview_picture).to_be_visible(timeout=30_000)
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=overview_picture.element_handle(), timeout=30_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / "e2e_overview.png"))
        page.close()
    print(f"browser part done, {time.monotonic() - t0:.0f} s after the start of the test")
