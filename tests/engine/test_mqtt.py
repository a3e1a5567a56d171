"""The engine service over a real Mosquitto broker: the topic/payload contract, commands, the HTTP stream,
two engines sharing a broker, a broker crash and restart mid-run (counts equal an uninterrupted run), an
engine crash (last will) and credentials kept out of the logs.

One site for the module (real models on real clips, each engine in its own process):
  broker 1 (with a user):  engine "a" (campus clip) · engine "b" (street, table, a dead RTSP camera)
  broker 2:                engine "r" = engine "a"'s twin, never interrupted: the reference run.
The tests run in file order; the last ones stop and kill engines.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_socket

from custom_components.safecam.contract import Topics, event_from_payload, event_payload, state_from_payload, state_payload
from custom_components.safecam.engine.config import ConfigError
from custom_components.safecam.engine.serve import StateStore, parse_serve_config, with_credentials
from custom_components.safecam.engine.types import SafetyEvent
from custom_components.safecam.engine.worker import CameraState
from tests.servers.frames import Sender, key_bytes
from tests.servers.mosquitto import Broker, EngineProcess, Recorder, mosquitto_missing, retained
from tests.servers.processes import free_port

from .mot import frames

pytestmark = [
    pytest.mark.usefixtures("socket_enabled"),
    pytest.mark.skipif(mosquitto_missing() is not None, reason=str(mosquitto_missing())),
]

MQTT_USER, MQTT_PASSWORD = "engine", "mqtt-pw-do-not-log"
CAMERA_PASSWORD = "campw-do-not-log"
TOKEN = "stream-token-0123456789"
KEY_B = "AEBA-GBAF-AYDQ-QCIK-BMGA-2DQP-CAIR-EEYU"  # engine b's pairing key, from its config (engine a makes its own)
# tud_campus.mp4: people walk left/right along the bottom (feet at y 0.7-0.96).
CAMPUS_SCENE = {
    "zones": [{"name": "walkway", "kind": "danger", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}],
    "gates": [{"name": "middle", "line": [[0.5, 0.5], [0.5, 1.0]]}],
}
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
STATE_KEYS = {"contract", "camera", "seq", "boot", "ts", "frame_ts", "connected", "running", "people", "zones", "gates"}
STATE_KEYS |= {"armed", "analytics", "health"}
# Everything CameraState carries: the fields not at the top of the message are in "health".
HEALTH_KEYS = {f.name for f in dataclasses.fields(CameraState)} - STATE_KEYS


def _mqtt(broker: Broker, **extra: Any) -> dict[str, Any]:
    out = {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 1}
    if broker.username:
        out |= {"username": broker.username, "password": broker.password}
    return out | extra


def _campus(clip: Path) -> dict[str, Any]:
    return {"name": "Campus", "url": str(clip), "fps": 5, "scene": CAMPUS_SCENE}


class Site:
    def __init__(self, root: Path, data: Path) -> None:
        peds = data / "pedestrians"
        self.campus_clip = peds / "tud_campus.mp4"
        self.broker = Broker(root / "broker1", username=MQTT_USER, password=MQTT_PASSWORD, persistent=True)
        self.ref_broker = Broker(root / "broker2")
        self.http_port = free_port()
        self.dead_port = free_port()  # nothing listens here: a camera that is down
        self.state_file = root / "a" / "state.json"
        common = {"state_interval_s": 1, "snapshot_interval_s": 1, "heatmap_interval_s": 1}
        self.config_a = {
            "engine_id": "a",
            "mqtt": _mqtt(self.broker, discovery_prefix="homeassistant"),
            "http": {"port": self.http_port, "host": "127.0.0.1", "token": TOKEN},
            "cameras": [_campus(self.campus_clip)],
            "state_file": str(self.state_file),
            **common,
        }
        self.config_b = config_b = {
            "engine_id": "b",
            "mqtt": _mqtt(self.broker),
            "cameras": [
                {"id": "street", "name": "Street", "url": str(peds / "tud_stadtmitte.mp4"), "fps": 2},
                {
                    "id": "table",
                    "name": "Table",
                    "url": str(peds / "intel_one_by_one_person_first60s.mp4"),
                    "fps": 2,
                    "scene": {"zones": [{"name": "floor", "kind": "area", "polygon": WHOLE}]},
                },
                {
                    "id": "dead",
                    "name": "Dead",
                    "url": f"rtsp://127.0.0.1:{self.dead_port}/stream",
                    "username": "cam",
                    "password": CAMERA_PASSWORD,
                },
            ],
            "pairing_key": KEY_B,
            "state_file": str(root / "b" / "state.json"),
            **common,
        }
        config_r = {"engine_id": "a", "mqtt": _mqtt(self.ref_broker), "cameras": [_campus(self.campus_clip)], **common}
        self.brokers = [self.broker, self.ref_broker]
        for broker in self.brokers:
            broker.start()
        self.a = EngineProcess(root / "a", self.config_a)
        self.root = root
        self.b = EngineProcess(root / "b", config_b)
        self.r = EngineProcess(root / "r", config_r)
        self.engines = [self.a, self.b, self.r]
        # Persistent sessions: like any subscriber that must not miss events across its own or the broker's restart.
        self.sub = Recorder(self.broker, session="test-recorder")
        self.ref = Recorder(self.ref_broker, session="test-reference")
        self.topics_a, self.topics_b = Topics("safecam", "a"), Topics("safecam", "b")
        self.ha_b = Sender(KEY_B)  # what Home Assistant paired with engine b signs commands as

    def close(self) -> None:
        for engine in self.engines:
            engine.stop()
        for rec in (self.sub, self.ref):
            rec.close()
        for broker in self.brokers:
            broker.stop()

    def states(self, rec: Recorder, topic: str) -> list[dict[str, Any]]:
        return [m.json() for m in rec.on(topic)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    pytest_socket.enable_socket()  # module setup runs before the per-test socket_enabled fixture
    s = Site(tmp_path_factory.mktemp("mqtt"), shared_data)
    try:
        yield s
    finally:
        s.close()


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@functools.cache
def _raw_frames(clip: Path) -> list[np.ndarray]:
    return [f.astype(np.int16) for f in frames(clip)]


def _not_a_raw_frame(jpeg: bytes, clip: Path) -> float:
    """Smallest mean difference to any raw frame of the clip (a raw frame, re-encoded, scores < 2)."""
    served = _decode(jpeg).astype(np.int16)
    return min(float(np.abs(served - f).mean()) for f in _raw_frames(clip) if f.shape == served.shape)


# ---- without a broker -----------------------------------------------------------------------------


def test_serve_config_errors_are_one_line_and_name_the_key():
    good = {"engine_id": "a", "mqtt": {"host": "h"}, "cameras": [{"name": "Gate 1", "url": "rtsp://x/y"}]}
    cfg = parse_serve_config(good)
    assert cfg.cameras[0].id == "gate_1" and cfg.cameras[0].scene is None and cfg.http is None
    bad = [
        ({**good, "mqtt": {"host": "h", "port": 0}}, "mqtt.port"),
        ({**good, "mqtt": {"port": 1883}}, "mqtt.host"),
        ({**good, "engine_id": "A B"}, "engine_id"),
        ({**good, "cameras": []}, "cameras"),
        ({**good, "cameras": [good["cameras"][0], good["cameras"][0]]}, "duplicate camera id"),
        ({**good, "http": {"port": 8099}}, "token"),
        ({**good, "http": {"token": "short"}}, "http.token"),
        ({**good, "colour": 1}, "colour"),
        (
            {**good, "cameras": [{"name": "G", "url": "/x.mp4", "scene": {"zones": [{"name": "z", "polygon": [[0, 0]]}]}}]},
            "zone 'z'",
        ),
        ({**good, "mqtt": {"host": "h", "topic_prefix": "a/#"}}, "topic_prefix"),
    ]
    for data, needle in bad:
        with pytest.raises(ConfigError) as err:
            parse_serve_config(data)
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_camera_credentials_are_injected_and_files_take_none():
    assert with_credentials("rtsp://old:x@cam:554/s", "u@x", "p:w/") == "rtsp://u%40x:p%3Aw%2F@cam:554/s"
    assert with_credentials("/clips/a.mp4", "u", "p") == "/clips/a.mp4"


def test_state_and_event_payloads_carry_everything_camera_state_and_safety_event_carry():
    state = CameraState(
        "cam", seq=7, connected=True, running=True, people=3, zones={"z": {"people": 2, "occupied": True}},
        gates={"g": {"in": 4, "out": 1}}, analytics={"falls": {"person_down": False}}, analysis_fps=4.9,
        target_fps=5.0, inference_ms=21.5, dropped_frames=2, frames=99, error="x", error_reason="detector",
        disconnected_since=time.monotonic() - 30, frame_ts=1234.5,
    )  # fmt: skip
    # Fields other helpers add to CameraState (ints) travel too.
    extra = {f.name: 5 for f in dataclasses.fields(CameraState) if f.default == 0 and getattr(state, f.name) == 0}
    state = dataclasses.replace(state, **extra)
    payload = json.loads(json.dumps(state_payload(state, camera="cam", seq=7, boot=1, armed={"z": False})))
    back = state_from_payload(payload)
    assert back.disconnected_since is not None and abs(back.disconnected_since - state.disconnected_since) < 0.1
    assert back == CameraState(
        **{**{f: getattr(state, f) for f in state.__dataclass_fields__}, "disconnected_since": back.disconnected_since}
    )
    assert payload["armed"] == {"z": False}
    event = SafetyEvent("intrusion", 12.5, "cam", 4, "z", 0.91, {"rule": "intrusion"}, snapshot=b"\xff\xd8")
    wire = json.loads(json.dumps(event_payload(event, camera="cam", event_id="abc", seq=3, snapshot_topic="t")))
    assert wire["id"] == "abc" and wire["snapshot"] == "t" and event_from_payload(wire) == event


def test_heatmap_pictures_are_bounded_in_width_and_topics_name_their_window(shared_data: Path):
    from custom_components.safecam.contract import parse_heatmap_topic
    from custom_components.safecam.engine.serve import HEATMAP_WIDTH, render_heatmaps

    frame = cv2.resize(frames(shared_data / "pedestrians" / "tud_campus.mp4", limit=1)[0], (1920, 1080))
    grid = np.zeros((36, 64))
    grid[30:34, 10:50] = 5.0
    pictures = render_heatmaps({"hour": grid, "week": grid}, cv2.imencode(".jpg", frame)[1].tobytes())
    assert set(pictures) == {"hour", "week"}
    assert all(_decode(png).shape == (540, HEATMAP_WIDTH, 3) for png in pictures.values())
    t = Topics("safecam", "a")
    assert [parse_heatmap_topic(t, "gate", t.heatmap("gate", w)) for w in ("hour", "day", "week")] == ["hour", "day", "week"]
    for other in (t.heatmap("gate", "live"), t.heatmap("door", "hour"), t.snapshot("gate"), t.heatmap("gate", "hour/x")):
        assert parse_heatmap_topic(t, "gate", other) is None


def test_pairing_keys_and_signed_frames():
    """The frame as docs/mqtt.md writes it (tests/servers/frames.py) opens with the contract's key; any change to
    topic, header or body, another key, or no frame at all is refused with a reason that echoes nothing."""
    from custom_components.safecam.contract import (
        MessageRejected,
        format_pairing_key,
        new_pairing_key,
        open_signed,
        parse_pairing_key,
    )

    key = new_pairing_key()
    text = format_pairing_key(key)
    assert len(key) * 8 >= 128 and len(text.split("-")) == 8 and parse_pairing_key(text.lower().replace("-", " ")) == key
    for typo in ("", "hello", text[:-5], text + "-AB", "ABCD-EFGH"):
        with pytest.raises(ValueError):
            parse_pairing_key(typo)
    topic, body = "safecam/a/cam/state", b'{"people": 3}'
    frame = Sender(text).sign(topic, body)
    opened = open_signed(key, topic, frame)
    assert opened.body == body and opened.seq == 1
    head, mac, _ = frame.split(b"\n", 2)
    tampered = {
        "bad signature": [
            (topic.replace("cam", "cam2"), frame),
            (topic, head.replace(b'"seq":1', b'"seq":2') + b"\n" + mac + b"\n" + body),
            (topic, head + b"\n" + mac + b"\n" + body.replace(b"3", b"9")),
        ],
        "another pairing key": [(topic, Sender(format_pairing_key(new_pairing_key())).sign(topic, body))],
        "unsigned": [(topic, body), (topic, b"")],
        "too large": [(topic, Sender(text).sign(topic, b" " * 10_000_000))],
    }
    for reason, cases in tampered.items():
        for t, payload in cases:
            with pytest.raises(MessageRejected, match=reason) as err:
                open_signed(key, t, payload)
            assert "people" not in str(err.value)


def test_a_restart_within_the_same_second_gets_a_higher_boot(tmp_path: Path):
    """Receivers order an engine's messages by (boot, seq) and take a boot as one run: a restart never reuses one."""
    path = tmp_path / "state.json"
    boots = [StateStore(str(path)).next_boot() for _ in range(3)]  # three starts, well within one second
    assert boots == [boots[0], boots[0] + 1, boots[0] + 2] and abs(boots[0] - time.time()) < 5
    store = StateStore(str(path))
    store.next_boot()
    store.save({"cam": {"gates": {"door": {"in": 4, "out": 1}}}})
    again = StateStore(str(path))
    assert again.next_boot() == boots[2] + 2 and again.load() == {"cam": {"gates": {"door": {"in": 4, "out": 1}}}}
    assert StateStore(None).next_boot() >= boots[0]  # no state file: the start's second


