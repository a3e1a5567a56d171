"""The contract between the safecam engine and the Home Assistant integration: one module both sides import.

Pure Python (standard library only): the integration imports it at Home Assistant start-up, where nothing heavy
(numpy, OpenCV, ONNX Runtime) may be loaded, and the engine builds every message with it.

What it holds: the data types that cross the boundary (`CameraState`, `SafetyEvent`), the MQTT topic names
(`Topics`) and the message payloads (info, config, state, event, command, command result). docs/mqtt.md is the
long form.

Version 2: every message is framed and signed with the engine's pairing key (HMAC-SHA256, see the section after
`Topics`); the payloads below are the bodies. P = "<topic_prefix>/<engine_id>", prefix "safecam":

    topic                        payload                      retained  QoS  when
    P/availability               "online" | "offline"         yes       1    on connect / clean stop; "offline" is the last will
    P/info                       engine JSON                  yes       1    on connect
    P/<camera>/config            layout JSON                  yes       1    on connect, after a set_scene
    P/<camera>/state             state JSON                   yes       0    on change (analytics <= 1/s), or state_interval_s
    P/<camera>/event             safety event JSON            no        1    per event; queued (bounded) while offline
    P/<camera>/event_snapshot    JPEG, anonymized             yes       1    just before an event that has a snapshot
    P/<camera>/snapshot          JPEG, anonymized             yes       0    every snapshot_interval_s
    P/<camera>/heatmap/<window>  PNG, anonymized background    yes       0    hour | day | week, when its counts moved
                                                                                   (at most every heatmap_interval_s; "heatmaps")
    P/<camera>/command/<cmd>     JSON, to the engine          -         -    cmd: arm | disarm | reset_counters | set_scene
    P/<camera>/command_result    JSON, from the engine        no        1    one per command: {id, command, ok, error}

info:   {contract, engine_id, version, boot, started, cameras: [camera ids], http: {port, stream, snapshot} | null}
config: {contract, camera, name, fps, anonymization, scene: {zones: [{name, kind, polygon}], gates: [{name, line}], ...},
         scene_source: "config" | "mqtt", capabilities: Capabilities.as_dict()}   (coordinates normalized 0..1, x right, y down)
state:  {contract, camera, seq, boot, ts, frame_ts, connected, running, people, zones: {name: {people, occupied}},
         gates: {name: {in, out}}, armed: {zone: bool}, analytics: {analyzer: snapshot},
         health: {analysis_fps, target_fps, inference_ms, dropped_frames, frames, fail_closed_frames, error, error_reason,
                  disconnected_since, ...every other CameraState field}}
         - everything `CameraState` carries; times are Unix seconds. Order states by (boot, seq): seq grows with every
           state message of a camera and, with a state file, across restarts too.
event:  SafetyEvent.as_dict() + {contract, id (unique, hex), seq (per camera), camera, ts, snapshot: topic | null}

Everything that is retained is re-published in full after every (re)connect, so a broker that lost its retained
store (restart without persistence) is repaired, and counters, being cumulative, are never lost. Only pixels of the
anonymized frame ever reach the broker. Credentials are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

CONTRACT_VERSION = 2  # 2: every message framed and signed (the section after `Topics`)
ONLINE, OFFLINE = "online", "offline"
COMMANDS = ("arm", "disarm", "reset_counters", "set_scene")
CAMERA_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENGINE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RESERVED_CAMERA_IDS = frozenset({"availability", "info"})


# Event types a site owner sees (HA event entity, MQTT, CLI). "gate_crossing" is internal.
EVENT_TYPES = (
    "intrusion",
    "approach",
    "fall",
    "immobile",
    "distancing",
    "congestion",
    "machine_activity",
    "ppe_violation",
)


@dataclass(slots=True, frozen=True)
class SafetyEvent:
    """Something a site owner is told about (intrusion, fall, ...)."""

    event_type: str
    t: float
    camera: str
    track_id: int | None = None
    zone: str | None = None
    confidence: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # JPEG of the *anonymized* frame the event happened on (the worker attaches it); never raw.
    snapshot: bytes | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "event",
            "event_type": self.event_type,
            "t": round(self.t, 3),
            "camera": self.camera,
            "track_id": self.track_id,
            "zone": self.zone,
        }
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 3)
        out.update(self.details)
        return out


@dataclass(frozen=True, slots=True)
class CameraState:
    """Everything HA (or MQTT) gets about a camera; no pixels."""

    camera: str
    seq: int = 0
    connected: bool = False
    running: bool = False
    people: int = 0
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    gates: dict[str, dict[str, int]] = field(default_factory=dict)
    analytics: dict[str, dict[str, Any]] = field(default_factory=dict)  # analyzer name -> snapshot
    analysis_fps: float = 0.0
    target_fps: float = 0.0  # what analysis aims at: the configured fps, or less if the camera sends less
    inference_ms: float = 0.0
    dropped_frames: int = 0
    frames: int = 0
    error: str | None = None
    error_reason: str | None = None
    disconnected_since: float | None = None  # monotonic seconds
    fail_closed_frames: int = 0  # frames served fully obscured because analysis failed (fail closed)
    watchdog_restarts: int = 0  # loop runs abandoned because a step hung (reported with error_reason "hung")
    frame_ts: float | None = None  # wall clock (time.time()) when the analysed frame arrived (files: became due)
    effective_fps: float = 0.0  # the rate analysis runs at now: target_fps, or less while the machine cannot keep up
    lag_s: float = 0.0  # how long the analysed frame waited (live: since it was read; files: behind real-time pacing)


# ---- capabilities: what a camera's scene makes it do, and so which entities Home Assistant creates --------------
# Derived here once, from the scene as the engine validated it (SceneConfig.as_dict()): the engine builds its
# analyzers from it (engine.scene.build_analyzers), announces it in the camera's config message, and the integration
# builds its entity set from it (remote: the announcement; in-process: this same function).

INTRUSION_ZONE_KINDS = ("danger", "restricted")  # entering one is an intrusion (and the zone has an intruded sensor)
SAFETY_ZONE_KINDS = (*INTRUSION_ZONE_KINDS, "equipment")  # a zone of these kinds runs the safety analyzer
DEFAULT_APPROACH_M = 2.0  # engine.scene.safety: the approach rule's default distance (0 = off)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One camera's analysis: zones and kinds, gates, analyzers, event types, and the zones each entity covers."""

    zones: tuple[tuple[str, str], ...] = ()  # (name, kind)
    gates: tuple[str, ...] = ()
    analyzers: tuple[str, ...] = ()  # engine.scene.build_analyzers' names, in run order
    event_types: tuple[str, ...] = ()  # what this camera can raise (one event counter sensor each)
    intrusion_zones: tuple[str, ...] = ()  # an intruded binary sensor each
    occupancy_zones: tuple[str, ...] = ()  # occupancy and dwell sensors (the scene's `occupancy:` section)
    congestion_zones: tuple[str, ...] = ()  # a congestion level sensor and a "high" binary sensor each
    machine_zones: tuple[str, ...] = ()  # equipment zones: a machine-active binary sensor each
    distancing: bool = False  # the distancing binary sensor (pairs too close, or anyone near hazardous equipment)

    def runs(self, analyzer: str) -> bool:
        return analyzer in self.analyzers

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: list(getattr(self, f.name)) for f in fields(self) if f.name not in ("zones", "distancing")}
        return {"zones": [{"name": n, "kind": k} for n, k in self.zones], **out, "distancing": self.distancing}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capabilities:
        """An engine's announcement; ValueError/TypeError/KeyError when it is not one."""

        def names(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"capabilities: {key!r} must be a list of names")
            return tuple(value)

        zones = data.get("zones") or []
        if not isinstance(zones, list):
            raise ValueError("capabilities: 'zones' must be a list")
        return cls(
            zones=tuple((str(z["name"]), str(z["kind"])) for z in zones),
            **{f.name: names(f.name) for f in fields(cls) if f.name not in ("zones", "distancing")},
            distancing=bool(data.get("distancing")),
        )


