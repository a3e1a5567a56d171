"""Remote mode: a camera of an engine service (`serve`, the add-on) reached through Home Assistant's MQTT integration.

One config entry per remote camera, like an embedded one, so every platform keeps `entry.runtime_data` = one
camera and creates exactly the embedded entities (same unique ids, names, device). `RemoteRuntime` is a
`SafecamRuntime` whose state comes from the engine's topics (docs/mqtt.md) instead of a local worker:

- layout: the retained `P/<camera>/config` (mirrored into the entry options, so the options flow and the zone
  editor show it); a change that adds or removes entities reloads the entry, any other applies live;
- state: `P/<camera>/state` -> `mqtt.state_from_payload`, ordered by (boot, seq) so a replayed retained state
  never moves a counter back; events: `P/<camera>/event` (deduplicated on their id, QoS 1 is at-least-once)
  with the picture of `P/<camera>/event_snapshot`; camera view: `P/<camera>/snapshot` (anonymized JPEG);
- availability: every entity is unavailable while `P/availability` is `offline` (a clean stop or the broker's
  last will), while the engine's `info` does not list the camera, or before its first state;
- commands: reset_counters, and a scene edited in HA (options flow, zone editor) becomes `set_scene` (the engine
  refuses it when its config file owns the scene; then the options go back to the engine's scene).

Why HA's MQTT integration and not a connection of our own: the user configures the broker, TLS and
credentials once, there; HA keeps one connection for everything and reconnects it; embedded users need no
MQTT at all (manifest `after_dependencies`, and `homeassistant.components.mqtt` is imported only here, lazily).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers.event import async_track_time_interval

from .const import (
    CONF_ANONYMIZATION,
    CONF_CAMERA_ID,
    CONF_CAPABILITIES,
    CONF_ENGINE_ID,
    CONF_FPS,
    CONF_SCENE,
    CONF_TOPIC_PREFIX,
    DEFAULT_TOPIC_PREFIX,
    DOMAIN,
    HEALTH_CHECK_INTERVAL_S,
    MIN_FPS,
)
from .contract import CONTRACT_VERSION, OFFLINE, ONLINE, Capabilities, Topics, event_from_payload, state_from_payload
from .coordinator import SafecamConfigEntry, SafecamRuntime, Settings
from .engine.config import ConfigError

if TYPE_CHECKING:
    from homeassistant.components.mqtt import ReceiveMessage

_LOGGER = logging.getLogger(__name__)
SCAN_TIMEOUT_S = 3.0  # how long the config flow listens for engines (their topics are retained: they come at once)
SEEN_EVENT_IDS = 500  # event ids remembered for deduplication (QoS 1 delivers at least once)


def _mqtt() -> Any:
    """homeassistant.components.mqtt, imported on first use: embedded users need no MQTT (nor its requirements)."""
    from homeassistant.components import mqtt

    return mqtt


async def async_mqtt_ready(hass: HomeAssistant) -> bool:
    """True when HA's MQTT integration is set up (connected or not): remote mode can subscribe."""
    if not hass.config_entries.async_entries("mqtt"):
        return False
    return bool(await _mqtt().async_wait_for_mqtt_client(hass))


def _json(payload: Any) -> dict[str, Any] | None:
    """A JSON object of our contract version from an MQTT payload, else None (ignored, never raises)."""
    try:
        data = json.loads(payload)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("contract", CONTRACT_VERSION) != CONTRACT_VERSION:
        return None
    return data


def settings_from_config(config: dict[str, Any], options: dict[str, Any] | None = None) -> Settings:
    """The engine's layout message -> Settings: frame rate, anonymization and scene are the engine's; the rest
    (HA-side settings such as the repair delay) comes from the entry options. ConfigError for an unreadable scene."""
    fps = config.get("fps")
    engine = {
        CONF_FPS: max(round(float(fps)), MIN_FPS) if isinstance(fps, int | float) else MIN_FPS,
        CONF_ANONYMIZATION: config.get("anonymization"),
        CONF_SCENE: config.get("scene") or {},
        CONF_CAPABILITIES: config.get("capabilities"),  # None from an engine that announces none: derived
    }
    return remote_settings({**(options or {}), **engine})


def remote_settings(options: dict[str, Any]) -> Settings:
    """A remote camera's settings from its entry options, where the engine's layout is mirrored: its announced
    capabilities decide the entities (kept there, so a restart builds what the engine announced), and the engine
    validates and runs the scene's sections. ConfigError for an unreadable scene or announcement."""
    announced = options.get(CONF_CAPABILITIES)
    try:
        capabilities = Capabilities.from_dict(announced) if isinstance(announced, dict) else None
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"capabilities: {err}") from None
    return Settings.from_options(options, sections=False, announced=capabilities)


