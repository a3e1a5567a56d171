"""The end-to-end harness shared by the browser tests: a real hass started by scripts/ha/run_ha.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests  # type: ignore[import-untyped]

from tests.servers.mosquitto import mosquitto_missing
from tests.servers.processes import gstreamer_missing, load_run_ha

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


run_ha = load_run_ha()


def _run_ha(tmp_path: Path, prefix: str, engine: str, **start: Any) -> Generator[Any]:
    """run_ha.start() on free ports in a temp config dir; stops it by PID; keeps the logs (also after a failure)."""
    if not os.access(run_ha.HASS, os.X_OK):
        pytest.skip(f"{run_ha.HASS} not found: the end-to-end tests run a current Home Assistant (Python 3.14) from .venv-hass")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (scripts/setup.sh installs Debian's chromium)")
    remote = engine in run_ha.REMOTE_ENGINES
    if why := gstreamer_missing() or (remote and mosquitto_missing()):
        pytest.skip(why)
    ARTIFACTS.mkdir(exist_ok=True)
    config_dir = tmp_path / "ha"
    inst = None
    try:
        if remote:
            start["broker_port"] = run_ha.free_port()
        inst = run_ha.start(config_dir=config_dir, port=run_ha.free_port(), rtsp_port=run_ha.free_port(), engine=engine, **start)
        yield inst
    finally:
        if inst is not None:
            run_ha.stop(inst)
        logs = ("home-assistant.log", "rtsp.log", "engine/engine.log", "mosquitto/mosquitto.log")
        for log in logs:
            if (config_dir / log).is_file():
                shutil.copy(config_dir / log, ARTIFACTS / f"{prefix}{Path(log).name}")


@pytest.fixture
def ha(socket_enabled: None, tmp_path: Path, request: pytest.FixtureRequest) -> Generator[Any]:
    """A real hass analysing the RTSP demo camera in-process (run_ha.py --engine embedded), with the demo's
    zone, gate, site, area and dashboard."""
    yield from _run_ha(tmp_path, getattr(request.module, "LOG_PREFIX", "e2e_"), "embedded")


@pytest.fixture
def demo(socket_enabled: None, tmp_path: Path, request: pytest.FixtureRequest) -> Generator[Any]:
    """What ./scripts/demo.sh starts (run_ha.py's default, --engine service): a current hass, Mosquitto and the
    engine as its own process on the RTSP demo camera, the camera added from the discovered flow with the
    engine's pairing key, the demo's zone, gate, site, area and dashboard."""
    yield from _run_ha(tmp_path, getattr(request.module, "LOG_PREFIX", "e2e_"), "service")


@pytest.fixture
def deployed(socket_enabled: None, tmp_path: Path, request: pytest.FixtureRequest) -> Generator[Any]:
    """The deployed shape (run_ha.py --engine service): a current hass from .venv-hass, Mosquitto and the engine
    as its own process (.venv-engine/bin/safecam-engine, its wheel) on the RTSP demo camera; stops where a user takes
    over, at the discovered safecam flow. SAFECAM_E2E_ENGINE=container runs the engine from the add-on image instead
    (run_ha.py --engine container: scripts/image.sh, podman)."""
    engine = os.environ.get("SAFECAM_E2E_ENGINE", "service")
    if engine not in run_ha.REMOTE_ENGINES:
        pytest.fail(f"SAFECAM_E2E_ENGINE={engine!r}: one of {', '.join(run_ha.REMOTE_ENGINES)}")
    yield from _run_ha(tmp_path, getattr(request.module, "LOG_PREFIX", "e2e_deployed_"), engine, add_camera=False)


# ---- the privacy check shared by the tests: a served picture is never a raw frame of the clip ----

RAW_DIFF_MIN = 2.0  # mean abs difference (0-255) the served picture keeps from every raw frame


def min_diff_to_raw_frames(image: np.ndarray, clip: Path) -> tuple[float, int]:
    """The smallest mean abs difference between image and any frame of the clip, and that frame's index."""
    cap = cv2.VideoCapture(str(clip))
    best, best_i, i = float("inf"), -1, 0
    img = image.astype(np.int16)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == image.shape, f"served picture {image.shape} vs clip {frame.shape}"
            d = float(np.abs(img - frame.astype(np.int16)).mean())
            if d < best:
                best, best_i = d, i
            i += 1
    finally:
        cap.release()
    assert i > 500, f"read only {i} frames of {clip}"
    return best, best_i


def anonymized_picture_with_people(inst: Any, timeout_s: float = 90) -> tuple[bytes, int]:
    """A camera picture taken while the people sensor counts someone (before and after the fetch)."""
    people_id = inst.entities["people"]
    camera_id = inst.entities["camera"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = inst.api("GET", f"/api/states/{people_id}")["state"]
        if before.isdigit() and int(before) >= 1:
            resp = requests.get(f"{inst.url}/api/camera_proxy/{camera_id}", headers=inst.headers, timeout=30)
            after = inst.api("GET", f"/api/states/{people_id}")["state"]
            assert resp.status_code == 200, resp.text[:300]
            assert resp.headers["Content-Type"].startswith("image/jpeg")
            if after.isdigit() and int(after) >= 1:
                return resp.content, int(after)
        time.sleep(0.5)
    pytest.fail(f"{people_id} never counted anyone in {timeout_s:.0f} s")


@contextlib.contextmanager
def logged_in_page(inst: Any, width: int = 1280, height: int = 900) -> Generator[Any]:
    """A real Chromium page (Playwright, Debian's browser) already logged in to `inst` as its owner; closed after."""
    from playwright.sync_api import sync_playwright

    tokens = json.dumps(inst.browser_tokens())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.add_init_script(f"window.localStorage.setItem('hassTokens', JSON.stringify({tokens}));")
            yield context.new_page()
            context.close()
        finally:
            browser.close()
