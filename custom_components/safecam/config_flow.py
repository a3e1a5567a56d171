"""Config flow (add a camera), options flow (detection settings, zones/gates), reconfigure (source).

The first path is a safecam engine (the add-on, a container, the Python package) reached over MQTT: the integration
itself needs nothing installed. "Analyse inside Home Assistant (advanced)" installs the engine's requirements on
demand (inprocess.py) and says so when they cannot install here (HA OS / container: no wheels), pointing to the
add-on. In-process sources:
- a stream URL (rtsp/rtsps/http/https) with optional username/password, injected into the URL
  the engine opens (stored in the entry, never logged), or a local video file (absolute path or
  file:// URL; the engine loops it in real time: demos and tests);
- an existing HA camera entity: the engine reads the camera's stream source
  (`camera.async_get_stream_source`). Cameras without one (snapshot-only cameras) are refused
  with `no_stream_source`: the engine needs a continuous stream, not stills.

Every source is validated by grabbing a real frame in the executor, after checking that the
detector model resolves.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped]
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_ENTITY_ID, CONF_NAME, CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from homeassistant.util import slugify

from .const import (
    ANONYMIZATION_MODES,
    CONF_ANONYMIZATION,
    CONF_CAMERA_ID,
    CONF_EMPTY_RESET_S,
    CONF_ENGINE_ID,
    CONF_ENTITY_REGISTRY_ID,
    CONF_ENTRY_KIND,
    CONF_FPS,
    CONF_FUSION_RADIUS_M,
    CONF_PAIRING_KEY,
    CONF_PLAN_DEPTH_M,
    CONF_PLAN_IMAGE,
    CONF_PLAN_WIDTH_M,
    CONF_SCENE,
    CONF_SITE_CAMERAS,
    CONF_SITE_GATES,
    CONF_SOURCE_TYPE,
    CONF_TOPIC_PREFIX,
    CONF_UNREACHABLE_AFTER,
    DEFAULT_ANONYMIZATION,
    DEFAULT_FPS,
    DEFAULT_PLAN_DEPTH_M,
    DEFAULT_PLAN_WIDTH_M,
    DEFAULT_TOPIC_PREFIX,
    DEFAULT_UNREACHABLE_AFTER_MIN,
    DOMAIN,
    ENTRY_KIND_SITE,
    MAX_FPS,
    MAX_UNREACHABLE_AFTER_MIN,
    MIN_FPS,
    MODEL_NAME,
    PANEL_TITLE,
    PROBE_TIMEOUT_S,
    SOURCE_ENTITY,
    SOURCE_MQTT,
    SOURCE_URL,
)
from .contract import EngineAnnouncement, MessageRejected, format_pairing_key, parse_pairing_key
from .coordinator import SafecamConfigEntry
from .engine.config import (
    SECTION_PARSERS,
    ZONE_KINDS,
    ConfigError,
    SceneConfig,
    check_name,
    import_section_parsers,
    parse_scene,
    parse_scene_text,
    safe_yaml,
    shown,
)
from .engine.redact import redact_url
from .engine.scene.ppe_rules import ITEMS as PPE_ITEMS
from .entries import camera_entries, is_remote_entry, is_site_entry
from .inprocess import EngineUnavailable, async_ensure_engine
from .remote import (
    RemoteCamera,
    SceneNotTaken,
    announced_info,
    async_engine_takes_scene,
    async_mqtt_ready,
    async_scan,
    async_store_engine_key,
    engine_entries,
    engine_keys,
    options_of,
    settings_from_config,
    verify_key,
)
from .source import check_model, engine_url, entity_unique_id, is_supported, probe_source, url_unique_id
from .validation import vol

if TYPE_CHECKING:
    from types import ModuleType

_LOGGER = logging.getLogger(__name__)

_FPS_SELECTOR = NumberSelector(NumberSelectorConfig(min=MIN_FPS, max=MAX_FPS, step=1, mode=NumberSelectorMode.SLIDER))
_ANONYMIZATION_SELECTOR = SelectSelector(
    SelectSelectorConfig(options=list(ANONYMIZATION_MODES), translation_key=CONF_ANONYMIZATION, mode=SelectSelectorMode.DROPDOWN)
)
_TEXT = TextSelector()
_USERNAME = TextSelector(TextSelectorConfig(autocomplete="username"))
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password"))
_CAMERA = EntitySelector(EntitySelectorConfig(domain="camera"))
_SCENE_TEXT = TextSelector(TextSelectorConfig(multiline=True))

_SETTINGS_SCHEMA: dict[vol.Marker, Any] = {
    vol.Required(CONF_FPS, default=DEFAULT_FPS): _FPS_SELECTOR,
    vol.Required(CONF_ANONYMIZATION, default=DEFAULT_ANONYMIZATION): _ANONYMIZATION_SELECTOR,
}
URL_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): _TEXT,
        vol.Required(CONF_URL): _TEXT,
        vol.Optional(CONF_USERNAME): _USERNAME,
        vol.Optional(CONF_PASSWORD): _PASSWORD,
        **_SETTINGS_SCHEMA,
    }
)
ENTITY_SCHEMA = vol.Schema({vol.Required(CONF_ENTITY_ID): _CAMERA, vol.Optional(CONF_NAME): _TEXT, **_SETTINGS_SCHEMA})
_MINUTES = NumberSelector(
    NumberSelectorConfig(min=0, max=MAX_UNREACHABLE_AFTER_MIN, step=1, unit_of_measurement="min", mode=NumberSelectorMode.BOX)
)
DETECTION_SCHEMA = vol.Schema({**_SETTINGS_SCHEMA, vol.Optional(CONF_UNREACHABLE_AFTER): _MINUTES})
RECONFIGURE_URL_SCHEMA = vol.Schema(
    {vol.Required(CONF_URL): _TEXT, vol.Optional(CONF_USERNAME): _USERNAME, vol.Optional(CONF_PASSWORD): _PASSWORD}
)
RECONFIGURE_ENTITY_SCHEMA = vol.Schema({vol.Required(CONF_ENTITY_ID): _CAMERA})

# At most SCENE_EXAMPLE_WIDTH characters a line: the form shows the example unwrapped, and a longer line was cut off
# ("... occupancy, pp").
SCENE_EXAMPLE_WIDTH = 60
SCENE_EXAMPLE = (
    "zones:\n"
    "  - name: crossing\n"
    f"    kind: danger  # {' | '.join(ZONE_KINDS)}\n"
    "    polygon: [[0.1, 0.6], [0.9, 0.6], [0.9, 1], [0.1, 1]]\n"
    "gates:\n"
    "  - name: door\n"
    "    line: [[0.5, 0.3], [0.5, 1.0]]\n"
    # The optional sections the engine knows (safety, calibration, falls, ppe, ...).
    + "".join(
        f"{line}\n"
        for line in textwrap.wrap(
            f"optional sections: {', '.join(SECTION_PARSERS)}", SCENE_EXAMPLE_WIDTH, initial_indent="# ", subsequent_indent="#   "
        )
    )
)


# Calibration form: image points (normalized) and either floor points (m) or a rectangle's size (m).
CONF_IMAGE_POINTS = "image_points"
CONF_FLOOR_POINTS = "floor_points"
CONF_WIDTH_M = "width_m"
CONF_DEPTH_M = "depth_m"
_METRES = NumberSelector(NumberSelectorConfig(min=0.2, max=500, step=0.01, unit_of_measurement="m", mode=NumberSelectorMode.BOX))
CALIBRATION_SCHEMA = vol.Schema(
    {
        vol.Optional(CONF_IMAGE_POINTS): _TEXT,
        vol.Optional(CONF_WIDTH_M): _METRES,
        vol.Optional(CONF_DEPTH_M): _METRES,
        vol.Optional(CONF_FLOOR_POINTS): _TEXT,
    }
)
CALIBRATION_EXAMPLE = "[[0.2, 0.9], [0.8, 0.9], [0.7, 0.5], [0.3, 0.5]]"
_MAX_POINTS_TEXT = 1000  # parsed on the event loop: 4 points are some 60 characters


def _points_text(points: Any) -> str:
    return "[" + ", ".join(f"[{x:g}, {y:g}]" for x, y in points) + "]"


def _points(text: str, what: str) -> Any:
    """A list of [x, y] points typed into a form (YAML/JSON flow list); the engine checks its shape."""
    try:
        if len(text) > _MAX_POINTS_TEXT:
            raise ConfigError(what)
        return safe_yaml(text)
    except ConfigError:
        raise ConfigError(f"calibration {what}: write the points as [[x, y], [x, y], [x, y], [x, y]]") from None


def calibration_section(user_input: dict[str, Any]) -> dict[str, Any] | None:
    """The calibration form -> the scene's `calibration:` section (None: no calibration). ConfigError if incomplete."""
    image = str(user_input.get(CONF_IMAGE_POINTS) or "").strip()
    floor = str(user_input.get(CONF_FLOOR_POINTS) or "").strip()
    width, depth = user_input.get(CONF_WIDTH_M), user_input.get(CONF_DEPTH_M)
    if not image:
        if floor or width or depth:
            raise ConfigError("calibration image: mark the 4 points in the image too")
        return None
    section: dict[str, Any] = {"image": _points(image, "image")}
    if floor:
        if width or depth:
            raise ConfigError("calibration: give either the rectangle's width and depth or 4 floor points, not both")
        section["floor"] = _points(floor, "floor")
    elif width and depth:
        section["rectangle_m"] = [float(width), float(depth)]
    else:
        raise ConfigError("calibration: give the rectangle's width and depth (metres), or 4 floor points")
    return section