def test_command_topics_parse():
    topics = Topics("safecam", "site-1")
    assert topics.parse_command("safecam/site-1/gate/command/arm") == ("gate", "arm")
    assert topics.parse_command("safecam/site-1/gate/state") is None
    assert topics.parse_command("safecam/other/gate/command/arm") is None


async def test_discovery_passes_home_assistants_own_mqtt_schemas(hass):
    """The device discovery message, expanded and validated as HA 2025.4's MQTT integration does it."""
    from homeassistant.components.mqtt import binary_sensor, camera, discovery, event, sensor
    from homeassistant.components.mqtt.schemas import DEVICE_DISCOVERY_SCHEMA

    from custom_components.safecam.engine.config import parse_scene
    from custom_components.safecam.engine.mqtt import discovery_payload

    scene = parse_scene({**CAMPUS_SCENE, "zones": [*CAMPUS_SCENE["zones"], {"name": "Zone B!", "polygon": WHOLE}]})
    _suffix, payload = discovery_payload(
        Topics("safecam", "a"), engine_id="a", camera="cam", name="Cam", scene=scene, version="1"
    )
    expanded = json.loads(json.dumps(payload))
    discovery._replace_all_abbreviations(expanded)
    device = DEVICE_DISCOVERY_SCHEMA(expanded)
    schemas = {"camera": camera.DISCOVERY_SCHEMA, "sensor": sensor.DISCOVERY_SCHEMA}
    schemas |= {"binary_sensor": binary_sensor.DISCOVERY_SCHEMA, "event": event.DISCOVERY_SCHEMA}
    platforms = []
    for component in expanded["components"].values():  # (HA merges the shared options from the raw payload)
        config = dict(component)
        platforms.append(config.pop("platform"))
        discovery._merge_common_device_options(config, expanded)  # type: ignore[arg-type]
        schemas[platforms[-1]](config | {"device": device["device"]})
    assert platforms.count("binary_sensor") == 4  # connected, 2 occupied, 1 intruded (danger zone only)
    assert platforms.count("sensor") == 6  # people, analysis rate, 2 zone people, entries, exits


