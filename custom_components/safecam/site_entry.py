"""The site device: one config entry per site, fusing the safecam cameras on it (logic: site_fusion.py).

A site listens to its cameras' runtimes (anything with `.state` (CameraState) and
`async_add_listener`: this host's workers or remote ones) and keeps:
- occupancy from its perimeter gates (GateFlowOccupancy: sum in - sum out, back to zero when
  every camera of the site has seen nobody for `empty_reset_s`);
- the people on the shared floor map: each calibrated camera reports floor points in metres
  (analytics["floor"], computed by the engine), merged by position and time only (SiteFusion);
- a heatmap of the fused people on the floor plan (SiteHeatmap).
All of it is pure Python + Pillow (Home Assistant's own requirement): a site needs none of the engine's
requirements, on any install (HA OS and Container included), whatever runs its cameras.
Cameras added, removed or reloaded later are picked up (config entry changes, plus a 1 s check).
The floor plan and heatmap pictures are drawn from geometry on the site's plan, never camera pixels.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from homeassistant.components.image import ImageEntity
from homeassistant.components.sensor import RestoreSensor, SensorEntity, SensorStateClass
from homeassistant.config_entries import SIGNAL_CONFIG_ENTRY_CHANGED, ConfigEntry, ConfigEntryChange, ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util
from PIL import Image

from .const import (
    CONF_EMPTY_RESET_S,
    CONF_FUSION_RADIUS_M,
    CONF_PLAN_DEPTH_M,
    CONF_PLAN_IMAGE,
    CONF_PLAN_WIDTH_M,
    CONF_SCENE,
    CONF_SITE_CAMERAS,
    CONF_SITE_GATES,
    DEFAULT_PLAN_DEPTH_M,
    DEFAULT_PLAN_WIDTH_M,
    DOMAIN,
)
from .engine.config import ConfigError
from .entries import camera_entries, is_site_entry, site_camera_entries
from .site_fusion import (
    DEFAULT_EMPTY_RESET_S,
    DEFAULT_RADIUS_M,
    FloorPlan,
    FusedPerson,
    GateFlowOccupancy,
    SiteFusion,
    SiteGate,
    SiteHeatmap,
    floor_points,
    load_picture,
    render_floor_plan,
    render_site_heatmap,
)

_LOGGER = logging.getLogger(__name__)

type SiteConfigEntry = ConfigEntry[SiteRuntime]

PLATFORMS = [Platform.IMAGE, Platform.SENSOR]
CHECK_INTERVAL = timedelta(seconds=1)  # cameras that stopped reporting age out; new runtimes are found
FLOOR_PLAN_REFRESH_S = 1.0  # the positions picture changes at most this often
HEATMAP_REFRESH_S = 60.0
HEATMAP_WINDOW = "hour"
MAX_RADIUS_M = 5.0
MAX_EMPTY_RESET_S = 86400.0


# ---- settings ----------------------------------------------------------------------------------


def gate_choice(camera: str, gate: str, inward: str) -> str:
    return f"{camera}/{gate}/{inward}"


def parse_gate_choice(value: object) -> SiteGate:
    """ "<camera entry id>/<gate name>/<in|out>" -> SiteGate (gate names may hold "/"); ConfigError if malformed."""
    text = value.strip() if isinstance(value, str) else ""
    camera, _, rest = text.partition("/")
    gate, _, inward = rest.rpartition("/")
    if not camera or not gate or inward not in ("in", "out"):
        raise ConfigError(f"site gate {value!r}: expected camera/gate/in or camera/gate/out")
    return SiteGate(camera, gate, inward)


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float, what: str) -> float:
    value = options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"site {what}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise ConfigError(f"site {what}: {number:g} is outside {low:g} to {high:g}")
    return number


@dataclass(frozen=True, slots=True)
class SiteSettings:
    cameras: tuple[str, ...]  # camera entry ids; () = every safecam camera
    gates: tuple[SiteGate, ...]
    empty_reset_s: float
    radius_m: float
    plan: FloorPlan
    plan_image: str | None  # under <config>/www

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SiteSettings:
        """The site entry's options, checked for form (one-line ConfigError); cameras are checked by validate_site."""
        cameras = options.get(CONF_SITE_CAMERAS) or []
        if not isinstance(cameras, list) or not all(isinstance(c, str) and c for c in cameras):
            raise ConfigError("site cameras: expected a list of camera entries")
        raw_gates = options.get(CONF_SITE_GATES) or []
        if not isinstance(raw_gates, list):
            raise ConfigError("site gates: expected a list of camera/gate/direction choices")
        gates = [parse_gate_choice(g) for g in raw_gates]
        seen: set[tuple[str, str]] = set()
        for g in gates:
            if (g.camera, g.gate) in seen:
                raise ConfigError(f"site gate {g.gate!r}: chosen twice (pick the one direction that enters the site)")
            seen.add((g.camera, g.gate))
        width = _number(options, CONF_PLAN_WIDTH_M, DEFAULT_PLAN_WIDTH_M, 1.0, 10_000.0, "floor plan width (m)")
        depth = _number(options, CONF_PLAN_DEPTH_M, DEFAULT_PLAN_DEPTH_M, 1.0, 10_000.0, "floor plan depth (m)")
        image = str(options.get(CONF_PLAN_IMAGE) or "").strip() or None
        if image is not None and (Path(image).is_absolute() or ".." in Path(image).parts):
            raise ConfigError(f"site floor plan picture {image!r}: give a path inside <config>/www, e.g. safecam/plan.png")
        return cls(
            cameras=tuple(dict.fromkeys(cameras)),
            gates=tuple(gates),
            empty_reset_s=_number(options, CONF_EMPTY_RESET_S, DEFAULT_EMPTY_RESET_S, 0.0, MAX_EMPTY_RESET_S, "empty reset (s)"),
            radius_m=_number(options, CONF_FUSION_RADIUS_M, DEFAULT_RADIUS_M, 0.1, MAX_RADIUS_M, "fusion radius (m)"),
            plan=FloorPlan(width, depth),
            plan_image=image,
        )