def calibration_form(section: Any) -> dict[str, Any]:
    """The stored `calibration:` section -> the form's suggested values."""
    if not isinstance(section, dict) or "image" not in section:
        return {}
    form: dict[str, Any] = {CONF_IMAGE_POINTS: _points_text(section["image"])}
    if "rectangle_m" in section:
        form[CONF_WIDTH_M], form[CONF_DEPTH_M] = section["rectangle_m"]
    elif "floor" in section:
        form[CONF_FLOOR_POINTS] = _points_text(section["floor"])
    return form


# Safety thresholds form: field -> (scene section, key in it). An empty field leaves the key out: the
# engine's default applies. A section the form would leave empty is not created.
SAFETY_FIELDS: dict[str, tuple[str, str]] = {
    "approach_m": ("safety", "approach_m"),
    "distancing_m": ("safety", "distancing_m"),
    "distancing_s": ("safety", "distancing_s"),
    "immobile_s": ("falls", "immobile_s"),
    "ppe_required": ("ppe", "required"),
}
CONF_FALLS = "falls"  # the form's "detect falls" switch: the `falls:` section exists and is enabled
_DISTANCE = NumberSelector(NumberSelectorConfig(min=0, max=100, step=0.1, unit_of_measurement="m", mode=NumberSelectorMode.BOX))
_SECONDS = NumberSelector(NumberSelectorConfig(min=0, max=3600, step=1, unit_of_measurement="s", mode=NumberSelectorMode.BOX))
SAFETY_SCHEMA = vol.Schema(
    {
        vol.Optional("approach_m"): _DISTANCE,
        vol.Optional("distancing_m"): _DISTANCE,
        vol.Optional("distancing_s"): _SECONDS,
        vol.Optional(CONF_FALLS, default=False): BooleanSelector(),
        vol.Optional("immobile_s"): _SECONDS,
        vol.Optional("ppe_required"): SelectSelector(
            SelectSelectorConfig(options=list(PPE_ITEMS), multiple=True, translation_key="ppe_item", mode=SelectSelectorMode.LIST)
        ),
    }
)


