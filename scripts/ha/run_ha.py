"""Run a real Home Assistant with safecam on a looping demo camera (the main demo and the browser tests).

    .venv/bin/python scripts/ha/run_ha.py                    # foreground: Ctrl-C stops everything
    .venv/bin/python scripts/ha/run_ha.py --background       # leave it running, print how to stop it
    .venv/bin/python scripts/ha/run_ha.py --stop             # stop a background instance by its PID files
    .venv/bin/python scripts/ha/run_ha.py --engine container # the engine from the add-on image (podman)
    .venv/bin/python scripts/ha/run_ha.py --engine embedded  # analysis inside Home Assistant instead

The default (`--engine service`) is the deployed shape, as on Home Assistant OS with the add-on: a current
hass (`.venv-hass/bin/hass --skip-pip`, Python 3.14), a Mosquitto broker, and the engine as its own process,
`.venv-engine/bin/safecam-engine serve --config FILE`: the wheel of this checkout as `pip install safecam-engine`
installs it (scripts/setup.sh), the entry point the add-on image runs. `--engine container` runs that image itself
instead (scripts/image.sh builds it, scripts/podman.sh runs it on the host's network with <config>/engine as its
/data, holding an add-on style options.json). Either way the engine is on the demo
camera. Home Assistant's MQTT integration is set up for the broker (config flow), the engine announces itself
(`safecam/<engine>/info`) and the camera is added from the discovered flow with the engine's pairing key (which
it prints in its log and keeps in <config>/engine/pairing_key), as a user does in Settings -> Devices & services.
The notification blueprints are copied into the config dir and `mobile_app:` is on, so a phone (companion app)
can be notified. `--engine embedded`: the same hass analyses the camera itself (the config flow's "in Home
Assistant" path; its requirements are in .venv-hass, hence --skip-pip); no broker, no engine process.

Both shapes: write a minimal configuration.yaml (no default_config: it would pip-install at runtime), symlink
custom_components/safecam into the config dir, start a looping RTSP camera (GStreamer, scripts/ha/rtsp_loop.py;
`--source file` uses the clip's path instead, which the analysis loops itself), start hass, onboard through the
REST API (or log in when already onboarded), add the camera, set the demo zone, gate and ground-plane
calibration through the options flow (to an engine camera: `set_scene`), add a site ("Demo site": the camera's
gate as its perimeter, the camera on its floor map), wait for the entities, put the camera in the area "Demo
room" (2026.11's overview is built from areas), install the safecam dashboard (the cards the integration
generates, saved as a storage dashboard through the lovelace websocket commands), and print URL, login and
entity ids.

Re-running with the same config dir is idempotent: onboarding, the entries, the area and the scene are reused
(a scene from before the calibration gets the demo calibration added; the anonymization follows
the integration's default); the engine keeps its pairing key and state beside its config.
Processes are started in their own sessions and stopped by PID (files <config>/hass.pid, rtsp.pid; with
`--engine service` or `container` also broker.pid and engine.pid; `container` also engine.container, the
container's name, removed with `podman rm -f`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the integration's constants (plain, no Home Assistant import)
from custom_components.safecam.const import CONF_ANONYMIZATION, CONF_FPS, DEFAULT_ANONYMIZATION  # noqa: E402
from tests.servers.mosquitto import Broker, EngineProcess  # noqa: E402  (the same process handling as the tests)

SHARED = Path(os.environ.get("SAFECAM_SHARED", REPO.parent / "shared"))
DEMO_CLIP = SHARED / "data" / "pedestrians" / "intel_one_by_one_person_first60s.mp4"
DEFAULT_CONFIG_DIR = REPO / "run" / "ha" / "config"
SERVICE_CONFIG_DIR = REPO / "run" / "ha" / "service"  # its own: a newer hass migrates the config dir it runs on
RTSP_SERVER = Path(__file__).with_name("rtsp_loop.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # gi (GStreamer) is only importable from Debian's python3
# A real Home Assistant of the newest release PyPI serves, in its own venv (scripts/setup.sh: .venv-hass,
# requirements/lock-hass.txt): the test harness in .venv pins an older one. SAFECAM_HASS picks another `hass`.
HASS = Path(os.environ.get("SAFECAM_HASS", REPO / ".venv-hass" / "bin" / "hass"))
# --engine service: the engine as its wheel installs it (scripts/setup.sh builds .venv-engine from this checkout).
ENGINE_CLI = REPO / ".venv-engine" / "bin" / "safecam-engine"
# --engine container: the add-on image and podman with this machine's flags.
IMAGE_SCRIPT = REPO / "scripts" / "image.sh"
PODMAN = REPO / "scripts" / "podman.sh"
REMOTE_ENGINES = ("service", "container")  # the engine apart from Home Assistant, over MQTT
ENGINE_ID = "demo"  # safecam/<ENGINE_ID>/... on the broker
ENGINE_CAMERA_ID = "demo_camera"
BROKER_PORT = 1883
SNAPSHOT_INTERVAL_S = 2  # the camera entity's anonymized picture comes over MQTT this often (default 30 s)
BLUEPRINTS = REPO / "blueprints" / "automation" / "safecam"

USERNAME, PASSWORD, DISPLAY_NAME = "safecam", "safecam-demo", "Safecam Demo"
CAMERA_NAME = "Demo camera"
SITE_NAME = "Demo site"
AREA_NAME = "Demo room"  # the camera's area (the overview of Home Assistant 2026.11 groups devices by area)
DASHBOARD_URL_PATH = "safecam-dashboard"  # lovelace wants a hyphen in a dashboard's url path
FPS = 5
# The Intel clip (768x432, 10 fps): people walk in from the bottom edge to a standing table in
# the middle, stay a while and leave to the right. Zone: the floor around the table (people count
# where their feet are). Gate: a line just above the bottom edge, drawn right to left so that
# walking up into the picture (towards the table) counts as an entry; the engine CLI counts
# 3 entries and 0-1 exits on one pass of the clip.
# Calibration: an ESTIMATE for the demo, not measured. The camera faces a wall; the floor runs from
# the bottom edge to the skirting board at y = 0.6. A standing table's top (about 0.6 m) spans 18 %
# of the width and a visitor (about 1.65 m) 85 % of the height: about 220 px/m at the table, so the
# picture is about 3.5 m wide there (3 m at the bottom edge, 4.3 m at the wall). A visitor standing
# at the table has her feet about 0.4 m in front of its foot, which puts the bottom edge about
# 1.2 m in front of the wall. Site frame (the demo site's floor plan, 8 m x 6 m, x right, y down):
# the wall's skirting at y = 1 m; the picture's borders meet (the camera) near y = 5.3 m.
DEMO_CALIBRATION = {
    "image": [[0.05, 0.98], [0.95, 0.98], [0.85, 0.6], [0.15, 0.6]],
    "floor": [[2.6, 2.2], [5.4, 2.2], [5.5, 1.0], [2.5, 1.0]],
}
DEMO_SCENE = f"""\
zones:
  - name: table
    kind: area
    polygon: [[0.42, 0.62], [0.8, 0.62], [0.8, 1.0], [0.42, 1.0]]
