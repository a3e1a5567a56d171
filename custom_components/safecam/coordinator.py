"""The Home Assistant side of one safecam camera: its settings, latest state, listeners, snapshots and repairs.

No engine import (design: a thin integration): a remote camera (remote.py, the engine as a service) and an
in-process one (local.py, the engine inside Home Assistant, the user's explicit choice) both build on
`SafecamRuntime`; only local.py imports the engine's worker and detector. Entities get pushed state, never poll.
Health repairs (stream unreachable, engine falling behind) are raised from the pushed state and a slow timer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval

from .const import (
    ANONYMIZATION_MODES,
    BEHIND_AFTER_S,
    BEHIND_FACTOR,
    CONF_ANONYMIZATION,
    CONF_FPS,
    CONF_SCENE,
    CONF_UNREACHABLE_AFTER,
    DEFAULT_ANONYMIZATION,
    DEFAULT_FPS,
    DOMAIN,
    HEALTH_CHECK_INTERVAL_S,
    STREAM_UNREACHABLE_AFTER_S,
)
from .contract import CameraState, Capabilities, SafetyEvent, capabilities
from .engine.config import SceneConfig, parse_scene
from .pictures import placeholder_jpeg, png_of
from .snapshots import SnapshotStore

type SafecamConfigEntry = ConfigEntry[SafecamRuntime]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the options flow controls."""

    fps: int
    anonymization: str
    scene: SceneConfig
    unreachable_after_s: float  # the stream-unreachable repair waits this long
    capabilities: Capabilities  # what decides which entities exist (contract.capabilities of the scene)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, sections: bool = True, announced: Capabilities | None = None) -> Settings:
        """Raises engine.config.ConfigError for a stored scene the engine no longer accepts.

        sections=False (a remote camera): the optional scene sections are kept as written and left to the engine
        that runs them (parsing them would import the analyzers, numpy included); `announced`: the capabilities
        the engine sent, else they are derived from the scene here with the same function.
        """
        anonymization = str(options.get(CONF_ANONYMIZATION, DEFAULT_ANONYMIZATION))
        scene = parse_scene(options.get(CONF_SCENE), sections=sections)
        return cls(
            fps=int(options.get(CONF_FPS, DEFAULT_FPS)),
            anonymization=anonymization if anonymization in ANONYMIZATION_MODES else DEFAULT_ANONYMIZATION,
            scene=scene,
            unreachable_after_s=(
                STREAM_UNREACHABLE_AFTER_S if (minutes := options.get(CONF_UNREACHABLE_AFTER)) is None else 60.0 * float(minutes)
            ),
            capabilities=announced if announced is not None else capabilities(scene.as_dict()),
        )

    @property
    def layout(self) -> Capabilities:
        """What decides which entities exist: a change reloads the entry (entities come or go)."""
        return self.capabilities


def analytics_of(state: CameraState | None, name: str) -> dict[str, Any] | None:
    """One analyzer's snapshot (CameraState.analytics[name]), None before it reported."""
    snapshot = state.analytics.get(name) if state is not None else None
    return snapshot if isinstance(snapshot, dict) else None


def safety_zone(state: CameraState | None, zone: str) -> dict[str, Any] | None:
    """The safety analyzer's state of one zone, if it reports that zone."""
    zones = (analytics_of(state, "safety") or {}).get("zones")
    found = zones.get(zone) if isinstance(zones, dict) else None
    return found if isinstance(found, dict) else None