def _camera_gates(entry: ConfigEntry) -> set[str]:
    """The gate names a camera has: its stored scene, and what its runtime reports (remote cameras)."""
    scene = entry.options.get(CONF_SCENE) or {}
    names = {str(g.get("name")) for g in scene.get("gates") or [] if isinstance(g, dict)}
    state = getattr(getattr(entry, "runtime_data", None), "state", None)
    return names | set(getattr(state, "gates", None) or {})


def gate_choices(hass: HomeAssistant) -> list[tuple[str, str]]:
    """(value, label) of every camera/gate/direction the site form offers."""
    out = []
    for entry in camera_entries(hass):
        for gate in sorted(_camera_gates(entry)):
            for inward in ("in", "out"):
                out.append((gate_choice(entry.entry_id, gate, inward), f"{entry.title} / {gate} / {inward}"))
    return out


def plan_path(hass: HomeAssistant, image: str) -> Path:
    return Path(hass.config.path("www")) / image


def load_plan_picture(hass: HomeAssistant, image: str | None) -> Image.Image | None:
    """The floor plan picture (RGB), None without one. ConfigError if it is unreadable. Blocking."""
    if image is None:
        return None
    www = Path(hass.config.path("www")).resolve()
    path = plan_path(hass, image).resolve()
    if not path.is_relative_to(www):
        raise ConfigError(f"site floor plan picture {image!r}: give a path inside <config>/www")
    try:
        return load_picture(str(path))
    except (OSError, ValueError, Image.DecompressionBombError):  # missing, not a picture, truncated, huge
        raise ConfigError(f"site floor plan picture {image!r}: no readable picture at <config>/www/{image}") from None


