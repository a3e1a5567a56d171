"""The add-on image, built and run the way the Supervisor runs it, seen from Home Assistant.

scripts/image.sh builds addon/Dockerfile (the release workflow's file; the base swapped through BUILD_FROM for a
debootstrapped Debian trixie). The container then starts as the Supervisor starts an add-on: `/data`
holding the `options.json` the Supervisor would write (here with `mqtt_host`: the test's real Mosquitto), run.sh ->
options_to_config.py -> `safecam-engine serve` (here PID 1 itself, without the Supervisor's init: it must
handle SIGTERM on its own), on the looping RTSP demo camera (scripts/ha/rtsp_loop.py, the demo's
clip). The host's network stands in for the Supervisor's: SAFECAM_HTTP_PORT moves the add-on's HTTP port (8099)
to a free one. Checked: the watchdog URL answers; Home Assistant (PHCC, its MQTT integration on the same broker)
discovers the engine, pairs with its key and shows the camera's counts EQUAL to the state the engine publishes
(read off the broker by an independent subscriber and verified with the contract); no raw frame on the broker;
SIGTERM (the Supervisor's stop) ends the engine cleanly. Container, camera and broker are stopped by name / PID.

Needs podman (CI installs it with runc and debootstrap): without it the test fails, it does not skip.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_socket
import yaml
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er

from custom_components.safecam.const import CONF_CAMERA_ID, CONF_PAIRING_KEY, DOMAIN
from custom_components.safecam.contract import Topics, jpeg_body, json_body, open_signed, parse_pairing_key, valid_state
from tests.e2e.conftest import RAW_DIFF_MIN, min_diff_to_raw_frames
from tests.ha.conftest import number_of, wait_for
from tests.ha.test_remote import _setup_mqtt
from tests.servers.mosquitto import Broker, Recorder, mosquitto_missing
from tests.servers.processes import SYSTEM_PYTHON, free_port, stop_process, wait_for_port

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("socket_enabled", "mock_hass_config", "enable_custom_integrations")]

REPO = Path(__file__).resolve().parents[2]
PODMAN = REPO / "scripts" / "podman.sh"
RTSP_LOOP = REPO / "scripts" / "ha" / "rtsp_loop.py"
CLIP = "pedestrians/intel_one_by_one_person_first60s.mp4"  # the demo camera's clip (768x432, 10 fps)
ENGINE_ID, CAMERA = "addon", "demo"
KEY = "AEBA-GBAF-AYDQ-QCIK-BMGA-2DQP-CAIR-EEYU"  # typed into the add-on's options, and into Home Assistant
# The floor around the demo clip's standing table, and a gate just above the bottom edge (people walk in from there).
SCENE = """\
zones:
  - {name: table, kind: area, polygon: [[0.42, 0.62], [0.8, 0.62], [0.8, 1.0], [0.42, 1.0]]}
gates:
  - {name: entrance, line: [[0.72, 0.97], [0.2, 0.97]]}
