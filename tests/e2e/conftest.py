"""The end-to-end harness shared by the browser tests: a real hass started by scripts/ha/run_ha.py."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Generator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.servers.processes import gstreamer_missing

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


def _load_run_ha() -> ModuleType:
    spec = importlib.util.spec_from_file_location("safecam_run_ha", REPO / "scripts" / "ha" / "run_ha.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run_ha = _load_run_ha()


@pytest.fixture
def ha(socket_enabled: None, tmp_path: Path, request: pytest.FixtureRequest) -> Generator[Any]:
    """A real hass + RTSP demo camera (scripts/ha/run_ha.py) on free ports; logs kept for a failing run."""
    prefix = getattr(request.module, "LOG_PREFIX", "e2e_")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (scripts/setup.sh installs Debian's chromium)")
    if why := gstreamer_missing():
        pytest.skip(why)
    ARTIFACTS.mkdir(exist_ok=True)
    config_dir = tmp_path / "ha"
    inst = None
    try:
        inst = run_ha.start(config_dir=config_dir, port=run_ha.free_port(), rtsp_port=run_ha.free_port())
        yield inst
    finally:
        if inst is not None:
            run_ha.stop(inst)
        for log in ("home-assistant.log", "rtsp.log"):  # kept for a failing run (also after start() failed)
            if (config_dir / log).is_file():
                shutil.copy(config_dir / log, ARTIFACTS / f"{prefix}{log}")
