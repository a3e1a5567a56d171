"""A real Mosquitto broker for tests and benchmarks (started on a free port, stopped by PID), a recording
MQTT subscriber, and a `serve` engine process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .certs import TlsFiles
from .frames import Sender
from .processes import free_port, stop_process, wait_for_port

MOSQUITTO = "/usr/sbin/mosquitto"
REPO = Path(__file__).resolve().parents[2]


def mosquitto_missing() -> str | None:
    return None if os.access(MOSQUITTO, os.X_OK) else f"{MOSQUITTO} not found (apt-get install mosquitto)"


class Broker:
    """Mosquitto on 127.0.0.1:port, optionally with one user. `kill()` + `start()` = a broker crash and restart."""

    def __init__(
        self,
        workdir: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        persistent: bool = False,
        tls: TlsFiles | None = None,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        port: int | None = None,
    ) -> None:
        """persistent: sessions, their queued QoS 1 messages and retained messages survive a restart, as on a
        production broker (saved every second, so a SIGKILL loses at most the last second).
        tls: also a TLS listener on `tls_port` with these files (the plain listener on `port` stays).
        users: more users (name -> password); acl: the text of an ACL file (Mosquitto's acl_file).
        port: a fixed port (the demo's broker, which Home Assistant's MQTT entry remembers), else a free one."""
        self.workdir = workdir
        self.port = port or free_port()
        self.tls_port = free_port() if tls is not None else None
        self.username, self.password = username, password
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "max_queued_messages 10000"]
        if persistent:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', which cannot read a private temp dir
        logins = ({username: password or ""} if username else {}) | (users or {})
        if logins:
            pwfile = workdir / "passwd"
            pwfile.write_text("")
            for name, secret in logins.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), name, secret], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            (workdir / "acl.conf").write_text(acl)
            lines.append(f"acl_file {workdir / 'acl.conf'}")
        if tls is not None:  # listener options below apply to this listener only; users are global
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc)
        if self.tls_port is not None:
            wait_for_port(self.tls_port, self.proc)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, clients see their connection drop."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@dataclass(frozen=True, slots=True)
class Message:
    received: float  # time.time()
    topic: str
    payload: bytes
    retain: bool

    @property
    def body(self) -> bytes:
        """The body of a signed frame (contract.py: header line, MAC line, body), NOT verified; a payload that is
        no frame (Home Assistant discovery) as it is."""
        parts = self.payload.split(b"\n", 2)
        return parts[2] if len(parts) == 3 and len(parts[1]) == 64 else self.payload

    def json(self) -> Any:
        return json.loads(self.body)


class Recorder:
    """A paho-mqtt subscriber that records every message (reconnects and re-subscribes by itself)."""

    def __init__(
        self,
        broker: Broker,
        topics: tuple[str, ...] = ("#",),
        *,
        session: str | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        """session: a client id with a persistent session (QoS 1 messages published while this subscriber is
        away are queued by the broker for it), else a clean session. login: (user, password), else the broker's user."""
        import paho.mqtt.client as mqtt

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        if session:
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=session, clean_session=False)
        else:
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if login or broker.username:
            self.client.username_pw_set(*(login or (broker.username, broker.password)))
        self.client.reconnect_delay_set(0.2, 1)

        def on_connect(client: Any, _userdata: Any, _flags: Any, _rc: Any, _props: Any = None) -> None:
            for topic in topics:
                client.subscribe(topic, qos=1)

        def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
            with self._lock:
                self.messages.append(Message(time.time(), msg.topic, bytes(msg.payload), bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: Any, *, signer: Sender | None = None, retain: bool = False) -> None:
        """Publish as is, or signed as `signer` (the engine's key: what Home Assistant sends)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if signer is not None:
            data = signer.sign(topic, data)
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Any:
        msgs = self.on(topic)
        return msgs[-1].json() if msgs else None

    def wait(self, predicate: Callable[[], Any], timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        return predicate()


def retained(broker: Broker, pattern: str, settle_s: float = 1.0) -> dict[str, bytes]:
    """What a fresh subscriber gets right away: the broker's retained messages under `pattern` (their bodies)."""
    rec = Recorder(broker, (pattern,))
    try:
        time.sleep(settle_s)
        return {m.topic: m.body for m in rec.messages if m.retain}
    finally:
        rec.close()


class EngineProcess:
    """`python -m custom_components.safecam.engine serve --config FILE` in its own process (stopped by PID)."""

    def __init__(self, workdir: Path, config: dict[str, Any], command: Sequence[str] | None = None) -> None:
        """command: what runs before `serve --config FILE`, e.g. the wheel's console script (.venv-engine/bin/
        safecam-engine, run from workdir); default this interpreter on the checkout's engine (run from the repo)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = workdir / "engine.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "engine.log"
        env = dict(os.environ)
        env.setdefault("SAFECAM_MODEL_MIRROR", str(REPO.parent / "shared" / "models"))
        engine = command or (sys.executable, "-m", "custom_components.safecam.engine")
        argv = [*engine, "serve", "--config", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO if command is None else workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM: a clean stop (final states, "offline"). Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL: the engine vanishes; only the broker's last will tells."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