# ---- on the broker ----------------------------------------------------------------------------------


def test_contract_availability_info_layout_state_events_snapshots(site: Site):
    t = site.topics_a
    sub = site.sub
    assert sub.wait(lambda: any(s["people"] > 0 and s["health"]["frames"] > 3 for s in site.states(sub, t.state("campus"))), 90)
    kept = retained(site.broker, "safecam/a/#")
    assert kept[t.availability] == b"online"
    info = json.loads(kept[t.info])
    assert info["engine_id"] == "a" and info["cameras"] == ["campus"] and info["http"]["port"] == site.http_port
    layout = json.loads(kept[t.config("campus")])
    assert layout["name"] == "Campus" and layout["scene_source"] == "config" and layout["fps"] == 5
    assert [(z["name"], z["kind"]) for z in layout["scene"]["zones"]] == [("walkway", "danger")]
    assert [g["name"] for g in layout["scene"]["gates"]] == ["middle"]

    states = site.states(sub, t.state("campus"))
    for state in states:
        assert set(state) == STATE_KEYS and set(state["health"]) == HEALTH_KEYS
        assert set(state["zones"]) == {"walkway"} and set(state["gates"]) == {"middle"}
        assert state["armed"] == {"walkway": True}
    seqs = [s["seq"] for s in states]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({s["boot"] for s in states}) == 1
    live = [s for s in states if s["frame_ts"] is not None]
    assert live and all(s["frame_ts"] <= s["ts"] for s in live)
    assert all(s["running"] and s["connected"] for s in states[-3:])

    # Safety events: unique ids, the danger zone, an anonymized snapshot retained before each event.
    assert sub.wait(lambda: len(sub.on(t.event("campus"))) >= 2, 60)
    events = sub.on(t.event("campus"))
    payloads = [m.json() for m in events]
    assert len({p["id"] for p in payloads}) == len(payloads)
    assert {p["event_type"] for p in payloads} <= {"intrusion", "approach"} and {p["zone"] for p in payloads} == {"walkway"}
    shots = sub.on(t.event_snapshot("campus"))
    assert shots and shots[0].received <= events[0].received
    assert all(p["snapshot"] == t.event_snapshot("campus") for p in payloads)
    assert _not_a_raw_frame(shots[-1].body, site.campus_clip) > 2.0

    # The periodic snapshot is the anonymized frame, never a raw one.
    assert sub.wait(lambda: len(sub.on(t.snapshot("campus"))) >= 2, 30)
    assert _not_a_raw_frame(sub.on(t.snapshot("campus"))[-1].body, site.campus_clip) > 2.0

    # A camera that is down says so (and why) in its health.
    dead = sub.wait(lambda: [s for s in site.states(sub, site.topics_b.state("dead")) if s["health"]["error_reason"]], 60)
    assert dead[-1]["connected"] is False and dead[-1]["health"]["error_reason"] == "unreachable"
    assert dead[-1]["health"]["disconnected_since"] is not None


