"""The Home Assistant add-on folder and the store's repository.yaml, checked offline against the Supervisor's add-on
rules that can be checked without Docker (required keys, slug, arch list, options/schema agreement, translations,
build files), the options -> engine config conversion, and `run.sh` starting the engine on a real broker.

The rules restate the Supervisor's documented add-on config (developers.home-assistant.io, "Add-on
configuration") and its validator (supervisor/addons/validate.py, options.py).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from custom_components.safecam.engine import __version__ as ENGINE_VERSION
from custom_components.safecam.engine.config import ConfigError
from custom_components.safecam.engine.serve import parse_serve_config
from tests.servers.addon import ENGINE_VENV, run_sh_env

REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "addon"
ARCH_ALL = {"armhf", "armv7", "aarch64", "amd64", "i386"}
# The schema element grammar of supervisor/addons/options.py.
SCHEMA_ELEMENT = re.compile(
    r"^(?:|bool|email|url|port|device(?:\((?P<filter>subsystem=[a-z]+)\))?|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?|match\((?P<match>.*)\)|list\((?P<list>.+)\))\??$"
)
SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")
SERVICE = re.compile(r"^(?P<service>mqtt|mysql):(?P<rights>provide|want|need)$")
DOCKER_IMAGE = re.compile(r"^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)(:[\.\-\w{}]+)?$")
WATCHDOG = re.compile(r"^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$")
PORT_KEY = re.compile(r"^\d+/(tcp|udp)$")
TOP_KEYS = {
    "name", "version", "slug", "description", "arch", "url", "startup", "boot", "services", "ingress", "ingress_port",
    "panel_icon", "panel_title", "ports", "map", "watchdog", "options", "schema", "init", "hassio_api", "image",
    "discovery",
}  # fmt: skip


def _load(name: str) -> Any:
    return yaml.safe_load((ADDON / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _load("config.yaml")


def _optional(element: Any) -> bool:
    return isinstance(element, str) and element.endswith("?")


def _check_value(element: str, value: Any, where: str) -> None:
    """One option value against its schema element, as the Supervisor validates it."""
    m = SCHEMA_ELEMENT.match(element)
    assert m, f"{where}: unknown schema type {element!r}"
    kind = element.rstrip("?").split("(")[0]
    if kind in ("str", "password"):
        assert isinstance(value, str), where
        lo, hi = m.group("s_min") or m.group("p_min"), m.group("s_max") or m.group("p_max")
        assert (lo is None or len(value) >= int(lo)) and (hi is None or len(value) <= int(hi)), where
    elif kind in ("int", "float"):
        assert isinstance(value, int | float) and not isinstance(value, bool), where
        assert kind == "float" or isinstance(value, int), where
        lo, hi = m.group("i_min") or m.group("f_min"), m.group("i_max") or m.group("f_max")
        assert (lo is None or value >= float(lo)) and (hi is None or value <= float(hi)), where
    elif kind == "bool":
        assert isinstance(value, bool), where
    elif kind == "port":
        assert isinstance(value, int) and 1 <= value <= 65535, where
    elif kind == "match":
        assert re.fullmatch(m.group("match"), str(value)), where
    elif kind == "list":
        assert str(value) in m.group("list").split("|"), where
    else:
        pytest.fail(f"{where}: no default check for {kind}")


def _check_options(schema: dict[str, Any], options: dict[str, Any], where: str) -> None:
    """Every option is in the schema and valid; every required schema key has a value (missing-option rule)."""
    for key, value in options.items():
        assert key in schema, f"{where}.{key}: option not in the schema"
        element = schema[key]
        if isinstance(element, list):
            assert isinstance(value, list), f"{where}.{key}: expected a list"
            for i, item in enumerate(value):
                if isinstance(element[0], dict):
                    _check_options(element[0], item, f"{where}.{key}[{i}]")
                else:
                    _check_value(element[0], item, f"{where}.{key}[{i}]")
        elif isinstance(element, dict):
            _check_options(element, value, f"{where}.{key}")
        else:
            _check_value(element, value, f"{where}.{key}")
    for key, element in schema.items():
        first = element[0] if isinstance(element, list) and element else element
        if key not in options and not _optional(first):
            pytest.fail(f"{where}.{key}: required by the schema but has no default option")


def _walk_schema(schema: dict[str, Any], depth: int = 1) -> None:
    assert depth <= 2, "options nest at most two levels"
    for key, element in schema.items():
        if isinstance(element, list):
            assert len(element) == 1, key
            if isinstance(element[0], dict):
                _walk_schema(element[0], depth + 1)
            else:
                assert SCHEMA_ELEMENT.match(element[0]), f"{key}: {element[0]!r}"
        elif isinstance(element, dict):
            _walk_schema(element, depth + 1)
        else:
            assert isinstance(element, str) and SCHEMA_ELEMENT.match(element), f"{key}: {element!r}"


def test_config_has_the_required_keys_and_valid_values(config: dict[str, Any]):
    for key in ("name", "version", "slug", "description", "arch"):
        assert config.get(key), f"config.yaml: '{key}' is required"
    assert isinstance(config["version"], str) and re.fullmatch(r"\d+\.\d+\.\d+", config["version"])
    assert SLUG.match(config["slug"])
    assert set(config) <= TOP_KEYS, set(config) - TOP_KEYS
    assert config["arch"] and set(config["arch"]) <= ARCH_ALL and len(set(config["arch"])) == len(config["arch"])
    assert set(config["arch"]) == {"amd64", "aarch64"}
    assert config.get("startup", "application") in {"initialize", "system", "services", "application", "once"}
    assert config.get("boot", "auto") in {"auto", "manual", "manual_only"}
    assert all(SERVICE.match(s) for s in config["services"]) and "mqtt:need" in config["services"]
    assert config["ingress"] is True and isinstance(config["ingress_port"], int)
    assert all(PORT_KEY.match(k) for k in config["ports"]) and f"{config['ingress_port']}/tcp" in config["ports"]
    assert WATCHDOG.match(config["watchdog"])
    assert all(m["type"] in {"media", "share", "ssl", "addon_config", "homeassistant_config"} for m in config["map"])
    # One engine, one version: the add-on's is the engine's (and its Python package's); the integration is released
    # with them from the same tag (HACS reads the tag), so its manifest says the same.
    assert config["version"] == ENGINE_VERSION
    assert json.loads((REPO / "custom_components/safecam/manifest.json").read_text())["version"] == ENGINE_VERSION
    # Installed from the store as the published image (the Dockerfile's context is the repository root).
    assert DOCKER_IMAGE.match(config["image"]) and "{arch}" in config["image"], config["image"]
    assert config["discovery"] == ["safecam"]


def test_the_repository_is_an_add_on_store():
    repository = yaml.safe_load((REPO / "repository.yaml").read_text(encoding="utf-8"))
    assert repository["name"] and repository["url"].startswith("https://")
    assert (ADDON / "config.yaml").is_file()  # the store finds add-ons in the repository's folders


def test_options_agree_with_the_schema(config: dict[str, Any]):
    _walk_schema(config["schema"])
    _check_options(config["schema"], config["options"], "options")
    # A camera as a user would enter it passes the same rules.
    camera = {"name": "Gate", "url": "rtsp://cam/stream", "password": "pw", "fps": 5.0, "scene": "zones: []"}
    _check_options(config["schema"], {**config["options"], "cameras": [camera]}, "user options")


def test_translations_cover_the_schema_and_ports(config: dict[str, Any]):
    schema = config["schema"]
    for lang in ("en", "ko"):
        tr = _load(f"translations/{lang}.yaml")
        assert set(tr["configuration"]) == set(schema), lang
        assert set(tr["configuration"]["cameras"]["fields"]) == set(schema["cameras"][0]), lang
        assert all(v.get("name") and v.get("description") for v in tr["configuration"].values()), lang
        assert {k.lower() for k in tr["network"]} == {k.lower() for k in config["ports"]}, lang


def test_build_files_agree_with_config_and_the_repository(config: dict[str, Any]):
    build = _load("build.yaml")
    assert set(build["build_from"]) == set(config["arch"])
    for arch, image in build["build_from"].items():
        assert DOCKER_IMAGE.match(image), image
        # glibc (the inference wheels are manylinux only) with Python 3.13 in its apt (no 3.14 OpenVINO EP wheel).
        assert image == f"ghcr.io/home-assistant/{arch}-base-debian:trixie", image
    dockerfile = (ADDON / "Dockerfile").read_text()
    assert re.search(r"^ARG BUILD_FROM", dockerfile, re.M) and re.search(r"^FROM \$\{?BUILD_FROM\}?", dockerfile, re.M)
    # Every COPY source exists relative to the build context, the repository root, and the ignore file lets it in.
    allowed = set(re.findall(r"^!(\S+)$", (ADDON / "Dockerfile.dockerignore").read_text(), re.M))
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M)
    assert copies
    for line in copies:
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert source in allowed, f"COPY {source}: excluded by addon/Dockerfile.dockerignore"
    # The engine goes in as the repository's wheel, its dependencies held to the image's lock.
    assert re.search(r"pip wheel .*--no-deps", dockerfile)
    assert re.search(r"-c /opt/safecam/requirements\.txt \S+\.whl", dockerfile)
    assert "exec safecam-engine serve" in (ADDON / "run.sh").read_text()
    cmd = re.search(r'^CMD \["([^"]+)"\]', dockerfile, re.M)
    assert cmd and cmd.group(1) == "/opt/safecam/addon/run.sh" and "addon/run.sh" in dockerfile
    assert os.access(ADDON / "run.sh", os.X_OK)
    for name in ("DOCS.md", "CHANGELOG.md", "README.md"):
        assert (ADDON / name).read_text().strip(), name
    assert f"## {config['version']}" in (ADDON / "CHANGELOG.md").read_text()


def _pins(text: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^;\s]+)\s*(?:;\s*(.+))?$", line):
            out[m.group(1).lower()] = (m.group(2), (m.group(3) or "").strip())
    return out


def test_the_image_installs_the_engine_lock_with_one_onnx_runtime_per_platform():
    # One lock for the engine wherever it runs from its wheel (.venv-engine, the image): requirements/lock-engine.txt.
    assert "COPY requirements/lock-engine.txt " in (ADDON / "Dockerfile").read_text()
    req = _pins((REPO / "requirements/lock-engine.txt").read_text())
    # Exactly one onnxruntime build per platform (both install the module `onnxruntime`): OpenVINO EP on x86-64.
    assert req["onnxruntime-openvino"][1] == "python_full_version < '3.14' and platform_machine == 'x86_64'"
    assert req["onnxruntime"][1] == "python_full_version >= '3.14' or platform_machine != 'x86_64'"
    for needed in ("numpy", "opencv-python-headless", "aiomqtt", "paho-mqtt", "pyyaml"):
        assert needed in req


# ---- options -> engine config ---------------------------------------------------------------------


def _convert(tmp_path: Path, options: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "options.json").write_text(json.dumps(options))
    return subprocess.run(
        ["python3", str(ADDON / "options_to_config.py"), str(tmp_path / "options.json"), str(tmp_path / "engine.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{ENGINE_VENV}:{os.environ['PATH']}", **(env or {})},  # the image's venv
        check=False,
    )


OPTIONS = {
    "engine_id": "site-a",
    "cameras": [
        {
            "name": "Gate",
            "url": "rtsp://cam/stream",
            "username": "admin",
            "password": "cam-secret",
            "fps": 4,
            "scene": "zones:\n  - {name: pit, kind: danger, polygon: [[0,0],[1,0],[1,1]]}\n",
        },
        {"name": "Yard", "url": "/media/yard.mp4"},
    ],
    "scene_source": "options",
    "snapshot_interval": 30,
    "state_interval": 10,
    "heatmap_interval": 120,
    "provider": "auto",
    "mqtt_discovery": True,
    "log_level": "info",
    "mqtt_host": "broker.lan",
    "mqtt_username": "safecam",
    "mqtt_password": "mqtt-secret",
}


def test_options_become_a_valid_engine_config(tmp_path: Path):
    proc = _convert(tmp_path, OPTIONS)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "engine.yaml"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds passwords
    cfg = parse_serve_config(yaml.safe_load(out.read_text()))
    assert cfg.engine_id == "site-a" and cfg.mqtt.host == "broker.lan" and cfg.mqtt.password == "mqtt-secret"
    assert cfg.mqtt.discovery_prefix == "homeassistant"
    assert cfg.heatmap_interval_s == 120
    gate, yard = cfg.cameras
    assert gate.url == "rtsp://admin:cam-secret@cam/stream" and gate.fps == 4
    assert gate.scene is not None and gate.scene.zones[0].name == "pit" and yard.scene is not None and not yard.scene.zones
    assert cfg.http is not None and cfg.http.port == 8099 and cfg.http.trusted_peers == ("172.30.32.2",)
    token = cfg.http.token
    assert token and len(token) >= 16 and (tmp_path / "stream_token").read_text() == token
    assert cfg.state_file == str(tmp_path / "state.json")
    assert cfg.pairing_key is None  # the engine makes it, next to the state file
    assert _convert(tmp_path, {**OPTIONS, "pairing_key": "aeba gbaf aydq qcik bmga 2dqp cair eeyu"}).returncode == 0
    typed = parse_serve_config(yaml.safe_load(out.read_text())).pairing_key
    assert typed == bytes(range(1, 21))  # as typed: case and spaces do not matter
    # The generated token stays the same across restarts.
    assert _convert(tmp_path, OPTIONS).returncode == 0
    assert parse_serve_config(yaml.safe_load(out.read_text())).http.token == token  # type: ignore[union-attr]

    # Zones and gates managed from Home Assistant: the engine takes them over MQTT.
    assert _convert(tmp_path, {**OPTIONS, "scene_source": "home_assistant"}).returncode == 0
    assert all(c.scene is None for c in parse_serve_config(yaml.safe_load(out.read_text())).cameras)


def test_bad_options_fail_with_one_line_and_no_secret(tmp_path: Path):
    bad_yaml = {**OPTIONS, "cameras": [{**OPTIONS["cameras"][0], "scene": "zones: [\n"}]}
    cases = [
        (bad_yaml, "scene is not valid YAML"),
        ({**OPTIONS, "cameras": []}, "no cameras"),
        ({k: v for k, v in OPTIONS.items() if k != "mqtt_host"}, "MQTT"),
    ]
    for options, needle in cases:
        proc = _convert(tmp_path, options, {"SUPERVISOR_TOKEN": ""})
        assert proc.returncode == 2 and needle in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert "secret" not in proc.stderr
    # A scene the engine refuses is refused when the engine reads the config (one line, exit 2).
    assert _convert(tmp_path, {**OPTIONS, "cameras": [{"name": "G", "url": "/x.mp4", "scene": "zones: 3"}]}).returncode == 0
    with pytest.raises(ConfigError, match="zones"):
        parse_serve_config(yaml.safe_load((tmp_path / "engine.yaml").read_text()))


class _Supervisor(http.server.BaseHTTPRequestHandler):
    """The Supervisor's /services/mqtt as documented (the add-on's only call to it)."""

    token = "supervisor-token"

    def do_GET(self) -> None:
        ok = self.path == "/services/mqtt" and self.headers.get("Authorization") == f"Bearer {self.token}"
        body = {"result": "ok", "data": {"host": "core-mosquitto", "port": 1883, "ssl": False, "protocol": "3.1.1",
                                         "username": "addons", "password": "svc-secret", "addon": "core_mosquitto"}}  # fmt: skip
        data = json.dumps(body if ok else {"result": "error", "message": "forbidden"}).encode()
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


def test_the_supervisors_mqtt_service_is_used_without_mqtt_host(tmp_path: Path, socket_enabled: None):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Supervisor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        options = {k: v for k, v in OPTIONS.items() if not k.startswith("mqtt_")}
        proc = _convert(tmp_path, options, {"SUPERVISOR_URL": url, "SUPERVISOR_TOKEN": _Supervisor.token})
        assert proc.returncode == 0, proc.stderr
        cfg = parse_serve_config(yaml.safe_load((tmp_path / "engine.yaml").read_text()))
        assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username, cfg.mqtt.password) == (
            "core-mosquitto",
            1883,
            "addons",
            "svc-secret",
        )
        wrong = _convert(tmp_path, options, {"SUPERVISOR_URL": url, "SUPERVISOR_TOKEN": "wrong"})
        assert wrong.returncode == 2 and "Mosquitto" in wrong.stderr
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_run_script_starts_the_engine_on_a_real_broker(tmp_path: Path, shared_data: Path, socket_enabled: None):
    from tests.servers.mosquitto import Broker, Recorder, mosquitto_missing

    if mosquitto_missing():
        pytest.skip(str(mosquitto_missing()))
    broker = Broker(tmp_path / "broker")
    broker.start()
    rec = Recorder(broker, ("safecam/#",))
    options = {
        **{k: v for k, v in OPTIONS.items() if not k.startswith("mqtt_")},
        "engine_id": "addon",
        "cameras": [{"name": "Campus", "url": str(shared_data / "pedestrians" / "tud_campus.mp4"), "fps": 2}],
        "mqtt_host": "127.0.0.1",
        "mqtt_port": broker.port,
        "mqtt_discovery": False,
    }
    data = tmp_path / "data"
    data.mkdir()
    (data / "options.json").write_text(json.dumps(options))
    env = run_sh_env(data)
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([str(ADDON / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        state = rec.wait(lambda: (s := rec.last("safecam/addon/campus/state")) and s["health"]["frames"] > 0 and s, 90)
        assert state, (tmp_path / "run.log").read_text()
        assert rec.on("safecam/addon/availability")[-1].body == b"online"
        proc.send_signal(signal.SIGTERM)  # what the Supervisor sends on stop
        assert proc.wait(30) == 0
        assert rec.wait(lambda: rec.on("safecam/addon/availability")[-1].body == b"offline", 10)
        assert json.loads((data / "state.json").read_text())["cameras"]["campus"]
        key = (data / "pairing_key").read_text().strip()  # made at first start, kept in /data, shown in the log
        assert key and (tmp_path / "run.log").read_text().count(key) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
        rec.close()
        broker.stop()