gates:
  - name: entrance
    line: [[0.72, 0.97], [0.2, 0.97]]
calibration:
  image: {DEMO_CALIBRATION["image"]}
  floor: {DEMO_CALIBRATION["floor"]}
"""
# The demo site: the camera's gate is its perimeter ("in" = walking up into the picture = entering),
# the calibrated camera puts its people on the plan. The plan picture (<config>/www/safecam/
# demo_plan.png) is drawn by write_demo_plan from the calibration: wall, table, pillar, gate, view.
SITE_PLAN_M = (8.0, 6.0)
SITE_ENTRANCE = "entrance"
SITE_PLAN_IMAGE = "safecam/demo_plan.png"
# The clip's visitors leave off to the right, not through the gate, so the gate flow only grows; the
# room is empty for about 6 s once a loop (nobody in view): a 5 s reset empties the site there.
SITE_EMPTY_RESET_S = 5
PLAN_PX_PER_M = 100
SITE_VIEW_PATH = "demo-site"  # its dashboard view (dashboard.py: the slugified title)

CONFIGURATION_YAML = """\
# Written by scripts/ha/run_ha.py: a minimal config (no default_config, which installs packages at runtime).
homeassistant:
  name: safecam demo
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: Europe/Amsterdam
  country: NL
  currency: EUR
frontend:
http:
  server_host: 127.0.0.1
  server_port: {port}
history:
logbook:
logger:
  default: warning
  logs:
    custom_components.safecam: info
"""
# --engine service: automations from the blueprints (UI/REST-editable) and phones (companion app) to notify.
SERVICE_YAML = """\
automation: !include automations.yaml
mobile_app:
"""


class SetupError(RuntimeError):
    """Something in the setup failed; the message says what."""


def log(msg: str) -> None:
    print(f"[run_ha] {msg}", flush=True)


@dataclass
class HaInstance:
    config_dir: Path
    port: int
    hass: subprocess.Popen[bytes] | None = None
    rtsp: subprocess.Popen[bytes] | None = None
    source: str = ""
    tokens: dict[str, Any] = field(default_factory=dict)
    entry_id: str = ""
    device_id: str = ""
    site_entry_id: str = ""
    area_id: str = ""
    entities: dict[str, str] = field(default_factory=dict)  # role -> entity id
    all_entities: list[str] = field(default_factory=list)
    engine_mode: str = "embedded"  # or "service" / "container": broker + engine apart, camera from MQTT discovery
    broker: Broker | None = None
    engine: EngineProcess | ContainerEngine | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client_id(self) -> str:
        return f"{self.url}/"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def api(self, method: str, path: str, timeout: float = 30, **kwargs: Any) -> Any:
        """Authorized REST call; returns the JSON answer (or text); raises SetupError on HTTP errors."""
        resp = requests.request(method, self.url + path, headers=self.headers, timeout=timeout, **kwargs)
        if resp.status_code >= 400:
            raise SetupError(f"{method} {path}: HTTP {resp.status_code} {resp.text[:500]}")
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def template(self, tpl: str) -> str:
        """Render a template in HA (the answer is text, whatever it looks like)."""
        resp = requests.post(self.url + "/api/template", headers=self.headers, json={"template": tpl}, timeout=30)
        if resp.status_code >= 400:
            raise SetupError(f"POST /api/template: HTTP {resp.status_code} {resp.text[:300]}")
        return resp.text.strip()

    def browser_tokens(self) -> dict[str, Any]:
        """The `hassTokens` object the frontend keeps in localStorage (logs a browser in)."""
        return {
            **self.tokens,
            "hassUrl": self.url,
            "clientId": self.client_id,
            "expires": int(time.time() * 1000) + int(self.tokens.get("expires_in", 1800)) * 1000,
        }


# ---- processes ----------------------------------------------------------------------------


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (TIME_WAIT leftovers do not count, as for the servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SetupError(f"{what} does not listen on port {port} after {timeout_s:.0f} s")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pid_from_file(pidfile: Path, must_contain: str) -> int | None:
    """The PID in pidfile if that process still runs and is the one we started (not a reused PID)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if must_contain in _cmdline(pid) else None


