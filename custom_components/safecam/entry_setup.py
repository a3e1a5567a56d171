"""Config entry setup/unload (imported lazily by the package __init__; see there why).

One config entry per camera, or per site. A remote camera (the engine as a service) is set up by remote.py. An
in-process camera (the user chose to analyse inside Home Assistant): install the engine's requirements on demand
(inprocess.py; a repair pointing to the add-on if impossible), check the detector model (repairs if
missing/corrupt), build the runtime (local.py: one engine CameraWorker), add the entities (gate counters restore
their totals), then start the worker. Nothing here imports the engine's analysis: only local.py does, and only for
in-process entries; a site is loaded (site_entry.py: pure Python + Pillow, nothing to install) only where there is one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from homeassistant.components.camera import async_get_stream_source
from homeassistant.const import CONF_ENTITY_ID, CONF_PASSWORD, CONF_URL, CONF_USERNAME, EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ConfigEntryError, ConfigEntryNotReady, HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from .const import CONF_ENTITY_REGISTRY_ID, CONF_SOURCE_TYPE, DOMAIN, MODEL_NAME, SOURCE_ENTITY
from .coordinator import SafecamConfigEntry, Settings
from .engine.config import ConfigError
from .engine.models import ModelCorruptError, ModelError, resolve_model
from .engine.redact import redact_url
from .entries import is_remote_entry, is_site_entry
from .inprocess import EngineUnavailable, async_clear_engine_unavailable, async_ensure_engine, async_report_engine_unavailable
from .source import engine_url

PLATFORMS = [Platform.BINARY_SENSOR, Platform.CAMERA, Platform.EVENT, Platform.IMAGE, Platform.SENSOR]
MODEL_ISSUES = ("model_missing", "model_corrupt")


async def _module(hass: HomeAssistant, name: str) -> ModuleType:
    return await hass.async_add_import_executor_job(importlib.import_module, f"{__package__}.{name}")


async def async_setup_entry(hass: HomeAssistant, entry: SafecamConfigEntry) -> bool:
    if is_site_entry(entry):  # a site device over several cameras: fused here in pure Python (site_entry.py)
        return bool(await (await _module(hass, "site_entry")).async_setup_entry(hass, entry))
    if is_remote_entry(entry):  # a camera of an engine service, over HA's MQTT (remote.py)
        remote = await _module(hass, "remote")
        return bool(await remote.async_setup_remote_entry(hass, entry, PLATFORMS, _remove_stale_entities))
    await _async_ensure_engine(hass)
    local = await _module(hass, "local")  # the engine's worker and detector: in-process cameras only
    try:
        settings = await _async_settings(hass, entry)
    except ConfigError as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN, translation_key="invalid_scene", translation_placeholders={"error": str(err)}
        ) from err
    await _async_check_model(hass)
    source_url = await _async_source_url(hass, entry)

    runtime = local.LocalRuntime(hass, entry, source_url, settings)
    entry.runtime_data = runtime
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    _remove_stale_entities(hass, entry, runtime.expected_unique_ids)
    await runtime.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_update_listener))

    async def _async_stop_worker(_event: Event) -> None:
        await runtime.async_stop(clear_issues=False)  # HA shuts down: release the camera

    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _async_stop_worker))
    return True


async def _async_settings(hass: HomeAssistant, entry: SafecamConfigEntry) -> Settings:
    """An in-process camera's settings, parsed in the import executor: parsing a section imports its analyzer
    module (numpy), which on the event loop is HA's "Detected blocking call to import_module" (issue 20)."""
    return await hass.async_add_import_executor_job(Settings.from_options, dict(entry.options))


async def _async_ensure_engine(hass: HomeAssistant) -> None:
    """The engine's requirements, installed on demand; else a repair pointing to the add-on, and setup fails."""
    try:
        await async_ensure_engine(hass)
    except EngineUnavailable as err:
        async_report_engine_unavailable(hass, err)
        raise ConfigEntryError(
            translation_domain=DOMAIN, translation_key="engine_unavailable", translation_placeholders={"error": str(err)}
        ) from err
    async_clear_engine_unavailable(hass)


async def async_remove_entry(hass: HomeAssistant, entry: SafecamConfigEntry) -> None:
    for key in ("stream_unreachable", "engine_behind"):
        ir.async_delete_issue(hass, DOMAIN, f"{key}_{entry.entry_id}")


async def async_unload_entry(hass: HomeAssistant, entry: SafecamConfigEntry) -> bool:
    if is_site_entry(entry):
        return bool(await (await _module(hass, "site_entry")).async_unload_entry(hass, entry))
    if unload_ok := await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        await entry.runtime_data.async_stop()
    return unload_ok


async def _async_update_listener(hass: HomeAssistant, entry: SafecamConfigEntry) -> None:
    """Options changed: apply live when the same entities stay, else reload (counters restore)."""
    runtime = entry.runtime_data
    try:
        settings = await _async_settings(hass, entry)
    except ConfigError:
        hass.config_entries.async_schedule_reload(entry.entry_id)  # setup reports it
        return
    if settings.layout != runtime.settings.layout:
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    await runtime.async_apply_settings(settings)


async def _async_check_model(hass: HomeAssistant) -> None:
    """Resolve (and on first use download) the detector model; repairs say what to do if that fails."""
    try:
        await hass.async_add_executor_job(resolve_model, MODEL_NAME)
    except ModelError as err:
        corrupt = isinstance(err, ModelCorruptError)
        key = "model_corrupt" if corrupt else "model_missing"
        ir.async_create_issue(
            hass,
            DOMAIN,
            key,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=key,
            translation_placeholders={"model": MODEL_NAME, "error": redact_url(str(err))},
        )
        placeholders = {"model": MODEL_NAME}
        if corrupt:
            # A bad file does not fix itself: the user replaces it, then reloads.
            raise ConfigEntryError(translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders) from err
        # Missing: HA retries with backoff (the file may be placed, the network may return).
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders) from err
    for key in MODEL_ISSUES:
        ir.async_delete_issue(hass, DOMAIN, key)


async def _async_source_url(hass: HomeAssistant, entry: SafecamConfigEntry) -> str:
    data = entry.data
    if data.get(CONF_SOURCE_TYPE) != SOURCE_ENTITY:
        return engine_url(data[CONF_URL], data.get(CONF_USERNAME), data.get(CONF_PASSWORD))
    entity_id = data[CONF_ENTITY_ID]
    if (registry_id := data.get(CONF_ENTITY_REGISTRY_ID)) and (
        current := er.async_resolve_entity_id(er.async_get(hass), registry_id)
    ):
        entity_id = current  # follows a renamed camera entity
    try:
        url = await async_get_stream_source(hass, entity_id)
    except HomeAssistantError as err:
        # Not loaded yet (its integration starts after us), off, or removed: retry later.
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="camera_unavailable", translation_placeholders={"entity_id": entity_id}
        ) from err
    if not url:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN, translation_key="no_stream_source", translation_placeholders={"entity_id": entity_id}
        )
    return url


def _remove_stale_entities(hass: HomeAssistant, entry: SafecamConfigEntry, expected: set[str]) -> None:
    """Zones and gates removed in the options leave registry entries behind: remove them."""
    registry = er.async_get(hass)
    for reg_entry in er.async_entries_for_config_entry(registry, entry.entry_id):
        if reg_entry.unique_id not in expected:
            registry.async_remove(reg_entry.entity_id)
