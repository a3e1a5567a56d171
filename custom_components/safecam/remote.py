"""Remote mode: a camera of an engine service (`serve`, the add-on) reached through Home Assistant's MQTT integration.

One config entry per remote camera, like an embedded one, so every platform keeps `entry.runtime_data` = one
camera and creates exactly the embedded entities (same unique ids, names, device). `RemoteRuntime` is a
`SafecamRuntime` whose state comes from the engine's topics (docs/mqtt.md) instead of a local worker:

- layout: the retained `P/<camera>/config` (mirrored into the entry options, so the options flow and the zone
  editor show it); a change that adds or removes entities reloads the entry, any other applies live;
- trust: every message must be signed with the engine's pairing key (entry data; contract.py), come in
  (boot, seq) order per topic and be valid, else it is refused (logged without its payload, rate-limited) and
  the last good state stays; commands go out signed. An entry without a key asks for it (reauth);
- state: `P/<camera>/state` -> `contract.state_from_payload`, in (boot, seq) order so a replayed retained
  state never moves a counter back; events: `P/<camera>/event` (deduplicated on their id, QoS 1 is at-least-once)
  with the picture of `P/<camera>/event_snapshot`; camera view: `P/<camera>/snapshot` (anonymized JPEG);
  heatmap image and export: `P/<camera>/heatmap/<window>` (PNG the engine draws over the anonymized frame);
- availability: every entity is unavailable while `P/availability` is `offline` (a clean stop or the broker's
  last will), while the engine's `info` does not list the camera, or before its first state;
- commands: reset_counters, and a scene edited in HA becomes `set_scene`: the options flow and the zone editor
  wait for the engine's answer and store the scene only when it took it, else show its one-line error and keep
  the input (`async_engine_takes_scene`); an options change made otherwise goes out from the update listener,
  even before the engine's first layout message (a refusal then puts the options back to the engine's scene).

Why HA's MQTT integration and not a connection of our own: the user configures the broker, TLS and
credentials once, there; HA keeps one connection for everything and reconnects it; embedded users need no
MQTT at all (manifest `after_dependencies`, and `homeassistant.components.mqtt` is imported only here, lazily).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady, HomeAssistantError
from homeassistant.helpers.event import async_track_time_interval

from .const import (
    CONF_ANONYMIZATION,
    CONF_CAMERA_ID,
    CONF_CAPABILITIES,
    CONF_ENGINE_BOOT,
    CONF_ENGINE_ID,
    CONF_FPS,
    CONF_PAIRING_KEY,
    CONF_SCENE,
    CONF_TOPIC_PREFIX,
    DEFAULT_TOPIC_PREFIX,
    DOMAIN,
    HEALTH_CHECK_INTERVAL_S,
    MIN_FPS,
)
from .contract import (
    MAX_JPEG_BYTES,
    MAX_JSON_BYTES,
    MAX_PNG_BYTES,
    ONLINE,
    Capabilities,
    MessageRejected,
    RejectLog,
    ReplayGuard,
    Signed,
    Signer,
    Topics,
    event_from_payload,
    format_pairing_key,
    jpeg_body,
    json_body,
    open_signed,
    parse_heatmap_topic,
    parse_pairing_key,
    png_body,
    state_from_payload,
    unverified_json,
    valid_command_result,
    valid_config,
    valid_event,
    valid_info,
    valid_state,
)
from .coordinator import SafecamConfigEntry, SafecamRuntime, Settings
from .engine.config import ConfigError, shown
from .entries import is_remote_entry
from .pictures import png_of

if TYPE_CHECKING:
    from homeassistant.components.mqtt import ReceiveMessage

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
SCAN_TIMEOUT_S = 3.0  # how long the config flow listens for engines (their topics are retained: they come at once)
SEEN_EVENT_IDS = 500  # event ids remembered for deduplication (QoS 1 delivers at least once)
COMMAND_TIMEOUT_S = 10.0  # how long an edit in HA waits for the engine's command_result
PENDING_COMMANDS = 100  # unanswered commands remembered (their results are matched by request id)
# Home Assistant as a sender of commands: one boot (this process's start) and one growing sequence for every
# engine it talks to, so an engine can tell a replayed command from a new one.
HA_BOOT = int(time.time())
_HA_SEQ = itertools.count(1)


def _mqtt() -> Any:
    """homeassistant.components.mqtt, imported on first use: embedded users need no MQTT (nor its requirements)."""
    from homeassistant.components import mqtt

    return mqtt


async def async_mqtt_ready(hass: HomeAssistant) -> bool:
    """True when HA's MQTT integration is set up (connected or not): remote mode can subscribe."""
    if not hass.config_entries.async_entries("mqtt"):
        return False
    return bool(await _mqtt().async_wait_for_mqtt_client(hass))