def options_of(settings: Settings) -> dict[str, Any]:
    """The engine-owned entry options (what the options flow and the zone editor show of the engine's layout)."""
    return {
        CONF_FPS: settings.fps,
        CONF_ANONYMIZATION: settings.anonymization,
        CONF_SCENE: settings.scene.as_dict(),
        CONF_CAPABILITIES: settings.capabilities.as_dict(),
    }


# ---- what is on the broker (config flow) ----------------------------------------------------------


@dataclass(slots=True)
class RemoteCamera:
    engine_id: str
    camera: str
    name: str
    config: dict[str, Any]
    online: bool

    @property
    def unique_id(self) -> str:
        return remote_unique_id(self.engine_id, self.camera)


def remote_unique_id(engine_id: str, camera: str) -> str:
    return f"mqtt_{engine_id}_{camera}"


@dataclass(slots=True)
class _Scan:
    prefix: str
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    online: dict[str, bool] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    @callback
    def on_message(self, msg: ReceiveMessage) -> None:
        parts = msg.topic[len(self.prefix) + 1 :].split("/")
        if len(parts) == 2 and parts[1] == "availability":
            self.online[parts[0]] = _text(msg.payload) == ONLINE
        elif len(parts) == 2 and parts[1] == "info" and (info := _json(msg.payload)) is not None:
            self.infos[parts[0]] = info
        elif len(parts) == 3 and parts[2] == "config" and (config := _json(msg.payload)) is not None:
            self.configs[(parts[0], parts[1])] = config
        if self.infos and all((e, c) in self.configs for e, info in self.infos.items() for c in info.get("cameras") or []):
            self.complete.set()

    def cameras(self) -> list[RemoteCamera]:
        """Cameras the engines list in their info (topics of removed cameras may linger: ignored)."""
        found = []
        for engine_id, info in sorted(self.infos.items()):
            for camera in info.get("cameras") or []:
                if (config := self.configs.get((engine_id, camera))) is not None:
                    name = str(config.get("name") or camera)
                    found.append(RemoteCamera(engine_id, camera, name, config, self.online.get(engine_id, False)))
        return found


async def async_scan(
    hass: HomeAssistant, prefix: str = DEFAULT_TOPIC_PREFIX, timeout: float = SCAN_TIMEOUT_S
) -> list[RemoteCamera]:
    """The engines' cameras on the broker, from their retained info/config/availability topics."""
    mqtt = _mqtt()
    scan = _Scan(prefix)
    unsubs = [
        await mqtt.async_subscribe(hass, f"{prefix}/+/{leaf}", scan.on_message, 1, None)
        for leaf in ("availability", "info", "+/config")
    ]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await scan.complete.wait()
            await asyncio.sleep(0.3)  # every engine's camera: other engines' retained messages arrive just after
    finally:
        for unsub in unsubs:
            unsub()
    return scan.cameras()


def _text(payload: Any) -> str:
    return payload.decode(errors="replace") if isinstance(payload, bytes | bytearray) else str(payload)


# ---- the runtime ----------------------------------------------------------------------------------


