"""The add-on's Supervisor discovery step (`announce`, engine/supervisor.py), run as addon/run.sh runs it.

Against a stand-in for the Supervisor's POST /discovery (tests/servers/supervisor.py): the real Supervisor cannot
run here (no Docker, no Home Assistant OS). What it must see: the add-on's token as a bearer token, and
{"service": "safecam", "config": {engine_id, pairing_key, topic_prefix, host, port}} with the key the engine then
signs with. A failure is one warning line without the key or the token, exit 0, and the engine still runs.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import yaml

from custom_components.safecam.const import DOMAIN
from custom_components.safecam.contract import format_pairing_key, parse_pairing_key
from custom_components.safecam.engine.serve import load_serve_config, pairing_key
from tests.servers.addon import run_sh_env
from tests.servers.processes import free_port
from tests.servers.supervisor import StandInSupervisor

REPO = Path(__file__).resolve().parents[2]
KEY = "AEBA-GBAF-AYDQ-QCIK-BMGA-2DQP-CAIR-EEYU"
STREAM_TOKEN = "stream-token-of-the-add-on-0123"


@pytest.fixture
def supervisor(socket_enabled: None) -> Generator[StandInSupervisor]:
    server = StandInSupervisor().start()
    yield server
    server.stop()


@pytest.fixture
def closed_port(socket_enabled: None) -> int:
    return free_port()  # nothing listens there: connections are refused at once


def _config(tmp_path: Path, **extra: Any) -> Path:
    """An engine config as options_to_config.py writes it for the add-on (state in /data, the web page on 8099)."""
    config = {
        "engine_id": "addon",
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "http": {"port": 8099, "token": STREAM_TOKEN, "trusted_peers": ["172.30.32.2"]},
        "cameras": [{"name": "Campus", "url": "/media/campus.mp4"}],
        "state_file": str(tmp_path / "data" / "state.json"),
        **extra,
    }
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _addon_env(supervisor: StandInSupervisor) -> dict[str, str]:
    """What the Supervisor puts in an add-on's environment (its token) and where it is reached."""
    return {"SUPERVISOR_TOKEN": supervisor.token, "SUPERVISOR_URL": supervisor.url}


