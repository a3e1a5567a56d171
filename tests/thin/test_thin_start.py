"""A thin integration: Home Assistant with a remote (engine-as-a-service) camera and a site over it imports nothing heavy.

The check runs in a fresh interpreter (an import already made by another test would hide one), with a meta-path
blocker installed before anything else (tests/thin/heavy_blocker.py): cv2, onnxruntime and openvino may not be
imported at all, numpy not by safecam's own modules. The probe (remote_start_probe.py) sets up Home Assistant with
a real broker and engine, a remote camera with every platform, and a site device over it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.mosquitto import mosquitto_missing

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing()))
def test_remote_camera_at_start_imports_nothing_heavy() -> None:
    probe = Path(__file__).with_name("remote_start_probe.py")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "tests.thin.heavy_blocker", str(probe.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