def _section(scene: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = scene.get(key)
    return value if isinstance(value, dict) else None


def capabilities(scene: Mapping[str, Any] | None) -> Capabilities:
    """A validated scene dict (engine.config.SceneConfig.as_dict()) -> what the camera analyses and raises."""
    scene = scene or {}
    zones = tuple((str(z["name"]), str(z.get("kind", "area"))) for z in scene.get("zones") or [])
    kinds = {kind for _, kind in zones}
    rules = _section(scene, "safety")  # None: no `safety:` section (the rules' defaults)
    falls = scene.get("falls")
    falls_on = falls is True or (isinstance(falls, dict) and falls.get("enabled", True) is not False)
    occupancy = [n for n, _ in zones if n in (_section(scene, "occupancy") or {})]
    calibrated = scene.get("calibration") is not None  # metre-based rules need the ground plane
    distancing = rules is not None and (bool(rules.get("distancing_m")) or bool(rules.get("hazardous")))
    machines = set(rules.get("machines") or {}) if rules is not None else set()
    safety = rules is not None or bool(kinds & set(SAFETY_ZONE_KINDS))
    analyzers = [
        name
        for name, runs in (
            ("safety", safety),
            ("falls", falls_on),
            ("occupancy", bool(occupancy)),
            ("ppe", scene.get("ppe") is not None),
            ("floor", calibrated),
            ("heatmap", True),
        )
        if runs
    ]
    approach_m = (rules or {}).get("approach_m", DEFAULT_APPROACH_M)
    possible = {
        "intrusion": bool(kinds & set(INTRUSION_ZONE_KINDS)),
        "approach": calibrated and "danger" in kinds and bool(approach_m),
        "distancing": calibrated and distancing,
        "congestion": rules is not None and bool(rules.get("congestion")),
        "machine_activity": bool(machines & {n for n, k in zones if k == "equipment"}),  # a machine rule on equipment
        "fall": falls_on,
        "immobile": falls_on,
        "ppe_violation": scene.get("ppe") is not None,
    }
    congestion = set((rules or {}).get("congestion") or {})
    return Capabilities(
        zones=zones,
        gates=tuple(str(g["name"]) for g in scene.get("gates") or []),
        analyzers=tuple(analyzers),
        event_types=tuple(t for t in EVENT_TYPES if possible[t]),
        intrusion_zones=tuple(n for n, k in zones if k in INTRUSION_ZONE_KINDS),
        occupancy_zones=tuple(occupancy),
        congestion_zones=tuple(n for n, _ in zones if n in congestion),
        machine_zones=tuple(n for n, k in zones if k == "equipment"),
        distancing=distancing,
    )


# CameraState fields at the top of a state message; every other field goes into "health" (so a field the
# worker gains is carried without a contract change).
_STATE_TOP = ("camera", "seq", "connected", "running", "people", "zones", "gates", "analytics", "frame_ts")
_HEALTH_FIELDS = tuple(f.name for f in fields(CameraState) if f.name not in (*_STATE_TOP, "disconnected_since"))
_EVENT_META = frozenset(
    {"type", "contract", "id", "seq", "ts", "snapshot", "event_type", "t", "camera", "track_id", "zone", "confidence"}
)


class Topics:
    """Topic names of one engine."""

    def __init__(self, prefix: str, engine_id: str) -> None:
        self.base = f"{prefix}/{engine_id}"
        self.availability = f"{self.base}/availability"
        self.info = f"{self.base}/info"
        self.commands = f"{self.base}/+/command/+"

    def camera(self, camera: str, leaf: str) -> str:
        return f"{self.base}/{camera}/{leaf}"

    def config(self, camera: str) -> str:
        return self.camera(camera, "config")

    def state(self, camera: str) -> str:
        return self.camera(camera, "state")

    def event(self, camera: str) -> str:
        return self.camera(camera, "event")

    def event_snapshot(self, camera: str) -> str:
        return self.camera(camera, "event_snapshot")

    def snapshot(self, camera: str) -> str:
        return self.camera(camera, "snapshot")

    def command(self, camera: str, command: str) -> str:
        return self.camera(camera, f"command/{command}")

    def command_result(self, camera: str) -> str:
        return self.camera(camera, "command_result")

    def heatmap(self, camera: str, window: str) -> str:
        return self.camera(camera, f"heatmap/{window}")

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(camera, command) of a command topic, else None."""
        head = self.base + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 3 or parts[1] != "command":
            return None
        return parts[0], parts[2]


# ---- authentication and validation (version 2) -----------------------------------------------------
#
# Every message, both ways, is framed and signed with the pairing key the engine makes at first start:
#
#     <header JSON>\n<HMAC-SHA256 hex>\n<body: JSON or JPEG bytes>
#     header: {"v": CONTRACT_VERSION, "kid": key id, "boot": sender's start (Unix s), "seq": per sender, "ts": Unix s}
#     HMAC over: topic \n header \n body  (the exact bytes: nothing is re-encoded before checking)
#
# A receiver checks the MAC with its key, then (boot, seq) per topic (`ReplayGuard`), then the body
# (`json_body` + one `valid_*` per message kind). Anything refused raises `MessageRejected` whose text never
# echoes the payload. Discovery messages for Home Assistant's MQTT integration are the one unsigned exception
# (that integration cannot check a MAC): docs/mqtt.md.

MAX_HEADER_BYTES = 256
MAX_JSON_BYTES = 256 * 1024  # a state of 64 zones and full analytics is ~10 KiB
MAX_JPEG_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 16  # JSON nesting (a scene: 5)
MAX_ITEMS = 256  # zones, gates, cameras, analyzers per message
MAX_NAME = 128  # zone, gate, analyzer names
MAX_COUNT = 2**53  # counters: exact in every JSON implementation
CLOCK_SKEW_S = 300  # a boot or timestamp further in the future than this is implausible
COMMAND_MAX_AGE_S = 60  # an older command (a captured one played back later) is refused
PAIRING_KEY_BYTES = 20  # 160 bits; typed as 8 groups of 4 base32 characters
MIN_PAIRING_KEY_BYTES = 16


class MessageRejected(ValueError):
    """A message that is not taken; str(err) is a short reason for the log (never any of the payload)."""


def new_pairing_key() -> bytes:
    return secrets.token_bytes(PAIRING_KEY_BYTES)


def format_pairing_key(key: bytes) -> str:
    """The typable form: base32 in groups of four, e.g. 'MZXW-6YTB-...'."""
    text = base64.b32encode(key).decode().rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_pairing_key(text: str) -> bytes:
    """The key from what a person typed (case, spaces and dashes do not matter; 0/1 read as O/I).
    ValueError when it is not a key."""
    clean = re.sub(r"[\s-]", "", str(text)).upper().translate(str.maketrans("01", "OI"))
    if not clean or not re.fullmatch(r"[A-Z2-7]+", clean):
        raise ValueError("a pairing key is letters A-Z and digits 2-7, in groups of four")
    try:
        if len(clean) % 8:  # whole base32 blocks only: a group left out or typed twice is caught here
            raise ValueError
        key = base64.b32decode(clean)
    except (binascii.Error, ValueError):
        raise ValueError("not a complete pairing key (a group is missing or too long)") from None
    if len(key) < MIN_PAIRING_KEY_BYTES:
        raise ValueError(f"a pairing key has at least {MIN_PAIRING_KEY_BYTES * 8} bits ({len(key) * 8} given)")
    return key


def key_id(key: bytes) -> str:
    """Names the key in every header (tells 'paired with another key' from 'forged'); reveals nothing of it."""
    return hashlib.sha256(b"safecam key id\0" + key).hexdigest()[:8]


def _mac(key: bytes, topic: str, header: bytes, body: bytes) -> str:
    return hmac.new(key, topic.encode() + b"\n" + header + b"\n" + body, hashlib.sha256).hexdigest()


class Signer:
    """One sender (an engine, or Home Assistant): its key, its boot and its growing sequence number."""

    def __init__(self, key: bytes, boot: int | None = None, counter: Iterator[int] | None = None) -> None:
        """counter: shared by the signers of one sender (Home Assistant: one per engine key, one sequence)."""
        self.key = key
        self.kid = key_id(key)
        self.boot = int(time.time()) if boot is None else boot
        self._seq = itertools.count(1) if counter is None else counter

    def reserve(self) -> int:
        return next(self._seq)

    def sign(self, topic: str, body: bytes | str, *, seq: int | None = None) -> bytes:
        data = body.encode() if isinstance(body, str) else bytes(body)
        header = {
            "v": CONTRACT_VERSION, "kid": self.kid, "boot": self.boot,
            "seq": self.reserve() if seq is None else seq, "ts": round(time.time(), 3),
        }  # fmt: skip
        head = json.dumps(header, separators=(",", ":")).encode()
        return head + b"\n" + _mac(self.key, topic, head, data).encode() + b"\n" + data


@dataclass(frozen=True, slots=True)
class Signed:
    """A message whose MAC checked out."""

    topic: str
    boot: int
    seq: int
    ts: float
    body: bytes


def _split(payload: bytes | bytearray | str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    raw = payload.encode() if isinstance(payload, str) else bytes(payload)
    head, sep1, rest = raw.partition(b"\n")
    mac, sep2, body = rest.partition(b"\n")
    if not sep1 or not sep2 or len(head) > MAX_HEADER_BYTES or len(mac) != 64:
        raise MessageRejected("unsigned")
    try:
        header = json.loads(head, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise MessageRejected("unsigned") from None
    if not isinstance(header, dict):
        raise MessageRejected("unsigned")
    return header, head, mac, body


def open_signed(key: bytes, topic: str, payload: bytes | bytearray | str, *, max_body: int = MAX_JSON_BYTES) -> Signed:
    """The verified message, or MessageRejected: unsigned, another key, forged, too large, malformed header."""
    if len(payload) > max_body + MAX_HEADER_BYTES + 66:
        raise MessageRejected("too large")
    header, head, mac, body = _split(payload)
    if header.get("v") != CONTRACT_VERSION:
        raise MessageRejected(f"another contract version (this side speaks {CONTRACT_VERSION})")
    if header.get("kid") != key_id(key):
        raise MessageRejected("signed with another pairing key")
    if not hmac.compare_digest(mac, _mac(key, topic, head, body).encode()):
        raise MessageRejected("bad signature")
    boot, seq, ts = header.get("boot"), header.get("seq"), header.get("ts")
    if not (_is_count(boot) and _is_count(seq) and _is_number(ts)):
        raise MessageRejected("malformed header")
    return Signed(topic, int(boot), int(seq), float(ts), body)  # type: ignore[arg-type]


class ReplayGuard:
    """What one receiver has taken from one sender: (boot, seq) must grow per topic, a boot older than the
    newest seen is over (a restarted sender never goes back), and no boot or timestamp lies in the future."""

    def __init__(self) -> None:
        self.newest_boot = 0
        self._order: dict[str, tuple[int, int]] = {}

    def admit(self, msg: Signed, *, max_age_s: float | None = None) -> bool:
        """`check`, then `commit`."""
        if not self.check(msg, max_age_s=max_age_s):
            return False
        self.commit(msg)
        return True

    def check(self, msg: Signed, *, max_age_s: float | None = None) -> bool:
        """True: new, may be taken. False: the very message last taken on its topic, again (a retained one
        re-delivered after a reconnect): nothing to do. MessageRejected: refuse it."""
        now = time.time()
        if msg.boot > now + CLOCK_SKEW_S or msg.ts > now + CLOCK_SKEW_S:
            raise MessageRejected("from the future (boot or timestamp)")
        if max_age_s is not None and msg.ts < now - max_age_s:
            raise MessageRejected("too old")
        if msg.boot < self.newest_boot:
            raise MessageRejected("from an earlier run of the sender (replayed)")
        last = self._order.get(msg.topic, (-1, -1))
        if (msg.boot, msg.seq) == last:
            return False
        if (msg.boot, msg.seq) < last:
            raise MessageRejected("replayed (sequence number not growing)")
        return True

    def commit(self, msg: Signed) -> None:
        """Taken (after its body was found valid: a signed but unreadable message moves nothing on)."""
        self._order[msg.topic] = (msg.boot, msg.seq)
        self.newest_boot = max(self.newest_boot, msg.boot)

    def as_dict(self) -> dict[str, Any]:
        """What to keep across a restart of the receiver (the engine's state file: a command captured before
        the restart stays refused after it)."""
        return {"newest_boot": self.newest_boot, "order": {t: list(o) for t, o in self._order.items()}}

    def restore(self, data: Any) -> None:
        """Back from `as_dict()`; anything unreadable is left out (the command age limit still holds)."""
        if not isinstance(data, dict):
            return
        if _is_count(data.get("newest_boot")):
            self.newest_boot = data["newest_boot"]
        for topic, order in (data.get("order") or {}).items() if isinstance(data.get("order"), dict) else ():
            if isinstance(order, list) and len(order) == 2 and all(_is_count(v) for v in order):
                self._order[str(topic)] = (order[0], order[1])


class RejectLog:
    """Rejections logged at most once per `period_s` per (topic leaf, reason), at most MAX_REASONS of them: topics
    and payloads are the sender's to choose, so neither may make a new log line or entry each time for ever."""

    MAX_REASONS = 32

    def __init__(self, logger: logging.Logger, what: str, period_s: float = 60.0) -> None:
        self._logger, self._what, self._period = logger, what, period_s
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, topic: str, reason: str) -> None:
        now = time.monotonic()
        key = f"{topic.rsplit('/', 1)[-1][:40]}: {reason[:80]}"
        if key not in self._last and len(self._last) >= self.MAX_REASONS:
            key = "other reasons"
        last, hidden = self._last.get(key, (-self._period, 0))
        if now - last < self._period:
            self._last[key] = (last, hidden + 1)
            return
        more = f" ({hidden} more like it not logged)" if hidden else ""
        self._logger.warning("%s: refused a message on %s: %s%s", self._what, topic[:200], reason[:200], more)
        self._last[key] = (now, 0)


