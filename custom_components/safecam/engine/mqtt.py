"""MQTT transport of the engine service (add-on mode): the bridge to the broker. The wire format (topics,
payloads) is `custom_components/safecam/contract.py`, shared with the integration."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..contract import (
    COMMAND_MAX_AGE_S,
    COMMANDS,
    EVENT_TYPES,
    OFFLINE,
    ONLINE,
    MessageRejected,
    RejectLog,
    ReplayGuard,
    Signer,
    Topics,
    capabilities,
    encode,
    json_body,
    open_signed,
)
from .config import SceneConfig
from .sources import redact_url

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")


class CommandError(ValueError):
    """A command the engine refuses; str(err) is the one-line reason sent back in command_result."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_certs: str | None = None  # PEM file; None: the system's CAs
    tls_insecure: bool = False  # skip certificate and host name checks (self-signed brokers)
    topic_prefix: str = "safecam"
    discovery_prefix: str | None = None  # e.g. "homeassistant": also publish HA MQTT discovery
    keepalive: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    max_queued_events: int = 1000
    max_queued_snapshot_bytes: int = 16 * 1024 * 1024


# ---- payloads -------------------------------------------------------------------------------------


def _object_id(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out)
    return out


# A signed frame's body in an HA template: header line, MAC line, body.
UNFRAME = "{{ value.split('\\n', 2)[2] }}"
UNFRAME_JSON = "{% set value_json = value.split('\\n', 2)[2] | from_json %}"


def discovery_payload(
    topics: Topics, *, engine_id: str, camera: str, name: str, scene: SceneConfig, version: str
) -> tuple[str, dict[str, Any]]:
    """Home Assistant MQTT device discovery for one camera: the embedded integration's entity set.

    Returns (topic suffix "device/<id>/config", payload); the caller prefixes the discovery prefix.
    Messages are signed frames (contract.py): the templates read the body after the header and MAC lines.
    HA's MQTT integration cannot check the MAC, so these entities trust the broker; the integration's remote
    mode checks it. No camera entity: that platform shows the payload bytes as they are, frame and all.
    """
    device_id = f"safecam_{engine_id}_{camera}".replace("-", "_")
    state_topic = topics.state(camera)

    def field_tpl(path: str) -> str:
        return "{{ value_json" + path + " }}"

    cmps: dict[str, dict[str, Any]] = {
        "people": {"p": "sensor", "name": "People", "val_tpl": field_tpl(".people"), "stat_cla": "measurement"},
        "connected": {
            "p": "binary_sensor",
            "name": "Camera connected",
            "dev_cla": "connectivity",
            "ent_cat": "diagnostic",
            "val_tpl": "{{ 'ON' if value_json.connected else 'OFF' }}",
        },
        "analysis_rate": {
            "p": "sensor",
            "name": "Analysis rate",
            "unit_of_meas": "fps",
            "stat_cla": "measurement",
            "ent_cat": "diagnostic",
            "val_tpl": field_tpl(".health.analysis_fps"),
        },
        "safety_event": {
            "p": "event",
            "name": "Safety event",
            "stat_t": topics.event(camera),
            "evt_typ": list(EVENT_TYPES),
            "val_tpl": UNFRAME,
        },
    }
    taken = set(cmps)
    caps = capabilities(scene.as_dict())  # the same entities the integration builds from the announcement
    for zone in scene.zones:
        key = json.dumps(zone.name)
        oid = _object_id(f"zone_{zone.name}", taken)
        zone_val = "value_json.zones.get(" + key + ", {})"
        cmps[f"{oid}_people"] = {
            "p": "sensor",
            "name": f"{zone.name} people",
            "stat_cla": "measurement",
            "val_tpl": "{{ " + zone_val + ".get('people', 0) }}",
        }
        cmps[f"{oid}_occupied"] = {
            "p": "binary_sensor",
            "name": f"{zone.name} occupied",
            "dev_cla": "occupancy",
            "val_tpl": "{{ 'ON' if " + zone_val + ".get('occupied') else 'OFF' }}",
        }
        if zone.name in caps.intrusion_zones:
            cmps[f"{oid}_intruded"] = {
                "p": "binary_sensor",
                "name": f"{zone.name} intruded",
                "dev_cla": "safety",
                "val_tpl": "{{ 'ON' if "
                + zone_val
                + ".get('people', 0) > 0 and value_json.armed.get("
                + key
                + ", true) else 'OFF' }}",
            }
    for gate in scene.gates:
        key = json.dumps(gate.name)
        oid = _object_id(f"gate_{gate.name}", taken)
        for direction, label in (("in", "entries"), ("out", "exits")):
            cmps[f"{oid}_{label}"] = {
                "p": "sensor",
                "name": f"{gate.name} {label}",
                "stat_cla": "total_increasing",
                "val_tpl": "{{ value_json.gates.get(" + key + ", {}).get('" + direction + "', 0) }}",
            }
    for oid, cmp in cmps.items():
        cmp["uniq_id"] = f"{device_id}_{oid}"
        if "val_tpl" in cmp and cmp["p"] != "event":
            cmp["val_tpl"] = UNFRAME_JSON + cmp["val_tpl"]
    payload = {
        "dev": {"ids": [device_id], "name": name, "mf": "safecam", "mdl": "safecam engine", "sw": version},
        "o": {"name": "safecam", "sw": version},
        "avty_t": topics.availability,
        "avty_tpl": UNFRAME,
        "stat_t": state_topic,
        "qos": 1,
        "cmps": cmps,
    }
    return f"device/{device_id}/config", payload


