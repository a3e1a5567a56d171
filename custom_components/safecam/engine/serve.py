"""The engine as a service: `python -m custom_components.safecam.engine serve --config FILE.yaml`.

Runs one `CameraWorker` per configured camera and publishes their states and safety events over MQTT
(the contract is in mqtt.py and docs/mqtt.md), takes commands (arm/disarm zones, reset counters, new
zones/gates), serves the anonymized MJPEG stream over HTTP (token or trusted ingress proxy) and keeps
gate counters, zone arming and MQTT-managed scenes in a state file across restarts.

Config file (YAML; unknown keys are errors, every error is one line naming the key):

    engine_id: site-a                     # topic segment: safecam/<engine_id>/...
    mqtt: {host, port: 1883, username, password, tls: false, ca_certs, tls_insecure: false,
           topic_prefix: safecam, discovery_prefix: null, keepalive: 30, reconnect_max_s: 30, max_queued_events: 1000}
    http: {port: 8099, host: 0.0.0.0, token: "...", trusted_peers: [172.30.32.2]}   # omit for no HTTP
    cameras:
      - {id: gate, name: Gate, url: rtsp://cam/stream, username, password, fps: 5, anonymization: full_frame,
         scene: {zones: [...], gates: [...]}}   # scene omitted or null: managed over MQTT (set_scene)
    provider: auto                        # onnxruntime EP: auto | openvino | cpu
    model_dir: null
    threads: null                         # inference threads per camera (null: 1 with OpenVINO, else the runtime's default)
    state_file: null                      # e.g. /data/state.json
    pairing_key: null                     # the key Home Assistant pairs with (null: made once, kept next to the state file)
    state_interval_s: 10                  # unchanged states are re-published this often
    snapshot_interval_s: 30               # anonymized snapshot to MQTT (0: off)
    heatmap_interval_s: 60                # heatmap pictures (hour/day/week, anonymized background) to MQTT (0: off)
    log_level: info
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import os
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from ..contract import (
    CAMERA_ID_RE,
    CONTRACT_VERSION,
    ENGINE_ID_RE,
    EVENT_TYPES,
    HEATMAP_WINDOWS,
    RESERVED_CAMERA_IDS,
    CameraState,
    SafetyEvent,
    Signer,
    config_payload,
    encode,
    event_payload,
    format_pairing_key,
    new_pairing_key,
    parse_pairing_key,
    state_payload,
    valid_topic_prefix,
)
from .anonymize import DEFAULT_MODE
from .anonymize import MODES as ANONYMIZATION_MODES
from .config import ConfigError, SceneConfig, check_name, load_yaml, parse_scene, reject_unknown_keys, shown
from .detect import Detector, camera_inference_threads
from .mqtt import CommandError, MqttBridge, MqttSettings, discovery_payload
from .scene.heatmap import heatmap_store, render_heatmap
from .sources import redact_url
from .worker import CameraWorker

_LOGGER = logging.getLogger(__name__)
PROVIDERS = ("auto", "openvino", "cpu")
LOG_LEVELS = ("debug", "info", "warning", "error")
SEQ_BLOCK = 10_000  # sequence numbers reserved in the state file at a time, so they grow across crashes too
MIN_TOKEN_LENGTH = 16
SAVE_EVERY_S = 10.0
MAX_STREAM_CLIENTS = 16
ANALYTICS_INTERVAL_S = 1.0  # a state whose only change is in analyzer snapshots goes out at most this often
# Heatmap pictures on MQTT: a window's picture at most every PERIODS x heatmap_interval_s (the longer windows move
# slowly), HEATMAP_WIDTH pixels wide at most (a 1080p PNG is ~2.5 MB; 960 px ~0.8 MB).
HEATMAP_PERIODS = {"hour": 1, "day": 5, "week": 15}
HEATMAP_WIDTH = 960
HEATMAP_FIRST_FRAME_S = 5.0


# ---- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CameraConfig:
    id: str
    name: str
    url: str = field(repr=False)  # may hold credentials: never logged
    fps: float = 5.0
    scene: SceneConfig | None = None  # None: managed over MQTT (set_scene), kept in the state file
    anonymization: str = DEFAULT_MODE  # full_frame | body | head, as in the integration's options


@dataclass(frozen=True, slots=True)
class HttpConfig:
    port: int = 8099
    host: str = "0.0.0.0"
    token: str | None = field(default=None, repr=False)
    trusted_peers: tuple[str, ...] = ()  # e.g. the Supervisor's ingress proxy, which authenticates HA users itself


@dataclass(frozen=True, slots=True)
class ServeConfig:
    engine_id: str
    mqtt: MqttSettings
    cameras: tuple[CameraConfig, ...]
    http: HttpConfig | None = None
    provider: str = "auto"
    model_dir: str | None = None
    threads: int | None = None
    state_file: str | None = None
    pairing_key: bytes | None = field(default=None, repr=False)  # None: made once, kept next to the state file
    state_interval_s: float = 10.0
    snapshot_interval_s: float = 30.0
    heatmap_interval_s: float = 60.0
    log_level: str = "info"


def _mapping(data: object, what: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: expected a mapping")
    reject_unknown_keys(data, allowed, what)
    return data


def _str(data: Mapping[str, Any], key: str, what: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{what}.{key}: required")
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{what}.{key}: expected a string")
    return value


def _num(data: Mapping[str, Any], key: str, what: str, default: float, lo: float, hi: float, *, integer: bool = False) -> float:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ConfigError(f"{what}.{key}: expected {'an integer' if integer else 'a number'} from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise ConfigError(f"{what}.{key}: {value} is outside {lo:g}..{hi:g}")
    return value


def _bool(data: Mapping[str, Any], key: str, what: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{what}.{key}: expected true or false")
    return value


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:64]


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """The stream URL with the camera's credentials injected (replacing any already in it)."""
    if not username or "://" not in url:  # local files take no credentials
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # the last "@": an unencoded "@" in a password
    userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def _parse_mqtt(data: object) -> MqttSettings:
    what = "mqtt"
    allowed = {
        "host", "port", "username", "password", "tls", "ca_certs", "tls_insecure", "topic_prefix",
        "discovery_prefix", "keepalive", "reconnect_max_s", "max_queued_events",
    }  # fmt: skip
    d = _mapping(data, what, allowed)
    prefix = _str(d, "topic_prefix", what, "safecam") or "safecam"
    discovery = _str(d, "discovery_prefix", what)
    for key, value in (("topic_prefix", prefix), ("discovery_prefix", discovery)):
        if value is not None and not valid_topic_prefix(value):
            raise ConfigError(f"{what}.{key}: '{value}' is not a valid topic prefix (no + or #, no leading/trailing /)")
    return MqttSettings(
        host=_str(d, "host", what, required=True) or "",
        port=int(_num(d, "port", what, 1883, 1, 65535, integer=True)),
        username=_str(d, "username", what),
        password=_str(d, "password", what),
        tls=_bool(d, "tls", what, False),
        ca_certs=_str(d, "ca_certs", what),
        tls_insecure=_bool(d, "tls_insecure", what, False),
        topic_prefix=prefix,
        discovery_prefix=discovery,
        keepalive=int(_num(d, "keepalive", what, 30, 5, 3600, integer=True)),
        reconnect_max_s=float(_num(d, "reconnect_max_s", what, 30.0, 1.0, 3600.0)),
        max_queued_events=int(_num(d, "max_queued_events", what, 1000, 1, 1_000_000, integer=True)),
    )