# ---- bodies --------------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH or len(item) > 4 * MAX_ITEMS:
                return False
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return True


def json_body(msg: Signed) -> dict[str, Any]:
    """The JSON object a message carries: bounded in size and depth, numbers finite (no NaN / Infinity)."""
    if len(msg.body) > MAX_JSON_BYTES:
        raise MessageRejected("too large")
    try:
        data = json.loads(msg.body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MessageRejected("not JSON (or a non-finite number)") from None
    if not isinstance(data, dict) or not _depth_ok(data):
        raise MessageRejected("not a JSON object of bounded depth")
    return data


def unverified_json(payload: bytes | bytearray | str) -> dict[str, Any]:
    """The JSON body of a framed message WITHOUT checking its MAC: only to list what the broker offers before
    a key is known (the config flow); never to act on."""
    header, _head, _mac, body = _split(payload)
    return json_body(Signed("", 0, 0, 0.0, body))


def jpeg_body(msg: Signed) -> bytes:
    if len(msg.body) > MAX_JPEG_BYTES or not msg.body.startswith(b"\xff\xd8"):
        raise MessageRejected("not a JPEG")
    return msg.body


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise MessageRejected(f"invalid {what}")


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _table(value: Any, entry: Callable[[Any], bool]) -> bool:
    return isinstance(value, dict) and len(value) <= MAX_ITEMS and all(_name(k) and entry(v) for k, v in value.items())


def _fields(data: Mapping[str, Any], checks: Mapping[str, Callable[[Any], bool]], what: str, required: set[str]) -> None:
    for key, check in checks.items():
        if key in data or key in required:
            _need(key in data and check(data[key]), f"{what}.{key}")


_ZONE = lambda v: isinstance(v, dict) and _is_count(v.get("people")) and isinstance(v.get("occupied", False), bool)  # noqa: E731
_GATE = lambda v: (  # noqa: E731
    isinstance(v, dict) and _is_count(v.get("in")) and _is_count(v.get("out")) and _opt(_is_number)(v.get("net"))
)
_STATE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "camera": lambda v: isinstance(v, str) and bool(CAMERA_ID_RE.fullmatch(v)),
    "seq": _is_count,
    "boot": _is_count,
    "ts": _is_number,
    "frame_ts": _opt(_is_number),
    "connected": lambda v: isinstance(v, bool),
    "running": lambda v: isinstance(v, bool),
    "people": _is_count,
    "zones": lambda v: _table(v, _ZONE),
    "gates": lambda v: _table(v, _GATE),
    "armed": lambda v: _table(v, lambda a: isinstance(a, bool)),
    "analytics": lambda v: _table(v, lambda a: isinstance(a, dict)),
    "health": lambda v: isinstance(v, dict),
}
_HEALTH_COUNTS = ("dropped_frames", "frames", "fail_closed_frames", "watchdog_restarts")
_HEALTH_NUMBERS = ("analysis_fps", "target_fps", "inference_ms", "effective_fps", "lag_s")


