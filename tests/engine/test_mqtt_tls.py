"""`serve` over a real Mosquitto TLS listener with a password file (issue #11).

Certificates are made per run (tests/servers/certs.py): the broker's CA, and another CA that did not sign
it. One engine connects with TLS and credentials, is stopped and started again: every event goes out once
(unique ids, sequence numbers that go on across the restart) and the retained state carries on. Engines
given the wrong CA or the wrong password say why in one log line, retry, and do not crash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_socket

from custom_components.safecam.contract import Topics
from tests.servers.certs import TlsFiles, make_tls_files
from tests.servers.mosquitto import Broker, EngineProcess, Recorder, mosquitto_missing

pytestmark = [
    pytest.mark.usefixtures("socket_enabled"),
    pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing())),
]

USER, PASSWORD = "engine", "tls-pw-do-not-log"
SCENE = {
    "zones": [{"name": "walkway", "kind": "danger", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}],
    "gates": [{"name": "middle", "line": [[0.5, 0.5], [0.5, 1.0]]}],
}


class TlsSite:
    def __init__(self, root: Path, data: Path) -> None:
        self.root = root
        self.clip = data / "pedestrians" / "tud_campus.mp4"
        self.tls: TlsFiles = make_tls_files(root / "pki")
        self.other_ca = make_tls_files(root / "other-pki", "not-the-broker").ca
        self.broker = Broker(root / "broker", username=USER, password=PASSWORD, tls=self.tls)
        self.broker.start()
        self.sub = Recorder(self.broker, session="tls-recorder")  # on the plain listener, as a second client
        self.engines: list[EngineProcess] = []

    def config(self, engine_id: str, **mqtt: Any) -> dict[str, Any]:
        settings = {
            "host": "127.0.0.1", "port": self.broker.tls_port, "tls": True, "ca_certs": str(self.tls.ca),
            "username": USER, "password": PASSWORD, "reconnect_max_s": 1,
        } | mqtt  # fmt: skip
        return {
            "engine_id": engine_id,
            "mqtt": settings,
            "cameras": [{"id": "campus", "name": "Campus", "url": str(self.clip), "fps": 5, "scene": SCENE}],
            "state_file": str(self.root / engine_id / "state.json"),
            "state_interval_s": 1,
            "snapshot_interval_s": 0,
        }

    def engine(self, folder: str, config: dict[str, Any]) -> EngineProcess:
        engine = EngineProcess(self.root / folder, config)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.stop()
        self.sub.close()
        self.broker.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    pytest_socket.enable_socket()  # module setup runs before the per-test socket_enabled fixture
    s = TlsSite(tmp_path_factory.mktemp("mqtt-tls"), shared_data)
    try:
        yield s
    finally:
        s.close()


def _wait_log(engine: EngineProcess, text: str, count: int, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = engine.log()
        if log.count(text) >= count:
            return log
        time.sleep(0.2)
    pytest.fail(f"{text!r} not {count} times in the engine log within {timeout_s} s:\n{engine.log()[-1500:]}")


def test_tls_with_credentials_and_a_restart_publishes_every_event_once(site: TlsSite) -> None:
    t = Topics("safecam", "tls")
    sub, config = site.sub, site.config("tls")
    first = site.engine("tls-1", config)
    assert sub.wait(lambda: len(sub.on(t.event("campus"))) >= 3, 90), first.log()
    assert first.stop() == 0
    assert sub.wait(lambda: sub.on(t.availability)[-1].body == b"offline", 10)
    before = [m.json() for m in sub.on(t.event("campus"))]
    last_state = sub.last(t.state("campus"))
    restarted_at = time.time()

    second = site.engine("tls-2", config)
    assert sub.wait(lambda: len([m for m in sub.on(t.event("campus")) if m.received > restarted_at]) >= 3, 90), second.log()
    states = sub.wait(lambda: [m.json() for m in sub.on(t.state("campus")) if m.json()["boot"] != last_state["boot"]], 30)
    assert second.stop() == 0
    after = [m.json() for m in sub.on(t.event("campus")) if m.received > restarted_at]

    # Connected over TLS (the port is the TLS listener's; a plain client cannot speak there) with the password.
    assert " (TLS)" in first.log() and "connected to 127.0.0.1" in first.log()
    # Every event once: unique ids; sequence numbers grow within a run and go on above the last run's.
    events = before + after
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event was published twice"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert min(e["seq"] for e in after) > max(e["seq"] for e in before)
    # The retained state carries on: same counters to start from, higher seq.
    assert states[0]["seq"] > last_state["seq"] and states[0]["gates"] == last_state["gates"]
    saved = json.loads((site.root / "tls" / "state.json").read_text())["cameras"]["campus"]
    assert saved["gates"] == sub.last(t.state("campus"))["gates"]
    for engine in (first, second):
        assert PASSWORD not in engine.log()


def test_wrong_ca_and_wrong_password_are_named_and_retried(site: TlsSite) -> None:
    wrong_ca = site.engine("wrong-ca", site.config("wrongca", ca_certs=str(site.other_ca)))
    wrong_pw = site.engine("wrong-pw", site.config("wrongpw", password="not-the-password"))
    ca_log = _wait_log(wrong_ca, "cannot connect to 127.0.0.1", 3)
    pw_log = _wait_log(wrong_pw, "cannot connect to 127.0.0.1", 3)
    assert wrong_ca.proc.poll() is None and wrong_pw.proc.poll() is None  # still running, still retrying
    assert "certificate" in ca_log and str(site.other_ca) in ca_log
    assert "mqtt.username" in pw_log and "not-the-password" not in pw_log
    assert wrong_ca.stop() == 0 and wrong_pw.stop() == 0
    t = Topics("safecam", "wrongpw")
    assert site.sub.on(t.availability) == []  # nothing got through