class RemoteRuntime(SafecamRuntime):
    """entry.runtime_data of a remote camera: SafecamRuntime's interface, fed by the engine's MQTT topics."""

    def __init__(self, hass: HomeAssistant, entry: SafecamConfigEntry, settings: Settings) -> None:
        data = entry.data
        self.engine_id: str = data[CONF_ENGINE_ID]
        self.camera_id: str = data[CONF_CAMERA_ID]
        self.topics = Topics(data.get(CONF_TOPIC_PREFIX) or DEFAULT_TOPIC_PREFIX, self.engine_id)
        super().__init__(hass, entry, settings)
        self.available = False  # until the engine says online and the camera's first state arrived
        self.engine_settings: Settings | None = None  # the layout the engine last published
        self.scene_source: str | None = None
        self._engine_online = False
        self._listed = True  # the engine's info lists this camera (assumed until an info says otherwise)
        self._order: tuple[int, int] = (-1, -1)  # (boot, seq) of the newest state taken
        self._jpeg: bytes | None = None
        self._event_jpeg: bytes | None = None
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        self._unsubs: list[CALLBACK_TYPE] = []
        self._pending: dict[str, str] = {}  # command request id -> command, until its result

    # ---- lifecycle ------------------------------------------------------------------------
    async def async_start(self) -> None:
        mqtt, t, cam = _mqtt(), self.topics, self.camera_id
        subscriptions: list[tuple[str, Callable[[ReceiveMessage], None]]] = [
            (t.availability, self._on_availability),
            (t.info, self._on_info),
            (t.config(cam), self._on_config),
            (t.state(cam), self._on_state),
            (t.event_snapshot(cam), self._on_event_snapshot),
            (t.event(cam), self._on_event),
            (t.snapshot(cam), self._on_snapshot),
            (t.command_result(cam), self._on_command_result),
        ]
        for topic, handler in subscriptions:
            self._unsubs.append(await mqtt.async_subscribe(self.hass, topic, handler, 1, None))
        self._started = True
        self._unsub_timer = async_track_time_interval(
            self.hass, self._async_check_health, timedelta(seconds=HEALTH_CHECK_INTERVAL_S)
        )

    async def async_stop(self, *, clear_issues: bool = True) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        await super().async_stop(clear_issues=clear_issues)

    def diagnostics(self) -> dict[str, Any]:
        return {"engine": {"engine_id": self.engine_id, "camera": self.camera_id, "topics": self.topics.base}}

    # ---- what HA asks of the camera --------------------------------------------------------
    def snapshot_jpeg(self) -> bytes:
        """The engine's latest anonymized snapshot, or an obscured placeholder while the engine is away."""
        if self._jpeg is not None and self.available:
            return self._jpeg
        return self._placeholder("engine offline" if not self._engine_online else "no anonymized frame")

    async def async_restore_gate_total(self, gate: str, direction: str, value: int) -> None:
        """The engine keeps its own cumulative counters (its state file): HA's restored value is only shown."""

    async def async_reset_counters(self, gates: set[str] | None = None) -> None:
        if gates is None:
            await self._async_command("reset_counters", {})
        else:
            for gate in sorted(gates):
                await self._async_command("reset_counters", {"gate": gate})

    async def async_set_scene(self, scene: dict[str, Any]) -> None:
        await self._async_command("set_scene", {"scene": scene})

    async def _async_command(self, command: str, payload: dict[str, Any]) -> None:
        request_id = secrets.token_hex(6)
        self._pending[request_id] = command
        body = json.dumps({**payload, "id": request_id}, separators=(",", ":"))
        await _mqtt().async_publish(self.hass, self.topics.command(self.camera_id, command), body, 1, False)

    # ---- messages (event loop, in broker order) ----------------------------------------------
    @callback
    def _set_available(self) -> None:
        available = self._engine_online and self._listed and self.state is not None
        if available != self.available:
            self.available = available
            self.async_notify()

    @callback
    def _on_availability(self, msg: ReceiveMessage) -> None:
        self._engine_online = _text(msg.payload) == ONLINE
        if _text(msg.payload) == OFFLINE:
            _LOGGER.info("safecam remote: engine %s is offline", self.engine_id)
        self._set_available()

    @callback
    def _on_info(self, msg: ReceiveMessage) -> None:
        if (info := _json(msg.payload)) is not None:
            self._listed = self.camera_id in (info.get("cameras") or [])
            self._set_available()

    @callback
    def _on_config(self, msg: ReceiveMessage) -> None:
        config = _json(msg.payload)
        if self._closed or config is None or config.get("camera") != self.camera_id:
            return
        try:
            settings = settings_from_config(config, dict(self.entry.options))
        except ConfigError as err:
            _LOGGER.warning("safecam remote: engine %s sent a layout this version cannot read: %s", self.engine_id, err)
            return
        self.engine_settings = settings
        self.scene_source = config.get("scene_source")
        relayout = settings.layout != self.settings.layout
        if relayout:
            self._closed = True  # nothing more reaches the entities of this setup
        options = {**self.entry.options, **options_of(settings)}
        if options != dict(self.entry.options):
            # The options flow and the zone editor show the engine's layout (the update listener runs at once: the
            # layout decision above is taken first).
            self.hass.config_entries.async_update_entry(self.entry, options=options)
        if relayout:
            _LOGGER.info("safecam remote: the layout of %s changed on engine %s: reloading", self.camera_id, self.engine_id)
            self.hass.config_entries.async_schedule_reload(self.entry.entry_id)
        elif settings != self.settings:
            self.settings = settings
            self.async_notify()

    @callback
    def _on_state(self, msg: ReceiveMessage) -> None:
        payload = _json(msg.payload)
        if self._closed or payload is None or payload.get("camera") != self.camera_id:
            return
        try:
            order = (int(payload.get("boot") or 0), int(payload.get("seq") or 0))
            # Named like an embedded camera's state and events (the entry title, not the engine's camera id).
            state = replace(state_from_payload(payload), camera=self.entry.title)
        except (TypeError, ValueError, KeyError) as err:
            _LOGGER.debug("safecam remote: unreadable state of %s (%s)", self.camera_id, err)
            return
        if order < self._order:
            return  # an older state (a retained one replayed after a reconnect): counters never move back
        self._order = order
        self.state = state
        was = self.available
        self._set_available()
        if was == self.available:  # _set_available notified already when it changed
            self.async_notify()
        self._async_check_health()

    @callback
    def _on_event_snapshot(self, msg: ReceiveMessage) -> None:
        if isinstance(msg.payload, bytes | bytearray):
            self._event_jpeg = bytes(msg.payload)

    @callback
    def _on_snapshot(self, msg: ReceiveMessage) -> None:
        if isinstance(msg.payload, bytes | bytearray) and msg.payload:
            self._jpeg = bytes(msg.payload)

    @callback
    def _on_event(self, msg: ReceiveMessage) -> None:
        payload = _json(msg.payload)
        if self._closed or payload is None or msg.retain:
            return
        event_id = str(payload.get("id") or "")
        if event_id in self._seen_events:
            return
        self._seen_events[event_id] = None
        while len(self._seen_events) > SEEN_EVENT_IDS:
            self._seen_events.popitem(last=False)
        try:
            event = replace(event_from_payload(payload), camera=self.entry.title)
        except (TypeError, ValueError, KeyError) as err:
            _LOGGER.debug("safecam remote: unreadable event of %s (%s)", self.camera_id, err)
            return
        if payload.get("snapshot") and self._event_jpeg is not None:
            # The engine publishes the picture (retained, acknowledged) before its event.
            event = replace(event, snapshot=self._event_jpeg)
        for handle in list(self._event_listeners):
            handle(event)

    @callback
    def _on_command_result(self, msg: ReceiveMessage) -> None:
        result = _json(msg.payload)
        if result is None or (command := self._pending.pop(str(result.get("id")), None)) is None:
            return  # another client's command
        if result.get("ok"):
            return
        error = result.get("error")
        _LOGGER.warning("safecam remote: engine %s refused %s for %s: %s", self.engine_id, command, self.camera_id, error)
        if command == "set_scene" and self.engine_settings is not None:
            # The edit did not happen: the options show the engine's scene again.
            options = {**self.entry.options, CONF_SCENE: self.engine_settings.scene.as_dict()}
            self.hass.config_entries.async_update_entry(self.entry, options=options)