def apply_safety_form(scene: dict[str, Any], user_input: dict[str, Any]) -> dict[str, Any]:
    """The stored scene with the safety form's values written into their sections (not validated here)."""
    out = dict(scene)
    if isinstance(out.get("falls"), bool):  # `falls: true/false` is short for {enabled: ...}
        out["falls"] = {} if out["falls"] else {"enabled": False}
    for name, (section, key) in SAFETY_FIELDS.items():
        current = out.get(section)
        data = dict(current) if isinstance(current, dict) else {}
        value = user_input.get(name)
        if value is None or value == "" or value == []:
            data.pop(key, None)
        else:
            data[key] = value
        if data or current is not None:
            out[section] = data
    falls = out.get("falls")
    if user_input.get(CONF_FALLS):
        out["falls"] = {k: v for k, v in (falls or {}).items() if k != "enabled"}  # enabled is the default
    elif falls is not None:
        out["falls"] = {**falls, "enabled": False}  # off, its other settings kept
    ppe = out.get("ppe")
    if ppe is not None and not ppe.get("required") and not ppe.get("zones"):
        del out["ppe"]  # nothing required anywhere: no PPE check (and no PPE model loaded)
    return out


def safety_form(scene: dict[str, Any]) -> dict[str, Any]:
    """The form's suggested values: what the scene's sections set (the rest shows empty: engine defaults)."""
    falls = scene.get("falls")
    form: dict[str, Any] = {CONF_FALLS: falls is True or (isinstance(falls, dict) and falls.get("enabled", True) is not False)}
    for name, (section, key) in SAFETY_FIELDS.items():
        data = scene.get(section)
        if isinstance(data, dict) and data.get(key) is not None:
            form[name] = data[key]
    return form


def _settings(user_input: dict[str, Any]) -> dict[str, Any]:
    return {CONF_FPS: int(user_input[CONF_FPS]), CONF_ANONYMIZATION: user_input[CONF_ANONYMIZATION]}


def scene_text(scene: dict[str, Any] | None) -> str:
    """The stored scene as compact YAML for the options form (points as JSON-style flow lists).

    Optional sections (falls, ppe, safety, calibration, ...) follow as block YAML, so editing the
    zones never drops them.
    """
    sections = {k: v for k, v in (scene or {}).items() if k not in ("zones", "gates") and v is not None}
    if not scene or not (scene.get("zones") or scene.get("gates") or sections):
        return ""

    def points(pts: list[list[float]]) -> str:
        return "[" + ", ".join(f"[{x:g}, {y:g}]" for x, y in pts) + "]"

    lines: list[str] = []
    if zones := scene.get("zones"):
        lines.append("zones:")
        for z in zones:
            lines += [
                f"  - name: {json.dumps(z['name'], ensure_ascii=False)}",
                f"    kind: {z.get('kind', 'area')}",
                f"    polygon: {points(z['polygon'])}",
            ]
    if gates := scene.get("gates"):
        lines.append("gates:")
        for g in gates:
            lines += [f"  - name: {json.dumps(g['name'], ensure_ascii=False)}", f"    line: {points(g['line'])}"]
    text = "\n".join(lines) + "\n" if lines else ""
    if sections:
        text += yaml.safe_dump(sections, sort_keys=False, default_flow_style=None, allow_unicode=True)
    return text


# Supervisor discovery of a configured engine: how long its announced key may wait for the engine to sign with it.
KEY_CHECK_ATTEMPTS = 10
KEY_CHECK_INTERVAL_S = 3.0

MAX_URL_LENGTH = 2048  # camera URLs are a few hundred characters at most; a 100 kB one is a mistake or an attack


def name_error(name: str, what: str) -> str | None:
    """The form's error key when a typed name breaks the rule of zone names (engine.config.check_name), else None."""
    try:
        check_name(name, what)
    except ConfigError:
        return "invalid_name"
    return None