def valid_state(data: dict[str, Any]) -> dict[str, Any]:
    """A state message as `state_from_payload` needs it: every field typed, counts non-negative bounded ints."""
    _fields(data, _STATE_CHECKS, "state", {"camera", "seq", "boot", "people", "zones", "gates"})
    health = data.get("health") or {}
    for key in _HEALTH_COUNTS:
        _need(_is_count(health.get(key, 0)), f"state.health.{key}")
    for key in _HEALTH_NUMBERS:
        _need(_is_number(health.get(key, 0.0)) and health.get(key, 0.0) >= 0, f"state.health.{key}")
    for key in ("error", "error_reason"):
        _need(_opt(lambda v: isinstance(v, str) and len(v) <= 1000)(health.get(key)), f"state.health.{key}")
    _need(_opt(_is_number)(health.get("disconnected_since")), "state.health.disconnected_since")
    return data


def valid_event(data: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Callable[[Any], bool]] = {
        "event_type": lambda v: v in EVENT_TYPES,
        "t": _is_number,
        "id": lambda v: isinstance(v, str) and 0 < len(v) <= 64,
        "camera": _name,
        "track_id": _opt(lambda v: isinstance(v, int) and not isinstance(v, bool)),
        "zone": _opt(_name),
        "confidence": _opt(_is_number),
        "snapshot": _opt(lambda v: isinstance(v, str) and len(v) <= 512),
    }
    _fields(data, checks, "event", {"event_type", "t", "id", "camera"})
    return data


