"""Config flow (add a camera), options flow (detection settings, zones/gates), reconfigure (source).

Sources:
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

import json
import logging
from typing import Any

import voluptuous as vol
import yaml  # type: ignore[import-untyped]
from homeassistant.components.camera import DOMAIN as CAMERA_DOMAIN
from homeassistant.components.camera import async_get_stream_source
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_ENTITY_ID, CONF_NAME, CONF_PASSWORD, CONF_URL, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .const import (
    ANONYMIZATION_MODES,
    CONF_ANONYMIZATION,
    CONF_ENTITY_REGISTRY_ID,
    CONF_FPS,
    CONF_SCENE,
    CONF_SOURCE_TYPE,
    DEFAULT_ANONYMIZATION,
    DEFAULT_FPS,
    DOMAIN,
    MAX_FPS,
    MIN_FPS,
    MODEL_NAME,
    PROBE_TIMEOUT_S,
    SOURCE_ENTITY,
    SOURCE_URL,
)
from .coordinator import SafecamConfigEntry
from .engine.config import ConfigError, SceneConfig, parse_scene
from .engine.sources import redact_url
from .source import check_model, engine_url, entity_unique_id, is_supported, probe_source, url_unique_id

_LOGGER = logging.getLogger(__name__)

_FPS_SELECTOR = NumberSelector(NumberSelectorConfig(min=MIN_FPS, max=MAX_FPS, step=1, mode=NumberSelectorMode.SLIDER))
_ANONYMIZATION_SELECTOR = SelectSelector(
    SelectSelectorConfig(options=list(ANONYMIZATION_MODES), translation_key=CONF_ANONYMIZATION, mode=SelectSelectorMode.DROPDOWN)
)
_TEXT = TextSelector()
_USERNAME = TextSelector(TextSelectorConfig(autocomplete="username"))
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password"))
_CAMERA = EntitySelector(EntitySelectorConfig(domain=CAMERA_DOMAIN))
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
DETECTION_SCHEMA = vol.Schema(_SETTINGS_SCHEMA)
RECONFIGURE_URL_SCHEMA = vol.Schema(
    {vol.Required(CONF_URL): _TEXT, vol.Optional(CONF_USERNAME): _USERNAME, vol.Optional(CONF_PASSWORD): _PASSWORD}
)
RECONFIGURE_ENTITY_SCHEMA = vol.Schema({vol.Required(CONF_ENTITY_ID): _CAMERA})

SCENE_EXAMPLE = (
    "zones:\n"
    "  - name: crossing\n"
    "    kind: danger   # danger | restricted | area\n"
    "    polygon: [[0.1, 0.6], [0.9, 0.6], [0.9, 1.0], [0.1, 1.0]]\n"
    "gates:\n"
    "  - name: door\n"
    "    line: [[0.5, 0.3], [0.5, 1.0]]\n"
)


def _settings(user_input: dict[str, Any]) -> dict[str, Any]:
    return {CONF_FPS: int(user_input[CONF_FPS]), CONF_ANONYMIZATION: user_input[CONF_ANONYMIZATION]}


def parse_scene_text(text: str) -> SceneConfig:
    """YAML (or JSON, a subset of YAML) from the options form -> SceneConfig; ConfigError if invalid."""
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: not valid YAML or JSON{where}") from None
    return parse_scene(data)


def scene_text(scene: dict[str, Any] | None) -> str:
    """The stored scene as compact YAML for the options form (points as JSON-style flow lists)."""
    if not scene or not (scene.get("zones") or scene.get("gates")):
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
    return "\n".join(lines) + "\n"


async def async_validate_source(hass: HomeAssistant, url: str) -> str | None:
    """None if the detector model resolves and one real frame can be read, else an error key."""
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
        return await async_get_stream_source(hass, entity_id)
    except HomeAssistantError:  # camera integration not loaded, camera missing or off
        return None


def _camera_unique_id(hass: HomeAssistant, entity_id: str) -> tuple[str, str | None]:
    """(unique id, entity registry id): the registry id survives renaming the camera entity."""
    if (reg := er.async_get(hass).async_get(entity_id)) is not None:
        return entity_unique_id(reg.id), reg.id
    return entity_unique_id(entity_id), None


class SafecamConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a camera: a stream URL/video file, or an existing HA camera entity."""

    VERSION = 1
    MINOR_VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: SafecamConfigEntry) -> SafecamOptionsFlow:
        return SafecamOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return self.async_show_menu(step_id="user", menu_options=["url", "entity"])

    async def async_step_url(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].strip()
            await self.async_set_unique_id(url_unique_id(url))
            self._abort_if_unique_id_configured()
            username, password = user_input.get(CONF_USERNAME), user_input.get(CONF_PASSWORD)
            if error := await async_validate_source(self.hass, engine_url(url, username, password)):
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
            if not url:
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

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the source (camera moved, new credentials); validated like a new camera."""
        entry = self._get_reconfigure_entry()
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
        return self.async_show_menu(step_id="init", menu_options=["detection", "scene"])

    async def async_step_detection(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(data={**self.config_entry.options, **_settings(user_input)})
        return self.async_show_form(
            step_id="detection",
            data_schema=self.add_suggested_values_to_schema(DETECTION_SCHEMA, dict(self.config_entry.options)),
        )

    async def async_step_scene(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        error = ""
        if user_input is not None:
            text = user_input.get(CONF_SCENE, "")
            try:
                scene = parse_scene_text(text)
            except ConfigError as err:
                errors["base"] = "invalid_scene"
                error = str(err)
            else:
                return self.async_create_entry(data={**self.config_entry.options, CONF_SCENE: scene.as_dict()})
        else:
            text = scene_text(self.config_entry.options.get(CONF_SCENE))
        schema = vol.Schema({vol.Optional(CONF_SCENE): _SCENE_TEXT})
        return self.async_show_form(
            step_id="scene",
            data_schema=self.add_suggested_values_to_schema(schema, {CONF_SCENE: text}),
            errors=errors,
            description_placeholders={"error": error, "example": SCENE_EXAMPLE},
        )