def _parse_http(data: object) -> HttpConfig | None:
    if data is None:
        return None
    what = "http"
    d = _mapping(data, what, {"port", "host", "token", "trusted_peers"})
    token = _str(d, "token", what)
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{what}.token: use at least {MIN_TOKEN_LENGTH} characters")
    peers = d.get("trusted_peers") or []
    if not isinstance(peers, list) or not all(isinstance(p, str) and p for p in peers):
        raise ConfigError(f"{what}.trusted_peers: expected a list of IP addresses")
    if token is None and not peers:
        raise ConfigError(f"{what}: set a token and/or trusted_peers (an open stream would show the site to anyone)")
    return HttpConfig(
        port=int(_num(d, "port", what, 8099, 0, 65535, integer=True)),
        host=_str(d, "host", what, "0.0.0.0") or "0.0.0.0",
        token=token,
        trusted_peers=tuple(peers),
    )


def _parse_camera(data: object, index: int, seen: set[str]) -> CameraConfig:
    what = f"cameras[{index}]"
    d = _mapping(data, what, {"id", "name", "url", "username", "password", "fps", "scene", "anonymization"})
    name = check_name(_str(d, "name", what, required=True), what)  # shown in Home Assistant: the rule of zone names
    camera_id = _str(d, "id", what) or slugify(name)
    what = f"camera '{name}'"
    if not CAMERA_ID_RE.fullmatch(camera_id) or camera_id in RESERVED_CAMERA_IDS:
        raise ConfigError(f"{what}: id '{camera_id}' must be 1-64 of a-z 0-9 _ - (set 'id' explicitly)")
    if camera_id in seen:
        raise ConfigError(f"{what}: duplicate camera id '{camera_id}'")
    seen.add(camera_id)
    url = _str(d, "url", what, required=True) or ""
    mode = _str(d, "anonymization", what, DEFAULT_MODE) or DEFAULT_MODE
    if mode not in ANONYMIZATION_MODES:
        raise ConfigError(f"{what}: anonymization '{mode}' is not one of {', '.join(ANONYMIZATION_MODES)}")
    try:
        scene = parse_scene(d["scene"]) if d.get("scene") is not None else None
    except ConfigError as err:
        raise ConfigError(f"{what} scene: {err}") from None
    return CameraConfig(
        id=camera_id,
        name=name,
        url=with_credentials(url.strip(), _str(d, "username", what), _str(d, "password", what)),
        fps=float(_num(d, "fps", what, 5.0, 0.1, 30.0)),
        scene=scene,
        anonymization=mode,
    )