def valid_info(data: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Callable[[Any], bool]] = {
        "engine_id": lambda v: isinstance(v, str) and bool(ENGINE_ID_RE.fullmatch(v)),
        "boot": _is_count,
        "cameras": lambda v: (
            isinstance(v, list) and len(v) <= MAX_ITEMS and all(isinstance(c, str) and CAMERA_ID_RE.fullmatch(c) for c in v)
        ),
    }
    _fields(data, checks, "info", {"engine_id", "cameras"})
    return data


def valid_config(data: dict[str, Any]) -> dict[str, Any]:
    """The layout message's frame; its scene is checked by the engine's scene parser on the receiving side."""
    checks: dict[str, Callable[[Any], bool]] = {
        "camera": lambda v: isinstance(v, str) and bool(CAMERA_ID_RE.fullmatch(v)),
        "name": lambda v: isinstance(v, str) and 0 < len(v) <= 200,
        "fps": lambda v: _is_number(v) and 0 < v <= 120,
        "anonymization": _opt(_name),
        "scene": lambda v: isinstance(v, dict),
        "scene_source": lambda v: v in ("config", "mqtt"),
    }
    _fields(data, checks, "config", {"camera", "scene"})
    return data


def valid_command_result(data: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Callable[[Any], bool]] = {
        "id": _opt(lambda v: isinstance(v, str) and len(v) <= 64),
        "command": lambda v: v in COMMANDS,
        "ok": lambda v: isinstance(v, bool),
        "error": _opt(lambda v: isinstance(v, str) and len(v) <= 1000),
    }
    _fields(data, checks, "command_result", {"command", "ok"})
    return data


