"""Bridges one engine `CameraWorker` to Home Assistant: push, never poll.

The worker thread calls `on_state(CameraState, events)`; we hop to the event loop with
`call_soon_threadsafe` and hand the state to the entities that subscribed. Blocking calls into
the worker (stop/join) run in the executor. Health repairs (stream unreachable, engine falling
behind) are raised from the pushed state and a slow timer.
"""

from __future__ import annotations

import contextlib
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
    MODEL_NAME,
    SAFETY_ZONE_KINDS,
    STREAM_UNREACHABLE_AFTER_S,
)
from .contract import CameraState, SafetyEvent
from .engine.config import SceneConfig, parse_scene
from .engine.detect import Detector, camera_inference_threads
from .engine.worker import CameraWorker
from .event_counts import event_types_of
from .snapshots import SnapshotStore

type SafecamConfigEntry = ConfigEntry[SafecamRuntime]
type GateTotals = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the options flow controls."""

    fps: int
    anonymization: str
    scene: SceneConfig
    unreachable_after_s: float  # the stream-unreachable repair waits this long

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Settings:
        """Raises engine.config.ConfigError for a stored scene the engine no longer accepts."""
        anonymization = str(options.get(CONF_ANONYMIZATION, DEFAULT_ANONYMIZATION))
        return cls(
            fps=int(options.get(CONF_FPS, DEFAULT_FPS)),
            anonymization=anonymization if anonymization in ANONYMIZATION_MODES else DEFAULT_ANONYMIZATION,
            scene=parse_scene(options.get(CONF_SCENE)),
            unreachable_after_s=(
                STREAM_UNREACHABLE_AFTER_S if (minutes := options.get(CONF_UNREACHABLE_AFTER)) is None else 60.0 * float(minutes)
            ),
        )

    @property
    def analytics(self) -> AnalyticsLayout:
        """Which analytics entities the scene makes meaningful (the engine builds the same analyzers)."""
        return AnalyticsLayout.of(self.scene)

    @property
    def layout(self) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], AnalyticsLayout, tuple[str, ...]]:
        """What decides which entities exist: zone names and kinds, gate names, the enabled analytics."""
        zones = tuple((z.name, z.kind) for z in self.scene.zones)
        return zones, tuple(g.name for g in self.scene.gates), self.analytics, self.occupancy_zones

    @property
    def occupancy_zones(self) -> tuple[str, ...]:
        """Zones with occupancy and dwell sensors: those under the scene's `occupancy:` section."""
        occupancy = self.scene.section("occupancy")  # engine.scene.occupancy.OccupancyConfig, or None
        return tuple(z.name for z in self.scene.zones if occupancy is not None and z.name in occupancy.zones)


@dataclass(frozen=True, slots=True)
class AnalyticsLayout:
    """The analytics entities of a camera, derived from its scene config like engine.scene.build_analyzers does."""

    falls: bool = False  # person down (analytics["falls"])
    ppe: bool = False  # PPE violation, people without PPE (analytics["ppe"])
    safety: bool = False  # safety rules: intruded/armed, metric rules status (analytics["safety"])
    distancing: bool = False
    congestion_zones: tuple[str, ...] = ()
    machine_zones: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()  # one event counter sensor each (event_counts.event_types_of)

    @classmethod
    def of(cls, scene: SceneConfig) -> AnalyticsLayout:
        rules = scene.section("safety")  # engine.scene.safety.SafetyConfig, or None
        safety = rules is not None or any(z.kind in SAFETY_ZONE_KINDS for z in scene.zones)
        falls = scene.section("falls")  # engine.scene.falls.FallsConfig, or None (falls off)
        return cls(
            falls=falls is not None and bool(falls.enabled),
            ppe=scene.section("ppe") is not None,
            safety=safety,
            # Worker pairs closer than distancing_m, or anyone near hazardous equipment.
            distancing=rules is not None and (rules.distancing_m is not None or bool(rules.hazardous)),
            congestion_zones=tuple(z.name for z in scene.zones if rules is not None and z.name in rules.congestion),
            machine_zones=tuple(z.name for z in scene.zones if z.kind == "equipment"),
            event_types=event_types_of(scene),
        )


def analytics_of(state: CameraState | None, name: str) -> dict[str, Any] | None:
    """One analyzer's snapshot (CameraState.analytics[name]), None before it reported."""
    snapshot = state.analytics.get(name) if state is not None else None
    return snapshot if isinstance(snapshot, dict) else None


def safety_zone(state: CameraState | None, zone: str) -> dict[str, Any] | None:
    """The safety analyzer's state of one zone, if it reports that zone."""
    zones = (analytics_of(state, "safety") or {}).get("zones")
    found = zones.get(zone) if isinstance(zones, dict) else None
    return found if isinstance(found, dict) else None


def _detector() -> Detector:
    """Runs in the worker thread. "auto": OpenVINO EP on x86-64, plain CPU EP elsewhere (aarch64)."""
    return Detector.from_catalog(MODEL_NAME, provider="auto", num_threads=camera_inference_threads("auto"))