def _listed(payload: Any) -> dict[str, Any] | None:
    """The body of a framed message, unverified (the config flow's list, before the key is known), else None."""
    try:
        return unverified_json(payload)
    except MessageRejected:
        return None


def announced_info(payload: Any) -> dict[str, Any] | None:
    """An engine's info as announced (framed, well-formed; NOT verified: that needs the key), else None."""
    if (info := _listed(payload)) is None:
        return None
    try:
        return valid_info(info)
    except MessageRejected:
        return None


def verify_key(key: bytes, messages: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """The bodies of an engine's retained messages (its info, a camera's config) if each is signed with `key`
    and plausible, else MessageRejected: how the config flow checks a typed pairing key."""
    guard = ReplayGuard()
    bodies = []
    for topic, payload in messages:
        signed = open_signed(key, topic, payload)
        guard.admit(signed)
        bodies.append(json_body(signed))
    return bodies


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
    signed: list[tuple[str, bytes]]  # (topic, payload) of its engine's info and its config: checked with the key
    prefix: str = DEFAULT_TOPIC_PREFIX  # the topic prefix it was found under

    @property
    def unique_id(self) -> str:
        return remote_unique_id(self.engine_id, self.camera)


def remote_unique_id(engine_id: str, camera: str) -> str:
    return f"mqtt_{engine_id}_{camera}"


# ---- which key belongs to engine X: what its camera entries store (an engine signs everything with one key) ----


def engine_entries(hass: HomeAssistant, engine_id: str) -> list[SafecamConfigEntry]:
    """The camera entries of one engine."""
    return [
        e
        for e in hass.config_entries.async_entries(DOMAIN, include_ignore=False)
        if is_remote_entry(e) and e.data.get(CONF_ENGINE_ID) == engine_id
    ]


def engine_keys(hass: HomeAssistant, engine_id: str) -> list[str]:
    """The pairing keys stored for an engine: one, or none before its first camera is paired (an entry made before
    messages were signed has none)."""
    return list(dict.fromkeys(key for e in engine_entries(hass, engine_id) if (key := e.data.get(CONF_PAIRING_KEY))))


@callback
def async_store_engine_key(
    hass: HomeAssistant, engine_id: str, key: bytes, *, flow_id: str | None = None
) -> list[SafecamConfigEntry]:
    """`key` becomes engine X's on every one of its camera entries (a key typed in a reauth flow, the add-on's key
    from Supervisor discovery); those whose key changed are reloaded with it, and their questions for a key (reauth
    flows other than `flow_id`, the one storing it) end. Returns them."""
    text = format_pairing_key(key)
    changed = [e for e in engine_entries(hass, engine_id) if e.data.get(CONF_PAIRING_KEY) != text]
    for entry in changed:
        hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_PAIRING_KEY: text})
        if entry.state in (ConfigEntryState.LOADED, ConfigEntryState.SETUP_RETRY, ConfigEntryState.SETUP_ERROR):
            hass.config_entries.async_schedule_reload(entry.entry_id)
        # (Current HA ends them on reload too; the oldest HA this integration supports does not.)
        for flow in hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, match_context={"source": SOURCE_REAUTH, "entry_id": entry.entry_id}
        ):
            if flow["flow_id"] != flow_id:
                hass.config_entries.flow.async_abort(flow["flow_id"])
    return changed