# ---- payloads -------------------------------------------------------------------------------------


def _epoch_from_monotonic(value: float | None) -> float | None:
    return None if value is None else round(time.time() - (time.monotonic() - value), 3)


def state_payload(
    state: CameraState,
    *,
    camera: str,
    seq: int,
    boot: int,
    zones: Mapping[str, Mapping[str, Any]] | None = None,
    gates: Mapping[str, Mapping[str, int]] | None = None,
    armed: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """The state message of one camera. `zones`/`gates` override the worker's (the service keeps them
    matching the current layout, with counters reset by command)."""
    return {
        "contract": CONTRACT_VERSION,
        "camera": camera,
        "seq": seq,
        "boot": boot,
        "ts": round(time.time(), 3),
        "frame_ts": None if state.frame_ts is None else round(state.frame_ts, 3),
        "connected": state.connected,
        "running": state.running,
        "people": state.people,
        "zones": {k: dict(v) for k, v in (state.zones if zones is None else zones).items()},
        "gates": {k: dict(v) for k, v in (state.gates if gates is None else gates).items()},
        "armed": dict(armed or {}),
        "analytics": state.analytics,
        "health": {
            **{name: getattr(state, name) for name in _HEALTH_FIELDS},
            "disconnected_since": _epoch_from_monotonic(state.disconnected_since),
        },
    }


def state_from_payload(payload: Mapping[str, Any]) -> CameraState:
    """The `CameraState` a state message carries (what a remote Home Assistant rebuilds)."""
    health = payload.get("health") or {}
    since = health.get("disconnected_since")
    values: dict[str, Any] = {k: payload[k] for k in _STATE_TOP if k in payload}
    values.update({k: health[k] for k in _HEALTH_FIELDS if k in health})
    values["disconnected_since"] = None if since is None else time.monotonic() - (time.time() - float(since))
    return CameraState(**values)


def event_payload(event: SafetyEvent, *, camera: str, event_id: str, seq: int, snapshot_topic: str | None) -> dict[str, Any]:
    out = event.as_dict()
    out.update(contract=CONTRACT_VERSION, id=event_id, seq=seq, camera=camera, ts=round(time.time(), 3), snapshot=snapshot_topic)
    return out


def event_from_payload(payload: Mapping[str, Any]) -> SafetyEvent:
    """The `SafetyEvent` an event message carries (without its snapshot, which has its own topic)."""
    return SafetyEvent(
        event_type=str(payload["event_type"]),
        t=float(payload["t"]),
        camera=str(payload["camera"]),
        track_id=payload.get("track_id"),
        zone=payload.get("zone"),
        confidence=payload.get("confidence"),
        details={k: v for k, v in payload.items() if k not in _EVENT_META},
    )


def config_payload(
    *, camera: str, name: str, fps: float, scene: Mapping[str, Any], scene_source: str, anonymization: str
) -> dict[str, Any]:
    return {
        "contract": CONTRACT_VERSION,
        "camera": camera,
        "name": name,
        "fps": fps,
        "anonymization": anonymization,
        "scene": dict(scene),
        "scene_source": scene_source,
        "capabilities": capabilities(scene).as_dict(),
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


# ---- heatmaps --------------------------------------------------------------------------------------
# The occupancy heatmap of a camera, one retained picture per window: the engine colours its heat grid over the
# camera's ANONYMIZED frame (never a raw one) and publishes a PNG, signed like every other message. Home Assistant
# shows it (image entity) and exports it (safecam.export_heatmap) as it is: no numpy or OpenCV needed there.

HEATMAP_WINDOWS = ("hour", "day", "week")  # safecam.export_heatmap's windows; the image entity shows "hour"
MAX_PNG_BYTES = 8 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_body(msg: Signed) -> bytes:
    if len(msg.body) > MAX_PNG_BYTES or not msg.body.startswith(PNG_MAGIC):
        raise MessageRejected("not a PNG")
    return msg.body


def parse_heatmap_topic(topics: Topics, camera: str, topic: str) -> str | None:
    """The window of one of the camera's heatmap topics, else None."""
    head = topics.camera(camera, "heatmap/")
    window = topic[len(head) :] if topic.startswith(head) else None
    return window if window in HEATMAP_WINDOWS else None


# ---- Supervisor discovery: the add-on's message to Home Assistant ------------------------------------
# An engine add-on tells Home Assistant which engine it runs and the key it signs with (engine/supervisor.py), so
# its cameras are paired without typing the key. The message travels add-on -> Supervisor -> Home Assistant only,
# never over MQTT: the Supervisor takes it only from an add-on whose config.yaml lists the service, and Home
# Assistant reads it back from the Supervisor and starts the integration's `hassio` config flow with it.

SUPERVISOR_SERVICE = "safecam"  # the Supervisor's `service` = the integration's domain (whose config flow starts)
_TOPIC_PREFIX_RE = re.compile(r"[^/+#]([^+#]*[^/+#])?")  # no wildcards, no / at either end


def valid_topic_prefix(prefix: str) -> bool:
    """Whether `prefix` can head the engine's topics (the engine's config and Home Assistant both ask this)."""
    return _TOPIC_PREFIX_RE.fullmatch(prefix) is not None


@dataclass(frozen=True, slots=True)
class EngineAnnouncement:
    """The discovery message's `config` (Home Assistant: HassioServiceInfo.config, plus "addon", the add-on's name):
    which engine on the broker, and the key it signs with. Home Assistant takes the key only once the engine's signed
    messages verify with it (any add-on declaring the service may announce)."""

    engine_id: str
    pairing_key: bytes = field(repr=False)
    topic_prefix: str = "safecam"

    def as_config(self) -> dict[str, Any]:
        return {
            "engine_id": self.engine_id,
            "pairing_key": format_pairing_key(self.pairing_key),
            "topic_prefix": self.topic_prefix,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EngineAnnouncement:
        """ValueError naming the field when the message is not an engine's announcement."""
        engine_id, prefix = config.get("engine_id"), config.get("topic_prefix", "safecam")
        if not isinstance(engine_id, str) or not ENGINE_ID_RE.fullmatch(engine_id):
            raise ValueError("engine_id: not an engine id")
        if not isinstance(prefix, str) or not valid_topic_prefix(prefix):
            raise ValueError("topic_prefix: not a topic prefix")
        key = parse_pairing_key(str(config.get("pairing_key") or ""))  # ValueError: not a key
        return cls(engine_id, key, prefix)