async def async_validate_site(hass: HomeAssistant, options: Mapping[str, Any]) -> SiteSettings:
    """SiteSettings.from_options plus: the cameras and gates exist, the plan picture reads. ConfigError otherwise."""
    settings = SiteSettings.from_options(options)
    cameras = {e.entry_id: e for e in camera_entries(hass)}
    for camera in settings.cameras:
        if camera not in cameras:
            raise ConfigError(f"site camera {camera!r}: no such safecam camera")
    for g in settings.gates:
        if g.camera not in cameras:
            raise ConfigError(f"site gate {gate_choice(g.camera, g.gate, g.inward)!r}: no such safecam camera")
        if g.gate not in (names := _camera_gates(cameras[g.camera])):
            have = ", ".join(sorted(names)) or "none"
            raise ConfigError(f"site gate {g.gate!r}: camera {cameras[g.camera].title!r} has no such gate (its gates: {have})")
        if settings.cameras and g.camera not in settings.cameras:
            raise ConfigError(f"site gate {g.gate!r}: its camera {cameras[g.camera].title!r} is not one of the site's cameras")
    await hass.async_add_executor_job(load_plan_picture, hass, settings.plan_image)
    return settings


# ---- runtime -----------------------------------------------------------------------------------


class SiteRuntime:
    """entry.runtime_data of a site: follows the cameras, fuses them, pushes to the site's entities."""

    def __init__(self, hass: HomeAssistant, entry: SiteConfigEntry, settings: SiteSettings, picture: Image.Image | None) -> None:
        self.hass, self.entry, self.settings, self.picture = hass, entry, settings, picture
        self.flows = GateFlowOccupancy(settings.gates, (), settings.empty_reset_s)
        self.fusion = SiteFusion(radius_m=settings.radius_m)
        self.heatmap = SiteHeatmap(settings.plan)
        self.people: list[FusedPerson] = []
        self.seen_by_cameras = 0  # the people on the map as the cameras report them together, before merging
        self._subscribed: dict[str, tuple[Any, CALLBACK_TYPE]] = {}  # camera entry id -> (runtime, unsubscribe)
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubs: list[CALLBACK_TYPE] = []

    @property
    def occupancy(self) -> int:
        return self.flows.occupancy

    def site_cameras(self) -> set[str]:
        return {e.entry_id for e in site_camera_entries(self.hass, self.settings.cameras)}

    async def async_start(self) -> None:
        self._unsubs.append(async_dispatcher_connect(self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._async_entry_changed))
        self._unsubs.append(async_track_time_interval(self.hass, self._async_tick, CHECK_INTERVAL))
        self._async_scan()

    async def async_stop(self) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        for _, unsub in self._subscribed.values():
            unsub()
        self._subscribed.clear()

    @callback
    def _async_entry_changed(self, change: ConfigEntryChange, entry: ConfigEntry) -> None:
        if entry.domain == DOMAIN and not is_site_entry(entry):
            self._async_scan()

    @callback
    def _async_tick(self, _now: datetime) -> None:
        self._async_scan()
        self._async_refresh(time.monotonic())

    @callback
    def _async_scan(self) -> None:
        """(Re)subscribe to the runtimes of the site's loaded cameras; forget removed cameras."""
        wanted = self.site_cameras()
        self.flows.set_cameras(wanted)
        now = time.monotonic()
        for camera in wanted | set(self._subscribed):
            entry = self.hass.config_entries.async_get_entry(camera)
            runtime: Any = getattr(entry, "runtime_data", None) if entry is not None else None
            usable = (
                camera in wanted
                and entry is not None
                and entry.state is ConfigEntryState.LOADED
                and hasattr(runtime, "state")
                and hasattr(runtime, "async_add_listener")
            )
            current = self._subscribed.get(camera)
            if current is not None and (not usable or current[0] is not runtime):
                self._subscribed.pop(camera)[1]()
                self.flows.update(now, camera, {}, None)  # no video from it: it no longer vouches for "empty"
                current = None
            if usable and current is None:
                unsub = runtime.async_add_listener(lambda c=camera, r=runtime: self._async_camera_update(c, r))
                self._subscribed[camera] = (runtime, unsub)
                self._async_camera_update(camera, runtime)
        for camera in set(self.fusion.views) - wanted:
            self.fusion.forget(camera)

    @callback
    def _async_camera_update(self, camera: str, runtime: Any) -> None:
        state = runtime.state
        if state is None or self._subscribed.get(camera, (None,))[0] is not runtime:
            return
        t = time.monotonic()  # one clock for every camera (their own timelines differ)
        connected = bool(getattr(state, "connected", False))
        self.flows.update(t, camera, state.gates or {}, int(state.people) if connected else None)
        points = floor_points(state.analytics) if connected else None
        if points is None:
            self.fusion.forget(camera)  # not calibrated (or no video): not on the map
        else:
            self.fusion.update_floor(camera, t, points)
        self._async_refresh(t)

    @callback
    def _async_refresh(self, t: float) -> None:
        # The map is the plan: people beyond it (across the street, or near a camera's horizon where
        # a pixel is metres) are not on the site.
        self.people = [p for p in self.fusion.people(t) if self.settings.plan.contains(p.x, p.y)]
        self.seen_by_cameras = sum(len(p.observations) for p in self.people)
        self.heatmap.add(t, self.people)
        for update in list(self._listeners):
            update()

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    # ---- pictures (executor) -------------------------------------------------------------------
    def floor_plan_png(self, people: list[FusedPerson]) -> bytes:
        return render_floor_plan(self.settings.plan, people, self.picture)

    def heatmap_png(self, window: str = HEATMAP_WINDOW) -> bytes:
        return render_site_heatmap(self.settings.plan, self.heatmap.grid(window), self.picture)


