"""End to end, deployed: current Home Assistant + Mosquitto + the safecam engine as its own process.

The shape users run on Home Assistant OS with the add-on (scripts/ha/run_ha.py --engine service): a real
`hass` of the newest release (from .venv-hass, Python 3.14), a real Mosquitto, the engine started as
`.venv-engine/bin/safecam-engine serve --config FILE` (the wheel of this checkout, as `pip install safecam-engine`
installs it; the entry point the add-on image runs) on the looping RTSP demo camera, and Home Assistant's MQTT
integration set up for that broker. SAFECAM_E2E_ENGINE=container runs the same engine from the add-on image
(scripts/image.sh, podman on the host's network, add-on style options.json) instead. From there a real browser
does what a user does:

1. Settings -> Devices & services shows the engine under "Discovered" (the manifest's `mqtt` discovery);
   Add, pick the camera, Submit (and, where the engine signs its messages, its pairing key from its log).
   No address is typed.
2. The device's entities are live: the people count is a number, the camera picture is anonymized (never a
   raw frame of the clip).
3. A phone registers the way the companion app does (mobile_app REST registration, local push channel over
   the websocket) and an automation is made from blueprints/automation/safecam/safety_notification.yaml for
   intrusions on this camera.
4. A danger zone is drawn around the table (where every visitor of the clip stands) in the "Safecam zones"
   panel and saved: the engine gets it (set_scene) and its "intruded" sensor appears.
5. The engine's intrusion event reaches the automation, which notifies the phone: the test reads the push
   notification off the channel (title, message, the anonymized snapshot link, itself checked not raw).

Screenshots into test-artifacts/e2e_deployed_*: the discovered card, the flow (and its pairing step), the device
page with live entities, the Safecam dashboard (as the demo installs it), the zone editor, the automation's trace
(the notify action), the device page after the intrusion and the notification as the phone received it (drawn by
the test from the payload). Processes are started and stopped by PID.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
import requests  # type: ignore[import-untyped]

from tests.e2e.conftest import (
    ARTIFACTS,
    RAW_DIFF_MIN,
    anonymized_picture_with_people,
    logged_in_page,
    min_diff_to_raw_frames,
    run_ha,
)

pytestmark = pytest.mark.e2e

LOG_PREFIX = "e2e_deployed_"
SHOT = "e2e_deployed_"
# The danger zone, as fractions of the picture: the floor around the demo's standing table, where every
# visitor of the clip stops for a while (the demo's 'table' zone, drawn a little larger).
ZONE = [(0.40, 0.60), (0.82, 0.60), (0.82, 0.99), (0.40, 0.99)]
ZONE_NAME = "pit"
PHONE = "e2e phone"  # the device name; its notify action is notify.mobile_app_e2e_phone
AUTOMATION_ID = "safecam_e2e_intrusion"


class PushChannel:
    """The companion app's local push channel (websocket `mobile_app/push_notification_channel`), read in a
    thread: every notification Home Assistant pushes to this phone lands in `messages`."""

    def __init__(self, inst: Any, webhook_id: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._inst, self._webhook_id = inst, webhook_id
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"push channel not open: {self._error!r}")

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        url = self._inst.url.replace("http", "ws", 1) + "/api/websocket"
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
                await ws.receive_json()  # auth_required
                await ws.send_json({"type": "auth", "access_token": self._inst.tokens["access_token"]})
                assert (await ws.receive_json())["type"] == "auth_ok"
                await ws.send_json({"id": 1, "type": "mobile_app/push_notification_channel", "webhook_id": self._webhook_id})
                answer = await ws.receive_json()
                assert answer.get("success"), answer
                self._ready.set()
                stop = asyncio.ensure_future(self._stop.wait())
                while not stop.done():
                    receive = asyncio.ensure_future(ws.receive_json())
                    await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if receive.done():
                        msg = receive.result()
                        if msg.get("type") == "event":
                            self.messages.append(msg["event"])
                    else:
                        receive.cancel()
        except BaseException as err:  # reported to the test thread
            self._error = err
            self._ready.set()

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _by_name(inst: Any) -> dict[str, dict[str, Any]]:
    return {s["attributes"].get("friendly_name", ""): s for s in inst.api("GET", "/api/states")}


def _wait(what: str, probe: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(1)
    pytest.fail(f"{what}: not after {timeout_s:.0f} s")


def _register_phone(inst: Any) -> tuple[str, str]:
    """Register a phone as the companion app does; its webhook id and device id."""
    reg = inst.api(
        "POST",
        "/api/mobile_app/registrations",
        json={
            "device_id": "safecam-e2e-phone",
            "app_id": "io.safecam.e2e",
            "app_name": "safecam e2e",
            "app_version": "1.0",
            "device_name": PHONE,
            "manufacturer": "safecam",
            "model": "test phone",
            "os_name": "Linux",
            "os_version": "6.1",
            "supports_encryption": False,
            "app_data": {"push_websocket_channel": True},  # notifications over the websocket, no cloud
        },
    )

    def phone() -> str | None:  # its config entry sets up right after the registration answers
        [devices] = run_ha.websocket_calls(inst, [{"type": "config/device_registry/list"}])
        return next((d["id"] for d in devices if ["mobile_app", "safecam-e2e-phone"] in d["identifiers"]), None)

    return str(reg["webhook_id"]), str(_wait("the phone's device", phone, 30))


def _create_notification_automation(inst: Any, event_entity: str, phone_device: str) -> str:
    """An automation from the notification blueprint (what Create automation -> blueprint saves)."""
    inst.api(
        "POST",
        f"/api/config/automation/config/{AUTOMATION_ID}",
        json={
            "alias": "safecam intrusion to my phone",
            "description": "Made from the safecam notification blueprint by the deployed end-to-end test",
            "use_blueprint": {
                "path": "safecam/safety_notification.yaml",
                "input": {
                    "event_entities": [event_entity],
                    "event_types": ["intrusion"],
                    "notify_devices": [phone_device],
                    "cooldown": 0,
                },
            },
        },
    )
    return str(
        _wait(
            "the blueprint automation's entity",
            lambda: next(
                (
                    s["entity_id"]
                    for s in inst.api("GET", "/api/states")
                    if s["entity_id"].startswith("automation.") and s["attributes"].get("id") == AUTOMATION_ID
                ),
                None,
            ),
            30,
        )
    )


def _not_raw(jpeg: bytes, what: str) -> float:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, f"{what}: not a decodable JPEG"
    diff, frame = min_diff_to_raw_frames(image, run_ha.DEMO_CLIP)
    assert diff > RAW_DIFF_MIN, f"{what} is (nearly) raw frame {frame} of the clip: diff {diff:.2f}"
    return diff


def test_deployed_discovered_camera_zone_and_notification(deployed: Any) -> None:
    from playwright.sync_api import expect

    t0 = time.monotonic()
    inst = deployed
    cam = run_ha.CAMERA_NAME
    steps: dict[str, float] = {"setup": time.monotonic() - t0}
    # The engine runs as a user installs it: its wheel's console script (or the add-on image), not the checkout.
    engine_cmd = " ".join(map(str, inst.engine.proc.args))
    if inst.engine_mode == "container":
        assert engine_cmd.startswith(str(run_ha.PODMAN)) and " localhost/safecam-engine:" in engine_cmd, engine_cmd
    else:
        assert engine_cmd.startswith(f"{run_ha.ENGINE_CLI} serve --config "), engine_cmd
    with logged_in_page(inst) as page:
        # ---- 1. the discovered engine, added through the UI ------------------------------------
        page.goto(f"{inst.url}/config/integrations/dashboard", wait_until="load")
        card = page.locator("ha-config-flow-card").filter(has_text="safecam")
        expect(card).to_be_visible(timeout=60_000)
        expect(card.get_by_text(run_ha.ENGINE_ID, exact=True)).to_be_visible()  # the engine's id as its title
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}1_discovered.png"))
        card.get_by_role("button", name="Add").click()
        flow = page.locator("dialog-data-entry-flow")
        expect(flow.get_by_text("Camera of a safecam engine")).to_be_visible(timeout=30_000)
        flow.get_by_text(f"{cam} ({run_ha.ENGINE_ID})").click()  # the engine's one camera
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}2_flow.png"))
        flow.get_by_role("button", name="Submit").click()
        finish = flow.get_by_role("button", name="Finish")
        asks_key = flow.get_by_text("Pairing key").first
        expect(finish.or_(asks_key)).to_be_visible(timeout=30_000)
        if asks_key.is_visible():  # engines that sign their messages: the key from the engine's log
            key = run_ha.engine_pairing_key(inst)
            assert key, "the flow asks for a pairing key but the engine made none"
            flow.locator("input").first.fill(key)
            page.screenshot(path=str(ARTIFACTS / f"{SHOT}2b_pairing_key.png"))
            flow.get_by_role("button", name="Submit").click()
        expect(finish).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}3_created.png"))
        finish.click()
        expect(flow).to_be_hidden(timeout=15_000)
        steps["discovered flow"] = time.monotonic() - t0

        # ---- 2. live entities; the picture is anonymized ----------------------------------------
        run_ha.wait_for_entities(inst, site=False, zone=False)
        entries = inst.api("GET", "/api/config/config_entries/entry", params={"domain": "safecam"})
        [entry] = entries
        assert entry["source"] == "mqtt" and entry["state"] == "loaded", entry  # from discovery, not typed
        inst.entry_id = entry["entry_id"]
        jpeg, count = anonymized_picture_with_people(inst)
        (ARTIFACTS / f"{SHOT}camera_proxy.jpg").write_bytes(jpeg)
        diff = _not_raw(jpeg, "the camera entity's picture")
        print(f"camera picture with {count} people: min mean abs diff to a raw frame {diff:.2f}")
        page.goto(f"{inst.url}/config/devices/device/{inst.device_id}", wait_until="load")
        expect(page.get_by_text(cam).first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("People", exact=True).first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}4_device.png"))
        # The Safecam dashboard the demo installs (the cards the integration generates for the engine's
        # camera): the anonymized live view and the counts, in a browser.
        run_ha.install_dashboard(inst)
        page.goto(f"{inst.url}/{run_ha.DASHBOARD_URL_PATH}", wait_until="load")
        live = page.locator("hui-picture-entity-card img").first
        expect(live).to_be_visible(timeout=30_000)
        page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=live.element_handle(), timeout=30_000)
        expect(page.locator("hui-tile-card").filter(has_text="People").first).to_be_visible(timeout=15_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}4b_dashboard.png"), full_page=True)
        steps["entities live"] = time.monotonic() - t0

        # ---- 3. a phone and an automation from the notification blueprint ----------------------
        webhook_id, phone_device = _register_phone(inst)
        channel = PushChannel(inst, webhook_id)
        try:
            event_entity = next(e for e in inst.all_entities if e.startswith("event."))
            automation = _create_notification_automation(inst, event_entity, phone_device)
            assert inst.api("GET", f"/api/states/{automation}")["state"] == "on"

            # ---- 4. a danger zone drawn in the zone editor ---------------------------------------
            assert f"{cam} {ZONE_NAME} intruded" not in _by_name(inst)
            page.goto(f"{inst.url}/safecam", wait_until="load")
            panel = page.locator("safecam-panel")
            overlay = panel.locator("#overlay")
            expect(overlay).to_be_visible(timeout=30_000)
            page.wait_for_function(
                "el => el.complete && el.naturalWidth > 0",
                arg=panel.locator("#snapshot").element_handle(),
                timeout=30_000,
            )
            box = overlay.bounding_box()
            assert box is not None and box["width"] > 300, box
            panel.locator("#add-zone").click()
            for x, y in ZONE:
                page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
            panel.locator("#finish").click()
            row = panel.locator("#zones .item").last
            row.locator("input.name").fill(ZONE_NAME)
            row.locator("select.kind").select_option("danger")
            panel.locator("#save").click()
            expect(panel.locator("#message")).to_have_text("Saved: the camera uses the new zones and gates.", timeout=15_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / f"{SHOT}5_zone_editor.png"))
            # The engine took it: its layout names the zone (HA's entities follow from the engine's layout).
            _wait(
                "the danger zone's intruded sensor",
                lambda: _by_name(inst).get(f"{cam} {ZONE_NAME} intruded", {}).get("state") in ("on", "off"),
                60,
            )
            steps["zone drawn"] = time.monotonic() - t0

            # ---- 5. an intrusion reaches the blueprint automation, which notifies the phone ------
            push = _wait(
                "a push notification about an intrusion",
                lambda: next((m for m in channel.messages if "Intrusion" in m.get("title", "")), None),
                150,
            )
            steps["notification"] = time.monotonic() - t0
        finally:
            channel.close()
        print(f"notification: {push}")
        # The blueprint's default title and message: "<event> - <camera>", "<event> in <zone> on <camera> at <time>".
        assert push["title"].startswith("Intrusion - "), push
        assert push["message"].startswith(f"Intrusion in {ZONE_NAME} on "), push
        data = push["data"]
        assert data["tag"].startswith("safecam_") and data["push"]["interruption-level"] == "time-sensitive"
        # The picture the phone would load: the event's anonymized snapshot, through a signed link.
        snapshot = requests.get(inst.url + data["image"], timeout=30)
        assert snapshot.status_code == 200 and snapshot.headers["Content-Type"].startswith("image/jpeg")
        (ARTIFACTS / f"{SHOT}notification_image.jpg").write_bytes(snapshot.content)
        _not_raw(snapshot.content, "the notification's picture")
        assert _by_name(inst)["safecam intrusion to my phone"]["attributes"]["last_triggered"] is not None

        # The automation's trace timeline: what it did (the notify action to the phone), as a user checks it.
        page.goto(f"{inst.url}/config/automation/trace/{AUTOMATION_ID}", wait_until="load")
        expect(page.get_by_text("safecam intrusion to my phone").first).to_be_visible(timeout=30_000)
        nodes = page.locator("hat-script-graph hat-graph-node")
        expect(nodes.first).to_be_visible(timeout=15_000)
        nodes.last.click()  # the last action: the notify call to the phone
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}6_automation_trace.png"))
        expect(page.get_by_text("mobile_app_e2e_phone").first).to_be_visible(timeout=15_000)

        # The device page now: the danger zone's sensor and the safety event beside the counts.
        page.goto(f"{inst.url}/config/devices/device/{inst.device_id}", wait_until="load")
        expect(page.get_by_text(f"{ZONE_NAME} intruded", exact=True).first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}7_device_after.png"))

        # What the phone received, drawn by the test from the pushed payload (title, message, the picture
        # behind its signed link): the companion app itself is not part of this test.
        page.set_content(
            "<body style='font-family:sans-serif;background:#eee;width:420px'>"
            "<p style='color:#666'>Push notification received on the local push channel "
            f"(rendered by tests/e2e/test_deployed.py)</p><div style='background:#fff;border-radius:12px;padding:12px'>"
            f"<b>{html.escape(push['title'])}</b><br>{html.escape(push['message'])}<br>"
            f"<img style='width:100%;margin-top:8px' src='{html.escape(inst.url + data['image'])}'></div></body>"
        )
        page.wait_for_function("() => document.images[0].complete && document.images[0].naturalWidth > 0")
        page.screenshot(path=str(ARTIFACTS / f"{SHOT}8_notification.png"), full_page=True)
        page.close()
    print("seconds since the test started: " + ", ".join(f"{k} {v:.0f}" for k, v in steps.items()))
