"""The broker ACL of docs/mqtt.md ("Broker ACLs: the second line"), taken from the document itself and run on a
real Mosquitto: only the engine publishes under its prefix, only Home Assistant publishes commands, anyone else
reads and writes nothing under safecam/."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.servers.mosquitto import Broker, Recorder, mosquitto_missing

pytestmark = [
    pytest.mark.usefixtures("socket_enabled"),
    pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing())),
]
DOC = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"
USERS = {"safecam-site-a": "engine-pw", "homeassistant": "ha-pw", "intruder": "intruder-pw"}


def test_the_documented_acl_lets_only_the_engine_and_home_assistant_speak(tmp_path: Path):
    acl = re.search(r"### Broker ACLs.*?```\n(.*?)```", DOC.read_text(), re.S)
    assert acl, "the ACL example is missing from docs/mqtt.md"
    broker = Broker(tmp_path, users=USERS, acl=acl.group(1))
    broker.start()
    clients = {}
    try:
        clients = {
            "engine": Recorder(broker, ("safecam/site-a/+/command/+",), login=("safecam-site-a", USERS["safecam-site-a"])),
            "ha": Recorder(broker, ("safecam/#",), login=("homeassistant", USERS["homeassistant"])),
            "intruder": Recorder(broker, ("safecam/#",), login=("intruder", USERS["intruder"])),
        }
        time.sleep(0.5)  # subscribed
        state, command = "safecam/site-a/cam/state", "safecam/site-a/cam/command/disarm"
        clients["engine"].publish(state, b"engine")
        clients["intruder"].publish(state, b"intruder")
        clients["intruder"].publish(command, b"intruder")
        clients["ha"].publish(command, b"ha")
        clients["ha"].publish(state, b"ha")
        assert clients["engine"].wait(lambda: clients["engine"].on(command), 5)
        time.sleep(1)  # anything else that was let through would have arrived by now
        assert [m.payload for m in clients["ha"].on(state)] == [b"engine"]
        assert [m.payload for m in clients["engine"].on(command)] == [b"ha"]
        assert clients["intruder"].messages == []
    finally:
        for client in clients.values():
            client.close()
        broker.stop()