"""


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, check=False)


class AddOn:
    """Broker, demo camera and the add-on's container, each stopped by `stack` (in reverse) once started."""

    def __init__(self, root: Path, shared_data: Path, image: str, stack: contextlib.ExitStack) -> None:
        self.clip = shared_data / CLIP
        self.broker = Broker(root / "broker")
        self.broker.start()
        stack.callback(self.broker.stop)
        self.sub = Recorder(self.broker, ("safecam/#",))
        stack.callback(self.sub.close)
        self.topics = Topics("safecam", ENGINE_ID)
        self.key = parse_pairing_key(KEY)
        rtsp_port = free_port()
        fps = str(round(cv2.VideoCapture(str(self.clip)).get(cv2.CAP_PROP_FPS)))
        self.rtsp = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_LOOP), str(self.clip), str(rtsp_port), fps], stdout=subprocess.DEVNULL
        )
        stack.callback(stop_process, self.rtsp)
        wait_for_port(rtsp_port, self.rtsp, 60)
        # /data as the Supervisor makes it: options.json validated against config.yaml's schema (test_addon_config).
        self.data = root / "data"
        self.data.mkdir()
        options = yaml_defaults() | {
            "engine_id": ENGINE_ID,
            "cameras": [{"name": "Demo", "id": CAMERA, "url": f"rtsp://127.0.0.1:{rtsp_port}/demo", "fps": 5, "scene": SCENE}],
            "pairing_key": KEY,
            "state_interval": 2,
            "snapshot_interval": 2,
            "mqtt_discovery": False,  # the safecam integration is the consumer here (DOCS.md)
            "mqtt_host": "127.0.0.1",
            "mqtt_port": self.broker.port,
        }
        (self.data / "options.json").write_text(json.dumps(options))
        self.http_port = free_port()
        self.name = f"safecam-addon-test-{uuid.uuid4().hex[:8]}"
        stack.callback(_podman, "rm", "-f", "-t", "5", self.name)  # by name: the container, whatever state it is in
        run = _podman(
            "run", "-d", "--name", self.name, "--network", "host",
            "-v", f"{self.data}:/data", "-e", f"SAFECAM_HTTP_PORT={self.http_port}", image,
        )  # fmt: skip
        assert run.returncode == 0, f"podman run failed: {run.stderr}"

    def logs(self) -> str:
        proc = _podman("logs", self.name)
        return (proc.stdout + proc.stderr)[-4000:]

    def verified(self, topic: str) -> list[Any]:
        """Every message on topic whose signature holds with the add-on's pairing key (Signed)."""
        return [open_signed(self.key, topic, m.payload) for m in self.sub.on(topic)]

    def state(self) -> dict[str, Any] | None:
        msgs = self.verified(self.topics.state(CAMERA))
        return valid_state(json_body(msgs[-1])) if msgs else None