@dataclass(slots=True)
class _Scan:
    prefix: str
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)  # topic -> payload of the infos and configs above
    online: dict[str, bool] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    @callback
    def on_message(self, msg: ReceiveMessage) -> None:
        # Unverified here (no key yet): only listed; the key step checks info and config before anything is kept.
        parts = msg.topic[len(self.prefix) + 1 :].split("/")
        if len(parts) == 2 and parts[1] == "availability":
            self.online[parts[0]] = _text(msg.payload).endswith("\n" + ONLINE)
        elif len(parts) == 2 and parts[1] == "info" and (info := _listed(msg.payload)) is not None:
            with contextlib.suppress(MessageRejected):
                self.infos[parts[0]] = valid_info(info)
                self.raw[msg.topic] = _bytes(msg.payload)
        elif len(parts) == 3 and parts[2] == "config" and (config := _listed(msg.payload)) is not None:
            with contextlib.suppress(MessageRejected):
                self.configs[(parts[0], parts[1])] = valid_config(config)
                self.raw[msg.topic] = _bytes(msg.payload)
        if self.infos and all((e, c) in self.configs for e, info in self.infos.items() for c in info.get("cameras") or []):
            self.complete.set()

    def cameras(self) -> list[RemoteCamera]:
        """Cameras the engines list in their info (topics of removed cameras may linger: ignored)."""
        found = []
        for engine_id, info in sorted(self.infos.items()):
            for camera in info.get("cameras") or []:
                if (config := self.configs.get((engine_id, camera))) is not None:
                    name = str(config.get("name") or camera)
                    topics = Topics(self.prefix, engine_id)
                    signed = [(t, self.raw[t]) for t in (topics.info, topics.config(camera))]
                    online = self.online.get(engine_id, False)
                    found.append(RemoteCamera(engine_id, camera, name, config, online, signed, self.prefix))
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


def _bytes(payload: Any) -> bytes:
    return bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()


def _text(payload: Any) -> str:
    return payload.decode(errors="replace") if isinstance(payload, bytes | bytearray) else str(payload)


# ---- the runtime ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """A command sent, until its result: what `_async_command` returned resolves with it."""

    command: str
    result: asyncio.Future[dict[str, Any]]
    scene: dict[str, Any] | None = None  # set_scene's scene (its layout message answers it too)


def _guarded(handler: Callable[[RemoteRuntime, ReceiveMessage], None]) -> Callable[[RemoteRuntime, ReceiveMessage], None]:
    """An MQTT callback that never raises: a refused or unreadable message is logged (rate-limited, without its
    payload) and the last good state stays."""

    @functools.wraps(handler)
    def run(self: RemoteRuntime, msg: ReceiveMessage) -> None:
        try:
            handler(self, msg)
        except MessageRejected as err:
            self._refused(msg.topic, str(err))
        except Exception as err:  # noqa: BLE001 - whatever a message does, the subscription lives on
            self._refused(msg.topic, f"unreadable ({type(err).__name__})")

    return callback(run)