def connect_hint(error: str, settings: MqttSettings) -> str:
    """What to check for the connect errors people meet: the library's own text names no setting."""
    low = error.lower()
    if "mismatch" in low and "certificate" in low:
        return f": the broker's TLS certificate is not issued for '{settings.host}'; set mqtt.host to a name it is issued for"
    if "certificate verify failed" in low or "certificate_verify_failed" in low:
        trusted = f"the CA file {settings.ca_certs}" if settings.ca_certs else "any of the system's CAs"
        return (
            f": the broker's TLS certificate is not signed by {trusted}; set mqtt.ca_certs to the CA that signed it "
            "(or mqtt.tls_insecure: true to skip the check)"
        )
    if "ssl" in low or "tls" in low:
        return ": the TLS handshake failed; check that mqtt.port is the broker's TLS listener, or set mqtt.tls: false"
    if "not authori" in low or "bad user name or password" in low:
        return ": the broker refused the login; check mqtt.username and mqtt.password"
    return ""


# ---- the bridge -----------------------------------------------------------------------------------

CommandHandler = Callable[[str, str, dict[str, Any]], None]


@dataclass(slots=True)
class _QueuedEvent:
    topic: str
    payload: bytes
    snapshot_topic: str | None
    snapshot: bytes | None


class MqttBridge:
    """One connection to the broker, kept up forever: reconnects with backoff, re-publishes every retained
    topic after each connect, delivers queued events (QoS 1) and hands commands to `on_command`.

    All methods run on the asyncio loop; workers reach it through `loop.call_soon_threadsafe`.
    """

    def __init__(
        self, settings: MqttSettings, engine_id: str, signer: Signer, *, on_command: CommandHandler | None = None
    ) -> None:
        self.settings = settings
        self.engine_id = engine_id
        self.topics = Topics(settings.topic_prefix, engine_id)
        self.signer = signer  # every message out is signed with the pairing key; commands in must be too
        self.commands_seen = ReplayGuard()  # kept in the engine's state file
        self._refused = RejectLog(_LOGGER, "safecam mqtt")
        self._on_command = on_command
        self._online: bytes = b""  # this connection's signed "online" (its last will is signed right after it)
        self._retained: dict[str, tuple[bytes, int]] = {}  # topic -> (payload, qos): the engine's current picture
        self._dirty: dict[str, None] = {}  # retained topics not yet published on this connection (ordered set)
        self._layout: set[str] = set()
        self._events: deque[_QueuedEvent] = deque()
        self._results: deque[tuple[str, bytes]] = deque(maxlen=100)  # command results, after their effects
        self._snapshot_bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._connected = False
        self.events_dropped = 0
        self.connects = 0

    @property
    def connected(self) -> bool:
        return self._connected

    # ---- what to publish ------------------------------------------------------------------------
    def set_retained(self, topic: str, payload: bytes, qos: int = 0, *, layout: bool = False, sign: bool = True) -> None:
        """The current value of a retained topic: published now (when connected) and after every reconnect.

        layout=True (engine info, camera config, discovery): published before any state of the same flush.
        sign=False only for Home Assistant MQTT discovery, which that integration reads as plain JSON.
        """
        self._retained[topic] = (self.signer.sign(topic, payload) if sign else payload, qos)
        if layout:
            self._layout.add(topic)
        self._dirty[topic] = None
        self._wake.set()

    def publish_event(self, topic: str, payload: bytes, snapshot_topic: str | None = None, snapshot: bytes | None = None) -> None:
        """Queue an event (QoS 1). Bounded: past max_queued_events the oldest is dropped and counted;
        past max_queued_snapshot_bytes the oldest queued snapshots are dropped (the events stay)."""
        if len(self._events) >= self.settings.max_queued_events:
            dropped = self._events.popleft()
            self._snapshot_bytes -= len(dropped.snapshot or b"")
            self.events_dropped += 1
            _LOGGER.warning("safecam mqtt: event queue full (%d), dropped the oldest event", self.settings.max_queued_events)
        if snapshot is not None and snapshot_topic is not None:
            snapshot = self.signer.sign(snapshot_topic, snapshot)  # signed before the event: its seq is lower
        self._events.append(_QueuedEvent(topic, self.signer.sign(topic, payload), snapshot_topic, snapshot))
        self._snapshot_bytes += len(snapshot or b"")
        for item in self._events:
            if self._snapshot_bytes <= self.settings.max_queued_snapshot_bytes:
                break
            if item.snapshot is not None:
                self._snapshot_bytes -= len(item.snapshot)
                item.snapshot = None
        self._wake.set()

    @property
    def queued_events(self) -> int:
        return len(self._events)

    # ---- connection loop --------------------------------------------------------------------------
    def _client(self) -> Any:
        import aiomqtt

        s = self.settings
        # "online" gets its number before the will's: the broker sends the will only after this connection's
        # "online", and a receiver takes availability in (boot, seq) order.
        self._online = self.signer.sign(self.topics.availability, ONLINE)
        will = self.signer.sign(self.topics.availability, OFFLINE)
        tls_context = None
        if s.tls:
            tls_context = ssl.create_default_context(cafile=s.ca_certs)
            if s.tls_insecure:
                tls_context.check_hostname = False
                tls_context.verify_mode = ssl.CERT_NONE
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username or None,
            password=s.password or None,
            identifier=f"safecam-{self.engine_id}",
            will=aiomqtt.Will(self.topics.availability, will, qos=1, retain=True),
            keepalive=s.keepalive,
            tls_context=tls_context,
            timeout=10,
        )

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; returns after `close()` flushed and said offline."""
        import aiomqtt

        backoff = self.settings.reconnect_min_s
        where = f"{self.settings.host}:{self.settings.port}"
        while not self._closing:
            try:
                async with self._client() as client:
                    self._connected = True
                    self.connects += 1
                    backoff = self.settings.reconnect_min_s
                    _LOGGER.info("safecam mqtt: connected to %s as engine %s", where, self.engine_id)
                    await self._session(client)
                    return
            except aiomqtt.MqttError as err:
                if self._connected:
                    _LOGGER.warning("safecam mqtt: lost the broker at %s (%s)", where, redact_url(str(err)))
                else:
                    text = redact_url(str(err))
                    _LOGGER.warning("safecam mqtt: cannot connect to %s (%s)%s", where, text, connect_hint(text, self.settings))
            finally:
                self._connected = False
            if self._closing:
                return
            delay = backoff * random.uniform(0.8, 1.2)  # jitter: engines sharing a broker do not reconnect in lockstep
            _LOGGER.info("safecam mqtt: reconnecting in %.1f s (%d events queued)", delay, len(self._events))
            with contextlib.suppress(TimeoutError):
                self._wake.clear()
                await asyncio.wait_for(self._wait_closing(), delay)
            backoff = min(backoff * 2, self.settings.reconnect_max_s)

    async def _wait_closing(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()

    def close(self) -> None:
        """Ask `run()` to flush what is pending, publish "offline" and disconnect; `run()` then returns."""
        self._closing = True
        self._wake.set()

    async def _session(self, client: Any) -> None:
        await client.subscribe(self.topics.commands, qos=1)
        receiver = asyncio.create_task(self._receive(client), name="safecam-mqtt-receive")
        try:
            await self._guard(client.publish(self.topics.availability, self._online, qos=1, retain=True), receiver)
            self._dirty = dict.fromkeys(self._retained)  # the broker may have lost them: publish all again
            while True:
                self._wake.clear()
                await self._flush(client, receiver)
                if self._closing:
                    offline = self.signer.sign(self.topics.availability, OFFLINE)
                    await self._guard(client.publish(self.topics.availability, offline, qos=1, retain=True), receiver)
                    return
                if not self._events and not self._dirty and not self._results:
                    waiter = asyncio.create_task(self._wake.wait())
                    try:
                        await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                    if receiver.done():
                        receiver.result()  # raises the MqttError of a lost connection
                        return
        finally:
            receiver.cancel()
            with contextlib.suppress(BaseException):
                await receiver

    async def _guard(self, aw: Awaitable[_T], receiver: asyncio.Task[None]) -> _T:
        """Await a publish, but give up as soon as the connection is lost (not after aiomqtt's timeout)."""
        import aiomqtt

        task = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({task, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise aiomqtt.MqttError("connection lost while publishing")

    async def _flush(self, client: Any, receiver: asyncio.Task[None]) -> None:
        """Publish everything pending, choosing the next message afresh after every await (commands and
        workers add work meanwhile): layout first (an entity exists before its value), then events (oldest
        first), then states and pictures, then command results (after what the command changed)."""
        while True:
            topic = next((t for t in self._dirty if t in self._layout), None)
            if topic is None and self._events:
                await self._publish_event(client, receiver)
                continue
            if topic is None:
                topic = next(iter(self._dirty), None)
            if topic is not None:
                del self._dirty[topic]  # before the await: a newer value arriving meanwhile marks it again
                payload, qos = self._retained[topic]
                await self._guard(client.publish(topic, payload, qos=qos, retain=True), receiver)
                continue
            if not self._results:
                return
            topic, payload = self._results[0]
            await self._guard(client.publish(topic, payload, qos=1, retain=False), receiver)
            self._results.popleft()

    async def _publish_event(self, client: Any, receiver: asyncio.Task[None]) -> None:
        item = self._events[0]
        if item.snapshot is not None and item.snapshot_topic is not None:
            # Retained and acknowledged before the event, so a subscriber has it when the event arrives.
            await self._guard(client.publish(item.snapshot_topic, item.snapshot, qos=1, retain=True), receiver)
            self._retained[item.snapshot_topic] = (item.snapshot, 1)
        await self._guard(client.publish(item.topic, item.payload, qos=1, retain=False), receiver)
        # Dropped from the queue only once the broker acknowledged it: a lost connection re-sends it.
        if self._events and self._events[0] is item:
            self._events.popleft()
            self._snapshot_bytes -= len(item.snapshot or b"")

    async def _receive(self, client: Any) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            parsed = self.topics.parse_command(topic)
            if parsed is None:
                continue
            camera, command = parsed
            raw = message.payload if isinstance(message.payload, bytes | bytearray) else str(message.payload or "").encode()
            try:
                # A retained command would run again at every reconnect; an unsigned, forged, replayed or
                # stale one is not Home Assistant's. None of them gets a result (nothing to tell a forger).
                if message.retain:
                    raise MessageRejected("retained (a command is never kept by the broker)")
                signed = open_signed(self.signer.key, topic, bytes(raw))
                if not self.commands_seen.check(signed, max_age_s=COMMAND_MAX_AGE_S):
                    continue  # QoS 1 delivered it twice: it ran once
                data = json_body(signed)
                self.commands_seen.commit(signed)  # taken only once its body was read
            except MessageRejected as err:
                self._refused(topic, str(err))
                continue
            result = self._run_command(camera, command, data)
            # Sent by the flush after what the command changed (state, layout): a result means "it is out".
            result_topic = self.topics.command_result(camera)
            self._results.append((result_topic, self.signer.sign(result_topic, encode(result))))
            self._wake.set()

    def _run_command(self, camera: str, command: str, data: dict[str, Any]) -> dict[str, Any]:
        request_id: Any = data.get("id")
        try:
            if command not in COMMANDS:
                raise CommandError(f"unknown command '{command[:40]}' (known: {', '.join(COMMANDS)})")
            if self._on_command is None:
                raise CommandError("this engine takes no commands")
            self._on_command(camera, command, data)
        except CommandError as err:
            _LOGGER.info("safecam mqtt: command %s for %s refused: %s", command[:40], camera[:64], err)
            return {"id": request_id, "command": command, "ok": False, "error": str(err)}
        except Exception as err:  # a bad command must never take the connection down
            _LOGGER.exception("safecam mqtt: command %s for %s failed", command[:40], camera[:64])
            return {"id": request_id, "command": command, "ok": False, "error": f"{type(err).__name__}"}
        return {"id": request_id, "command": command, "ok": True, "error": None}