class SafecamRuntime:
    """entry.runtime_data: the camera worker, the latest state and the listeners (the push hub)."""

    def __init__(self, hass: HomeAssistant, entry: SafecamConfigEntry, source_url: str, settings: Settings) -> None:
        self.hass = hass
        self.entry = entry
        self.settings = settings
        self.source_url = source_url  # may hold credentials: never log it
        self.state: CameraState | None = None
        self.available = True  # remote mode: False while the engine is gone (its last will); every entity follows
        self.expected_unique_ids: set[str] = set()  # filled by the platforms; the rest is stale
        self._listeners: list[CALLBACK_TYPE] = []
        self._event_listeners: list[Callable[[SafetyEvent], None]] = []
        self._restored: GateTotals = {}
        self._placeholders: dict[str, bytes] = {}
        self.snapshots = SnapshotStore()  # last event snapshots (anonymized), served by snapshots.SnapshotView
        self._generation = 0
        self._started = False
        self._closed = False
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._down_since: float | None = time.monotonic()
        self._behind_since: float | None = None
        self._issues: set[str] = set()  # raised by this runtime
        self._cleared: set[str] = set()  # known absent; issues persist across restarts, so not at first
        self.worker = self._new_worker()

    # ---- worker lifecycle -----------------------------------------------------------------
    def _new_worker(self) -> CameraWorker:
        self._generation += 1
        generation = self._generation
        self._seq_floor = 0  # states of this worker older than its last counter reset are dropped

        def on_state(state: CameraState, events: list[SafetyEvent]) -> None:
            # Worker thread. A late push from a stopped worker or after unload is dropped.
            if self._closed:
                return
            with contextlib.suppress(RuntimeError):  # event loop already closed (shutdown)
                self.hass.loop.call_soon_threadsafe(self._async_push, generation, state, list(events))

        return CameraWorker(
            self.entry.title,
            self.source_url,
            _detector,
            scene=self.settings.scene,
            fps=self.settings.fps,
            on_state=on_state,
            anonymization=self.settings.anonymization,
        )

    async def async_start(self) -> None:
        """Start analysing; call after the platforms restored the gate totals."""
        # Not running yet: the worker's lock is free, so these are instant.
        self.worker.restore_gate_totals(self._restored)
        self.worker.start()
        self._started = True
        self._unsub_timer = async_track_time_interval(
            self.hass, self._async_check_health, timedelta(seconds=HEALTH_CHECK_INTERVAL_S)
        )

    async def async_stop(self, *, clear_issues: bool = True) -> None:
        """Stop and join the worker thread without blocking the event loop (idempotent).

        clear_issues=False at HA shutdown: a camera still unreachable keeps its repair across the
        restart, and the next runtime clears it once video is back.
        """
        self._closed = True
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None
        await self.hass.async_add_executor_job(self.worker.stop)
        if clear_issues:
            for key in list(self._issues):
                self._delete_issue(key)

    async def async_apply_settings(self, settings: Settings) -> None:
        """Options changed without changing which entities exist: apply live."""
        old, self.settings = self.settings, settings
        if settings.fps != old.fps:
            # The frame rate is fixed for a worker's life: restart only the worker, keep the counts.
            old_worker = self.worker
            self.worker = new_worker = self._new_worker()
            await self.hass.async_add_executor_job(old_worker.stop)
            self._merge_totals(old_worker.state.gates)
            if self._closed or self.worker is not new_worker:
                return  # unloaded, or a newer options change replaced this worker while we waited
            self.worker.restore_gate_totals(self._restored)
            self.worker.start()
            self._behind_since = None
        elif settings.scene != old.scene:
            await self.hass.async_add_executor_job(self.worker.set_scene, settings.scene)
        if settings.anonymization != old.anonymization:
            if settings.fps == old.fps:  # (a new worker already started with the new mode)
                await self.hass.async_add_executor_job(self.worker.set_anonymization, settings.anonymization)
            self.async_notify()  # the camera entity's picture changes
        self._async_check_health()  # e.g. another repair delay: raise or withdraw the repair now

    def _merge_totals(self, totals: GateTotals) -> None:
        for gate, counts in totals.items():
            saved = self._restored.setdefault(gate, {"in": 0, "out": 0})
            for direction in ("in", "out"):
                saved[direction] = max(saved.get(direction, 0), int(counts.get(direction, 0)))

    async def async_restore_gate_total(self, gate: str, direction: str, value: int) -> None:
        """A gate sensor restored its last value: the engine continues counting from it."""
        self._merge_totals({gate: {direction: value}})
        totals = {g: dict(c) for g, c in self._restored.items()}
        if self._started:
            await self.hass.async_add_executor_job(self.worker.restore_gate_totals, totals)
        else:
            self.worker.restore_gate_totals(totals)

    async def async_reset_counters(self, gates: set[str] | None = None) -> None:
        """Gate totals (all, or the named gates) back to zero, in the engine and in HA.

        The worker publishes the reset state at once; states it queued before carry the old
        totals and are dropped, so a sensor never jumps back up (a total_increasing meter reset).
        """
        names = {g.name for g in self.settings.scene.gates} if gates is None else set(gates)
        for name in names & set(self._restored):
            self._restored[name] = {"in": 0, "out": 0}
        worker = self.worker
        state = await self.hass.async_add_executor_job(worker.reset_counters, names)
        if self._closed or worker is not self.worker:
            return  # unloaded, or the worker was replaced meanwhile (it started from the totals kept above)
        self._seq_floor = state.seq
        self.state = state
        self.async_notify()

    # ---- frames (executor) ----------------------------------------------------------------
    def _placeholder(self, text: str) -> bytes:
        if text not in self._placeholders:
            self._placeholders[text] = self.worker.placeholder_jpeg(text)
        return self._placeholders[text]

    def snapshot_jpeg(self) -> bytes:
        """The anonymized frame, or an obscured placeholder; never a raw frame. Blocking."""
        return self.worker.latest_jpeg() or self._placeholder("no anonymized frame")

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

    @callback
    def _async_push(self, generation: int, state: CameraState, events: list[SafetyEvent]) -> None:
        if self._closed or generation != self._generation or state.seq < self._seq_floor:
            return
        self.state = state
        self.async_notify()
        for event in events:
            for handle in list(self._event_listeners):
                handle(event)
        self._async_check_health()

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