def parse_serve_config(data: object) -> ServeConfig:
    """Validate a serve config mapping; raise ConfigError (one line) on the first problem."""
    allowed = {
        "engine_id", "mqtt", "http", "cameras", "provider", "model_dir", "threads", "state_file",
        "state_interval_s", "snapshot_interval_s", "heatmap_interval_s", "log_level", "pairing_key",
    }  # fmt: skip
    d = _mapping(data, "config", allowed)
    engine_id = _str(d, "engine_id", "config", required=True) or ""
    if not ENGINE_ID_RE.fullmatch(engine_id):
        raise ConfigError(f"config.engine_id: '{engine_id}' must be 1-64 of a-z 0-9 _ -")
    if "mqtt" not in d:
        raise ConfigError("config.mqtt: required (host, port, ...)")
    cameras = d.get("cameras")
    if not isinstance(cameras, list) or not cameras:
        raise ConfigError("config.cameras: expected a non-empty list of cameras")
    seen: set[str] = set()
    provider = _str(d, "provider", "config", "auto") or "auto"
    if provider not in PROVIDERS:
        raise ConfigError(f"config.provider: '{provider}' is not one of {', '.join(PROVIDERS)}")
    log_level = (_str(d, "log_level", "config", "info") or "info").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"config.log_level: '{log_level}' is not one of {', '.join(LOG_LEVELS)}")
    threads = d.get("threads")
    key_text = _str(d, "pairing_key", "config")
    try:
        pairing_key = None if key_text is None else parse_pairing_key(key_text)
    except ValueError as err:
        raise ConfigError(f"config.pairing_key: {err}") from None
    return ServeConfig(
        engine_id=engine_id,
        mqtt=_parse_mqtt(d["mqtt"]),
        cameras=tuple(_parse_camera(c, i, seen) for i, c in enumerate(cameras)),
        http=_parse_http(d.get("http")),
        provider=provider,
        model_dir=_str(d, "model_dir", "config"),
        threads=None if threads is None else int(_num(d, "threads", "config", 1, 1, 256, integer=True)),
        state_file=_str(d, "state_file", "config"),
        pairing_key=pairing_key,
        state_interval_s=float(_num(d, "state_interval_s", "config", 10.0, 0.1, 3600.0)),
        snapshot_interval_s=float(_num(d, "snapshot_interval_s", "config", 30.0, 0.0, 86400.0)),
        heatmap_interval_s=float(_num(d, "heatmap_interval_s", "config", 60.0, 0.0, 86400.0)),
        log_level=log_level,
    )


def load_serve_config(path: str | Path) -> ServeConfig:
    return parse_serve_config(load_yaml(path))


# ---- persistence ----------------------------------------------------------------------------------


