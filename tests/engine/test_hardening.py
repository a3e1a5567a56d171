"""issue 19 on the engine side: a scene's caps hold in the engine's own parser (the one Home Assistant uses too),
and no user-supplied value makes an unbounded log line (row 5: a 50,000-character zone name went into one line).

The engine runs as its own process (`serve`) on a real Mosquitto broker, with one camera on a closed port (no
analysis needed: these are about commands and logs); commands are signed with its pairing key as HA signs them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from custom_components.safecam.contract import Topics
from custom_components.safecam.engine.config import (
    MAX_NAME_LENGTH,
    MAX_ZONES,
    ConfigError,
    check_name,
    parse_scene,
    parse_scene_text,
)
from tests.servers.frames import Sender
from tests.servers.mosquitto import Broker, EngineProcess, Recorder, mosquitto_missing
from tests.servers.processes import free_port

KEY = "AEBA-GBAF-AYDQ-QCIK-BMGA-2DQP-CAIR-EEYU"
LONG = "n" * 50_000
LINE_MAX = 1000  # characters: every log line of the engine stays below this
TRIANGLE = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]


def _zone(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "area", "polygon": TRIANGLE}


def _refused(data: object) -> str:
    with pytest.raises(ConfigError) as err:
        parse_scene(data)
    return str(err.value)


def test_scene_caps_in_the_shared_parser() -> None:
    """Zone count, name length, any text's length, depth and total size: one-line, bounded errors."""
    cases = {
        f"at most {MAX_ZONES} are allowed": {"zones": [_zone(f"z{i}") for i in range(MAX_ZONES + 1)]},
        "at most 100 are allowed": {"gates": [{"name": f"g{i}", "line": [[0, 0], [1, 1]]} for i in range(101)]},
        "is longer than": {"zones": [_zone(LONG)]},
        f"longer than {MAX_NAME_LENGTH} characters": {"zones": [_zone("n" * (MAX_NAME_LENGTH + 1))]},
        "nested deeper than": {"zones": [_zone("a")], "privacy": {"masks": [[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]}},
        "more than": {"zones": [_zone("a")], "privacy": {"masks": [[[0.1, 0.1]] * 3] * 40_000}},
        "must be one line of printable characters": {"zones": [_zone("evil\u202egnp.exe")]},
    }
    for needle, data in cases.items():
        message = _refused(data)
        assert needle in message and "\n" not in message and len(message) < 300, (needle, message[:400])
    assert len(parse_scene({"zones": [_zone(f"{i:02d}" + "x" * (MAX_NAME_LENGTH - 2)) for i in range(MAX_ZONES)]}).zones) == 100
    # The text parser: YAML nesting is refused while composing (no RecursionError), and a text's size before parsing.
    for text, needle in (("zones: " + "[" * 150_000 + "]" * 150_000, "at most"), ("zones: " + "[" * 900 + "]" * 900, "nested")):
        with pytest.raises(ConfigError) as err:
            parse_scene_text(text)
        assert needle in str(err.value)
    # Characters YAML's reader refuses (pasted ESC, NUL, BEL): the same one-line error, not yaml.ReaderError.
    for text in ("zones: []\x1b", "zones: [\x00]", "a: \x07"):
        with pytest.raises(ConfigError) as err:
            parse_scene_text(text)
        assert "\n" not in str(err.value), text
    # Names may hold the joiners scripts need (Persian ZWNJ, emoji ZWJ sequences), never a bidi override.
    assert (
        check_name("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "zone")
        == "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    )
    assert check_name("crew \U0001f468\u200d\U0001f527", "zone")
    for bad in ("a\u202eb", "a\u2066b", "a\u200bb", "a\u2028b"):
        with pytest.raises(ConfigError, match="printable"):
            check_name(bad, "zone")


@pytest.mark.usefixtures("socket_enabled")
@pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing()))
def test_engine_log_lines_stay_bounded(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    engine = None
    sub = Recorder(broker)
    results: list[dict[str, Any]] = []
    try:
        config = {
            "engine_id": "h",
            "pairing_key": KEY,
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 1},
            "cameras": [{"id": "cam", "name": "Cam", "url": f"rtsp://127.0.0.1:{free_port()}/x", "fps": 1}],
            "state_interval_s": 1,
        }
        engine = EngineProcess(tmp_path / "engine", config)
        topics = Topics("safecam", "h")
        assert sub.wait(lambda: sub.last(topics.config("cam")), 60), engine.log()
        ha = Sender(KEY)

        def command(name: str, payload: dict[str, Any], request_id: str) -> dict[str, Any]:
            sub.publish(topics.command("cam", name), dict(payload, id=request_id), signer=ha)
            found = sub.wait(lambda: [m.json() for m in sub.on(topics.command_result("cam")) if m.json()["id"] == request_id], 20)
            assert found, f"no result for {name}"
            return dict(found[-1])

        results += [
            command("set_scene", {"scene": {"zones": [_zone(LONG)]}}, "s1"),
            command("set_scene", {"scene": {"zones": [_zone("ok")], "privacy": {LONG: 1}}}, "s2"),
            command("arm", {"zone": LONG}, "a1"),
            command("reset_counters", {"gate": LONG}, "r1"),
        ]
        time.sleep(1)  # the engine logs the refusals as it answers
    finally:
        sub.close()
        if engine is not None:
            engine.stop()
        broker.stop()
    log = engine.log()
    longest = max(log.splitlines(), key=len)
    assert len(longest) < LINE_MAX, (len(longest), longest[:300])
    assert log.count("refused") >= 4, log[-3000:]  # the refusals are logged (so the lengths above are of real lines)
    for result in results:
        assert not result["ok"] and len(result["error"]) < 300, str(result)[:400]