# ---- entry setup ------------------------------------------------------------------------------------


async def async_setup_remote_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    platforms: list[Platform],
    remove_stale: Callable[[HomeAssistant, SafecamConfigEntry, set[str]], None],
) -> bool:
    """entry_setup.async_setup_entry for a remote camera: the entities of the last known layout, then the topics."""
    if not await async_mqtt_ready(hass):
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_not_ready")
    try:
        settings = remote_settings(dict(entry.options))
    except ConfigError:
        settings = remote_settings({})  # the engine's config message brings the real one (and reloads)
    runtime = RemoteRuntime(hass, entry, settings)
    entry.runtime_data = runtime
    await hass.config_entries.async_forward_entry_setups(entry, platforms)
    remove_stale(hass, entry, runtime.expected_unique_ids)
    await runtime.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def _async_options_updated(hass: HomeAssistant, entry: SafecamConfigEntry) -> None:
    """Options changed in HA: a new scene goes to the engine (set_scene), frame rate and anonymization are the
    engine's (shown as it runs them), HA-side settings (repair delay) apply at once."""
    runtime = entry.runtime_data
    if not isinstance(runtime, RemoteRuntime) or (engine := runtime.engine_settings) is None:
        return
    try:
        wanted = remote_settings(dict(entry.options))
    except ConfigError:
        wanted = engine
    if wanted.scene != engine.scene:
        await runtime.async_set_scene(wanted.scene.as_dict())
    elif (wanted.fps, wanted.anonymization) != (engine.fps, engine.anonymization):
        hass.config_entries.async_update_entry(entry, options={**entry.options, **options_of(engine)})
    elif wanted != runtime.settings and wanted.layout == runtime.settings.layout:  # (another layout: a reload is due)
        runtime.settings = runtime.engine_settings = wanted
        runtime.async_notify()