def _announce(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command run.sh runs, in its own process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    return subprocess.run(
        [sys.executable, "-m", "custom_components.safecam.engine", "announce", "--config", str(config)],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_engine_id_key_and_web_page_go_to_the_supervisor_with_the_token(tmp_path: Path, supervisor: StandInSupervisor):
    config = _config(tmp_path)
    proc = _announce(config, _addon_env(supervisor))
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    [sent] = supervisor.received
    assert sent.headers["Authorization"] == f"Bearer {supervisor.token}"
    # Made at this first start, kept in the state folder, private; the engine reads that same key when it starts.
    key_file = tmp_path / "data" / "pairing_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = parse_pairing_key(key_file.read_text())
    assert pairing_key(load_serve_config(config)) == key
    assert sent.body == {
        "service": DOMAIN,  # Home Assistant starts the config flow of the integration named by the service
        "config": {
            "engine_id": "addon",
            "pairing_key": format_pairing_key(key),
            "topic_prefix": "safecam",
        },
    }
    [message_id] = supervisor.messages
    assert message_id in proc.stderr  # the log says it was taken (the key and the token are not in it)
    assert format_pairing_key(key) not in proc.stderr + proc.stdout and supervisor.token not in proc.stderr

    # The next start announces the same key (the file is kept), and a key set in the options is the one announced.
    assert _announce(config, _addon_env(supervisor)).returncode == 0
    assert supervisor.received[1].body == sent.body
    configured = _config(tmp_path, pairing_key=KEY)
    assert _announce(configured, _addon_env(supervisor)).returncode == 0
    assert supervisor.received[2].body["config"]["pairing_key"] == KEY


def test_without_a_web_page_the_message_has_no_host(tmp_path: Path, supervisor: StandInSupervisor):
    config = _config(tmp_path, http=None, pairing_key=KEY)
    assert _announce(config, _addon_env(supervisor)).returncode == 0
    assert supervisor.received[0].body["config"] == {"engine_id": "addon", "pairing_key": KEY, "topic_prefix": "safecam"}


def _one_warning(proc: subprocess.CompletedProcess[str], *secrets: str) -> str:
    assert proc.returncode == 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), proc.stderr
    for secret in secrets:
        assert secret not in proc.stderr + proc.stdout
    return lines[0]


def test_a_failure_is_one_warning_line_without_secrets(tmp_path: Path, supervisor: StandInSupervisor, closed_port: int):
    config = _config(tmp_path, pairing_key=KEY)
    wrong_token = _announce(config, {"SUPERVISOR_TOKEN": "not-the-add-ons", "SUPERVISOR_URL": supervisor.url})
    assert "HTTP 403: Invalid token" in _one_warning(wrong_token, KEY, "not-the-add-ons", STREAM_TOKEN)
    assert supervisor.received[0].headers["Authorization"] == "Bearer not-the-add-ons" and not supervisor.messages

    assert supervisor.services == (DOMAIN,)  # what addon/config.yaml declares
    supervisor.services = ()  # a config.yaml without `discovery: [safecam]`: the Supervisor refuses the service
    undeclared = _announce(config, _addon_env(supervisor))
    assert "HTTP 403: Apps must list services" in _one_warning(undeclared, KEY, supervisor.token)

    away = _announce(config, {"SUPERVISOR_TOKEN": supervisor.token, "SUPERVISOR_URL": f"http://127.0.0.1:{closed_port}"})
    assert "cannot be reached" in _one_warning(away, KEY, supervisor.token)

    # No state file and no key: the engine would make a new key at every start, so none is announced.
    ephemeral = _config(tmp_path, state_file=None)
    assert "state_file" in _one_warning(_announce(ephemeral, _addon_env(supervisor)))

    broken = tmp_path / "broken.yaml"
    broken.write_text("engine_id: addon\ncameras: []\n")
    assert "mqtt" in _one_warning(_announce(broken, _addon_env(supervisor)))
    assert len(supervisor.received) == 2 and not supervisor.messages  # only the two refused posts reached it


def test_outside_an_add_on_nothing_is_announced(tmp_path: Path, supervisor: StandInSupervisor):
    """No SUPERVISOR_TOKEN: a container or pip engine. Nothing is sent, nothing is said, no key file is made."""
    proc = _announce(_config(tmp_path), {"SUPERVISOR_URL": supervisor.url})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert not supervisor.received and not (tmp_path / "data").exists()


def test_run_script_starts_the_engine_when_the_supervisor_cannot_be_told(
    tmp_path: Path, shared_data: Path, closed_port: int, socket_enabled: None
):
    """Failure to post is one warning line in the add-on's log; the engine starts and publishes as always."""
    from tests.servers.mosquitto import Broker, Recorder, mosquitto_missing

    if mosquitto_missing():
        pytest.skip(str(mosquitto_missing()))
    broker = Broker(tmp_path / "broker")
    broker.start()
    rec = Recorder(broker, ("safecam/#",))
    data = tmp_path / "data"
    data.mkdir()
    options = {
        "engine_id": "addon",
        "cameras": [{"name": "Campus", "url": str(shared_data / "pedestrians" / "tud_campus.mp4"), "fps": 2}],
        "scene_source": "options",
        "snapshot_interval": 30,
        "state_interval": 10,
        "provider": "auto",
        "mqtt_discovery": False,
        "log_level": "info",
        "mqtt_host": "127.0.0.1",
        "mqtt_port": broker.port,
    }
    (data / "options.json").write_text(json.dumps(options))
    env = run_sh_env(data, SUPERVISOR_TOKEN="addon-token", SUPERVISOR_URL=f"http://127.0.0.1:{closed_port}")
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(REPO / "addon" / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        state = rec.wait(lambda: (s := rec.last("safecam/addon/campus/state")) and s["health"]["frames"] > 0 and s, 90)
        assert state, log_path.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        text = log_path.read_text()
        warnings = [line for line in text.splitlines() if "through the Supervisor" in line]
        assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "cannot be reached" in warnings[0]
        key = (data / "pairing_key").read_text().strip()
        assert text.count(key) == 1  # only the engine's own line shows it (for typing it in), not the warning
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        rec.close()
        broker.stop()
