"""The contract between the safecam engine and the Home Assistant integration: one module both sides import.

Pure Python (standard library only): the integration imports it at Home Assistant start-up, where nothing heavy
(numpy, OpenCV, ONNX Runtime) may be loaded, and the engine builds every message with it.

What it holds: the data types that cross the boundary (`CameraState`, `SafetyEvent`), the MQTT topic names
(`Topics`) and the message payloads (info, config, state, event, command, command result). docs/mqtt.md is the
long form.

Version 1. P = "<topic_prefix>/<engine_id>", prefix "safecam":

    topic                        payload                      retained  QoS  when
    P/availability               "online" | "offline"         yes       1    on connect / clean stop; "offline" is the last will
    P/info                       engine JSON                  yes       1    on connect
    P/<camera>/config            layout JSON                  yes       1    on connect, after a set_scene
    P/<camera>/state             state JSON                   yes       0    on change (analytics <= 1/s), or state_interval_s
    P/<camera>/event             safety event JSON            no        1    per event; queued (bounded) while offline
    P/<camera>/event_snapshot    JPEG, anonymized             yes       1    just before an event that has a snapshot
    P/<camera>/snapshot          JPEG, anonymized             yes       0    every snapshot_interval_s
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

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

CONTRACT_VERSION = 1
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

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(camera, command) of a command topic, else None."""
        head = self.base + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 3 or parts[1] != "command":
            return None
        return parts[0], parts[2]


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