def _undimmed(png: bytes) -> np.ndarray:
    """A heatmap picture's background as it was before the engine dimmed it to 60 % (render_heatmap)."""
    return np.clip(_decode(png).astype(np.float32) / 0.6, 0, 255).astype(np.uint8)


def _background_not_raw(png: bytes, clip: Path) -> float:
    """_not_a_raw_frame over the top half of a heatmap picture, where no one walks in the campus clip (no heat)."""
    image = _undimmed(png)
    half = image.shape[0] // 2
    top = image[:half].astype(np.int16)
    return min(float(np.abs(top - f[:half]).mean()) for f in _raw_frames(clip) if f.shape == image.shape)


def test_heatmaps_are_signed_pngs_over_the_anonymized_frame(site: Site):
    """One retained picture per window, heat where people walked, and only the anonymized frame behind it."""
    t, sub = site.topics_a, site.sub
    hour = t.heatmap("campus", "hour")

    def hot() -> list[bytes]:  # the hour pictures that show heat (red on the JET scale) in the lower half
        out = []
        for m in sub.on(hour):
            img = _decode(m.body)
            b, r = img[..., 0].astype(int), img[..., 2].astype(int)
            ys, _xs = np.nonzero((r > 170) & (r > b + 100))
            if len(ys) > 100 and ys.mean() > img.shape[0] / 2:
                out.append(m.body)
        return out

    assert sub.wait(hot, 60), "no heat in the hour heatmap"
    kept = retained(site.broker, "safecam/a/campus/heatmap/#")
    assert set(kept) == {t.heatmap("campus", w) for w in ("hour", "day", "week")}
    assert all(body.startswith(b"\x89PNG\r\n\x1a\n") for body in kept.values())
    # Signed with the engine's pairing key (the document's framing), like every message.
    key = (site.state_file.parent / "pairing_key").read_text().strip()
    head, mac, body = sub.on(hour)[-1].payload.split(b"\n", 2)
    assert hmac.compare_digest(mac, _mac_of(key, hour, head, body))

    # The background is the anonymized frame: far from every raw frame, while the same check on a heatmap drawn
    # over a raw frame (the picture a leak would publish) finds it.
    from custom_components.safecam.engine.scene.heatmap import render_heatmap_jpeg

    for picture in kept.values():
        assert _background_not_raw(picture, site.campus_clip) > 2.0
    raw = cv2.imencode(".jpg", _raw_frames(site.campus_clip)[40].astype(np.uint8))[1].tobytes()
    assert _background_not_raw(render_heatmap_jpeg(np.zeros((4, 4)), raw), site.campus_clip) < 2.0