class SafecamRuntime:
    """entry.runtime_data: the latest state and the listeners (the push hub); where the state comes from is the
    subclass's (local.LocalRuntime: a worker thread here; remote.RemoteRuntime: the engine's MQTT topics)."""

    def __init__(self, hass: HomeAssistant, entry: SafecamConfigEntry, settings: Settings) -> None:
        self.hass = hass
        self.entry = entry
        self.settings = settings
        self.state: CameraState | None = None
        self.available = True  # remote mode: False while the engine is gone (its last will); every entity follows
        self.expected_unique_ids: set[str] = set()  # filled by the platforms; the rest is stale
        self._listeners: list[CALLBACK_TYPE] = []
        self._event_listeners: list[Callable[[SafetyEvent], None]] = []
        self._placeholders: dict[str, bytes] = {}
        self.snapshots = SnapshotStore()  # last event snapshots (anonymized), served by snapshots.SnapshotView
        self._started = False
        self._closed = False
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._down_since: float | None = time.monotonic()
        self._behind_since: float | None = None
        self._issues: set[str] = set()  # raised by this runtime
        self._cleared: set[str] = set()  # known absent; issues persist across restarts, so not at first

    # ---- lifecycle ------------------------------------------------------------------------
    async def async_start(self) -> None:
        """Start; call after the platforms restored the gate totals."""
        self._started = True
        self._unsub_timer = async_track_time_interval(
            self.hass, self._async_check_health, timedelta(seconds=HEALTH_CHECK_INTERVAL_S)
        )

    async def async_stop(self, *, clear_issues: bool = True) -> None:
        """Stop (idempotent). clear_issues=False at HA shutdown: a camera still unreachable keeps its repair across
        the restart, and the next runtime clears it once video is back."""
        self._closed = True
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None
        if clear_issues:
            for key in list(self._issues):
                self._delete_issue(key)

    async def async_apply_settings(self, settings: Settings) -> None:
        """Options changed without changing which entities exist: apply live."""
        old, self.settings = self.settings, settings
        if settings.anonymization != old.anonymization:
            self.async_notify()  # the camera entity's picture changes
        self._async_check_health()  # e.g. another repair delay: raise or withdraw the repair now

    async def async_restore_gate_total(self, gate: str, direction: str, value: int) -> None:
        """A gate sensor restored its last value (where the engine keeps its own totals, it is only shown)."""

    async def async_reset_counters(self, gates: set[str] | None = None) -> None:
        """Gate totals (all, or the named gates) back to zero, in the engine and in HA."""
        raise NotImplementedError

    # ---- pictures (executor) --------------------------------------------------------------
    def _placeholder(self, text: str) -> bytes:
        if text not in self._placeholders:
            self._placeholders[text] = placeholder_jpeg(text)
        return self._placeholders[text]

    def snapshot_jpeg(self) -> bytes:
        """The anonymized frame, or an obscured placeholder; never a raw frame. Blocking."""
        return self._placeholder("no anonymized frame")

    @property
    def heatmap_total(self) -> int:
        """How much the occupancy heatmap has counted (the heatmap picture refreshes when it moves)."""
        return 0

    def heatmap_ready(self, window: str) -> bool:
        """Whether heatmap_png(window) shows heat (a remote engine's picture comes about once a minute)."""
        return True

    def heatmap_png(self, window: str) -> bytes:
        """The occupancy heatmap of a window over the anonymized view, PNG. Blocking. Without heat data (local.py has
        the engine's grids, remote.py the engine's pictures), the anonymized view alone."""
        return png_of(self.snapshot_jpeg())

    def diagnostics(self) -> dict[str, Any]:
        """What diagnostics show of where the state comes from (redacted by the caller)."""
        return {}

    # ---- push hub -------------------------------------------------------------------------
    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def async_add_event_listener(self, handle: Callable[[SafetyEvent], None]) -> CALLBACK_TYPE:
        self._event_listeners.append(handle)
        return lambda: self._event_listeners.remove(handle)

    @callback
    def async_notify(self) -> None:
        for update in list(self._listeners):
            update()

    # ---- repairs --------------------------------------------------------------------------
    @callback
    def _async_check_health(self, _now: datetime | None = None) -> None:
        if self._closed:
            return
        now = time.monotonic()
        state = self.state
        connected = state is not None and state.connected
        if connected:
            self._down_since = None
            self._delete_issue("stream_unreachable")
        else:
            if self._down_since is None:
                since = state.disconnected_since if state is not None else None
                self._down_since = since if since is not None else now
            down_s = now - self._down_since
            after_s = self.settings.unreachable_after_s
            if down_s < after_s and "stream_unreachable" in self._issues:
                self._delete_issue("stream_unreachable")  # the user gave the camera longer
            elif down_s >= after_s and "stream_unreachable" not in self._issues:
                reason = (state.error_reason if state is not None else None) or "unreachable"
                self._create_issue("stream_unreachable", {"minutes": str(int(down_s // 60)), "reason": reason})

        # Against what the camera can deliver: a 6 fps stream is not "behind" a 15 fps setting.
        target = min(self.settings.fps, state.target_fps or self.settings.fps) if state is not None else self.settings.fps
        behind = connected and state is not None and state.frames > 0 and state.analysis_fps < BEHIND_FACTOR * target
        if not behind:
            self._behind_since = None
            self._delete_issue("engine_behind")
        else:
            assert state is not None
            self._behind_since = self._behind_since or now
            if now - self._behind_since >= BEHIND_AFTER_S and "engine_behind" not in self._issues:
                self._create_issue(
                    "engine_behind",
                    {"fps": f"{state.analysis_fps:.1f}", "configured": str(self.settings.fps)},
                )

    def _issue_id(self, key: str) -> str:
        return f"{key}_{self.entry.entry_id}"

    def _create_issue(self, key: str, placeholders: dict[str, str]) -> None:
        self._issues.add(key)
        self._cleared.discard(key)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id(key),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=key,
            translation_placeholders={"name": self.entry.title, **placeholders},
        )

    def _delete_issue(self, key: str) -> None:
        if key not in self._cleared:
            self._issues.discard(key)
            self._cleared.add(key)
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(key))
