"""Per-camera worker thread: source -> pipeline -> anonymized JPEG + state pushed to a callback.

This is where raw frames live and die. What leaves is `CameraState` (geometry and counts),
`SafetyEvent`s and JPEG bytes encoded from the anonymized frame only.
The worker restarts its loop with backoff after any failure, and paces file sources in real
time (looping them) so a demo clip behaves like a camera. On a live camera, when a frame takes longer
to analyse than its slot, `FpsGovernor` lowers the analysis rate (never below 1 fps) and raises it
again when there is headroom, so frames are skipped on a fixed grid at the source instead of at random
in the decode queue. Files keep the configured rate by default: which frames are analysed, and so every
count, is then the same on any machine (a slow one plays the clip late, shown in `lag_s`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from ..contract import CameraState
from .anonymize import AnonymizerConfig, placeholder
from .config import SceneConfig
from .detect import Detector
from .models import ModelError
from .pipeline import CameraPipeline, FrameResult, PipelineConfig
from .render import OnDemandRenderer
from .sources import (
    FROZEN_AFTER_S,
    BackgroundReader,
    ReconnectingSource,
    SourceError,
    ThrottledSource,
    open_source,
    redact_url,
    throttle,
)
from .types import EVENT_TYPES, SafetyEvent
from .watchdog import Watchdog

_LOGGER = logging.getLogger(__name__)
STALE_AFTER_S = 5.0  # an anonymized frame older than this is not served as live


StateCallback = Callable[[CameraState, list[SafetyEvent]], None]


class FpsGovernor:
    """The analysis rate that the machine can sustain: stepped down when processing a frame takes longer
    than its slot (1/fps), stepped back up towards the configured rate when there is headroom.

    `update(busy_s, now)` gets the time one frame kept the worker busy; it returns True when `fps` changed.
    Changes are at least `settle_s` apart, so one slow frame (a GC pause, a model warm-up) does not swing it.
    """

    DOWN_LOAD = 0.9  # busy for more than 90 % of the slot: cannot keep the rate
    UP_LOAD = 0.6  # the next rate up would still leave this much headroom
    TARGET_LOAD = 0.75  # a new rate aims at this share of the slot

    def __init__(self, configured: float, *, settle_s: float = 3.0, min_samples: int = 5) -> None:
        self.configured = configured
        self.floor = min(1.0, configured)  # never below 1 fps (a configured rate below 1 is kept as is)
        self.fps = configured
        self.settle_s = settle_s
        self.min_samples = min_samples
        self.busy_s: float | None = None  # smoothed processing time per frame
        self._samples = 0
        self._changed_at: float | None = None

    def update(self, busy_s: float, now: float) -> bool:
        ema = busy_s if self.busy_s is None else 0.7 * self.busy_s + 0.3 * busy_s
        self.busy_s = ema
        self._samples += 1
        if self._samples < self.min_samples or (self._changed_at is not None and now - self._changed_at < self.settle_s):
            return False
        new = self.fps
        if ema * self.fps > self.DOWN_LOAD and self.fps > self.floor:
            new = max(self.floor, min(self.fps * 0.8, self.TARGET_LOAD / ema))
        elif self.fps < self.configured:
            up = min(self.configured, self.fps * 1.25)
            if ema * up < self.UP_LOAD:
                new = up
        new = self.configured if new >= self.configured else max(self.floor, round(new, 1))
        if new == self.fps:
            return False
        self.fps, self._changed_at = new, now
        return True


class CameraWorker:
    def __init__(
        self,
        camera: str,
        source_url: str,
        detector_factory: Callable[[], Detector],
        *,
        scene: SceneConfig | None = None,
        fps: float = 5.0,
        on_state: StateCallback | None = None,
        jpeg_quality: int = 80,
        restart_backoff_max_s: float = 60.0,
        hang_after_s: float = 60.0,
        frozen_after_s: float = FROZEN_AFTER_S,
        anonymization: str | AnonymizerConfig | None = None,
        adaptive_fps: bool | None = None,
    ) -> None:
        """adaptive_fps: lower the rate while the machine cannot keep it (None: for live sources only)."""
        self.camera = camera
        self._adaptive_fps = adaptive_fps
        self.source_url = source_url
        self._detector_factory = detector_factory
        self._scene = scene or SceneConfig()
        self.fps = fps
        self._on_state = on_state
        self._jpeg_quality = jpeg_quality
        self._backoff_max = restart_backoff_max_s
        self._stop = threading.Event()
        # The current loop thread's own stop: set by stop(), or by the watchdog when it abandons a hung run.
        self._run_stop = threading.Event()
        self._hang_after_s = hang_after_s
        self._frozen_after_s = frozen_after_s
        self._watch: Watchdog | None = None  # the current loop run's bounded steps
        self._supervisor: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # The newest analysed frame, rendered only when a picture is asked for (latest_jpeg).
        self._renderer: OnDemandRenderer | None = None
        self._restored_gates: dict[str, dict[str, int]] = {}
        # Changes requested from other threads; the worker thread applies them between frames,
        # so callers never wait for an inference and the pipeline is only touched by its thread.
        self._pending_scene: SceneConfig | None = None
        self._pending_restore = False
        self._pending_reset: set[str] = set()  # gates reset by reset_counters, not yet zeroed in the pipeline
        self._anonymizer = self._anonymizer_config(anonymization)
        self._pending_anonymizer: AnonymizerConfig | None = None
        # Kept across loop restarts: what the machine sustains does not change with a reconnect.
        self.governor = FpsGovernor(fps)
        self.state = CameraState(camera)

    # ---- control -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread; a second call while it runs does nothing."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name=f"watchdog-safecam-{self.camera}", daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        self._run_stop = run_stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(run_stop,), name=f"safecam-{self.camera}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._supervisor is not None:  # first: it may be starting a new run right now
            self._supervisor.join(timeout)
            self._supervisor = None
        self._run_stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # blocked in a camera open/read; it exits at its timeout
                _LOGGER.warning("safecam camera %s: worker still stopping after %.0f s", self.camera, timeout)
            self._thread = None
        self._set_state(running=False)

    def set_scene(self, scene: SceneConfig) -> None:
        """New zones/gates apply at the next frame, without restarting the stream."""
        with self._lock:
            self._scene = self._pending_scene = scene

    @staticmethod
    def _anonymizer_config(value: str | AnonymizerConfig | None) -> AnonymizerConfig:
        if isinstance(value, AnonymizerConfig):
            return value
        return AnonymizerConfig() if value is None else AnonymizerConfig(mode=value)

    def set_anonymization(self, value: str | AnonymizerConfig) -> None:
        """Another anonymization mode (full_frame, body, head) from the next frame on, without restarting."""
        config = self._anonymizer_config(value)  # raises ValueError on an unknown mode, in the caller's thread
        with self._lock:
            self._anonymizer = self._pending_anonymizer = config

    def restore_gate_totals(self, totals: dict[str, dict[str, int]]) -> None:
        """Cumulative gate counters survive restarts: HA hands back what it last recorded."""
        with self._lock:
            self._restored_gates = {k: dict(v) for k, v in totals.items()}
            self._pending_restore = True

    def reset_counters(self, gates: Iterable[str] | None = None) -> CameraState:
        """Gate totals (all, or the named gates) back to zero; returns the state that shows it.

        From this call on, every published state shows the reset totals: the pipeline is zeroed
        between frames, and a frame already in flight publishes zeros for these gates too.
        """
        with self._lock:
            names = set(gates) if gates is not None else {g.name for g in self._scene.gates} | set(self.state.gates)
            self._pending_reset |= names
            for name in names:
                if name in self._restored_gates:
                    self._restored_gates[name] = {"in": 0, "out": 0}
            zeroed = {**self.state.gates, **{name: {"in": 0, "out": 0, "net": 0} for name in names}}
            self.state = replace(self.state, seq=self.state.seq + 1, gates=zeroed)
            return self.state

    # ---- outputs ------------------------------------------------------------------------
    def latest_jpeg(self, max_age_s: float = STALE_AFTER_S) -> bytes | None:
        """The newest analysed frame as an anonymized JPEG, or None when it is older than max_age_s.

        Rendered here, on the first request for that frame (a few ms, in the caller's thread; async
        callers should use a thread): nothing is rendered while nobody asks for a picture.
        """
        renderer = self._renderer
        return renderer.jpeg(max_age_s) if renderer is not None else None

    def placeholder_jpeg(self, text: str = "no anonymized frame") -> bytes:
        ok, buf = cv2.imencode(".jpg", placeholder(text=text))
        return buf.tobytes() if ok else b""

    # ---- internals ----------------------------------------------------------------------
    def _set_state(self, **changes: Any) -> CameraState:
        with self._lock:
            if self._pending_reset and "gates" in changes:  # counted before a reset the pipeline has not applied yet
                zero = {"in": 0, "out": 0, "net": 0}
                changes["gates"] = {n: dict(zero) if n in self._pending_reset else c for n, c in changes["gates"].items()}
            self.state = replace(self.state, seq=self.state.seq + 1, **changes)
            return self.state

    def _emit(self, state: CameraState, events: list[SafetyEvent]) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(state, events)
        except Exception:
            _LOGGER.exception("safecam state callback failed for %s", self.camera)

    def _apply_pending(self, pipeline: CameraPipeline) -> None:
        with self._lock:
            scene, self._pending_scene = self._pending_scene, None
            restore, self._pending_restore = self._pending_restore, False
            anonymizer, self._pending_anonymizer = self._pending_anonymizer, None
            if anonymizer is not None:
                pipeline.set_anonymization(anonymizer)
            if scene is not None:
                pipeline.set_scene(scene)
            if restore:
                self._apply_restored(pipeline)
            if self._pending_reset:
                pipeline.gates.reset(self._pending_reset)
                self._pending_reset = set()

    def _apply_restored(self, pipeline: CameraPipeline) -> None:
        for name, st in pipeline.gates.states.items():
            saved = self._restored_gates.get(name)
            if saved:
                st.entries = max(st.entries, int(saved.get("in", 0)))
                st.exits = max(st.exits, int(saved.get("out", 0)))

    def _with_snapshots(
        self, pipeline: CameraPipeline, image: np.ndarray, result: FrameResult
    ) -> tuple[list[SafetyEvent], bytes | None]:
        """Safety events carry a JPEG of the anonymized frame they happened on (for notifications);
        also returns that JPEG (None when no safety event), which then serves as the frame's picture."""
        if not any(ev.event_type in EVENT_TYPES for ev in result.events):
            return result.events, None
        ok, buf = cv2.imencode(".jpg", pipeline.render(image, result), [cv2.IMWRITE_JPEG_QUALITY, self._jpeg_quality])
        jpeg = buf.tobytes() if ok else None
        return [replace(ev, snapshot=jpeg) if ev.event_type in EVENT_TYPES else ev for ev in result.events], jpeg

    def _on_source_state(self, connected: bool, reason: str | None) -> None:
        now = time.monotonic()
        since = None if connected else (self.state.disconnected_since or now)
        state = self._set_state(connected=connected, error_reason=None if connected else reason, disconnected_since=since)
        self._emit(state, [])

    def _supervise(self) -> None:
        """Watchdog thread: a loop run stuck in one step for hang_after_s is abandoned and replaced."""
        while not self._stop.wait(min(1.0, self._hang_after_s / 4)):
            watch = self._watch
            late = watch.overdue() if watch is not None else None
            if late is None or self._stop.is_set():
                continue
            step, secs = late
            msg = f"the {step} step has not returned for {secs:.0f} s; worker loop restarted"
            _LOGGER.warning("safecam camera %s: %s", self.camera, msg)
            # The hung thread cannot be killed: it is told to stop and publishes nothing if it ever
            # returns. The new run starts from the totals last published, so no count is lost.
            self._run_stop.set()
            with self._lock:
                self._watch = None
                for name, counts in self.state.gates.items():
                    saved = self._restored_gates.setdefault(name, {"in": 0, "out": 0})
                    saved["in"] = max(saved.get("in", 0), int(counts.get("in", 0)))
                    saved["out"] = max(saved.get("out", 0), int(counts.get("out", 0)))
            now = time.monotonic()
            state = self._set_state(
                connected=False,
                error=msg,
                error_reason="hung",
                disconnected_since=self.state.disconnected_since or now,
                watchdog_restarts=self.state.watchdog_restarts + 1,
            )
            self._emit(state, [])
            self._spawn()

    def _run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                self._loop(stop)
                backoff = 1.0
            except Exception as err:  # noqa: BLE001 - restart the loop on any failure, with backoff
                reason = err.reason if isinstance(err, SourceError) else "model" if isinstance(err, ModelError) else "error"
                msg = redact_url(f"{type(err).__name__}: {err}")
                _LOGGER.warning("safecam camera %s failed (%s); restarting in %.0f s", self.camera, msg, backoff)
                if stop.is_set():
                    break  # abandoned as hung (the watchdog reported it), or stopped
                state = self._set_state(error=msg, error_reason=reason, connected=False, running=False)
                self._emit(state, [])
                if stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self._backoff_max)

    def _loop(self, stop: threading.Event) -> None:
        with self._lock:
            config = PipelineConfig(camera=self.camera, anonymizer=self._anonymizer)
        pipeline = CameraPipeline(self._detector_factory(), self._scene, config)
        with self._lock:
            self._pending_scene, self._pending_restore, self._pending_anonymizer = None, False, None
            self._pending_reset = set()  # a new pipeline starts from the totals kept, already reset
            self._apply_restored(pipeline)
        # Network URLs are cameras (reconnect forever); paths and file:// are demo clips (loop).
        is_live = "://" in self.source_url and not self.source_url.lower().startswith("file://")
        self._set_state(running=True, error=None, error_reason=None)
        watch = Watchdog(self._hang_after_s)
        if is_live:

            def on_source_state(connected: bool, reason: str | None) -> None:
                if not stop.is_set():  # an abandoned run's source stays quiet
                    self._on_source_state(connected, reason)

            source: Any = ReconnectingSource(
                self.source_url, on_state=on_source_state, stop_event=stop, frozen_after_s=self._frozen_after_s
            )
            watch.probe("camera read", source.busy_s)
        else:
            source = open_source(self.source_url)
            self._on_source_state(True, None)
        self._watch = watch
        governor = self.governor
        adaptive = is_live if self._adaptive_fps is None else self._adaptive_fps

        def throttled_at_governed_rate(src: Any) -> ThrottledSource:
            out = throttle(src, self.fps)  # its fps: the configured rate, or less if the camera sends less
            out.period = 1.0 / governor.fps  # (never above the configured rate; only updated when adaptive)
            return out

        throttled = throttled_at_governed_rate(source)
        reader = BackgroundReader(throttled, prepare=pipeline.prepare, stop_event=stop)
        renderer = OnDemandRenderer(pipeline, quality=self._jpeg_quality)
        start = time.monotonic()
        media_offset = 0.0
        last_media_t = 0.0
        fps_window: list[float] = []
        cycle_from = time.monotonic()
        try:
            while not stop.is_set():
                frame = reader.read()
                if frame is None:
                    if stop.is_set():
                        break
                    if is_live:
                        # A network source that ended (e.g. an mp4 over HTTP): restart with backoff.
                        raise SourceError("ended", f"{redact_url(self.source_url)}: the stream ended")
                    # A file is a demo camera: loop it seamlessly on one timeline.
                    reader.close()
                    media_offset += last_media_t + 1.0 / max(self.fps, 1.0)
                    throttled = throttled_at_governed_rate(open_source(self.source_url))
                    reader = BackgroundReader(throttled, prepare=pipeline.prepare, stop_event=stop)
                    continue
                if is_live:
                    t = time.monotonic() - start
                    lag = max(0.0, time.monotonic() - reader.t0 - frame.t)
                    # A live read waits for the camera's next frame: only the processing counts as busy.
                    busy_from = time.monotonic()
                else:
                    last_media_t = frame.t
                    t = media_offset + frame.t
                    delay = t - (time.monotonic() - start)  # pace files in real time
                    if delay > 0 and stop.wait(delay):
                        break
                    lag = max(0.0, -delay)
                    # A file is decoded as fast as it can be: decoding (the read) is work too, pacing is not.
                    busy_from = cycle_from + max(0.0, delay)
                frame_ts = time.time()
                self._apply_pending(pipeline)
                with watch.section("analysis"):
                    result = pipeline.process(frame.image, t, frame.index, render=False, prepared=frame.prepared)
                    events, snapshot = self._with_snapshots(pipeline, frame.image, result)
                if stop.is_set():
                    break  # stopped, or abandoned as hung while this frame was analysed: publish nothing
                renderer.submit(frame.image, result, snapshot)
                self._renderer = renderer  # from this run's first frame on (until then the last run's picture)
                now = time.monotonic()
                fps_window = [x for x in (*fps_window, now) if now - x <= 5.0]
                # One frame after a gap (a stream that came back, a new run) measures no rate: the last one stands
                # until the next frame. (A 0.0 here stayed on HA's throttled analysis-rate sensor for 10 s while
                # frames flowed again: issue 19.)
                analysis_fps = self.state.analysis_fps
                if len(fps_window) > 1:
                    analysis_fps = round((len(fps_window) - 1) / max(fps_window[-1] - fps_window[0], 1e-6), 2)
                # A frame queued before a disconnect must not mark the camera connected again.
                connected = bool(getattr(source, "connected", True))
                state = self._set_state(
                    connected=connected,
                    running=True,
                    people=result.people,
                    zones=result.zones,
                    gates=result.gates,
                    analytics=result.analytics,
                    analysis_fps=analysis_fps,
                    target_fps=round(float(reader.fps or self.fps), 2),
                    inference_ms=round(result.timings_ms.get("detect", 0.0), 1),
                    dropped_frames=int(getattr(reader, "dropped", 0)),
                    frames=self.state.frames + 1,
                    fail_closed_frames=self.state.fail_closed_frames + (not result.analysed),
                    frame_ts=frame_ts,
                    effective_fps=round(min(governor.fps, float(reader.fps or governor.fps)), 2),
                    lag_s=round(lag, 2),
                    error=pipeline.last_error,
                    error_reason="detector" if pipeline.last_error else None,
                    disconnected_since=None if connected else self.state.disconnected_since,
                )
                self._emit(state, events)
                cycle_from = time.monotonic()
                if adaptive and governor.update(cycle_from - busy_from, cycle_from):
                    # Frames are skipped at the source from now on (the throttle's grid), never queued.
                    throttled.period = 1.0 / governor.fps
                    _LOGGER.info(
                        "safecam camera %s: analysing at %.1f fps (configured %.1f; %.0f ms per frame)",
                        self.camera, governor.fps, self.fps, (governor.busy_s or 0.0) * 1000,
                    )  # fmt: skip
        finally:
            reader.close()
            renderer.close()
            # Cumulative gate totals survive a loop restart: the next pipeline starts from them.
            # (An abandoned run leaves them alone: the watchdog kept what it had published.)
            with self._lock:
                if self._watch is watch:
                    self._watch = None
                if self._run_stop is stop:
                    if self._pending_reset:
                        pipeline.gates.reset(self._pending_reset)
                        self._pending_reset = set()
                    for name, counts in pipeline.gates.snapshot().items():
                        saved = self._restored_gates.setdefault(name, {"in": 0, "out": 0})
                        saved["in"] = max(saved.get("in", 0), counts["in"])
                        saved["out"] = max(saved.get("out", 0), counts["out"])