def _signal(pid: int, sig: int) -> None:
    """To the process group it leads (its own session, as hass and the camera), else to the process alone
    (the broker and the engine, started by the tests' helpers)."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_pid(pid: int, what: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 30.0) -> None:
    """SIGTERM (see _signal), SIGKILL after timeout_s; reaps our children."""
    _signal(pid, signal.SIGTERM)
    if proc is not None:
        try:
            proc.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            pass
    else:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        if not Path(f"/proc/{pid}").exists():
            return
    log(f"{what} (PID {pid}) did not stop in {timeout_s:.0f} s: killing it")
    _signal(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=10)


def _stop_proc(proc: subprocess.Popen[bytes] | None, pidfile: Path, what: str) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        stop_pid(proc.pid, what, proc)
    _unlink_pidfile(pidfile, proc.pid)


def stop(inst: HaInstance) -> None:
    """Stop what this instance started (hass first, then the engine: clients before their servers)."""
    _stop_proc(inst.hass, inst.config_dir / "hass.pid", "Home Assistant")
    inst.hass = None
    if inst.engine is not None:
        inst.engine.stop()
        _unlink_pidfile(inst.config_dir / "engine.pid", inst.engine.proc.pid)
        if isinstance(inst.engine, ContainerEngine):
            with contextlib.suppress(FileNotFoundError):
                (inst.config_dir / "engine.container").unlink()
        inst.engine = None
    if inst.broker is not None:
        pid = inst.broker.proc.pid if inst.broker.proc is not None else -1
        inst.broker.stop()
        _unlink_pidfile(inst.config_dir / "broker.pid", pid)
        inst.broker = None
    _stop_proc(inst.rtsp, inst.config_dir / "rtsp.pid", "RTSP server")
    inst.rtsp = None


def _unlink_pidfile(pidfile: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if pidfile.read_text().strip() == str(pid):
            pidfile.unlink()


def stop_by_pidfiles(config_dir: Path) -> bool:
    """--stop: stop a background instance. True if something was running."""
    found = False
    for name, marker, what in (
        ("hass.pid", "hass", "Home Assistant"),
        # the console script, or the podman client attached to the container of the image safecam-engine
        ("engine.pid", "safecam-engine", "safecam engine"),
        ("broker.pid", "mosquitto", "Mosquitto"),
        ("rtsp.pid", "rtsp_loop.py", "RTSP server"),
    ):
        pidfile = config_dir / name
        pid = _pid_from_file(pidfile, marker)
        if pid is not None:
            found = True
            log(f"stopping {what} (PID {pid})")
            stop_pid(pid, what)
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
    container = config_dir / "engine.container"
    if container.is_file():
        found = True
        log(f"removing the engine's container {container.read_text().strip()}")
        remove_container(container.read_text().strip())
        container.unlink()
    return found


def start_rtsp(inst: HaInstance, clip: Path, rtsp_port: int) -> str:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise SetupError(f"{SYSTEM_PYTHON} not found: the RTSP camera needs Debian's python3-gi (or use --source file)")
    if not port_free(rtsp_port):
        raise SetupError(f"port {rtsp_port} is in use (another demo running? try --stop, or --rtsp-port)")
    import cv2  # here: only the RTSP camera needs it (the clip's frame rate)

    cap = cv2.VideoCapture(str(clip))
    fps = round(cap.get(cv2.CAP_PROP_FPS)) or 10
    cap.release()
    log_path = inst.config_dir / "rtsp.log"
    with log_path.open("ab") as out:
        inst.rtsp = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), str(clip), str(rtsp_port), str(fps)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (inst.config_dir / "rtsp.pid").write_text(f"{inst.rtsp.pid}\n")
    wait_for_port(rtsp_port, inst.rtsp, 60, f"RTSP server (log: {log_path})")
    return f"rtsp://127.0.0.1:{rtsp_port}/demo"


def prepare_config(config_dir: Path, port: int, engine_mode: str = "embedded") -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    config = CONFIGURATION_YAML.format(port=port)
    if engine_mode in REMOTE_ENGINES:
        config += SERVICE_YAML
        (config_dir / "automations.yaml").touch()
        # What docs/blueprints.md tells a user: copy the files to <config>/blueprints/automation/safecam/.
        target = config_dir / "blueprints" / "automation" / "safecam"
        target.mkdir(parents=True, exist_ok=True)
        for blueprint in BLUEPRINTS.glob("*.yaml"):
            (target / blueprint.name).write_bytes(blueprint.read_bytes())
    (config_dir / "configuration.yaml").write_text(config)
    write_demo_plan(config_dir)
    components = config_dir / "custom_components"
    components.mkdir(exist_ok=True)
    link = components / "safecam"
    target = REPO / "custom_components" / "safecam"
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        raise SetupError(f"{link} exists and is not a symlink to {target}: remove it")
    link.symlink_to(target, target_is_directory=True)


def write_demo_plan(config_dir: Path) -> None:
    """The demo site's floor plan picture, SITE_PLAN_M at PLAN_PX_PER_M: what the camera sees, placed on
    the floor through the demo calibration (so the dots land where the picture shows the table)."""
    import cv2  # here: only the plan picture needs them
    import numpy as np

    from custom_components.safecam.engine.calibration import Calibration

    calib = Calibration.from_points(DEMO_CALIBRATION["image"], DEMO_CALIBRATION["floor"])

    def px(image_points: list[tuple[float, float]]) -> list[tuple[int, int]]:
        floor = calib.to_floor(np.asarray(image_points, np.float64))
        return [(round(x * PLAN_PX_PER_M), round(y * PLAN_PX_PER_M)) for x, y in floor]

    w, h = (round(m * PLAN_PX_PER_M) for m in SITE_PLAN_M)
    ink, grey, font = (60, 60, 60), (150, 150, 150), cv2.FONT_HERSHEY_SIMPLEX
    plan = np.full((h, w, 3), (214, 232, 244), np.uint8)  # a wooden floor's light tone (BGR)
    for m in range(1, max(w, h) // PLAN_PX_PER_M + 1):  # a faint metre grid
        cv2.line(plan, (m * PLAN_PX_PER_M, 0), (m * PLAN_PX_PER_M, h), (200, 216, 228), 1)
        cv2.line(plan, (0, m * PLAN_PX_PER_M), (w, m * PLAN_PX_PER_M), (200, 216, 228), 1)
    wall_y = px([(0.5, 0.6)])[0][1]  # the skirting board the camera faces
    cv2.rectangle(plan, (0, 0), (w - 1, wall_y), (205, 205, 205), -1)
    cv2.line(plan, (0, wall_y), (w, wall_y), ink, 4)
    cv2.putText(plan, "wall", (20, wall_y - 20), font, 0.7, ink, 2, cv2.LINE_AA)
    (px0, _), (px1, _) = px([(0.72, 0.6), (0.79, 0.6)])  # the pillar against the wall
    cv2.rectangle(plan, (px0, wall_y - 10), (px1, wall_y + (px1 - px0) - 10), grey, -1)
    cv2.putText(plan, "pillar", (px1 + 8, wall_y + 25), font, 0.55, ink, 1, cv2.LINE_AA)
    [table] = px([(0.57, 0.72)])  # the table's foot
    cv2.circle(plan, table, round(0.3 * PLAN_PX_PER_M), (120, 150, 180), -1)
    cv2.circle(plan, table, round(0.3 * PLAN_PX_PER_M), ink, 2)
    cv2.putText(plan, "table", (table[0] + 36, table[1] + 6), font, 0.6, ink, 1, cv2.LINE_AA)
    a, b = px([(0.2, 0.97), (0.72, 0.97)])  # the gate "entrance" (its line in the scene)
    cv2.line(plan, a, b, (40, 120, 230), 4)
    cv2.putText(plan, SITE_ENTRANCE, (b[0] + 10, b[1] + 6), font, 0.6, (40, 120, 230), 2, cv2.LINE_AA)
    # The camera: where the picture's left and right borders, mapped to the floor, meet; its view.
    (l0, l1, r0, r1) = np.asarray(px([(0.0, 0.6), (0.0, 1.0), (1.0, 0.6), (1.0, 1.0)]), np.float64)
    t = np.linalg.solve(np.c_[l1 - l0, r0 - r1], r0 - l0)[0]
    camera = tuple(int(v) for v in np.round(l0 + t * (l1 - l0)))
    for corner in (l0, r0):
        cv2.line(plan, camera, (int(corner[0]), int(corner[1])), grey, 1, cv2.LINE_AA)
    cv2.rectangle(plan, (camera[0] - 14, camera[1] - 8), (camera[0] + 14, camera[1] + 8), ink, -1)
    cv2.putText(plan, CAMERA_NAME.lower(), (camera[0] + 22, camera[1] + 6), font, 0.6, ink, 1, cv2.LINE_AA)
    path = config_dir / "www" / SITE_PLAN_IMAGE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), plan):
        raise SetupError(f"could not write the demo floor plan {path}")


def start_hass(inst: HaInstance, timeout_s: float = 120) -> None:
    if not port_free(inst.port):
        raise SetupError(f"port {inst.port} is in use (another Home Assistant? try --stop, or --port)")
    if not os.access(HASS, os.X_OK):
        raise SetupError(f"{HASS} not found: scripts/setup.sh builds it (.venv-hass)")
    env = dict(os.environ)
    # The detector model from the shared mirror (no download needed); an explicit setting wins.
    if "SAFECAM_MODEL_MIRROR" not in env and (SHARED / "models").is_dir():
        env["SAFECAM_MODEL_MIRROR"] = str(SHARED / "models")
    out_path = inst.config_dir / "hass.out"
    with out_path.open("ab") as out:
        inst.hass = subprocess.Popen(
            [str(HASS), "-c", str(inst.config_dir), "--skip-pip"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    (inst.config_dir / "hass.pid").write_text(f"{inst.hass.pid}\n")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if inst.hass.poll() is not None:
            raise SetupError(f"Home Assistant exited with code {inst.hass.returncode}; see {out_path}")
        try:
            if requests.get(inst.url + "/", timeout=2, allow_redirects=False).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SetupError(f"Home Assistant does not answer on {inst.url} after {timeout_s:.0f} s; see {out_path}")


# ---- onboarding and login -----------------------------------------------------------------


def _token_from_code(inst: HaInstance, code: str) -> dict[str, Any]:
    resp = requests.post(
        inst.url + "/auth/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": inst.client_id},
        timeout=30,
    )
    if resp.status_code != 200:
        raise SetupError(f"/auth/token: HTTP {resp.status_code} {resp.text[:300]}")
    return dict(resp.json())


def _login(inst: HaInstance) -> dict[str, Any]:
    """Log in with username/password through the auth login flow (what the login page does)."""
    flow = requests.post(
        inst.url + "/auth/login_flow",
        json={"client_id": inst.client_id, "handler": ["homeassistant", None], "redirect_uri": inst.client_id},
        timeout=30,
    ).json()
    result = requests.post(
        inst.url + f"/auth/login_flow/{flow['flow_id']}",
        json={"client_id": inst.client_id, "username": USERNAME, "password": PASSWORD},
        timeout=30,
    ).json()
    if result.get("type") != "create_entry":
        raise SetupError(f"login as {USERNAME} failed ({result.get('errors')}): was this config dir made by another script?")
    return _token_from_code(inst, result["result"])


def onboard_or_login(inst: HaInstance, timeout_s: float = 60) -> None:
    """Create the owner on a fresh instance, or log in; then finish any onboarding step left."""
    deadline = time.monotonic() + timeout_s
    while True:  # /api/onboarding answers once the onboarding integration is set up
        try:
            resp = requests.get(inst.url + "/api/onboarding", timeout=5)
            if resp.status_code == 200:
                steps = {s["step"]: s["done"] for s in resp.json()}
                break
            if resp.status_code == 404 and requests.get(inst.url + "/auth/providers", timeout=5).status_code == 200:
                steps = {}  # fully onboarded: HA no longer registers the onboarding views
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SetupError("the onboarding API did not answer")
        time.sleep(0.5)
    if not steps.get("user", True):
        log(f"onboarding: creating the owner {USERNAME!r}")
        resp = requests.post(
            inst.url + "/api/onboarding/users",
            json={
                "client_id": inst.client_id,
                "name": DISPLAY_NAME,
                "username": USERNAME,
                "password": PASSWORD,
                "language": "en",
            },
            timeout=60,
        )
        if resp.status_code != 200:
            raise SetupError(f"onboarding user: HTTP {resp.status_code} {resp.text[:300]}")
        inst.tokens = _token_from_code(inst, resp.json()["auth_code"])
    else:
        log(f"already onboarded: logging in as {USERNAME!r}")
        inst.tokens = _login(inst)
    for step, body in (
        ("core_config", {}),
        ("analytics", {}),
        ("integration", {"client_id": inst.client_id, "redirect_uri": inst.client_id}),
    ):
        if not steps.get(step, True):
            inst.api("POST", f"/api/onboarding/{step}", json=body)


# ---- the safecam entry ----------------------------------------------------------------------


def _flow_step(inst: HaInstance, path: str, body: dict[str, Any], expect: str) -> dict[str, Any]:
    result = inst.api("POST", path, json=body, timeout=90)
    if result.get("type") != expect:
        raise SetupError(f"{path}: expected {expect}, got {json.dumps(result)[:600]}")
    return dict(result)


def _suggested(form: dict[str, Any], name: str) -> str:
    for item in form.get("data_schema", []):
        if item.get("name") == name:
            return str((item.get("description") or {}).get("suggested_value") or "")
    return ""


def _ensure_source(inst: HaInstance, source: str) -> None:
    """A reused entry keeps its source unless it differs (other --source or --rtsp-port): reconfigure."""
    base = "/api/config/config_entries/flow"
    form = _flow_step(inst, base, {"handler": "safecam", "entry_id": inst.entry_id}, "form")
    if _suggested(form, "url") == source:
        inst.api("DELETE", f"{base}/{form['flow_id']}")
        return
    log(f"changing the source of {CAMERA_NAME!r} to {source} (reconfigure flow)")
    done = _flow_step(inst, f"{base}/{form['flow_id']}", {"url": source}, "abort")
    if done.get("reason") != "reconfigure_successful":
        raise SetupError(f"reconfigure failed: {done.get('reason')}")


def ensure_entry(inst: HaInstance, source: str) -> None:
    """Add the demo camera (config flow) unless an entry with its name exists; set its scene."""
    entries = inst.api("GET", "/api/config/config_entries/entry", params={"domain": "safecam"})
    entry = next((e for e in entries if e["title"] == CAMERA_NAME), None)
    if entry is None:
        log(f"adding {CAMERA_NAME!r} (source {source}) through the config flow")
        base = "/api/config/config_entries/flow"
        flow = _flow_step(inst, base, {"handler": "safecam", "show_advanced_options": False}, "menu")
        # In-process analysis (the demo has no engine service): its requirements are this venv's (--skip-pip).
        flow = _flow_step(inst, f"{base}/{flow['flow_id']}", {"next_step_id": "local"}, "menu")
        flow = _flow_step(inst, f"{base}/{flow['flow_id']}", {"next_step_id": "url"}, "form")
        done = _flow_step(
            inst,
            f"{base}/{flow['flow_id']}",
            {"name": CAMERA_NAME, "url": source, "fps": FPS, CONF_ANONYMIZATION: DEFAULT_ANONYMIZATION},
            "create_entry",
        )
        inst.entry_id = done["result"]["entry_id"]
        configured = ""
    else:
        inst.entry_id = entry["entry_id"]
        log(f"reusing the existing entry {CAMERA_NAME!r} ({inst.entry_id})")
        _ensure_source(inst, source)
        _ensure_default_anonymization(inst)
        configured = "?"  # unknown: read it from the options form below
    ensure_scene(inst, configured)


def ensure_scene(inst: HaInstance, configured: str = "?") -> None:
    """The demo's zone, gate and calibration through the options flow (an empty scene gets them, a scene
    without calibration gets the calibration added, anything else is kept). configured: the scene's
    YAML if known, "?" to read it from the form. A camera of an engine passes it on as `set_scene`."""
    base = "/api/config/config_entries/options/flow"
    flow = _flow_step(inst, base, {"handler": inst.entry_id}, "menu")
    form = _flow_step(inst, f"{base}/{flow['flow_id']}", {"next_step_id": "scene"}, "form")
    if configured == "?":
        configured = _suggested(form, "scene")
    scene = DEMO_SCENE
    if configured.strip():
        current = yaml.safe_load(configured)
        if not isinstance(current, dict) or "calibration" in current:
            inst.api("DELETE", f"{base}/{flow['flow_id']}")
            log("zones/gates/calibration already configured: kept")
            return
        log("zones/gates kept; adding the demo's ground-plane calibration (the site's floor map needs it)")
        scene = yaml.safe_dump({**current, "calibration": DEMO_CALIBRATION}, sort_keys=False)
    else:
        log("setting the zone 'table', the gate 'entrance' and the calibration through the options flow")
    _flow_step(inst, f"{base}/{flow['flow_id']}", {"scene": scene}, "create_entry")


# ---- --engine service: broker, engine process, MQTT integration, the discovered camera ----------


def engine_config(inst: HaInstance, broker_port: int) -> dict[str, Any]:
    """The engine's `serve` config (the add-on writes the same from its options): one camera, its scene
    managed over MQTT (the zone editor's `set_scene`), state kept beside it."""
    return {
        "engine_id": ENGINE_ID,
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "cameras": [{"id": ENGINE_CAMERA_ID, "name": CAMERA_NAME, "url": inst.source, "fps": FPS}],
        "state_file": str(inst.config_dir / "engine" / "state.json"),
        "snapshot_interval_s": SNAPSHOT_INTERVAL_S,
    }


def engine_pairing_key(inst: HaInstance) -> str | None:
    """The key the flow asks for once engines sign their messages (issue 17, item 4): an engine without
    `pairing_key` in its config makes one at first start, prints it in its log and keeps it beside its
    state file. None while the engine makes none (no file)."""
    path = inst.config_dir / "engine" / "pairing_key"
    return path.read_text().strip() if path.is_file() else None


def addon_options(inst: HaInstance, broker_port: int) -> dict[str, Any]:
    """--engine container: engine_config as the add-on's options (the image turns them into its serve config with
    addon/options_to_config.py): the broker named (no Supervisor), zones from Home Assistant, no HA MQTT discovery
    (the integration adds the camera, as with the process)."""
    return {
        "engine_id": ENGINE_ID,
        "cameras": [{"id": ENGINE_CAMERA_ID, "name": CAMERA_NAME, "url": inst.source, "fps": FPS}],
        "scene_source": "home_assistant",
        "snapshot_interval": SNAPSHOT_INTERVAL_S,
        "state_interval": 10,
        "heatmap_interval": 60,
        "provider": "auto",
        "mqtt_discovery": False,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": broker_port,
        "log_level": "info",
    }


def remove_container(name: str, timeout_s: int = 20) -> None:
    """`podman rm -f`: SIGTERM to the engine (a clean stop: "offline"), SIGKILL after timeout_s, then removed."""
    command = [str(PODMAN), "rm", "-f", "--ignore", "-t", str(timeout_s), name]
    subprocess.run(command, capture_output=True, check=False, timeout=timeout_s + 60)


class ContainerEngine:
    """--engine container: the add-on image run with podman on the host's network (it reaches the broker and the
    camera on 127.0.0.1), /data = workdir with the add-on's options.json; the interface of EngineProcess.

    `podman run` stays attached (not -d): its output is the engine's log file and its PID tells whether the engine
    runs (and goes into engine.pid); stopping removes the container by name (`podman rm -f`)."""

    def __init__(self, workdir: Path, options: dict[str, Any], image: str, name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config_path = workdir / "options.json"
        self.config_path.write_text(json.dumps(options, indent=2) + "\n")
        self.log_path = workdir / "engine.log"
        remove_container(name)  # one of this name left by a run that was killed
        command = [str(PODMAN), "run", "--rm", "--name", name, "--network", "host", "-v", f"{workdir}:/data"]
        # The engine's HTTP port (the add-on's watchdog URL): a free one, 8099 may be taken on the host's network.
        command += ["-e", f"SAFECAM_HTTP_PORT={free_port()}", image]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self, timeout_s: int = 20) -> int:
        remove_container(self.name, timeout_s)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return int(self.proc.returncode)


def engine_image() -> str:
    """scripts/image.sh: builds the add-on image when its inputs changed (progress on stderr); its reference."""
    if not os.access(PODMAN, os.X_OK) or not IMAGE_SCRIPT.is_file():
        raise SetupError(f"{IMAGE_SCRIPT} / {PODMAN} not found: --engine container needs the add-on image scripts")
    t0 = time.monotonic()
    log("building the add-on image if its inputs changed (scripts/image.sh) ...")
    done = subprocess.run(["bash", str(IMAGE_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SetupError(f"scripts/image.sh failed with code {done.returncode} (its output is above)")
    log(f"add-on image {lines[-1]} ready after {time.monotonic() - t0:.0f} s")
    return lines[-1]


def stale_engine_files() -> list[str]:
    """The engine's files (and the contract) that differ from this checkout in .venv-engine's installed wheel: scripts/
    setup.sh rebuilds it, but a test run straight after an edit would otherwise run the engine as it was."""
    [site] = (REPO / ".venv-engine" / "lib").glob("python3.*/site-packages") or [REPO / ".venv-engine" / "missing"]
    source = REPO / "custom_components" / "safecam"
    files = [*sorted((source / "engine").rglob("*.py")), source / "contract.py"]
    return [
        str(f.relative_to(REPO))
        for f in files
        if "__pycache__" not in f.parts
        and not ((installed := site / "safecam" / f.relative_to(source)).is_file() and installed.read_bytes() == f.read_bytes())
    ]


def start_service(inst: HaInstance, broker_port: int) -> None:
    """Mosquitto and the engine apart from Home Assistant (its wheel's console script, or the add-on image), each
    with a PID file for --stop."""
    inst.broker = Broker(inst.config_dir / "mosquitto", port=broker_port)
    if not port_free(inst.broker.port):
        raise SetupError(f"port {inst.broker.port} is in use (another broker? try --stop, or --broker-port)")
    if inst.engine_mode == "container":
        image = engine_image()  # before the broker: the first build takes minutes
    elif not os.access(ENGINE_CLI, os.X_OK):
        raise SetupError(f"{ENGINE_CLI} not found: scripts/setup.sh builds it (.venv-engine, the engine's wheel)")
    elif stale := stale_engine_files():
        raise SetupError(
            f"{ENGINE_CLI} runs an older engine than this checkout ({', '.join(stale[:3])}"
            f"{' ...' if len(stale) > 3 else ''} changed): run scripts/setup.sh (it rebuilds the wheel in about 2 s)"
        )
    inst.broker.start()
    assert inst.broker.proc is not None
    (inst.config_dir / "broker.pid").write_text(f"{inst.broker.proc.pid}\n")
    workdir = inst.config_dir / "engine"
    engine: EngineProcess | ContainerEngine
    if inst.engine_mode == "container":
        name = f"safecam-demo-engine-{inst.port}"
        (inst.config_dir / "engine.container").write_text(f"{name}\n")
        engine = ContainerEngine(workdir, addon_options(inst, inst.broker.port), image, name)
    else:
        engine = EngineProcess(workdir, engine_config(inst, inst.broker.port), command=[str(ENGINE_CLI)])
    inst.engine = engine
    (inst.config_dir / "engine.pid").write_text(f"{engine.proc.pid}\n")


def confirm_http_config(inst: HaInstance) -> None:
    """Current Home Assistant runs new `http:` settings (our port) on trial and, unless the owner confirms them
    (the "Confirm new HTTP server configuration" dialog), restarts on the old ones after 5 minutes: confirm."""
    try:
        [conf] = websocket_calls(inst, [{"type": "http/config"}])
    except SetupError as err:
        if "unknown_command" in str(err):
            return  # an older Home Assistant: the yaml settings apply as they are
        raise
    if conf.get("revert_at"):
        log("confirming the HTTP server settings (port, listen address)")
        websocket_calls(inst, [{"type": "http/config/promote"}])


def ensure_mqtt(inst: HaInstance) -> None:
    """Home Assistant's MQTT integration for the broker (Settings -> Devices & services -> MQTT)."""
    assert inst.broker is not None
    entries = inst.api("GET", "/api/config/config_entries/entry", params={"domain": "mqtt"})
    if entries:
        log(f"reusing the MQTT integration ({entries[0]['title']})")
        return
    log(f"setting up Home Assistant's MQTT integration for 127.0.0.1:{inst.broker.port}")
    base = "/api/config/config_entries/flow"
    form = _flow_step(inst, base, {"handler": "mqtt", "show_advanced_options": False}, "form")
    # What the form sends with its advanced section left collapsed: no client certificate, no TLS.
    other = {"set_client_cert": False, "set_ca_cert": "off"}
    settings = {"broker": "127.0.0.1", "port": inst.broker.port, "other_settings": other}
    _flow_step(inst, f"{base}/{form['flow_id']}", settings, "create_entry")


def discovered_flow(inst: HaInstance, timeout_s: float = 90) -> dict[str, Any]:
    """The safecam flow that MQTT discovery started for the engine (the "Discovered" card in the UI)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [flows] = websocket_calls(inst, [{"type": "config_entries/flow/progress"}])
        for flow in flows:
            if flow["handler"] == "safecam" and flow["context"].get("source") == "mqtt":
                return dict(flow)
        if inst.engine is not None and inst.engine.proc.poll() is not None:
            raise SetupError(f"the engine exited with code {inst.engine.proc.returncode}; see {inst.engine.log_path}")
        time.sleep(1)
    log_path = inst.config_dir / "home-assistant.log"
    errors = [line for line in log_path.read_text(errors="replace").splitlines() if "ERROR" in line and "safecam" in line]
    why = f"; Home Assistant says: {errors[-1]}" if errors else f" (engine log: {inst.config_dir}/engine/engine.log)"
    raise SetupError(f"no discovered safecam flow after {timeout_s:.0f} s{why}")


def _find_entry(inst: HaInstance) -> dict[str, Any] | None:
    entries = inst.api("GET", "/api/config/config_entries/entry", params={"domain": "safecam"})
    return next((e for e in entries if e["title"] == CAMERA_NAME), None)


def add_discovered_camera(inst: HaInstance) -> None:
    """What a user clicks: the discovered safecam card, then the engine's camera (REST, as the UI does)."""
    if (entry := _find_entry(inst)) is not None:
        inst.entry_id = entry["entry_id"]
        log(f"reusing the existing entry {CAMERA_NAME!r} ({inst.entry_id})")
        return
    flow = discovered_flow(inst)
    base = f"/api/config/config_entries/flow/{flow['flow_id']}"
    form = inst.api("GET", base)
    options = form["data_schema"][0]["selector"]["select"]["options"]
    choice = next((o["value"] for o in options if o["label"].startswith(CAMERA_NAME)), None)
    if choice is None:
        raise SetupError(f"the discovered flow does not offer {CAMERA_NAME!r}: {options}")
    log(f"adding {CAMERA_NAME!r} from the discovered engine {ENGINE_ID!r}")
    done = inst.api("POST", base, json={"camera_id": choice}, timeout=90)
    if done.get("type") == "form":  # the pairing step: the engine's key, as a user copies it from its log
        if (key := engine_pairing_key(inst)) is None:
            raise SetupError(f"the flow asks for {done.get('step_id')!r} but the engine made no pairing key")
        done = _flow_step(inst, base, {"pairing_key": key}, "create_entry")
    if done.get("type") != "create_entry":
        raise SetupError(f"adding {CAMERA_NAME!r}: {json.dumps(done)[:600]}")
    inst.entry_id = done["result"]["entry_id"]


def _ensure_default_anonymization(inst: HaInstance) -> None:
    """A reused demo camera (older demos forced `body`) gets the integration's default anonymization."""
    base = "/api/config/config_entries/options/flow"
    flow = _flow_step(inst, base, {"handler": inst.entry_id}, "menu")
    form = _flow_step(inst, f"{base}/{flow['flow_id']}", {"next_step_id": "detection"}, "form")
    mode = _suggested(form, CONF_ANONYMIZATION)
    if mode == DEFAULT_ANONYMIZATION:
        inst.api("DELETE", f"{base}/{flow['flow_id']}")
        return
    log(f"anonymization {mode or '?'} -> {DEFAULT_ANONYMIZATION} (the integration's default)")
    fps = int(float(_suggested(form, CONF_FPS) or FPS))
    _flow_step(inst, f"{base}/{flow['flow_id']}", {CONF_FPS: fps, CONF_ANONYMIZATION: DEFAULT_ANONYMIZATION}, "create_entry")


def _site_settings(inst: HaInstance) -> dict[str, Any]:
    """The demo site's form (config_flow.site_schema): the camera, its gate entering, the plan."""
    return {
        "site_cameras": [inst.entry_id],
        "site_gates": [f"{inst.entry_id}/{SITE_ENTRANCE}/in"],
        "empty_reset_s": SITE_EMPTY_RESET_S,
        "fusion_radius_m": 1.0,
        "plan_width_m": SITE_PLAN_M[0],
        "plan_depth_m": SITE_PLAN_M[1],
        "plan_image": SITE_PLAN_IMAGE,
    }


def ensure_site(inst: HaInstance) -> None:
    """Add the demo site (config flow, step "site") unless an entry with its name exists; a reused
    site without the demo's floor plan or reset time gets the demo's settings (options flow)."""
    entries = inst.api("GET", "/api/config/config_entries/entry", params={"domain": "safecam"})
    entry = next((e for e in entries if e["title"] == SITE_NAME), None)
    if entry is not None:
        inst.site_entry_id = entry["entry_id"]
        log(f"reusing the existing site {SITE_NAME!r} ({inst.site_entry_id})")
        base = "/api/config/config_entries/options/flow"
        form = _flow_step(inst, base, {"handler": inst.site_entry_id}, "form")
        settings = _site_settings(inst)
        numbers = ("empty_reset_s", "plan_width_m", "plan_depth_m")  # the form answers floats
        if _suggested(form, "plan_image") == SITE_PLAN_IMAGE and all(
            float(_suggested(form, k) or "nan") == float(settings[k]) for k in numbers
        ):
            inst.api("DELETE", f"{base}/{form['flow_id']}")
        else:
            log(f"giving {SITE_NAME!r} the demo's floor plan and settings")
            _flow_step(inst, f"{base}/{form['flow_id']}", _site_settings(inst), "create_entry")
        return
    width, depth = SITE_PLAN_M
    log(f"adding {SITE_NAME!r}: perimeter gate {CAMERA_NAME} / {SITE_ENTRANCE} / in, floor plan {width:g} m x {depth:g} m")
    base = "/api/config/config_entries/flow"
    flow = _flow_step(inst, base, {"handler": "safecam", "show_advanced_options": False}, "menu")
    flow = _flow_step(inst, f"{base}/{flow['flow_id']}", {"next_step_id": "site"}, "form")
    done = _flow_step(inst, f"{base}/{flow['flow_id']}", {"name": SITE_NAME, **_site_settings(inst)}, "create_entry")
    inst.site_entry_id = done["result"]["entry_id"]


def remove_failed_onboarding_entries(inst: HaInstance) -> None:
    """Onboarding adds integrations whose packages this venv lacks (--skip-pip: Google Translate TTS
    needs gtts); their failed entries would only show up as errors in the UI."""
    for entry in inst.api("GET", "/api/config/config_entries/entry"):
        if entry.get("source") == "onboarding" and entry.get("state") in ("setup_error", "setup_retry"):
            log(f"removing the failed onboarding entry {entry['title']!r} ({entry['domain']}: package not installed)")
            inst.api("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")


SITE_ROLES = {  # friendly name -> role, the site's entities (site_entry.py)
    f"{SITE_NAME} People": "site_people",
    f"{SITE_NAME} People on map": "site_on_map",
    f"{SITE_NAME} Floor plan": "site_floor_plan",
    f"{SITE_NAME} Heatmap": "site_heatmap",
}


def wait_for_entities(inst: HaInstance, timeout_s: float = 90, *, site: bool = True, zone: bool = True) -> None:
    """Until the people sensor shows a number (the engine runs), the camera exists, and (site) the site's
    counts show numbers, (zone) the demo zone's sensor exists."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        ids = json.loads(inst.template("{{ integration_entities('safecam') | list | to_json }}"))
        states = {s["entity_id"]: s for s in inst.api("GET", "/api/states") if s["entity_id"] in ids}
        roles: dict[str, str] = {}
        for eid, st in states.items():
            name = st["attributes"].get("friendly_name", "")
            if eid.startswith("camera."):
                roles["camera"] = eid
            elif name == f"{CAMERA_NAME} People":
                roles["people"] = eid
            elif name == f"{CAMERA_NAME} table people":
                roles["zone_people"] = eid
            elif name == f"{CAMERA_NAME} table occupied":
                roles["zone_occupied"] = eid
            elif name == f"{CAMERA_NAME} entrance in":  # gate counts: "<gate> in" / "<gate> out" (sensor.py)
                roles["gate_entries"] = eid
            elif name == f"{CAMERA_NAME} entrance out":
                roles["gate_exits"] = eid
            elif name in SITE_ROLES:
                roles[SITE_ROLES[name]] = eid
        people, site_people, on_map = (
            str(states.get(roles.get(r, ""), {}).get("state", "")) for r in ("people", "site_people", "site_on_map")
        )
        last = f"entities {sorted(roles)}, people={people!r}, site people={site_people!r}, on map={on_map!r}"
        site_ready = not site or (set(SITE_ROLES.values()) <= set(roles) and site_people.isdigit() and on_map.isdigit())
        if "camera" in roles and ("zone_people" in roles or not zone) and people.isdigit() and site_ready:
            inst.entities, inst.all_entities = roles, sorted(ids)
            inst.device_id = inst.template(f"{{{{ device_id('{roles['camera']}') }}}}")
            return
        time.sleep(1)
    raise SetupError(f"safecam entities not ready after {timeout_s:.0f} s ({last}); see {inst.config_dir}/home-assistant.log")


def ensure_area(inst: HaInstance) -> None:
    """The demo camera in the area AREA_NAME, as a user assigns it on the device page. Home Assistant 2026.11's
    default overview is built from areas: a device without one is only behind its "Devices" tile."""
    [areas, devices] = websocket_calls(inst, [{"type": "config/area_registry/list"}, {"type": "config/device_registry/list"}])
    area = next((a for a in areas if a["name"] == AREA_NAME), None)
    if area is None:
        log(f"creating the area {AREA_NAME!r}")
        [area] = websocket_calls(inst, [{"type": "config/area_registry/create", "name": AREA_NAME}])
    inst.area_id = area["area_id"]
    device = next((d for d in devices if d["id"] == inst.device_id), None)
    if device is None:
        raise SetupError(f"the demo camera's device {inst.device_id!r} is not in the device registry")
    if device.get("area_id") != inst.area_id:
        log(f"putting {CAMERA_NAME!r} in the area {AREA_NAME!r}")
        websocket_calls(inst, [{"type": "config/device_registry/update", "device_id": inst.device_id, "area_id": inst.area_id}])


# ---- the dashboard ---------------------------------------------------------------------------


def websocket_calls(inst: HaInstance, messages: list[dict[str, Any]], timeout_s: float = 30) -> list[Any]:
    """Send websocket commands in order (authenticated as the demo owner); their results, or SetupError."""
    import asyncio

    import aiohttp  # Home Assistant's own HTTP library, in the venv

    async def run() -> list[Any]:
        results = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(inst.url.replace("http", "ws", 1) + "/api/websocket") as ws,
        ):
            if (await ws.receive_json(timeout=timeout_s)).get("type") != "auth_required":
                raise SetupError("websocket: no auth_required greeting")
            await ws.send_json({"type": "auth", "access_token": inst.tokens["access_token"]})
            if (answer := await ws.receive_json(timeout=timeout_s)).get("type") != "auth_ok":
                raise SetupError(f"websocket auth failed: {answer}")
            for i, message in enumerate(messages, start=1):
                await ws.send_json({"id": i, **message})
                while (answer := await ws.receive_json(timeout=timeout_s)).get("id") != i:
                    pass  # (events of other subscriptions: none here)
                if not answer.get("success"):
                    raise SetupError(f"websocket {message['type']}: {answer.get('error')}")
                results.append(answer.get("result"))
        return results

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # A loop runs in this thread already (a caller inside Playwright's sync API): run ours in another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def install_dashboard(inst: HaInstance) -> None:
    """A sidebar dashboard "Safecam" with the cards the integration generates for its current entities.

    Saved as cards, not as the `custom:safecam` strategy config: HA waits only 5 s for a strategy's
    module on a page load, which a busy demo machine can miss. Re-running refreshes the cards.
    """
    [dashboards, generated] = websocket_calls(inst, [{"type": "lovelace/dashboards/list"}, {"type": "safecam/dashboard"}])
    messages: list[dict[str, Any]] = []
    if not any(d.get("url_path") == DASHBOARD_URL_PATH for d in dashboards):
        log(f"installing the safecam dashboard at /{DASHBOARD_URL_PATH}")
        messages.append(
            {"type": "lovelace/dashboards/create", "url_path": DASHBOARD_URL_PATH, "title": "Safecam", "icon": "mdi:cctv"}
        )
    messages.append({"type": "lovelace/config/save", "url_path": DASHBOARD_URL_PATH, "config": generated})
    websocket_calls(inst, messages)


# ---- all together ---------------------------------------------------------------------------


def start(
    config_dir: Path = DEFAULT_CONFIG_DIR,
    port: int = 8123,
    source: str = "rtsp",
    rtsp_port: int = 8554,
    clip: Path = DEMO_CLIP,
    engine: str = "embedded",  # the tests' default; main() defaults to "service" (or "container")
    broker_port: int = BROKER_PORT,
    add_camera: bool = True,
) -> HaInstance:
    """Start everything and return the running instance; on failure stop what was started and raise.

    engine "service" / "container": broker + engine process (or container) + a current hass, the camera from MQTT discovery; with
    add_camera False it stops once the discovered flow waits for a user (the UI test clicks it)."""
    config_dir = Path(config_dir).resolve()
    if not clip.is_file():
        raise SetupError(f"demo clip not found: {clip} (clone the repo with ../shared beside it)")
    if not os.access(HASS, os.X_OK):
        raise SetupError(f"{HASS} not found: run scripts/setup.sh (it builds .venv-hass, a current Home Assistant)")
    config_dir.mkdir(parents=True, exist_ok=True)
    if _pid_from_file(config_dir / "hass.pid", "hass") is not None:
        raise SetupError(f"Home Assistant from {config_dir} is already running: stop it with --stop")
    inst = HaInstance(config_dir=config_dir, port=port, engine_mode=engine)
    try:
        prepare_config(config_dir, port, engine)
        if source == "rtsp":
            inst.source = start_rtsp(inst, clip, rtsp_port)
            log(f"RTSP camera: {inst.source} (looping {clip.name})")
        else:
            inst.source = str(clip)
        if engine in REMOTE_ENGINES:
            start_service(inst, broker_port)
            assert inst.broker is not None and inst.engine is not None
            log(f"Mosquitto on 127.0.0.1:{inst.broker.port}; engine {ENGINE_ID!r} (log: {inst.engine.log_path})")
        t0 = time.monotonic()
        log(f"starting Home Assistant in {config_dir} (log: {config_dir / 'home-assistant.log'})")
        start_hass(inst)
        log(f"Home Assistant answers after {time.monotonic() - t0:.0f} s")
        onboard_or_login(inst)
        confirm_http_config(inst)
        tokens_file = config_dir / ".safecam_tokens.json"  # access + refresh token, for scripts (curl)
        tokens_file.touch(mode=0o600)
        tokens_file.write_text(json.dumps(inst.tokens))
        if engine in REMOTE_ENGINES:
            ensure_mqtt(inst)
            if not add_camera:
                discovered_flow(inst)
                remove_failed_onboarding_entries(inst)
                return inst
            add_discovered_camera(inst)
            # The entry takes options only once the engine's layout arrived (else set_scene is not sent).
            wait_for_entities(inst, site=False, zone=False)
            ensure_scene(inst)
            # The site names the camera's gate: only once the engine's layout has it.
            wait_for_entities(inst, site=False)
        else:
            ensure_entry(inst, inst.source)
        ensure_site(inst)
        wait_for_entities(inst)
        ensure_area(inst)
        install_dashboard(inst)
        remove_failed_onboarding_entries(inst)
    except BaseException:
        stop(inst)
        raise
    return inst


def describe(inst: HaInstance) -> str:
    embedded = "in Home Assistant (--engine embedded)"
    shape = "a container" if inst.engine_mode == "container" else "a process"
    service = [
        f"  {f'engine {ENGINE_ID!r} ({shape}):':<30}config {inst.engine.config_path if inst.engine else ''}",
        f"  engine's pairing key:         {inst.config_dir / 'engine' / 'pairing_key'} (also in its log)",
        f"  MQTT broker:                  127.0.0.1:{inst.broker.port if inst.broker else ''}",
    ]
    lines = [
        "",
        f"  Home Assistant with safecam:  {inst.url}",
        f"  login:                        {USERNAME} / {PASSWORD}",
        f"  camera source:                {inst.source}",
        *(service if inst.engine_mode in REMOTE_ENGINES else [f"  analysis:                     {embedded}"]),
        f"  safecam dashboard:            {inst.url}/{DASHBOARD_URL_PATH}",
        f"  site floor plan:              {inst.url}/{DASHBOARD_URL_PATH}/{SITE_VIEW_PATH}",
        f"  safecam device page:          {inst.url}/config/devices/device/{inst.device_id}",
        f"  zone editor:                  {inst.url}/safecam",
        "  entities:",
        *(f"    {eid}" for eid in inst.all_entities),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant HTTP port (default 8123)")
    parser.add_argument("--config-dir", type=Path, help="default run/ha/service (--engine embedded: run/ha/config)")
    parser.add_argument(
        "--source", choices=("rtsp", "file"), default="rtsp", help="looping RTSP camera (default) or the clip's path"
    )
    parser.add_argument("--rtsp-port", type=int, default=8554)
    parser.add_argument("--clip", type=Path, default=DEMO_CLIP)
    parser.add_argument(
        "--engine",
        choices=(*REMOTE_ENGINES, "embedded"),
        default="service",
        help="the deployed shape: the engine as its own process (its wheel's safecam-engine) + Mosquitto (default), "
        "the same from the add-on image (container, podman), or analyse in Home Assistant (embedded)",
    )
    parser.add_argument("--broker-port", type=int, default=BROKER_PORT, help="--engine service/container: Mosquitto's port")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--background", "--no-wait", action="store_true", help="leave hass running and exit")
    mode.add_argument("--stop", action="store_true", help="stop a background instance (by its PID files) and exit")
    args = parser.parse_args(argv)
    config_dir = (args.config_dir or (SERVICE_CONFIG_DIR if args.engine in REMOTE_ENGINES else DEFAULT_CONFIG_DIR)).resolve()

    if args.stop:
        if not stop_by_pidfiles(config_dir):
            log(f"nothing running from {config_dir}")
        return 0

    try:
        inst = start(config_dir, args.port, args.source, args.rtsp_port, args.clip.resolve(), args.engine, args.broker_port)
    except SetupError as err:
        log(f"FAILED: {err}")
        return 1
    except KeyboardInterrupt:
        log("interrupted: stopped")
        return 130
    print(describe(inst), flush=True)
    if args.background:
        log(f"running in the background; stop it with: .venv/bin/python scripts/ha/run_ha.py --stop --config-dir {config_dir}")
        return 0

    stopping = False

    def _on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    log("running; press Ctrl-C to stop everything it started")
    try:
        while not stopping:
            if inst.hass is not None and inst.hass.poll() is not None:
                log(f"Home Assistant exited with code {inst.hass.returncode}; see {config_dir / 'home-assistant.log'}")
                break
            if inst.rtsp is not None and inst.rtsp.poll() is not None:
                log(f"the RTSP camera exited with code {inst.rtsp.returncode}; see {config_dir / 'rtsp.log'}")
                break
            if inst.engine is not None and inst.engine.proc.poll() is not None:
                log(f"the engine exited with code {inst.engine.proc.returncode}; see {inst.engine.log_path}")
                break
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    log("stopping Home Assistant, the engine, the broker and the camera ...")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave them half-stopped
    stop(inst)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