class RemoteRuntime(SafecamRuntime):
    """entry.runtime_data of a remote camera: SafecamRuntime's interface, fed by the engine's MQTT topics."""

    def __init__(self, hass: HomeAssistant, entry: SafecamConfigEntry, settings: Settings) -> None:
        data = entry.data
        self.engine_id: str = data[CONF_ENGINE_ID]
        self.camera_id: str = data[CONF_CAMERA_ID]
        self.topics = Topics(data.get(CONF_TOPIC_PREFIX) or DEFAULT_TOPIC_PREFIX, self.engine_id)
        self._signer = Signer(parse_pairing_key(data[CONF_PAIRING_KEY]), HA_BOOT, _HA_SEQ)
        self._seen = ReplayGuard()  # (boot, seq) per topic of what this engine sent
        # Kept across restarts and reloads: a message of an earlier run, played back as retained, stays refused.
        self._seen.newest_boot = boot if isinstance(boot := data.get(CONF_ENGINE_BOOT), int) else 0
        self._refused = RejectLog(_LOGGER, f"safecam remote {self.engine_id}/{self.camera_id}")
        super().__init__(hass, entry, settings)
        self.available = False  # until the engine says online and the camera's first state arrived
        self.engine_settings: Settings | None = None  # the layout the engine last published
        self.scene_source: str | None = None
        self._engine_online = False
        self._engine_said = False  # an availability message came (before it, online or not is unknown)
        self._listed = True  # the engine's info lists this camera (assumed until an info says otherwise)
        self._jpeg: bytes | None = None
        self._event_jpeg: bytes | None = None
        self._heatmaps: dict[str, bytes] = {}  # window -> the engine's heatmap PNG (anonymized background)
        self._heatmaps_taken = 0  # how many the engine sent for the image entity's window (its refresh counter)
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        self._unsubs: list[CALLBACK_TYPE] = []
        self._pending: OrderedDict[str, _Pending] = OrderedDict()  # by request id, until the result came

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
            (t.heatmap(cam, "+"), self._on_heatmap),
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

    @property
    def engine_offline(self) -> bool:
        """The engine said it is offline (a clean stop or its last will); False while that is not known yet."""
        return self._engine_said and not self._engine_online

    def diagnostics(self) -> dict[str, Any]:
        return {"engine": {"engine_id": self.engine_id, "camera": self.camera_id, "topics": self.topics.base}}

    # ---- what HA asks of the camera --------------------------------------------------------
    def snapshot_jpeg(self) -> bytes:
        """The engine's latest anonymized snapshot, or an obscured placeholder while the engine is away."""
        if self._jpeg is not None and self.available:
            return self._jpeg
        return self._placeholder("engine offline" if not self._engine_online else "no anonymized frame")

    @property
    def heatmap_total(self) -> int:
        return self._heatmaps_taken

    def heatmap_ready(self, window: str) -> bool:
        return window in self._heatmaps

    def heatmap_png(self, window: str) -> bytes:
        """The engine's heatmap of the window (drawn there over the anonymized frame: the heat grids stay in the
        engine); until its first one arrived, the anonymized view alone. Shown while the engine is away too."""
        if (png := self._heatmaps.get(window)) is not None:
            return png
        return png_of(self.snapshot_jpeg())

    async def async_restore_gate_total(self, gate: str, direction: str, value: int) -> None:
        """The engine keeps its own cumulative counters (its state file): HA's restored value is only shown."""

    async def async_reset_counters(self, gates: set[str] | None = None) -> None:
        if gates is None:
            await self._async_command("reset_counters", {})
        else:
            for gate in sorted(gates):
                await self._async_command("reset_counters", {"gate": gate})

    async def async_send_scene(self, scene: dict[str, Any]) -> None:
        """set_scene without waiting (the update listener): a refusal is logged and the options go back."""
        await self._async_command("set_scene", {"scene": scene})

    async def async_set_scene(self, scene: dict[str, Any]) -> str | None:
        """Send the scene to the engine and wait for its answer: None when it took it, else its one-line reason.
        TimeoutError when it did not answer within COMMAND_TIMEOUT_S."""
        result = await self._async_command("set_scene", {"scene": scene})
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            answer = await result
        return None if answer["ok"] else str(answer.get("error") or "refused")

    async def _async_command(self, command: str, payload: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Publish a signed command; the returned future gets its command_result (await it or not)."""
        request_id = secrets.token_hex(6)
        result: asyncio.Future[dict[str, Any]] = self.hass.loop.create_future()
        self._pending[request_id] = _Pending(command, result, payload.get("scene"))
        while len(self._pending) > PENDING_COMMANDS:
            self._pending.popitem(last=False)[1].result.cancel()
        topic = self.topics.command(self.camera_id, command)
        body = self._signer.sign(topic, json.dumps({**payload, "id": request_id}, separators=(",", ":")))
        try:
            await _mqtt().async_publish(self.hass, topic, body, 1, False, None)
        except HomeAssistantError:
            self._pending.pop(request_id, None)
            result.cancel()
            raise
        return result

    # ---- messages in: every one verified (signature, order), then validated; a refused one changes nothing ----
    def _take(self, msg: ReceiveMessage, read: Callable[[Signed], _T], max_body: int = MAX_JSON_BYTES) -> _T | None:
        """What `read` makes of the verified message's body; None for the one last taken on its topic again (a
        retained re-delivery); MessageRejected (the handler's guard logs it) for anything else. Only a message
        that `read` accepts moves the order on."""
        signed = open_signed(self._signer.key, msg.topic, _bytes(msg.payload), max_body=max_body)
        if not self._seen.check(signed):
            return None
        value = read(signed)
        self._seen.commit(signed)
        if self._seen.newest_boot != self.entry.data.get(CONF_ENGINE_BOOT):  # the engine restarted (rare)
            data = {**self.entry.data, CONF_ENGINE_BOOT: self._seen.newest_boot}
            self.hass.config_entries.async_update_entry(self.entry, data=data)
        return value

    # ---- messages (event loop, in broker order) ----------------------------------------------
    @callback
    def _set_available(self) -> None:
        available = self._engine_online and self._listed and self.state is not None
        if available != self.available:
            self.available = available
            self.async_notify()

    @_guarded
    def _on_availability(self, msg: ReceiveMessage) -> None:
        if (body := self._take(msg, lambda m: m.body, 16)) is None:
            return
        self._engine_online = body == ONLINE.encode()
        self._engine_said = True
        if not self._engine_online:
            _LOGGER.info("safecam remote: engine %s is offline", self.engine_id)
        self._set_available()

    @_guarded
    def _on_info(self, msg: ReceiveMessage) -> None:
        if (info := self._take(msg, lambda m: valid_info(json_body(m)))) is None:
            return
        self._listed = self.camera_id in info.get("cameras", [])
        self._set_available()

    @_guarded
    def _on_config(self, msg: ReceiveMessage) -> None:
        if self._closed or (config := self._take(msg, lambda m: valid_config(json_body(m)))) is None:
            return
        if config["camera"] != self.camera_id:
            raise MessageRejected("another camera's layout")
        try:
            settings = settings_from_config(config, dict(self.entry.options))
        except ConfigError as err:
            _LOGGER.warning("safecam remote: engine %s sent a layout this version cannot read: %s", self.engine_id, err)
            return
        self.engine_settings = settings
        self.scene_source = config.get("scene_source")
        # The engine publishes the layout of a scene it took before the command's result; a layout that adds or
        # removes entities reloads this entry before that result can arrive here: the layout is the answer.
        for pending in self._pending.values():
            if pending.scene is not None and pending.scene == config["scene"] and not pending.result.done():
                pending.result.set_result({"command": pending.command, "ok": True, "error": None})
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

    @_guarded
    def _on_state(self, msg: ReceiveMessage) -> None:
        # (boot, seq) grow per topic (`_take`): a replayed retained state never moves a counter back.
        if self._closed or (payload := self._take(msg, lambda m: valid_state(json_body(m)))) is None:
            return
        if payload["camera"] != self.camera_id:
            raise MessageRejected("another camera's state")
        # Named like an embedded camera's state and events (the entry title, not the engine's camera id).
        self.state = replace(state_from_payload(payload), camera=self.entry.title)
        was = self.available
        self._set_available()
        if was == self.available:  # _set_available notified already when it changed
            self.async_notify()
        self._async_check_health()

    @_guarded
    def _on_event_snapshot(self, msg: ReceiveMessage) -> None:
        if (jpeg := self._take(msg, jpeg_body, MAX_JPEG_BYTES)) is not None:
            self._event_jpeg = jpeg

    @_guarded
    def _on_snapshot(self, msg: ReceiveMessage) -> None:
        # Only a signed picture is shown: the engine's, anonymized (a raw frame from anyone else never is).
        if (jpeg := self._take(msg, jpeg_body, MAX_JPEG_BYTES)) is not None:
            self._jpeg = jpeg

    @_guarded
    def _on_heatmap(self, msg: ReceiveMessage) -> None:
        if (window := parse_heatmap_topic(self.topics, self.camera_id, msg.topic)) is None:
            raise MessageRejected("not a heatmap window")
        if (png := self._take(msg, png_body, MAX_PNG_BYTES)) is not None:
            first = window not in self._heatmaps
            self._heatmaps[window] = png
            if window == "hour":  # the image entity's window (image.DEFAULT_WINDOW)
                self._heatmaps_taken += 1
                if first:
                    self.async_notify()  # the image shows the engine's picture now, not a minute later

    @_guarded
    def _on_event(self, msg: ReceiveMessage) -> None:
        if self._closed or msg.retain or (payload := self._take(msg, lambda m: valid_event(json_body(m)))) is None:
            return
        event_id = payload["id"]
        if event_id in self._seen_events:
            return
        self._seen_events[event_id] = None
        while len(self._seen_events) > SEEN_EVENT_IDS:
            self._seen_events.popitem(last=False)
        event = replace(event_from_payload(payload), camera=self.entry.title)
        if payload.get("snapshot") and self._event_jpeg is not None:
            # The engine publishes the picture (retained, acknowledged) before its event.
            event = replace(event, snapshot=self._event_jpeg)
        for handle in list(self._event_listeners):
            handle(event)

    @_guarded
    def _on_command_result(self, msg: ReceiveMessage) -> None:
        if (result := self._take(msg, lambda m: valid_command_result(json_body(m)))) is None:
            return
        if (pending := self._pending.pop(str(result.get("id")), None)) is None:
            return  # another client's command
        command = pending.command
        if not pending.result.done():
            pending.result.set_result(result)
        if result["ok"]:
            return
        error = result.get("error")
        _LOGGER.warning(  # the engine's text, bounded: a log line stays a line
            "safecam remote: engine %s refused %s for %s: %s", self.engine_id, command, self.camera_id, shown(error, 300)
        )
        if command == "set_scene" and self.engine_settings is not None:
            # The edit did not happen: the options show the engine's scene again.
            options = {**self.entry.options, CONF_SCENE: self.engine_settings.scene.as_dict()}
            self.hass.config_entries.async_update_entry(self.entry, options=options)


# ---- a scene edited in Home Assistant (options flow, zone editor) ----------------------------------


SCENE_NOT_TAKEN = ("engine_refused", "engine_no_answer", "engine_offline", "engine_not_connected")


@dataclass(frozen=True, slots=True)
class SceneNotTaken:
    """Why the engine did not take an edited scene: `key` names the error (options flow translations: errors,
    zone editor: the websocket error code), `error` is the engine's one-line reason (empty when it gave none)."""

    key: str  # one of SCENE_NOT_TAKEN
    error: str = ""

    def __str__(self) -> str:
        return {
            "engine_refused": f"the engine refused it: {self.error}",
            "engine_no_answer": f"the engine did not answer within {COMMAND_TIMEOUT_S:g} s",
            "engine_offline": "the engine is offline",
        }.get(self.key, "this camera is not connected to its engine (its entry is not loaded)")


async def async_engine_takes_scene(entry: SafecamConfigEntry, scene: dict[str, Any]) -> SceneNotTaken | None:
    """A remote camera's edited scene goes to its engine now (set_scene) and the engine's answer is awaited, so the
    editor can show a refusal and keep what the user typed. None: the engine took it (or has it already, or the
    camera is an in-process one); the caller then stores the options."""
    if not is_remote_entry(entry):
        return None  # in-process: HA validated the whole scene itself
    runtime = getattr(entry, "runtime_data", None)
    if not isinstance(runtime, RemoteRuntime) or runtime._closed:
        return SceneNotTaken("engine_not_connected")
    if scene == (runtime.engine_settings or runtime.settings).scene.as_dict():
        return None  # nothing new for the engine (a scene its config file owns is not refused for that)
    if runtime.engine_offline:
        return SceneNotTaken("engine_offline")
    try:
        error = await runtime.async_set_scene(scene)
    except TimeoutError:
        return SceneNotTaken("engine_no_answer")
    except HomeAssistantError:  # MQTT could not publish it (disabled, broker refused): the user's scene stays
        return SceneNotTaken("engine_not_connected")
    return None if error is None else SceneNotTaken("engine_refused", error)


# ---- entry setup ------------------------------------------------------------------------------------


async def async_setup_remote_entry(
    hass: HomeAssistant,
    entry: SafecamConfigEntry,
    platforms: list[Platform],
    remove_stale: Callable[[HomeAssistant, SafecamConfigEntry, set[str]], None],
) -> bool:
    """entry_setup.async_setup_entry for a remote camera: the entities of the last known layout, then the topics."""
    try:
        parse_pairing_key(entry.data.get(CONF_PAIRING_KEY) or "")
    except ValueError:
        # An entry made before messages were signed: the reauth flow asks for the engine's key.
        raise ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="pairing_key_missing") from None
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
    if not isinstance(runtime, RemoteRuntime):
        return
    # Before the engine's first layout message, against the layout this setup started from: a scene edited
    # meanwhile still goes to the engine (whose layout, when it comes, is the one that then runs).
    engine = runtime.engine_settings or runtime.settings
    try:
        wanted = remote_settings(dict(entry.options))
    except ConfigError:
        wanted = engine
    if wanted.scene != engine.scene:
        await runtime.async_send_scene(wanted.scene.as_dict())
    elif runtime.engine_settings is None:
        return  # the rest is compared with the engine's layout once it is known
    elif (wanted.fps, wanted.anonymization) != (engine.fps, engine.anonymization):
        hass.config_entries.async_update_entry(entry, options={**entry.options, **options_of(engine)})
    elif wanted != runtime.settings and wanted.layout == runtime.settings.layout:  # (another layout: a reload is due)
        runtime.settings = runtime.engine_settings = wanted
        runtime.async_notify()