async def async_validate_source(hass: HomeAssistant, url: str) -> str | None:
    """None if the detector model resolves and one real frame can be read, else an error key."""
    if len(url) > MAX_URL_LENGTH:
        return "url_too_long"
    if not is_supported(url):
        return "unsupported_url"
    try:
        if not await hass.async_add_executor_job(check_model, MODEL_NAME):
            return "model_missing"
        return await hass.async_add_executor_job(probe_source, url, PROBE_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - a config flow reports, never crashes
        # Not _LOGGER.exception: a traceback could carry the URL with its credentials.
        _LOGGER.error("Unexpected error checking camera source: %s", redact_url(repr(err)))
        return "unknown"


async def _async_camera_stream_url(hass: HomeAssistant, entity_id: str) -> str | None:
    try:
        # HA's camera component (and its stream, numpy, PyAV) loads only for an in-process camera entity source.
        from homeassistant.components.camera import async_get_stream_source

        return await async_get_stream_source(hass, entity_id)
    except HomeAssistantError:  # camera integration not loaded, camera missing or off
        return None


def _camera_unique_id(hass: HomeAssistant, entity_id: str) -> tuple[str, str | None]:
    """(unique id, entity registry id): the registry id survives renaming the camera entity."""
    if (reg := er.async_get(hass).async_get(entity_id)) is not None:
        return entity_unique_id(reg.id), reg.id
    return entity_unique_id(entity_id), None


PAIRING_KEY_SCHEMA = vol.Schema({vol.Required(CONF_PAIRING_KEY): TextSelector()})


def _checked_key(text: str, signed: list[tuple[str, bytes]], errors: dict[str, str]) -> bytes | None:
    """The key typed, if the engine's retained messages are signed with it; else None and errors["base"]."""
    try:
        key = parse_pairing_key(text)
    except ValueError:
        errors["base"] = "invalid_pairing_key"
        return None
    try:
        verify_key(key, signed)
    except MessageRejected:
        errors["base"] = "wrong_pairing_key"
        return None
    return key


class SafecamConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a camera: a stream URL/video file, or an existing HA camera entity."""

    VERSION = 1
    MINOR_VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: SafecamConfigEntry) -> OptionsFlow:
        if is_site_entry(config_entry):
            return SiteOptionsFlow()
        return SafecamOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        # A safecam engine first and the site device (nothing to install for either), then in-process analysis.
        return self.async_show_menu(step_id="user", menu_options=["remote", "site", "local"])

    async def async_step_local(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Analyse inside Home Assistant (advanced): install the engine's requirements now, then pick the source."""
        if (aborted := await self._async_engine_or_abort()) is not None:
            return aborted
        return self.async_show_menu(step_id="local", menu_options=["url", "entity"])

    async def _async_engine_or_abort(self) -> ConfigFlowResult | None:
        try:
            await async_ensure_engine(self.hass)
        except EngineUnavailable as err:
            return self.async_abort(reason="engine_unavailable", description_placeholders={"error": str(err)})
        return None

    async def async_step_url(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].strip()
            await self.async_set_unique_id(url_unique_id(url))
            self._abort_if_unique_id_configured()
            username, password = user_input.get(CONF_USERNAME), user_input.get(CONF_PASSWORD)
            if error := name_error(user_input[CONF_NAME], "camera") or await async_validate_source(
                self.hass, engine_url(url, username, password)
            ):
                errors["base"] = error
            else:
                data = {CONF_SOURCE_TYPE: SOURCE_URL, CONF_URL: url}
                if username:
                    data[CONF_USERNAME] = username
                    if password:
                        data[CONF_PASSWORD] = password
                return self.async_create_entry(title=user_input[CONF_NAME].strip(), data=data, options=_settings(user_input))
        return self.async_show_form(
            step_id="url",
            data_schema=self.add_suggested_values_to_schema(URL_SCHEMA, user_input or {}),
            errors=errors,
        )

    async def async_step_entity(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            entity_id = user_input[CONF_ENTITY_ID]
            unique_id, registry_id = _camera_unique_id(self.hass, entity_id)
            await self.async_set_unique_id(unique_id)
            self._abort_if_unique_id_configured()
            url = await _async_camera_stream_url(self.hass, entity_id)
            if (user_input.get(CONF_NAME) or "").strip() and (error := name_error(user_input[CONF_NAME], "camera")):
                errors["base"] = error
            elif not url:
                errors["base"] = "no_stream_source"
            elif error := await async_validate_source(self.hass, url):
                errors["base"] = error
            else:
                state = self.hass.states.get(entity_id)
                title = (user_input.get(CONF_NAME) or "").strip() or (state.name if state else entity_id)
                data = {CONF_SOURCE_TYPE: SOURCE_ENTITY, CONF_ENTITY_ID: entity_id, CONF_ENTITY_REGISTRY_ID: registry_id}
                return self.async_create_entry(title=title, data=data, options=_settings(user_input))
        return self.async_show_form(
            step_id="entity",
            data_schema=self.add_suggested_values_to_schema(ENTITY_SCHEMA, user_input or {}),
            errors=errors,
        )

    # ---- remote mode: a camera of an engine service (the add-on, `serve`), through HA's MQTT integration ----
    _remote_engine: str | None = None  # discovered flow: only this engine's cameras
    _remote_cameras: dict[str, RemoteCamera] | None = None
    _remote_camera: RemoteCamera | None = None  # picked, waiting for its engine's pairing key

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """An engine announced itself (its retained `safecam/<engine>/info`): offer its cameras not yet added."""
        engine_id = discovery_info.topic.split("/")[-2]
        info = announced_info(discovery_info.payload)
        if info is None or info["engine_id"] != engine_id:
            return self.async_abort(reason="not_an_engine")  # not a framed engine message: no card for it
        # (Framed with some key: a card. Only the engine's own key pairs it, so a card from a forger cannot be
        # finished; keeping forgers off the broker altogether is the ACL's job, docs/mqtt.md.)
        await self.async_set_unique_id(f"mqtt_engine_{engine_id}")
        self._abort_if_unique_id_configured()
        self._remote_engine = engine_id
        self.context["title_placeholders"] = {"name": engine_id}
        result = await self.async_step_remote()
        # The engine add-on's card (async_step_hassio: no key to type) may have come during the scan: this one goes.
        await self.async_set_unique_id(self.unique_id)
        return result

    async def async_step_remote(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick one of the cameras the engines on the broker publish (one entry per camera, as in embedded mode)."""
        if not await async_mqtt_ready(self.hass):
            return self.async_abort(reason="mqtt_not_setup")
        if user_input is None or self._remote_cameras is None:
            configured = {e.unique_id for e in self._async_current_entries(include_ignore=False)}
            found = await async_scan(self.hass)
            self._remote_cameras = {
                c.unique_id: c for c in found if c.unique_id not in configured and self._remote_engine in (None, c.engine_id)
            }
            if not self._remote_cameras:
                return self.async_abort(reason="no_remote_cameras")
        elif (camera := self._remote_cameras.get(user_input[CONF_CAMERA_ID])) is not None:
            await self.async_set_unique_id(camera.unique_id, raise_on_progress=False)
            self._abort_if_unique_id_configured()
            self._remote_camera = camera
            # Another camera of this engine is paired already: its key, if the engine still signs with it.
            for key in engine_keys(self.hass, camera.engine_id):
                if (result := self._remote_paired(camera, key)) is not None:
                    return result
            return await self.async_step_remote_key()
        choices = [
            SelectOptionDict(value=uid, label=f"{c.name} ({c.engine_id}{'' if c.online else ', offline'})")
            for uid, c in self._remote_cameras.items()
        ]
        schema = vol.Schema({vol.Required(CONF_CAMERA_ID): SelectSelector(SelectSelectorConfig(options=choices))})
        return self.async_show_form(step_id="remote", data_schema=schema, description_placeholders={"count": str(len(choices))})

    async def async_step_remote_key(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The engine's pairing key (its log / web page), checked against its signed info before anything is kept."""
        camera = self._remote_camera
        assert camera is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            result = self._remote_paired(camera, user_input[CONF_PAIRING_KEY], errors)
            if result is not None:
                return result
        return self.async_show_form(
            step_id="remote_key",
            data_schema=PAIRING_KEY_SCHEMA,
            errors=errors,
            description_placeholders={"engine": camera.engine_id, "name": camera.name},
        )

    def _remote_paired(
        self, camera: RemoteCamera, key_text: str, errors: dict[str, str] | None = None
    ) -> ConfigFlowResult | None:
        """The entry, when `key_text` is the key the engine signs its info and this camera's layout with;
        else None with errors["base"] set."""
        if (key := _checked_key(key_text, camera.signed, errors if errors is not None else {})) is None:
            return None
        _info, config = verify_key(key, camera.signed)  # (checked just now: the verified bodies)
        data = {
            CONF_SOURCE_TYPE: SOURCE_MQTT,
            CONF_ENGINE_ID: camera.engine_id,
            CONF_CAMERA_ID: camera.camera,
            CONF_TOPIC_PREFIX: camera.prefix,
            CONF_PAIRING_KEY: format_pairing_key(key),
        }
        try:
            options = options_of(settings_from_config(config))
        except ConfigError:
            options = {}  # a layout this version cannot read: the entry starts empty, the engine's next one reloads it
        return self.async_create_entry(title=str(config.get("name") or camera.name), data=data, options=options)

    # ---- Supervisor discovery: the engine add-on announced its engine and key (engine/supervisor.py) --------------
    _announced: EngineAnnouncement | None = None
    _addon = ""  # the add-on's name (the Supervisor's)

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The engine add-on started. Its key comes from the Supervisor (Home Assistant reads the message back from
        it), but the Supervisor takes a `safecam` message from ANY add-on that declares `discovery: [safecam]`: the
        key counts only once the engine on the broker signs with it. An engine already set up gets it stored then
        (the add-on made a new key: no reauth); a new one is offered, and its confirm step checks the key."""
        try:
            announced = EngineAnnouncement.from_config(discovery_info.config)
        except ValueError as err:
            _LOGGER.warning("safecam: add-on %s announced no engine (%s)", shown(discovery_info.slug), err)
            return self.async_abort(reason="invalid_discovery_info")
        if engine_entries(self.hass, announced.engine_id):
            if not await self._engine_signs_with(announced):
                _LOGGER.warning(
                    "safecam: add-on %s announced a key engine %s does not sign with; the stored key is kept",
                    shown(discovery_info.slug),
                    announced.engine_id,
                )
                return self.async_abort(reason="hassio_wrong_key")
            async_store_engine_key(self.hass, announced.engine_id, announced.pairing_key)
            return self.async_abort(reason="already_configured")
        # The unique id of the engine's MQTT discovery card: an engine the user ignored stays ignored, and that card
        # (which asks for the key) gives way to this one.
        await self.async_set_unique_id(f"mqtt_engine_{announced.engine_id}", raise_on_progress=False)
        self._abort_if_unique_id_configured()
        for flow in self._async_in_progress(match_context={"unique_id": self.unique_id}):  # (one still starting ends itself)
            self.hass.config_entries.flow.async_abort(flow["flow_id"])
        self._announced, self._addon = announced, discovery_info.name
        self.context["title_placeholders"] = {"name": f"{discovery_info.name} ({announced.engine_id})"}
        return await self.async_step_hassio_confirm()

    async def _engine_signs_with(self, announced: EngineAnnouncement) -> bool:
        """Whether every camera of the announced engine on the broker signs with the announced key. The add-on
        announces before its engine starts, so its retained messages may be the previous run's (the previous key)
        for a while: asked again for up to KEY_CHECK_ATTEMPTS x KEY_CHECK_INTERVAL_S."""
        if not await async_mqtt_ready(self.hass):
            return False
        for attempt in range(KEY_CHECK_ATTEMPTS):
            if attempt:
                await asyncio.sleep(KEY_CHECK_INTERVAL_S)
            cameras = [c for c in await async_scan(self.hass, announced.topic_prefix) if c.engine_id == announced.engine_id]
            key = format_pairing_key(announced.pairing_key)
            if cameras and all(_checked_key(key, c.signed, {}) is not None for c in cameras):
                return True
        return False

    async def async_step_hassio_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The card "safecam engine add-on found": add its cameras, each paired with the announced key."""
        announced = self._announced
        assert announced is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            if not await async_mqtt_ready(self.hass):
                return self.async_abort(reason="mqtt_not_setup")
            configured = {e.unique_id for e in self._async_current_entries(include_ignore=False)}
            cameras = [
                c
                for c in await async_scan(self.hass, announced.topic_prefix)
                if c.engine_id == announced.engine_id and c.unique_id not in configured
            ]
            key = format_pairing_key(announced.pairing_key)
            if not cameras:
                errors["base"] = "hassio_engine_not_found"  # not on the broker (yet): the form stays, to try again
            elif any(_checked_key(key, c.signed, {}) is None for c in cameras):
                errors["base"] = "hassio_wrong_key"  # another engine with this id on the broker, or a stale announcement
            else:
                first, *others = cameras
                for camera in others:  # one entry per camera: a flow each, paired at once with the same key
                    await self.hass.config_entries.flow.async_init(
                        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data={"camera": camera, CONF_PAIRING_KEY: key}
                    )
                await self.async_set_unique_id(first.unique_id, raise_on_progress=False)
                return self._remote_paired(first, key) or self.async_abort(reason="hassio_wrong_key")
        self._set_confirm_only()
        return self.async_show_form(
            step_id="hassio_confirm",
            errors=errors,
            description_placeholders={"addon": self._addon, "engine": announced.engine_id},
        )

    async def async_step_integration_discovery(self, discovery_info: dict[str, Any]) -> ConfigFlowResult:
        """Another camera of an engine whose add-on the user just confirmed (async_step_hassio_confirm)."""
        if not isinstance(camera := discovery_info.get("camera"), RemoteCamera):
            return self.async_abort(reason="not_an_engine")
        await self.async_set_unique_id(camera.unique_id, raise_on_progress=False)
        self._abort_if_unique_id_configured()
        paired = self._remote_paired(camera, str(discovery_info.get(CONF_PAIRING_KEY)))
        return paired or self.async_abort(reason="hassio_wrong_key")

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """A remote camera without a (working) pairing key: messages are signed now, ask for its engine's key."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        engine_id, camera_id = entry.data.get(CONF_ENGINE_ID), entry.data.get(CONF_CAMERA_ID)
        errors: dict[str, str] = {}
        if user_input is not None:
            prefix = entry.data.get(CONF_TOPIC_PREFIX) or DEFAULT_TOPIC_PREFIX
            found = [c for c in await async_scan(self.hass, prefix) if (c.engine_id, c.camera) == (engine_id, camera_id)]
            if not found:
                errors["base"] = "engine_not_found"
            elif (key := _checked_key(user_input[CONF_PAIRING_KEY], found[0].signed, errors)) is not None:
                # This camera and the other cameras of its engine (their own questions for the key end).
                async_store_engine_key(self.hass, str(engine_id), key, flow_id=self.flow_id)
                return self.async_update_reload_and_abort(entry, reload_even_if_entry_is_unchanged=False)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=PAIRING_KEY_SCHEMA,
            errors=errors,
            description_placeholders={"engine": str(engine_id), "name": entry.title},
        )

    async def async_step_site(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A site device: perimeter gates and calibrated cameras of one place, fused (site_entry.py).

        The fusion runs in Home Assistant in pure Python (site_fusion.py): nothing to install, on any install."""
        site = await _async_site_module(self.hass)
        errors: dict[str, str] = {}
        error = ""
        if user_input is not None:
            name = str(user_input.get(CONF_NAME) or "").strip()
            unique_id = f"site_{slugify(name)}"
            if any(e.unique_id == unique_id for e in self._async_current_entries(include_ignore=False)):
                return self.async_abort(reason="site_already_configured")
            options = site_options(user_input)
            try:
                if not slugify(name):
                    raise ConfigError("site name: give the site a name")
                check_name(name, "site")
                await site.async_validate_site(self.hass, options)
            except ConfigError as err:
                errors["base"] = "invalid_site"
                error = str(err)
            else:
                await self.async_set_unique_id(unique_id)
                return self.async_create_entry(title=name, data={CONF_ENTRY_KIND: ENTRY_KIND_SITE}, options=options)
        return self.async_show_form(
            step_id="site",
            data_schema=self.add_suggested_values_to_schema(site_schema(self.hass, site, name=True), user_input or {}),
            errors=errors,
            description_placeholders={"error": error},
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the source (camera moved, new credentials); validated like a new camera."""
        entry = self._get_reconfigure_entry()
        if is_site_entry(entry):
            return self.async_abort(reason="site_not_reconfigurable")  # its settings are its options
        if entry.data.get(CONF_SOURCE_TYPE) == SOURCE_MQTT:
            return self.async_abort(reason="remote_not_reconfigurable")  # its engine owns the source
        by_entity = entry.data.get(CONF_SOURCE_TYPE) == SOURCE_ENTITY
        errors: dict[str, str] = {}
        if user_input is not None:
            data: dict[str, Any]
            if by_entity:
                entity_id = user_input[CONF_ENTITY_ID]
                unique_id, registry_id = _camera_unique_id(self.hass, entity_id)
                data = {CONF_SOURCE_TYPE: SOURCE_ENTITY, CONF_ENTITY_ID: entity_id, CONF_ENTITY_REGISTRY_ID: registry_id}
                url = await _async_camera_stream_url(self.hass, entity_id)
            else:
                url_in = user_input[CONF_URL].strip()
                username = user_input.get(CONF_USERNAME)
                unique_id = url_unique_id(url_in)
                # An empty password keeps the stored one (it is never sent back to the browser),
                # but only for the same camera: never hand one camera's password to another host.
                same_camera = unique_id == entry.unique_id
                password = user_input.get(CONF_PASSWORD) or (entry.data.get(CONF_PASSWORD) if same_camera else None)
                data = {CONF_SOURCE_TYPE: SOURCE_URL, CONF_URL: url_in}
                if username:
                    data[CONF_USERNAME] = username
                    if password:
                        data[CONF_PASSWORD] = password
                url = engine_url(url_in, username, password if username else None)
            if any(e.unique_id == unique_id for e in self._async_current_entries() if e.entry_id != entry.entry_id):
                return self.async_abort(reason="already_configured")
            if not url:
                errors["base"] = "no_stream_source"
            elif error := await async_validate_source(self.hass, url):
                errors["base"] = error
            else:
                return self.async_update_reload_and_abort(entry, unique_id=unique_id, data=data)
        schema = RECONFIGURE_ENTITY_SCHEMA if by_entity else RECONFIGURE_URL_SCHEMA
        suggested = user_input or {k: v for k, v in entry.data.items() if k != CONF_PASSWORD}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"name": entry.title},
        )


class SafecamOptionsFlow(OptionsFlow):
    """Detection settings and the scene (zones/gates); applied without restarting HA."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return self.async_show_menu(step_id="init", menu_options=["detection", "scene", "calibration", "safety"])

    async def async_step_detection(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            minutes = user_input.get(CONF_UNREACHABLE_AFTER)
            repair = {} if minutes is None else {CONF_UNREACHABLE_AFTER: int(minutes)}
            return self.async_create_entry(data={**self.config_entry.options, **_settings(user_input), **repair})
        suggested = {CONF_UNREACHABLE_AFTER: DEFAULT_UNREACHABLE_AFTER_MIN, **self.config_entry.options}
        return self.async_show_form(
            step_id="detection",
            data_schema=self.add_suggested_values_to_schema(DETECTION_SCHEMA, suggested),
        )

    async def async_step_scene(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        error = ""
        if user_input is not None:
            text = user_input.get(CONF_SCENE, "")
            try:
                # In the import executor: a section's parser imports its analyzer module (numpy) on first use.
                scene = await self.hass.async_add_import_executor_job(
                    functools.partial(parse_scene_text, text, sections=self._sections)
                )
            except ConfigError as err:
                errors["base"] = "invalid_scene"
                error = str(err)
            else:
                if not isinstance(result := await self._async_save_scene(scene.as_dict()), SceneNotTaken):
                    return result
                errors["base"], error = result.key, result.error
        else:
            text = scene_text(self.config_entry.options.get(CONF_SCENE))
        schema = vol.Schema({vol.Optional(CONF_SCENE): _SCENE_TEXT})
        return self.async_show_form(
            step_id="scene",
            data_schema=self.add_suggested_values_to_schema(schema, {CONF_SCENE: text}),
            errors=errors,
            description_placeholders={"error": error, "example": SCENE_EXAMPLE, "panel": PANEL_TITLE},
        )

    # ---- sections of the scene, as forms (the scene YAML step edits them all) ----------------
    def _scene_dict(self) -> dict[str, Any]:
        return dict(self.config_entry.options.get(CONF_SCENE) or {})

    @property
    def _sections(self) -> bool:
        """Whether HA parses the scene's optional sections: in-process yes; a remote camera's engine does it."""
        return not is_remote_entry(self.config_entry)

    async def _async_parse(self, scene: dict[str, Any]) -> SceneConfig:
        if self._sections:  # the sections' parsers import their analyzer modules: not on the event loop
            await self.hass.async_add_import_executor_job(import_section_parsers, scene)
        return parse_scene(scene, sections=self._sections)

    async def _async_save_scene(self, scene: dict[str, Any]) -> ConfigFlowResult | SceneNotTaken:
        """Store a scene the caller validated (parse_scene). A remote camera's engine must take it first (it checks
        the sections HA does not parse); when it does not, why (the step shows it in the form, which keeps what
        the user typed)."""
        if (problem := await async_engine_takes_scene(self.config_entry, scene)) is not None:
            return problem
        return self.async_create_entry(data={**self.config_entry.options, CONF_SCENE: scene})

    async def async_step_safety(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Common safety thresholds, written into the scene's sections (the scene step shows them all)."""
        errors: dict[str, str] = {}
        error = ""
        if user_input is not None:
            try:
                scene = (await self._async_parse(apply_safety_form(self._scene_dict(), user_input))).as_dict()
            except ConfigError as err:
                errors["base"] = "invalid_safety"
                error = str(err)
            else:
                if not isinstance(result := await self._async_save_scene(scene), SceneNotTaken):
                    return result
                errors["base"], error = result.key, result.error
        suggested = user_input if user_input is not None else safety_form(self._scene_dict())
        return self.async_show_form(
            step_id="safety",
            data_schema=self.add_suggested_values_to_schema(SAFETY_SCHEMA, suggested),
            errors=errors,
            description_placeholders={"error": error},
        )

    async def async_step_calibration(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ground-plane calibration: 4 floor points in the image and where they are on the floor (metres)."""
        errors: dict[str, str] = {}
        error = ""
        if user_input is not None:
            scene = self._scene_dict()
            try:
                section = calibration_section(user_input)
                if section is None:
                    scene.pop("calibration", None)
                else:
                    scene["calibration"] = section
                # The engine's checks (in-process here; a remote camera's engine checks it when it is sent).
                scene = (await self._async_parse(scene)).as_dict()
            except ConfigError as err:
                errors["base"] = "invalid_calibration"
                error = str(err)
            else:
                if not isinstance(result := await self._async_save_scene(scene), SceneNotTaken):
                    return result
                errors["base"], error = result.key, result.error
        suggested = user_input if user_input is not None else calibration_form(self._scene_dict().get("calibration"))
        return self.async_show_form(
            step_id="calibration",
            data_schema=self.add_suggested_values_to_schema(CALIBRATION_SCHEMA, suggested),
            errors=errors,
            description_placeholders={"error": error, "example": CALIBRATION_EXAMPLE},
        )


# ---- site entries (site_entry.py): the form of a site's settings ----------------------------------

_SITE_KEYS = (
    CONF_SITE_CAMERAS,
    CONF_SITE_GATES,
    CONF_EMPTY_RESET_S,
    CONF_FUSION_RADIUS_M,
    CONF_PLAN_WIDTH_M,
    CONF_PLAN_DEPTH_M,
    CONF_PLAN_IMAGE,
)


async def _async_site_module(hass: HomeAssistant) -> ModuleType:
    """site_entry.py (light: pure Python + Pillow), imported only when a site is added or edited."""
    return await hass.async_add_import_executor_job(importlib.import_module, f"{__package__}.site_entry")


def site_schema(hass: HomeAssistant, site: ModuleType, *, name: bool) -> vol.Schema:
    """The site form: which cameras, which gates enter the site, reset and fusion settings, the floor plan."""
    cameras = [SelectOptionDict(value=e.entry_id, label=e.title) for e in camera_entries(hass)]
    gates = [SelectOptionDict(value=value, label=label) for value, label in site.gate_choices(hass)]
    multi = SelectSelectorMode.DROPDOWN
    fields: dict[vol.Marker, Any] = {vol.Required(CONF_NAME): _TEXT} if name else {}
    metres = NumberSelectorConfig(min=1, max=10000, step=0.1, unit_of_measurement="m", mode=NumberSelectorMode.BOX)
    fields |= {
        vol.Optional(CONF_SITE_CAMERAS, default=[]): SelectSelector(
            SelectSelectorConfig(options=cameras, multiple=True, mode=multi)
        ),
        # custom_value: a typed "camera/gate/in" is checked by async_validate_site, with a message
        vol.Optional(CONF_SITE_GATES, default=[]): SelectSelector(
            SelectSelectorConfig(options=gates, multiple=True, custom_value=True, mode=multi)
        ),
        vol.Required(CONF_EMPTY_RESET_S, default=site.DEFAULT_EMPTY_RESET_S): NumberSelector(
            NumberSelectorConfig(min=0, max=86400, step=1, unit_of_measurement="s", mode=NumberSelectorMode.BOX)
        ),
        vol.Required(CONF_FUSION_RADIUS_M, default=site.DEFAULT_RADIUS_M): NumberSelector(
            NumberSelectorConfig(min=0.1, max=5, step=0.1, unit_of_measurement="m", mode=NumberSelectorMode.BOX)
        ),
        vol.Required(CONF_PLAN_WIDTH_M, default=DEFAULT_PLAN_WIDTH_M): NumberSelector(metres),
        vol.Required(CONF_PLAN_DEPTH_M, default=DEFAULT_PLAN_DEPTH_M): NumberSelector(metres),
        vol.Optional(CONF_PLAN_IMAGE): _TEXT,
    }
    return vol.Schema(fields)


def site_options(user_input: dict[str, Any]) -> dict[str, Any]:
    """The form's values as the site entry's options (empty fields left out: defaults apply)."""
    return {k: user_input[k] for k in _SITE_KEYS if user_input.get(k) not in (None, "")}


class SiteOptionsFlow(OptionsFlow):
    """A site's settings (the same form as when adding it); the site reloads with them."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return await self.async_step_site(user_input)

    async def async_step_site(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        site = await _async_site_module(self.hass)
        errors: dict[str, str] = {}
        error = ""
        if user_input is not None:
            options = site_options(user_input)
            try:
                await site.async_validate_site(self.hass, options)
            except ConfigError as err:
                errors["base"] = "invalid_site"
                error = str(err)
            else:
                return self.async_create_entry(data=options)
        suggested = user_input if user_input is not None else dict(self.config_entry.options)
        return self.async_show_form(
            step_id="site",
            data_schema=self.add_suggested_values_to_schema(site_schema(self.hass, site, name=False), suggested),
            errors=errors,
            description_placeholders={"error": error},
        )