def test_home_assistant_discovery_templates_render_the_state(site: Site):
    import jinja2

    topic = "homeassistant/device/safecam_a_campus/config"
    disc = site.sub.wait(lambda: site.sub.last(topic), 30)
    cmps = disc["cmps"]
    assert disc["stat_t"] == site.topics_a.state("campus") and disc["avty_t"] == site.topics_a.availability
    assert {c["p"] for c in cmps.values()} == {"sensor", "binary_sensor", "event"}
    assert len({c["uniq_id"] for c in cmps.values()}) == len(cmps)
    message = site.sub.on(site.topics_a.state("campus"))[-1]  # a signed frame: the templates read its body
    state = message.json()
    env = jinja2.Environment()
    env.filters["from_json"] = json.loads  # Home Assistant's filter
    raw = message.payload.decode()
    templates = {oid: c["val_tpl"] for oid, c in cmps.items() if "val_tpl" in c and c["p"] != "event"}
    rendered = {oid: env.from_string(tpl).render(value=raw) for oid, tpl in templates.items()}
    online = site.sub.on(site.topics_a.availability)[-1].payload.decode()
    assert env.from_string(disc["avty_tpl"]).render(value=online) == "online"
    assert rendered["people"] == str(state["people"])
    assert rendered["zone_walkway_occupied"] == ("ON" if state["zones"]["walkway"]["occupied"] else "OFF")
    assert rendered["zone_walkway_intruded"] == ("ON" if state["zones"]["walkway"]["people"] > 0 else "OFF")
    assert rendered["gate_middle_entries"] == str(state["gates"]["middle"]["in"])
    assert rendered["gate_middle_exits"] == str(state["gates"]["middle"]["out"])
    assert rendered["connected"] == "ON"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def test_http_stream_is_anonymized_and_needs_the_token(site: Site):
    base = f"http://127.0.0.1:{site.http_port}"
    assert _get(f"{base}/healthz")[0] == 200
    assert _get(f"{base}/cameras/campus/snapshot.jpg")[0] == 401
    assert _get(f"{base}/cameras/campus/snapshot.jpg", {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
    status, body, headers = _get(f"{base}/cameras/campus/snapshot.jpg", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert _not_a_raw_frame(body, site.campus_clip) > 2.0
    status, body, _ = _get(f"{base}/?token={TOKEN}")
    assert status == 200 and b'src="cameras/campus/stream.mjpeg?token=' in body
    assert _get(f"{base}/cameras/nope/stream.mjpeg?token={TOKEN}")[0] == 404

    with urllib.request.urlopen(f"{base}/cameras/campus/stream.mjpeg?token={TOKEN}", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        parts = []
        while len(parts) < 3:
            line = resp.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                resp.readline()  # blank line before the body
                parts.append(resp.read(length))
    assert len({p for p in parts}) >= 2  # it streams: new frames arrive
    assert min(_not_a_raw_frame(p, site.campus_clip) for p in parts) > 2.0


def _command(site: Site, camera: str, command: str, payload: Any, request_id: str) -> dict[str, Any]:
    """Send a command to engine b and return its result, with "sent" and "answered" receive times added."""
    t = site.topics_b
    sent = time.time()
    site.sub.publish(t.command(camera, command), dict(payload, id=request_id), signer=site.ha_b)
    found = site.sub.wait(lambda: [m for m in site.sub.on(t.command_result(camera)) if m.json()["id"] == request_id], 20)
    assert found, f"no result for {command}"
    return found[-1].json() | {"sent": sent, "answered": found[-1].received}


def _result(site: Site, camera: str, command: str, payload: Any, request_id: str) -> dict[str, Any]:
    out = _command(site, camera, command, payload, request_id)
    return {k: out[k] for k in ("id", "command", "ok", "error")}


def test_commands_set_scene_arm_disarm_reset(site: Site):
    t, sub = site.topics_b, site.sub
    assert sub.wait(lambda: sub.last(t.state("street")) and sub.last(t.state("street"))["health"]["frames"] > 0, 90)
    assert sub.last(t.config("street"))["scene_source"] == "mqtt"
    scene = {
        "zones": [{"name": "crossing", "kind": "danger", "polygon": WHOLE}],
        "gates": [{"name": "line", "line": [[0.5, 0], [0.5, 1]]}],
    }
    assert _result(site, "street", "set_scene", {"scene": scene}, "s1") == {
        "id": "s1",
        "command": "set_scene",
        "ok": True,
        "error": None,
    }
    layout = sub.wait(lambda: [c for c in (m.json() for m in sub.on(t.config("street"))) if c["scene"]["zones"]], 10)
    assert layout[-1]["scene"]["zones"][0]["name"] == "crossing" and layout[-1]["scene_source"] == "mqtt"
    assert sub.wait(
        lambda: any(
            "crossing" in s["zones"] and s["zones"]["crossing"]["people"] > 0 for s in site.states(sub, t.state("street"))
        ),
        30,
    )
    assert sub.wait(lambda: any(m.json()["zone"] == "crossing" for m in sub.on(t.event("street"))), 30)

    # Disarmed: people keep walking in the danger zone, no alarm for it is published.
    result = _command(site, "street", "disarm", {"zone": "crossing"}, "d1")
    assert result["ok"], result
    disarmed_at = time.time()
    assert sub.wait(lambda: sub.last(t.state("street"))["armed"] == {"crossing": False}, 10)
    assert sub.wait(
        lambda: sum(
            s["zones"]["crossing"]["people"] > 0 for s in site.states(sub, t.state("street")) if s["ts"] > disarmed_at + 0.5
        )
        >= 3,
        30,
    )
    assert not [m for m in sub.on(t.event("street")) if m.json()["zone"] == "crossing" and m.json()["ts"] > disarmed_at + 0.5]
    assert _command(site, "street", "arm", {}, "a1")["ok"]
    assert sub.wait(lambda: sub.last(t.state("street"))["armed"] == {"crossing": True}, 10)

    # Counters reset to zero, then count on.
    result = _command(site, "street", "reset_counters", {"gate": "line"}, "r1")
    assert result["ok"]
    # The engine publishes the reset state before it answers.
    between = [m.json() for m in sub.on(t.state("street")) if result["sent"] <= m.received <= result["answered"]]
    assert any(s["gates"]["line"]["in"] == s["gates"]["line"]["out"] == 0 for s in between)

    refused = {
        "unknown gate": _command(site, "street", "reset_counters", {"gate": "nope"}, "e1"),
        "config file": _command(site, "table", "set_scene", {"scene": scene}, "e2"),
        "unknown command": _command(site, "street", "explode", {}, "e3"),
        "unknown camera": _command(site, "ghost", "arm", {}, "e4"),
        "zone 'bad'": _command(site, "street", "set_scene", {"scene": {"zones": [{"name": "bad", "polygon": [[0, 0]]}]}}, "e5"),
    }
    for needle, result in refused.items():
        assert not result["ok"] and needle in result["error"] and "\n" not in result["error"], (needle, result)
    # The refused scene left the good one in place.
    assert sub.last(t.config("street"))["scene"]["zones"][0]["name"] == "crossing"


def _armed_table(site: Site) -> dict[str, bool]:
    return site.sub.last(site.topics_b.state("table"))["armed"]


def _results_for(site: Site, request_id: str) -> list[dict[str, Any]]:
    return [r for r in (m.json() for m in site.sub.on(site.topics_b.command_result("table"))) if r["id"] == request_id]


def test_attack_commands_unsigned_forged_replayed_or_retained_are_ignored(site: Site):
    """issue 17: anyone on the broker could disarm a zone or reset counters, and a retained command ran again at
    every reconnect of the engine. Only Home Assistant's signed, fresh, live commands run."""
    t, sub = site.topics_b, site.sub
    assert sub.wait(lambda: sub.last(t.state("table")) and _armed_table(site) == {"floor": True}, 90)
    disarm = t.command("table", "disarm")
    sub.publish(disarm, {"id": "x1"})  # unsigned
    sub.publish(disarm, {"id": "x2"}, signer=Sender("MFRG-GZDF-MZTW-Q2LK-NNWG-23TO-OBYX-E4TT"))  # another key
    sub.publish(disarm, {"id": "x3"}, signer=Sender(KEY_B, boot=4102444800))  # the right key, a boot in the future
    sub.publish(t.command("table", "reset_counters"), {"id": "x4"}, retain=True)  # unsigned, retained
    time.sleep(3)
    assert _armed_table(site) == {"floor": True}
    assert not any(_results_for(site, i) for i in ("x1", "x2", "x3", "x4"))

    # Home Assistant's genuine command runs once; the captured frame played back (live, then retained) never again.
    assert _command(site, "table", "disarm", {}, "g1")["ok"]
    captured = [m for m in sub.messages if m.topic == disarm and b'"g1"' in m.payload][-1].payload
    assert _command(site, "table", "arm", {}, "g2")["ok"]
    assert sub.wait(lambda: _armed_table(site) == {"floor": True}, 10)
    sub.publish(disarm, captured)
    sub.publish(disarm, captured, retain=True)
    time.sleep(3)
    assert _armed_table(site) == {"floor": True} and len(_results_for(site, "g1")) == 1

    # The engine restarts: the broker hands it the retained commands (and the captured one is not stale yet).
    site.b.stop()
    site.b = EngineProcess(site.root / "b", site.config_b)
    site.engines.append(site.b)
    boot = sub.last(t.state("table"))["boot"]
    assert sub.wait(lambda: sub.last(t.state("table"))["boot"] != boot and sub.last(t.state("table"))["health"]["frames"] > 0, 90)
    sub.publish(disarm, captured)  # live, within a minute: the state file remembers it was taken
    time.sleep(3)
    assert _armed_table(site) == {"floor": True} and len(_results_for(site, "g1")) == 1
    assert "refused a message on safecam/b/table/command/disarm: retained" in site.b.log()
    for topic in (disarm, t.command("table", "reset_counters")):
        sub.publish(topic, b"", retain=True)  # (clears the retained commands)


def test_the_engine_makes_its_pairing_key_once_keeps_it_and_shows_it_on_its_page(site: Site):
    key = (site.state_file.parent / "pairing_key").read_text().strip()
    assert len(key.replace("-", "")) == 32 and (site.state_file.parent / "pairing_key").stat().st_mode & 0o077 == 0
    assert site.a.log().count(key) == 1  # printed once at start, never again
    status, body, _ = _get(f"http://127.0.0.1:{site.http_port}/", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and key in body.decode()
    status, body, _ = _get(f"http://127.0.0.1:{site.http_port}/")
    assert status == 401 and key not in body.decode()
    # Everything engine a publishes is signed with it (checked here with the document's framing).
    info = [m for m in site.sub.messages if m.topic == site.topics_a.info][-1].payload
    head, mac, body = info.split(b"\n", 2)
    assert hmac.compare_digest(mac, _mac_of(key, site.topics_a.info, head, body)) and json.loads(body)["engine_id"] == "a"


def _mac_of(key: str, topic: str, head: bytes, body: bytes) -> bytes:
    return hmac.new(key_bytes(key), topic.encode() + b"\n" + head + b"\n" + body, hashlib.sha256).hexdigest().encode()


def test_two_engines_with_different_shards_share_one_broker(site: Site):
    sub = site.sub
    wanted = [f"safecam/{e}/{c}/state" for e, c in (("a", "campus"), ("b", "street"), ("b", "table"), ("b", "dead"))]

    def all_there() -> dict[str, bytes] | None:
        kept = retained(site.broker, "safecam/#")
        return kept if all(topic in kept for topic in wanted) else None

    kept = sub.wait(all_there, 60)
    assert kept is not None
    assert json.loads(kept["safecam/a/info"])["cameras"] == ["campus"]
    assert json.loads(kept["safecam/b/info"])["cameras"] == ["street", "table", "dead"]
    assert kept["safecam/a/availability"] == kept["safecam/b/availability"] == b"online"
    for engine, camera in (("a", "campus"), ("b", "street"), ("b", "table")):
        assert json.loads(kept[f"safecam/{engine}/{camera}/state"])["camera"] == camera


def _counts(state: dict[str, Any]) -> tuple[Any, ...]:
    return state["people"], state["zones"], state["gates"]


def test_broker_crash_and_restart_loses_no_counts_or_events(site: Site):
    t, sub, ref = site.topics_a, site.sub, site.ref
    campus = t.state("campus")
    assert sub.wait(lambda: (s := sub.last(campus)) and s["health"]["frames"] >= 5, 60)
    frames_before = sub.last(campus)["health"]["frames"]
    killed_at = time.time()
    site.broker.kill()
    # The engine keeps analysing, counting and queueing events. Down for more than one loop of the clip (15
    # frames at 5 fps; every loop has people entering the danger zone), measured on the twin "r", which runs at
    # the same pace (files play in real time), so the outage covers events whatever the machine's speed.
    ref_frames = ref.last(campus)["health"]["frames"]
    assert ref.wait(lambda: ref.last(campus)["health"]["frames"] >= ref_frames + 18, 60)
    restarted_at = time.time()
    site.broker.start()
    # Live states only: the restarted broker replays the retained state it had saved before the crash.
    after = sub.wait(lambda: [m.json() for m in sub.on(campus) if m.received > restarted_at and not m.retain], 30)
    assert after, "the engine did not come back to the restarted broker"
    assert after[0]["health"]["frames"] > frames_before + 1  # analysis went on while the broker was down
    # The engine published everything retained again (a broker without persistence would have lost it).
    kept = retained(site.broker, "safecam/a/#")
    assert kept[t.availability] == b"online" and {t.info, t.config("campus"), campus} <= set(kept)
    assert json.loads(kept[campus])["seq"] >= after[0]["seq"]
    target = after[0]["health"]["frames"] + 8
    assert sub.wait(lambda: sub.last(campus)["health"]["frames"] >= target, 60)

    assert site.a.stop() == 0
    assert sub.wait(lambda: sub.on(t.availability) and sub.on(t.availability)[-1].body == b"offline", 10)
    final = sub.last(campus)
    assert ref.wait(lambda: (s := ref.last(campus)) and s["health"]["frames"] >= final["health"]["frames"], 90)
    assert site.r.stop() == 0

    # Every state engine "a" published equals the uninterrupted run's state at the same frame.
    ref_states = sorted(site.states(ref, campus), key=lambda s: s["health"]["frames"])

    def ref_at(frame: int) -> dict[str, Any]:
        return [s for s in ref_states if s["health"]["frames"] <= frame][-1]

    mine = [s for s in site.states(sub, campus) if s["health"]["frames"] > 0]
    assert len(mine) > 10
    for state in mine:
        frame = state["health"]["frames"]
        assert _counts(state) == _counts(ref_at(frame)), (frame, _counts(state), _counts(ref_at(frame)))
    assert final["gates"]["middle"]["in"] + final["gates"]["middle"]["out"] > 0  # the comparison had counts to compare

    # Events: the same ones as the uninterrupted run, including those that happened while the broker was down.
    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return p["event_type"], p["t"], p["track_id"], p["zone"]

    got = {m.json()["id"]: m.json() for m in sub.on(t.event("campus"))}
    during = [p for p in got.values() if killed_at < p["ts"] < restarted_at]
    assert during, "no event happened during the outage: nothing was tested"
    last_t = max(p["t"] for p in got.values())
    expected = sorted(key(m.json()) for m in ref.on(t.event("campus")) if m.json()["t"] <= last_t)
    mine_keys = sorted(key(p) for p in got.values())
    assert mine_keys == expected, (sorted(set(mine_keys) ^ set(expected)), killed_at, restarted_at)

    # The counters survive an engine restart too (state file): a new run starts from them, seq goes on.
    saved = json.loads(site.state_file.read_text())["cameras"]["campus"]
    assert saved["gates"] == final["gates"]
    again = EngineProcess(site.state_file.parent / "again", site.config_a)
    site.engines.append(again)
    boots = {final["boot"]}
    first = sub.wait(lambda: [s for s in site.states(sub, campus) if s["boot"] not in boots], 60)
    assert again.stop() == 0
    assert first[0]["gates"] == final["gates"] and first[0]["seq"] > final["seq"]


def test_engine_killed_broker_publishes_its_last_will(site: Site):
    t = site.topics_b
    assert site.sub.last(t.state("table")) is not None
    site.b.kill()
    assert site.sub.wait(lambda: site.sub.on(t.availability) and site.sub.on(t.availability)[-1].body == b"offline", 30)
    assert retained(site.broker, t.availability)[t.availability] == b"offline"


def test_logs_never_contain_credentials(site: Site):
    for engine in site.engines:
        engine.stop()
    logs = {e.log_path.parent.name: e.log() for e in site.engines}
    for name, text in logs.items():
        for secret in (MQTT_PASSWORD, CAMERA_PASSWORD, TOKEN):
            assert secret not in text, f"{secret} in the log of engine {name}"
    assert f"rtsp://***@127.0.0.1:{site.dead_port}/stream" in logs["b"]  # the camera is named, its password is not