def yaml_defaults() -> dict[str, Any]:
    """The options the Supervisor starts from: config.yaml's defaults."""
    return dict(yaml.safe_load((REPO / "addon" / "config.yaml").read_text(encoding="utf-8"))["options"])


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: the add-on image cannot be built (apt-get install podman runc debootstrap)")
    proc = subprocess.run([str(REPO / "scripts" / "image.sh")], capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"scripts/image.sh failed:\n{proc.stderr[-4000:]}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def addon(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, image: str) -> Generator[AddOn]:
    if mosquitto_missing():
        pytest.fail(str(mosquitto_missing()))
    pytest_socket.enable_socket()  # module setup runs before the per-test socket_enabled fixture
    with contextlib.ExitStack() as stack:
        yield AddOn(tmp_path_factory.mktemp("addon"), shared_data, image, stack)


def _watchdog_answers(port: int, timeout_s: float) -> bool:
    """GET /healthz until it answers 200 (blocking: run in an executor)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _no_raw_frame(addon: AddOn) -> None:
    """The camera pictures the add-on published (first and last snapshot, last event pictures) are far from every
    frame of the clip (blocking: run in an executor). Pictures of another size are the engine's drawn placeholders
    ("no anonymized frame", before the first frame), not camera pictures."""
    frame_shape = (432, 768, 3)  # the clip's

    def camera_pictures(topic: str) -> list[np.ndarray]:
        decoded = [cv2.imdecode(np.frombuffer(jpeg_body(m), np.uint8), cv2.IMREAD_COLOR) for m in addon.verified(topic)]
        assert all(p is not None for p in decoded), f"a picture on {topic} is no JPEG"
        return [p for p in decoded if p is not None and p.shape == frame_shape]

    snapshots = camera_pictures(addon.topics.snapshot(CAMERA))
    assert snapshots, "the add-on published no camera picture"
    for picture in [snapshots[0], snapshots[-1], *camera_pictures(addon.topics.event_snapshot(CAMERA))[-2:]]:
        diff, frame = min_diff_to_raw_frames(picture, addon.clip)
        assert diff > RAW_DIFF_MIN, f"a published picture is raw frame {frame} of the clip (diff {diff:.2f})"


def _stops_cleanly(addon: AddOn) -> None:
    """The Supervisor stops an add-on with SIGTERM: exit 0, "offline" on the broker, the state kept in /data."""
    stop = _podman("stop", "-t", "30", addon.name)
    assert stop.returncode == 0, stop.stderr
    exit_code = _podman("inspect", "--format", "{{.State.ExitCode}}", addon.name).stdout.strip()
    assert exit_code == "0", f"exit code {exit_code}; container log:\n{addon.logs()}"
    assert addon.sub.wait(lambda: addon.sub.on(addon.topics.availability)[-1].body == b"offline", 10)
    assert json.loads((addon.data / "state.json").read_text())["cameras"][CAMERA]


def _shown(hass: HomeAssistant, ids: dict[str, str]) -> tuple[float, ...]:
    keys = ("people", "zone_table_people", "gate_entrance_in", "gate_entrance_out")
    return tuple(number_of(hass, ids[k]) for k in keys)


def _published(state: dict[str, Any] | None) -> tuple[float, ...]:
    if state is None:
        return ()
    gate = state["gates"]["entrance"]
    return tuple(float(v) for v in (state["people"], state["zones"]["table"]["people"], gate["in"], gate["out"]))


async def test_the_add_on_image_serves_the_demo_camera_to_home_assistant(hass: HomeAssistant, addon: AddOn) -> None:
    # The Supervisor's watchdog URL (config.yaml: http://[HOST]:[PORT:8099]/healthz) answers.
    answered = await hass.async_add_executor_job(_watchdog_answers, addon.http_port, 120)
    assert answered, f"the watchdog URL never answered; container log:\n{addon.logs()}"
    # The engine analyses the camera and signs what it publishes with the key of the options.
    analysing = lambda: (s := addon.state()) is not None and s["health"]["frames"] > 0  # noqa: E731
    await wait_for(hass, analysing, 90, f"a state from the add-on; container log:\n{addon.logs()}")
    assert addon.sub.on(addon.topics.availability)[-1].body == b"online"

    # Home Assistant's MQTT integration on the same broker: the safecam integration discovers the engine (no address
    # typed) and pairs with the add-on's key.
    mqtt_entry = await _setup_mqtt(hass, addon.broker)
    try:
        entry = await _pair(hass)

        def ids() -> dict[str, str]:
            prefix = f"{entry.entry_id}_"
            entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
            return {e.unique_id.removeprefix(prefix): e.entity_id for e in entities}

        wanted = {"people", "zone_table_people", "gate_entrance_in", "gate_entrance_out"}
        await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED and wanted <= set(ids()), 30, "the entities")
        # The detector in the image sees the demo clip's people (equal counts alone would also hold at zero).
        await wait_for(hass, lambda: number_of(hass, ids()["people"]) >= 1, 90, "HA to show a person the engine counted")
        # Every count HA shows equals the engine's last verified state (polled: both move with every analysed frame).
        await wait_for(hass, lambda: _shown(hass, ids()) == _published(addon.state()), 60, "HA to show the engine's counts")
        assert min(_shown(hass, ids())) >= 0
    finally:
        for loaded in [*hass.config_entries.async_entries(DOMAIN), mqtt_entry]:
            if loaded.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(loaded.entry_id)
        await hass.async_block_till_done()

    await hass.async_add_executor_job(_no_raw_frame, addon)
    await hass.async_add_executor_job(_stops_cleanly, addon)


async def _pair(hass: HomeAssistant) -> Any:
    """The discovered engine's flow, answered as a user does: the camera, then the add-on's pairing key."""
    unique_id = f"mqtt_engine_{ENGINE_ID}"

    def flows() -> list[Any]:
        progress = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        return [f for f in progress if f["context"].get("unique_id") == unique_id]

    await wait_for(hass, lambda: bool(flows()), 30, "the discovered engine")
    flow_id = flows()[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_CAMERA_ID: f"mqtt_{ENGINE_ID}_{CAMERA}"})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "remote_key"
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_PAIRING_KEY: KEY})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["title"] == "Demo"
    await hass.async_block_till_done()
    return result["result"]