async def async_setup_entry(hass: HomeAssistant, entry: SiteConfigEntry) -> bool:
    try:
        settings = SiteSettings.from_options(entry.options)
    except ConfigError as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN, translation_key="invalid_site", translation_placeholders={"error": str(err)}
        ) from err
    try:
        picture = await hass.async_add_executor_job(load_plan_picture, hass, settings.plan_image)
    except ConfigError as err:
        _LOGGER.warning("safecam site %s: %s; drawing a grid instead", entry.title, err)  # the map still works
        picture = None
    runtime = SiteRuntime(hass, entry, settings, picture)
    entry.runtime_data = runtime
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    await runtime.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    return True


async def _async_reload(hass: HomeAssistant, entry: SiteConfigEntry) -> None:
    hass.config_entries.async_schedule_reload(entry.entry_id)  # the people sensor restores its count


async def async_unload_entry(hass: HomeAssistant, entry: SiteConfigEntry) -> bool:
    if unload_ok := await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        await entry.runtime_data.async_stop()
    return unload_ok


# ---- entities ----------------------------------------------------------------------------------


class SiteEntity(Entity):
    """An entity of the site device; writes its state only when what it shows changed."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: SiteConfigEntry, key: str) -> None:
        self._site: SiteRuntime = entry.runtime_data
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_translation_key = key
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)}, name=entry.title, manufacturer="safecam", model="Site"
        )
        self._shown: Any = None

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._site.async_add_listener(self._async_site_updated))
        self._update()
        self._shown = self._shown_value()

    def _update(self) -> None:
        """Set the _attr_* values from the site runtime."""

    def _shown_value(self) -> Any:
        return None

    @callback
    def _async_site_updated(self) -> None:
        self._update()
        if (shown := self._shown_value()) != self._shown:
            self._shown = shown
            self.async_write_ha_state()


class SitePeopleSensor(SiteEntity, RestoreSensor):
    """People on the site from the perimeter gates (entries - exits); restored across restarts."""

    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, entry: SiteConfigEntry) -> None:
        super().__init__(entry, "site_people")
        self._attr_extra_state_attributes = {}

    async def async_added_to_hass(self) -> None:
        data = await self.async_get_last_sensor_data()
        flows = self._site.flows
        if data is not None and flows.entries == flows.exits == 0:
            with contextlib.suppress(TypeError, ValueError):  # unknown: start from zero
                flows.occupancy = max(0, int(float(data.native_value)))  # type: ignore[arg-type]
        await super().async_added_to_hass()

    def _update(self) -> None:
        flows = self._site.flows
        self._attr_native_value = flows.occupancy
        self._attr_extra_state_attributes = {"entries": flows.entries, "exits": flows.exits}

    def _shown_value(self) -> Any:
        return self._attr_native_value, dict(self._attr_extra_state_attributes)


class SiteOnMapSensor(SiteEntity, SensorEntity):
    """People on the floor map: the calibrated cameras' people, each person seen by several cameras once."""

    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, entry: SiteConfigEntry) -> None:
        super().__init__(entry, "site_people_on_map")
        self._attr_extra_state_attributes = {}

    def _update(self) -> None:
        people = self._site.people
        self._attr_native_value = len(people)
        self._attr_extra_state_attributes = {
            "seen_by_cameras": self._site.seen_by_cameras,  # the sum over cameras, before merging
            "merged": sum(len(p.cameras) > 1 for p in people),
            "cameras_on_map": len(self._site.fusion.views),
        }

    def _shown_value(self) -> Any:
        return self._attr_native_value, dict(self._attr_extra_state_attributes)