class StateStore:
    """Per-camera counters, arming, MQTT-managed scene and reserved sequence numbers, in one JSON file."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.commands: dict[str, Any] = {}  # the commands taken (ReplayGuard.as_dict()), loaded with the cameras
        self.boot = 0  # this run's boot (next_boot), kept in the file so that the next run's is above it

    def next_boot(self) -> int:
        """This run's boot: Unix seconds of its start, and above the last run's even when the engine restarts within
        the same second (receivers order messages by (boot, seq), and a boot is one run). Written at once."""
        self.boot = int(time.time())
        if self.path is None:
            return self.boot
        data: dict[str, Any] = {}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = None
            if not isinstance(loaded, dict):
                return self.boot  # unreadable: load() says so, and the next save replaces it
            data = loaded
        last = data.get("boot")
        if isinstance(last, int) and last >= self.boot:
            self.boot = last + 1
        self._write({**data, "boot": self.boot})
        return self.boot

    def load(self) -> dict[str, dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            cameras = data.get("cameras", {})  # a file written before the first save holds only the boot
            if not isinstance(cameras, dict):
                raise TypeError("cameras")
            self.commands = data.get("commands") or {}
            return cameras
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            _LOGGER.warning("safecam serve: ignoring unreadable state file %s (%s)", self.path, type(err).__name__)
            return {}

    def save(self, cameras: Mapping[str, Mapping[str, Any]], commands: Mapping[str, Any] | None = None) -> None:
        if self.path is not None:
            self._write({"version": 1, "boot": self.boot, "cameras": cameras, "commands": commands or {}})

    def _write(self, state: Mapping[str, Any]) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)  # atomic: a crash leaves the old or the new file, never half of one
        except OSError as err:
            _LOGGER.warning("safecam serve: cannot write state file %s (%s)", self.path, err.strerror)


def kept_pairing_key(config: ServeConfig) -> bytes | None:
    """The key Home Assistant pairs with, as it outlives this process: the config's, else the one kept in the state
    file's folder (the add-on's /data), made there the first time. None without a state file (nowhere to keep one).

    The one owner of the key file: the engine (pairing_key) and the add-on's Supervisor discovery (supervisor.py)
    both read it here, one after the other (addon/run.sh), so the key announced is the key the engine signs with."""
    if config.pairing_key is not None:
        return config.pairing_key
    if config.state_file is None:
        return None
    path = Path(config.state_file).parent / "pairing_key"
    try:
        return parse_pairing_key(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        raise ConfigError(f"pairing key file {path}: unreadable ({type(err).__name__}); delete it to make a new key") from None
    key = new_pairing_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(format_pairing_key(key) + "\n")
    return key


def pairing_key(config: ServeConfig) -> bytes:
    """The key this engine signs with: the kept one, else (no state file) a new one at every start."""
    if (key := kept_pairing_key(config)) is not None:
        return key
    _LOGGER.warning("safecam serve: no state_file and no pairing_key: a new pairing key at every start")
    return new_pairing_key()


# ---- one camera -----------------------------------------------------------------------------------


class CameraService:
    """A camera worker and its MQTT face: state/event publishing, commands, persisted counters.

    Runs on the event loop; the worker thread hands states over with `call_soon_threadsafe`.
    """

    def __init__(
        self,
        cfg: CameraConfig,
        engine: EngineService,
        saved: Mapping[str, Any],
        detector_factory: Callable[[], Detector],
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.topics = engine.bridge.topics
        self.scene = cfg.scene if cfg.scene is not None else self._saved_scene(saved.get("scene"))
        saved_armed = saved.get("armed") or {}
        self.armed = {z.name: bool(saved_armed.get(z.name, True)) for z in self.scene.zones}
        # name -> [last number used, numbers reserved up to]; a run starts above what the last one reserved.
        self._counters = {name: [int(saved.get(f"{name}_reserved", 0))] * 2 for name in ("seq", "event_seq")}
        self._key: bytes | None = None
        self._analytics: bytes | None = None
        self._last_picture: bytes | None = None  # the last event picture queued for the event_snapshot topic
        self._published_at = 0.0
        self._heat: dict[str, tuple[float, Any]] = {}  # window -> (monotonic time, grid) of its last picture
        self.heat_framed = False  # the last pictures were drawn over a real (anonymized) frame, not the placeholder
        self._discovery_cmps: dict[str, dict[str, Any]] = {}
        self.worker = CameraWorker(
            cfg.id,
            cfg.url,
            detector_factory,
            scene=self.scene,
            fps=cfg.fps,
            on_state=self._from_worker,
            anonymization=cfg.anonymization,
        )
        gates = saved.get("gates") or {}
        self.worker.restore_gate_totals({g: {"in": int(c.get("in", 0)), "out": int(c.get("out", 0))} for g, c in gates.items()})
        self.last = CameraState(cfg.id)
        self.counts = {g.name: self._saved_gate(gates, g.name) for g in self.scene.gates}  # what was last published

    @staticmethod
    def _saved_gate(gates: Mapping[str, Any], name: str) -> dict[str, int]:
        c = gates.get(name) or {}
        return {"in": 0, "out": 0, "net": 0} | {k: int(v) for k, v in c.items() if isinstance(v, int | float)}

    def _saved_scene(self, data: object) -> SceneConfig:
        try:
            return parse_scene(data) if data is not None else SceneConfig()
        except ConfigError as err:
            _LOGGER.warning(
                "safecam serve: camera %s: stored scene no longer valid (%s); starting without zones", self.cfg.id, err
            )
            return SceneConfig()

    # ---- worker thread -> loop ---------------------------------------------------------------------
    def _from_worker(self, state: CameraState, events: list[SafetyEvent]) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed (shutdown)
            self.engine.loop.call_soon_threadsafe(self.on_state, state, list(events))

    # ---- loop thread -------------------------------------------------------------------------------
    def _counts(self, raw: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
        """Gate counters as published: the worker's cumulative totals; a gate it has not reported yet (no
        frame since start or since a scene change) keeps its last published value."""
        return {
            g.name: dict(raw.get(g.name) or self.counts.get(g.name) or {"in": 0, "out": 0, "net": 0}) for g in self.scene.gates
        }

    def on_state(self, state: CameraState, events: list[SafetyEvent]) -> None:
        self.last = state
        self.publish_state()
        for event in events:
            if event.event_type not in EVENT_TYPES:
                continue  # gate crossings are counted in the state, not sent as events
            if event.zone is not None and not self.armed.get(event.zone, True):
                continue  # a disarmed zone raises no alarms
            self._publish_event(event)

    def publish_state(self, *, force: bool = False) -> None:
        state = self.last
        self.counts = self._counts(state.gates)
        # Zones and gates exactly as the current layout says (the worker reports them from the first frame on).
        zones = {z.name: state.zones.get(z.name) or {"people": 0, "occupied": False} for z in self.scene.zones}
        payload = state_payload(
            state, camera=self.cfg.id, seq=0, boot=self.engine.boot, zones=zones, gates=self.counts, armed=self.armed
        )
        # What makes a state worth a message at once; analyzer snapshots (some change every frame, e.g. a
        # heatmap total) at most every ANALYTICS_INTERVAL_S; diagnostics (fps, frame counts) ride along.
        key = encode([payload[k] for k in ("connected", "running", "people", "zones", "gates", "armed")] + [state.error])
        analytics = encode(payload["analytics"])
        since = time.monotonic() - self._published_at
        due = since >= self.engine.config.state_interval_s or (analytics != self._analytics and since >= ANALYTICS_INTERVAL_S)
        if not force and key == self._key and not due:
            return
        self._key, self._analytics, self._published_at = key, analytics, time.monotonic()
        payload["seq"] = self._next("seq")
        self.engine.bridge.set_retained(self.topics.state(self.cfg.id), encode(payload), 0)

    def _next(self, counter: str) -> int:
        """The next sequence number; blocks are reserved in the state file before use, so numbers grow
        across restarts, crashes included."""
        numbers = self._counters[counter]
        numbers[0] += 1
        if numbers[0] > numbers[1]:
            numbers[1] = numbers[0] + SEQ_BLOCK
            self.engine.save()
        return numbers[0]

    def _publish_event(self, event: SafetyEvent) -> None:
        snapshot_topic = self.topics.event_snapshot(self.cfg.id) if event.snapshot else None
        payload = event_payload(
            event, camera=self.cfg.id, event_id=uuid.uuid4().hex, seq=self._next("event_seq"), snapshot_topic=snapshot_topic
        )
        # Events of one frame share its picture: the retained topic gets it once, ahead of them in the queue.
        picture = event.snapshot if event.snapshot != self._last_picture else None
        self._last_picture = event.snapshot or self._last_picture
        self.engine.bridge.publish_event(self.topics.event(self.cfg.id), encode(payload), snapshot_topic, picture)

    def publish_layout(self) -> None:
        source = "config" if self.cfg.scene is not None else "mqtt"
        layout = config_payload(
            camera=self.cfg.id, name=self.cfg.name, fps=self.cfg.fps, scene=self.scene.as_dict(), scene_source=source,
            anonymization=self.cfg.anonymization,
        )  # fmt: skip
        self.engine.bridge.set_retained(self.topics.config(self.cfg.id), encode(layout), 1, layout=True)
        prefix = self.engine.config.mqtt.discovery_prefix
        if prefix:
            suffix, payload = discovery_payload(
                self.topics, engine_id=self.engine.config.engine_id, camera=self.cfg.id, name=self.cfg.name,
                scene=self.scene, version=self.engine.version,
            )  # fmt: skip
            cmps = payload["cmps"]
            # Components that disappeared with a scene change: a bare platform entry removes the entity.
            for oid, old in self._discovery_cmps.items():
                cmps.setdefault(oid, {"p": old["p"]})
            self._discovery_cmps = {k: v for k, v in cmps.items() if len(v) > 1}
            self.engine.bridge.set_retained(f"{prefix}/{suffix}", encode(payload), 1, layout=True, sign=False)

    async def jpeg(self) -> bytes:
        """The anonymized picture (rendered on request, a few ms: off the event loop) or the placeholder."""
        jpeg: bytes | None = await asyncio.to_thread(self.worker.latest_jpeg)
        return jpeg or self.engine.placeholder(self.worker)

    async def publish_snapshot(self) -> None:
        jpeg = await self.jpeg()
        if jpeg:
            self.engine.bridge.set_retained(self.topics.snapshot(self.cfg.id), jpeg, 0)

    async def publish_heatmaps(self) -> None:
        """One retained PNG per window whose counts moved since its last one, at most every HEATMAP_PERIODS[window]
        intervals (the first time: all), drawn over the anonymized picture: the worker's anonymized frame or the
        placeholder, never a raw frame."""
        store = heatmap_store(self.cfg.id)
        now = time.monotonic()
        period = self.engine.config.heatmap_interval_s
        grids = {w: store.grid(w) for w in HEATMAP_WINDOWS}
        moved = [
            w
            for w, g in grids.items()
            if w not in self._heat
            or (now - self._heat[w][0] >= HEATMAP_PERIODS[w] * period and not (self._heat[w][1] == g).all())
        ]
        if not moved and self.heat_framed:
            return
        frame: bytes | None = await asyncio.to_thread(self.worker.latest_jpeg)
        if frame is not None and not self.heat_framed:
            moved = list(HEATMAP_WINDOWS)  # the first real (anonymized) frame replaces the placeholder background
        if not moved:
            return
        background = frame or self.engine.placeholder(self.worker)
        pictures = await asyncio.to_thread(render_heatmaps, {w: grids[w] for w in moved}, background)
        self.heat_framed = frame is not None
        for window, png in pictures.items():
            self._heat[window] = (now, grids[window])
            self.engine.bridge.set_retained(self.topics.heatmap(self.cfg.id, window), png, 0)

    def command(self, command: str, data: Mapping[str, Any]) -> None:
        if command in ("arm", "disarm"):
            zone = data.get("zone")
            if zone is not None and zone not in self.armed:
                raise CommandError(f"unknown zone {shown(zone)} (zones: {shown(', '.join(self.armed) or 'none')})")
            for name in [zone] if zone is not None else list(self.armed):
                self.armed[name] = command == "arm"
        elif command == "reset_counters":
            gate = data.get("gate")
            names = [g.name for g in self.scene.gates]
            if gate is not None and gate not in names:
                raise CommandError(f"unknown gate {shown(gate)} (gates: {shown(', '.join(names) or 'none')})")
            # The worker zeroes them between frames; the state it returns already shows zeros.
            self.last = self.worker.reset_counters(None if gate is None else [gate])
        elif command == "set_scene":
            if self.cfg.scene is not None:
                raise CommandError("this camera's zones and gates are set in the engine's config file (scene_source: config)")
            try:
                scene = parse_scene(data.get("scene"))
            except ConfigError as err:
                raise CommandError(str(err)) from None
            self.scene = scene
            self.armed = {z.name: self.armed.get(z.name, True) for z in scene.zones}
            self.worker.set_scene(scene)
            self.publish_layout()
        self.publish_state(force=True)
        self.engine.save()

    def persisted(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gates": self.counts,
            "armed": dict(self.armed),
            **{f"{name}_reserved": numbers[1] for name, numbers in self._counters.items()},
        }
        if self.cfg.scene is None:
            out["scene"] = self.scene.as_dict()
        return out


# ---- HTTP: the anonymized stream ------------------------------------------------------------------


class StreamServer:
    """A small HTTP/1.1 server for the anonymized MJPEG stream and snapshots (stdlib asyncio only).

    GET /healthz (no auth) · GET / (camera list, relative links: works behind HA ingress) ·
    GET /cameras/<id>/stream.mjpeg · GET /cameras/<id>/snapshot.jpg. Authorized: a trusted peer (the
    ingress proxy, which authenticated the HA user), or `Authorization: Bearer <token>` / `?token=`.
    """

    BOUNDARY = "safecamframe"

    def __init__(self, cfg: HttpConfig, engine: EngineService) -> None:
        self.cfg = cfg
        self.engine = engine
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self.port = cfg.port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.cfg.host, self.cfg.port, limit=16 * 1024)
        self.port = int(self._server.sockets[0].getsockname()[1])
        _LOGGER.info("safecam serve: anonymized stream on http://%s:%d/", self.cfg.host, self.port)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._streams):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def _authorized(self, peer: str, headers: Mapping[str, str], query: Mapping[str, list[str]]) -> bool:
        if peer in self.cfg.trusted_peers:
            return True
        token = self.cfg.token
        if token is None:
            return False
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), token.encode())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            parts = urlsplit(target)
            query = parse_qs(parts.query)
            peer = str((writer.get_extra_info("peername") or ("",))[0])
            if method != "GET":
                await self._reply(writer, 405, "text/plain", b"method not allowed\n")
            elif parts.path == "/healthz":
                await self._reply(writer, 200, "text/plain", b"ok\n")
            elif not self._authorized(peer, headers, query):
                await self._reply(writer, 401, "text/plain", b"unauthorized\n", {"WWW-Authenticate": 'Bearer realm="safecam"'})
            elif parts.path in ("/", "/index.html"):
                await self._reply(writer, 200, "text/html; charset=utf-8", self._index("token" in query, query))
            elif (m := re.fullmatch(r"/cameras/([^/]+)/(stream\.mjpeg|snapshot\.jpg)", parts.path)) and (
                camera := self.engine.cameras.get(m.group(1))
            ):
                if m.group(2) == "snapshot.jpg":
                    await self._reply(writer, 200, "image/jpeg", await camera.jpeg())
                elif len(self._streams) >= MAX_STREAM_CLIENTS:
                    await self._reply(writer, 503, "text/plain", b"too many viewers\n")
                elif task is not None:
                    self._streams.add(task)
                    await self._stream(writer, camera)
            else:
                await self._reply(writer, 404, "text/plain", b"not found\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass  # a client that hangs up or speaks nonsense gets nothing more
        finally:
            if task is not None:
                self._streams.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _reply(
        self, writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes, extra: Mapping[str, str] | None = None
    ) -> None:
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join([*head, "Connection: close", "", ""])).encode() + body)
        await writer.drain()

    def _index(self, with_token: bool, query: Mapping[str, list[str]]) -> bytes:
        suffix = "?token=" + quote((query.get("token") or [""])[0], safe="") if with_token else ""
        items = "".join(
            f'<figure><img src="cameras/{quote(c.cfg.id)}/stream.mjpeg{suffix}" alt="{html.escape(c.cfg.name)}">'
            f"<figcaption>{html.escape(c.cfg.name)}</figcaption></figure>"
            for c in self.engine.cameras.values()
        )
        title = f"safecam {html.escape(self.engine.config.engine_id)}"
        key = format_pairing_key(self.engine.signer.key)  # (only for an authorized viewer: this page is behind the token)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;margin:1em}img{max-width:100%}figure{display:inline-block;max-width:48%}</style>"
            f"</head><body><h1>{title}</h1><p>Pairing key for Home Assistant: <code>{key}</code></p>{items}</body></html>"
        ).encode()

    async def _stream(self, writer: asyncio.StreamWriter, camera: CameraService) -> None:
        writer.write(
            (
                "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=" + self.BOUNDARY + "\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        last: bytes | None = None
        sent_at = 0.0
        period = 1.0 / max(min(camera.cfg.fps, 15.0), 1.0)
        while True:
            jpeg = await camera.jpeg()
            now = time.monotonic()
            if jpeg is not last or now - sent_at >= 5.0:  # re-send now and then: proxies drop idle streams
                part = f"--{self.BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                writer.write(part + jpeg + b"\r\n")
                await writer.drain()
                last, sent_at = jpeg, now
            await asyncio.sleep(period)


# ---- the service ----------------------------------------------------------------------------------


def render_heatmaps(grids: Mapping[str, Any], anonymized_jpeg: bytes) -> dict[str, bytes]:
    """PNG per window: render_heatmap over the anonymized JPEG (decoded once, at most HEATMAP_WIDTH wide)."""
    import cv2
    import numpy as np

    background = cv2.imdecode(np.frombuffer(anonymized_jpeg, np.uint8), cv2.IMREAD_COLOR)
    if background is not None and background.shape[1] > HEATMAP_WIDTH:
        height = round(background.shape[0] * HEATMAP_WIDTH / background.shape[1])
        background = cv2.resize(background, (HEATMAP_WIDTH, height), interpolation=cv2.INTER_AREA)
    return {window: render_heatmap(grid, background) for window, grid in grids.items()}


def _version() -> str:
    """The engine's own version (its package's and the add-on's): the integration's manifest is not in the wheel."""
    from . import __version__

    return __version__


class EngineService:
    def __init__(self, config: ServeConfig, *, detector_factory: Callable[[], Detector] | None = None) -> None:
        self.config = config
        self.version = _version()
        self.started = time.time()
        self.store = StateStore(config.state_file)
        self.boot = self.store.next_boot()
        self.signer = Signer(pairing_key(config), self.boot)
        self.bridge = MqttBridge(config.mqtt, config.engine_id, self.signer, on_command=self._command)
        self.cameras: dict[str, CameraService] = {}
        self.http: StreamServer | None = None
        self._placeholder: bytes | None = None
        self._detector_factory = detector_factory or self._default_detector
        self.loop: asyncio.AbstractEventLoop

    def _default_detector(self) -> Detector:
        threads = self.config.threads or camera_inference_threads(self.config.provider)
        return Detector.from_catalog(model_dir=self.config.model_dir, provider=self.config.provider, num_threads=threads)

    def placeholder(self, worker: CameraWorker) -> bytes:
        if self._placeholder is None:
            self._placeholder = worker.placeholder_jpeg("no anonymized frame")
        return self._placeholder

    def save(self) -> None:
        self.store.save({cid: cam.persisted() for cid, cam in self.cameras.items()}, self.bridge.commands_seen.as_dict())

    def _command(self, camera: str, command: str, data: dict[str, Any]) -> None:
        service = self.cameras.get(camera)
        if service is None:
            raise CommandError(f"unknown camera '{camera[:64]}' on engine {self.config.engine_id}")
        try:
            service.command(command, data)
        finally:
            self.save()  # at once: a command taken just before a crash must not be taken again after it

    def _publish_info(self) -> None:
        http = None
        if self.http is not None:
            http = {
                "port": self.http.port,
                "stream": "cameras/{camera}/stream.mjpeg",
                "snapshot": "cameras/{camera}/snapshot.jpg",
            }
        info = {
            "contract": CONTRACT_VERSION,
            "engine_id": self.config.engine_id,
            "version": self.version,
            "boot": self.boot,
            "started": round(self.started, 3),
            "cameras": list(self.cameras),
            "http": http,
        }
        self.bridge.set_retained(self.bridge.topics.info, encode(info), 1, layout=True)

    async def _every(self, period: float, action: Callable[[], Awaitable[None] | None]) -> None:
        while True:
            await asyncio.sleep(period)
            if (pending := action()) is not None:
                await pending

    async def _snapshots(self) -> None:
        for camera in list(self.cameras.values()):
            await camera.publish_snapshot()

    async def _heatmaps(self) -> None:
        for camera in list(self.cameras.values()):
            try:
                await camera.publish_heatmaps()
            except Exception:  # one camera's picture must not end every camera's heatmaps, nor the engine
                _LOGGER.exception("safecam serve: heatmap of %s failed", camera.cfg.id)

    async def _heatmap_loop(self) -> None:
        """Every heatmap_interval_s; more often while a camera's pictures still show the placeholder (start-up,
        a camera that is down), so its first real frame replaces it within HEATMAP_FIRST_FRAME_S."""
        interval = self.config.heatmap_interval_s
        while True:
            framed = all(c.heat_framed for c in self.cameras.values())
            await asyncio.sleep(interval if framed else min(interval, HEATMAP_FIRST_FRAME_S))
            await self._heatmaps()

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        saved = self.store.load()
        self.bridge.commands_seen.restore(self.store.commands)
        for cfg in self.config.cameras:
            self.cameras[cfg.id] = CameraService(cfg, self, saved.get(cfg.id) or {}, self._detector_factory)
        if self.config.http is not None:
            self.http = StreamServer(self.config.http, self)
            await self.http.start()
        # The one place the key is shown (and the engine's HTTP page): what the user types into Home Assistant.
        _LOGGER.warning(
            "safecam serve: pairing key of engine %s (type it into Home Assistant when adding its cameras): %s",
            self.config.engine_id, format_pairing_key(self.signer.key),
        )  # fmt: skip
        self._publish_info()
        for camera in self.cameras.values():
            camera.publish_layout()
            camera.publish_state(force=True)
            camera.worker.start()
        _LOGGER.info(
            "safecam serve: engine %s running %d camera(s): %s",
            self.config.engine_id, len(self.cameras), ", ".join(self.cameras),
        )  # fmt: skip
        bridge = asyncio.create_task(self.bridge.run(), name="safecam-mqtt")
        timers = [asyncio.create_task(self._every(SAVE_EVERY_S, self.save), name="safecam-save")]
        if self.config.snapshot_interval_s > 0:
            await self._snapshots()
            timers.append(asyncio.create_task(self._every(self.config.snapshot_interval_s, self._snapshots)))
        if self.config.heatmap_interval_s > 0:
            await self._heatmaps()  # at once: replaces the last run's retained pictures (HA refuses an earlier run's)
            timers.append(asyncio.create_task(self._heatmap_loop(), name="safecam-heatmaps"))
        try:
            await stop.wait()
        finally:
            _LOGGER.info("safecam serve: stopping")
            for timer in timers:
                timer.cancel()
            # Joining worker threads blocks: in the executor, all cameras at once.
            await asyncio.gather(*(asyncio.to_thread(c.worker.stop) for c in self.cameras.values()))
            await asyncio.sleep(0)  # states the workers pushed while stopping
            for camera in self.cameras.values():
                camera.last = replace(camera.last, running=False)
                camera.publish_state(force=True)
            self.save()
            self.bridge.close()
            try:
                await asyncio.wait_for(bridge, 10)
            except Exception as err:  # noqa: BLE001 - leaving anyway; the last will says offline
                bridge.cancel()
                _LOGGER.warning("safecam serve: MQTT not flushed on exit (%s)", type(err).__name__)
            if self.http is not None:
                await self.http.close()


async def serve(config: ServeConfig, *, detector_factory: Callable[[], Detector] | None = None) -> None:
    """Run until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            loop.add_signal_handler(sig, stop.set)
    await EngineService(config, detector_factory=detector_factory).run(stop)


def main(config_path: str) -> int:
    """The `serve` subcommand. ConfigError / ModelError propagate to the CLI (exit 2 / 1)."""
    from .models import resolve_model

    config = load_serve_config(config_path)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )
    resolve_model("yolox_nano", config.model_dir)  # a missing or corrupt model fails here, with exit code 1
    _LOGGER.info(
        "safecam serve: engine %s, broker %s:%d%s, cameras: %s",
        config.engine_id, config.mqtt.host, config.mqtt.port, " (TLS)" if config.mqtt.tls else "",
        ", ".join(f"{c.id} <{redact_url(c.url)}>" for c in config.cameras),
    )  # fmt: skip
    asyncio.run(serve(config))
    return 0
