"""In-process analysis: the engine's `CameraWorker` runs inside Home Assistant (the user's explicit choice).

The only integration module that imports the engine's analysis (OpenCV, ONNX Runtime, numpy). It is imported
only for in-process entries, after `inprocess.async_ensure_engine` installed the engine's requirements through Home
Assistant's requirements mechanism (engine/requirements.py owns the list); where they cannot install (HA OS and
the official container are musl; no wheels), setup says so and points to the add-on.

The worker thread calls `on_state(CameraState, events)`; we hop to the event loop with `call_soon_threadsafe`
and hand the state to the entities. Blocking calls into the worker (stop/join) run in the executor.
"""

from __future__ import annotations

import contextlib
from typing import Any

from homeassistant.core import HomeAssistant, callback

from .const import MODEL_NAME
from .contract import CameraState, SafetyEvent
from .coordinator import SafecamConfigEntry, SafecamRuntime, Settings
from .engine.detect import Detector, camera_inference_threads
from .engine.scene.heatmap import heatmap_store, render_heatmap_jpeg
from .engine.worker import CameraWorker

type GateTotals = dict[str, dict[str, int]]


def _detector() -> Detector:
    """Runs in the worker thread. "auto": OpenVINO EP on x86-64, plain CPU EP elsewhere (aarch64)."""
    return Detector.from_catalog(MODEL_NAME, provider="auto", num_threads=camera_inference_threads("auto"))


class LocalRuntime(SafecamRuntime):
    """entry.runtime_data of an in-process camera: the engine's worker thread, here."""

    def __init__(self, hass: HomeAssistant, entry: SafecamConfigEntry, source_url: str, settings: Settings) -> None:
        super().__init__(hass, entry, settings)
        self.source_url = source_url  # may hold credentials: never log it
        self._restored: GateTotals = {}
        self._generation = 0
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
        await super().async_start()

    async def async_stop(self, *, clear_issues: bool = True) -> None:
        """Stop and join the worker thread without blocking the event loop (idempotent)."""
        self._closed = True
        await self.hass.async_add_executor_job(self.worker.stop)
        await super().async_stop(clear_issues=clear_issues)

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

    # ---- pictures (executor) --------------------------------------------------------------
    def snapshot_jpeg(self) -> bytes:
        """The anonymized frame, or an obscured placeholder; never a raw frame. Blocking."""
        return self.worker.latest_jpeg() or self._placeholder("no anonymized frame")

    @property
    def heatmap_total(self) -> int:
        return heatmap_store(self.worker.camera).total

    def heatmap_png(self, window: str) -> bytes:
        return render_heatmap_jpeg(heatmap_store(self.worker.camera).grid(window), self.snapshot_jpeg())

    def diagnostics(self) -> dict[str, Any]:
        return {"worker": {"camera": self.worker.camera, "fps": self.worker.fps, "source_url": self.source_url}}

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