def site_sensors(entry: SiteConfigEntry) -> list[SensorEntity]:
    return [SitePeopleSensor(entry), SiteOnMapSensor(entry)]


class _SiteImage(SiteEntity, ImageEntity):
    _attr_content_type = "image/png"
    _refresh_s = 1.0

    def __init__(self, hass: HomeAssistant, entry: SiteConfigEntry, key: str) -> None:
        SiteEntity.__init__(self, entry, key)
        ImageEntity.__init__(self, hass)
        self._refreshed = 0.0
        self._content: Any = None  # what the picture showed at the last new picture
        self._cached: tuple[Any, bytes] | None = None

    def _content_now(self) -> Any:
        raise NotImplementedError

    def _update(self) -> None:
        content, now = self._content_now(), time.monotonic()
        first = self._attr_image_last_updated is None
        if first or (content != self._content and now - self._refreshed >= self._refresh_s):
            self._content, self._refreshed = content, now
            self._attr_image_last_updated = dt_util.utcnow()

    def _shown_value(self) -> Any:
        return self._attr_image_last_updated

    def _png(self) -> bytes:
        raise NotImplementedError

    async def async_image(self) -> bytes | None:
        stamp = self._attr_image_last_updated
        if self._cached is not None and self._cached[0] == stamp:
            return self._cached[1]
        png = await self.hass.async_add_executor_job(self._png)
        self._cached = (stamp, png)
        return png


class SiteFloorPlanImage(_SiteImage):
    """The floor plan with a dot per person on the map now (green: merged from several cameras)."""

    _refresh_s = FLOOR_PLAN_REFRESH_S

    def __init__(self, hass: HomeAssistant, entry: SiteConfigEntry) -> None:
        super().__init__(hass, entry, "site_floor_plan")
        self._people: list[FusedPerson] = []

    def _content_now(self) -> Any:
        return tuple((round(p.x, 1), round(p.y, 1), len(p.cameras)) for p in self._site.people)

    def _update(self) -> None:
        stamp = self._attr_image_last_updated
        super()._update()
        if self._attr_image_last_updated != stamp:
            self._people = list(self._site.people)  # the picture shows the people of its timestamp

    def _png(self) -> bytes:
        return self._site.floor_plan_png(self._people)


class SiteHeatmapImage(_SiteImage):
    """Where the site's people were in the last hour, on the floor plan."""

    _refresh_s = HEATMAP_REFRESH_S

    def __init__(self, hass: HomeAssistant, entry: SiteConfigEntry) -> None:
        super().__init__(hass, entry, "site_heatmap")

    def _content_now(self) -> Any:
        return self._site.heatmap.total

    def _png(self) -> bytes:
        return self._site.heatmap_png()


def site_images(hass: HomeAssistant, entry: SiteConfigEntry) -> list[ImageEntity]:
    return [SiteFloorPlanImage(hass, entry), SiteHeatmapImage(hass, entry)]
