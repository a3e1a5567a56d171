"""Add-on options -> the engine's serve config.

    python3 options_to_config.py /data/options.json /data/engine.yaml

Reads the options the Supervisor wrote, asks the Supervisor for the MQTT service (the Mosquitto add-on)
unless `mqtt_host` is set, and writes the YAML that `safecam-engine serve --config FILE` reads (mode 0600:
it holds passwords). Problems exit with code 2 and one line, never a password.
Runs with the image's venv python3: PyYAML and the engine package (its Supervisor API call) are there.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml
from safecam.engine.supervisor import SupervisorError, supervisor_call

INGRESS_PROXY = "172.30.32.2"  # the Supervisor's ingress gateway; it authenticates the Home Assistant user itself
# config.yaml ingress_port; SAFECAM_HTTP_PORT only for a container on the host's network (CI), where 8099 may be taken
HTTP_PORT = int(os.environ.get("SAFECAM_HTTP_PORT") or 8099)
SUPERVISOR = os.environ.get("SUPERVISOR_URL", "http://supervisor")


class OptionsError(ValueError):
    """One line for the add-on log."""


def mqtt_service(token: str | None, base_url: str = SUPERVISOR) -> dict[str, Any]:
    """The broker the Supervisor offers (services: mqtt:need): host, port, ssl, username, password."""
    if not token:
        raise OptionsError("no MQTT broker: set mqtt_host, or run as an add-on with the Mosquitto broker add-on installed")
    try:
        data = supervisor_call(base_url, token, "/services/mqtt")
    except SupervisorError as err:
        raise OptionsError(f"{err} (no MQTT service): install and start the Mosquitto broker add-on") from None
    if not isinstance(data, dict) or not data.get("host"):
        raise OptionsError("the Supervisor returned no MQTT broker: install and start the Mosquitto broker add-on")
    return data


def _stream_token(options: dict[str, Any], data_dir: Path) -> str:
    """The option, else one generated once and kept in /data (direct access needs it; ingress does not)."""
    if options.get("stream_token"):
        return str(options["stream_token"])
    path = data_dir / "stream_token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    token = secrets.token_urlsafe(24)
    path.write_text(token, encoding="utf-8")
    path.chmod(0o600)
    return token


def _scene(camera: dict[str, Any], managed_by_ha: bool) -> dict[str, Any] | None:
    if managed_by_ha:
        return None  # zones and gates come from Home Assistant over MQTT (set_scene) and persist in /data
    text = camera.get("scene") or ""
    try:
        scene = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise OptionsError(f"camera '{camera.get('name')}': scene is not valid YAML{where}") from None
    if not isinstance(scene, dict):
        raise OptionsError(f"camera '{camera.get('name')}': scene must be a mapping with zones and/or gates")
    return scene


def build_config(options: dict[str, Any], mqtt: dict[str, Any] | None, data_dir: Path) -> dict[str, Any]:
    """The serve config for these options; `mqtt` is the Supervisor's service (None when mqtt_host is set)."""
    if options.get("mqtt_host"):
        broker: dict[str, Any] = {
            "host": options["mqtt_host"],
            "port": int(options.get("mqtt_port") or 1883),
            "tls": bool(options.get("mqtt_tls", False)),
        }
        if options.get("mqtt_ca_certs"):
            broker["ca_certs"] = options["mqtt_ca_certs"]
        if options.get("mqtt_username"):
            broker |= {"username": options["mqtt_username"], "password": options.get("mqtt_password") or None}
    elif mqtt is not None:
        broker = {"host": mqtt["host"], "port": int(mqtt.get("port") or 1883), "tls": bool(mqtt.get("ssl", False))}
        if mqtt.get("username"):
            broker |= {"username": mqtt["username"], "password": mqtt.get("password") or None}
    else:
        raise OptionsError("no MQTT broker configured")
    if options.get("mqtt_discovery", True):
        broker["discovery_prefix"] = "homeassistant"
    managed_by_ha = options.get("scene_source") == "home_assistant"
    cameras = []
    for camera in options.get("cameras") or []:
        entry: dict[str, Any] = {"name": camera["name"], "url": camera["url"]}
        for key in ("id", "username", "password", "fps", "anonymization"):
            if camera.get(key) not in (None, ""):
                entry[key] = camera[key]
        entry["scene"] = _scene(camera, managed_by_ha)
        cameras.append(entry)
    if not cameras:
        raise OptionsError("no cameras configured: add at least one under 'cameras' in the add-on configuration")
    config: dict[str, Any] = {
        "engine_id": options.get("engine_id") or "safecam",
        "mqtt": broker,
        "http": {"port": HTTP_PORT, "token": _stream_token(options, data_dir), "trusted_peers": [INGRESS_PROXY]},
        "cameras": cameras,
        "provider": options.get("provider") or "auto",
        "state_file": str(data_dir / "state.json"),
        "state_interval_s": options.get("state_interval", 10),
        "snapshot_interval_s": options.get("snapshot_interval", 30),
        "heatmap_interval_s": options.get("heatmap_interval", 60),
        "log_level": options.get("log_level") or "info",
    }
    if options.get("pairing_key"):
        config["pairing_key"] = str(options["pairing_key"])  # else the engine makes one, kept in /data/pairing_key
    if options.get("threads"):
        config["threads"] = int(options["threads"])
    if options.get("model_dir"):
        config["model_dir"] = options["model_dir"]
    return config


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: options_to_config.py OPTIONS.json ENGINE.yaml", file=sys.stderr)
        return 2
    options_path, out_path = Path(argv[0]), Path(argv[1])
    try:
        try:
            options = json.loads(options_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise OptionsError(f"cannot read the add-on options {options_path} ({type(err).__name__})") from None
        service = None if options.get("mqtt_host") else mqtt_service(os.environ.get("SUPERVISOR_TOKEN"))
        config = build_config(options, service, out_path.parent)
    except OptionsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    os.chmod(out_path, 0o600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
