"""Start and stop test server processes by PID (never by name, so parallel test runs do not collide)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
# gi (GStreamer bindings) is only importable from Debian's system Python, not from the venv.
SYSTEM_PYTHON = "/usr/bin/python3"

GST_CHECK = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("openh264enc", "videotestsrc", "qtdemux", "h264parse", "rtph264pay") if not Gst.ElementFactory.find(e)]
print(" ".join(missing))
"""


def gstreamer_missing() -> str | None:
    """Why the RTSP test server cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found (the GStreamer RTSP server needs Debian's python3-gi)"
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", GST_CHECK], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run {SYSTEM_PYTHON}: {err}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer RTSP server not importable ({last}); apt-get install python3-gi gir1.2-gst-rtsp-server-1.0"
    if proc.stdout.strip():
        return f"GStreamer elements missing: {proc.stdout.strip()} (gstreamer1.0-plugins-base/-good/-bad)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 15.0) -> None:
    """Block until 127.0.0.1:port accepts connections; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def start_rtsp_server(mp4: str | Path, port: int, auth_port: int | None = None) -> subprocess.Popen[bytes]:
    """GStreamer RTSP server serving /file (the mp4's H.264) and /live on port (see rtsp_server.py).

    Returns once every port accepts connections (at most 15 s); the caller stops it with stop_process.
    """
    args = [SYSTEM_PYTHON, str(RTSP_SERVER), str(mp4), str(port)]
    if auth_port is not None:
        args.append(str(auth_port))
    # stderr is inherited: pytest's fd capture shows the server's errors with a failing test.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        for p in (port, auth_port):
            if p is not None:
                wait_for_port(p, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """SIGTERM this process (by its PID), wait, SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()


def load_run_ha() -> ModuleType:
    """scripts/ha/run_ha.py (the demo's Home Assistant + engine launcher) as a module: the e2e tests and
    bench/deployed.py start Home Assistant exactly as the demo does. scripts/ is not a package, hence by path."""
    spec = importlib.util.spec_from_file_location("safecam_run_ha", Path(__file__).resolve().parents[2] / "scripts/ha/run_ha.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
