"""Occupancy heatmap per camera: where people stood and walked, on a coarse grid: the "heatmap" analyzer.

Each counted person's floor point (box bottom-centre, normalized) falls in one cell of a GRID_W x
GRID_H grid. A track adds at most one count per cell per STEP_S time step, so a person standing
still for a minute adds 60, not one per analysed frame, and a higher frame rate does not heat more.

Counts are kept in exact time buckets: per-minute grids for the last hour and per-hour grids for the
last week, so the windows "hour" (the last 60 minute buckets), "day" (the last 24 hour buckets) and
"week" (the last 168) are sums of what was counted, not re-decayed guesses. A separate "live" map
decays exponentially (LIVE_TAU_S) for a view of right now.

The history lives in a HeatmapStore per camera name, outside the analyzer, so a scene change or an
engine restart (both rebuild the analyzers) does not wipe it; the HA image entity and the export
service read it with `heatmap_store(camera)`. The store holds counts only, never pixels.
Rendering (`render_heatmap`) colours a grid over an ANONYMIZED background (the worker's JPEG).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    from ..types import SafetyEvent
    from .base import AnalysisFrame

GRID_W, GRID_H = 32, 18
STEP_S = 1.0  # a track counts once per cell per step
LIVE_TAU_S = 300.0  # the live map's decay time constant
MINUTES, HOURS = 60, 168
Window = Literal["live", "hour", "day", "week"]
WINDOWS: tuple[str, ...] = ("live", "hour", "day", "week")


class StepDedup:
    """Which (track, cell) pairs were counted in the current time step. One per writer (analyzer), so
    what a pipeline counts depends on its own frames only, even when two share a camera's store."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.seen: set[tuple[int, int, int]] = set()

    def at(self, t: float) -> None:
        """A frame at time t: a new step (or time going back, a restart) forgets what was seen."""
        step = math.floor(t / STEP_S)
        if step != self.step:
            self.step, self.seen = step, set()

    def fresh(self, key: tuple[int, int, int]) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class HeatmapStore:
    """Bucketed counts for one camera. Written by the worker thread, read by others (a lock guards it)."""

    def __init__(self, width: int = GRID_W, height: int = GRID_H) -> None:
        self.width, self.height = width, height
        self._lock = threading.Lock()
        self._minutes: OrderedDict[int, np.ndarray] = OrderedDict()  # minute index -> (H, W) counts
        self._hours: OrderedDict[int, np.ndarray] = OrderedDict()
        self._live = np.zeros((height, width), np.float64)
        self._live_t: float | None = None
        self._dedup = StepDedup()  # for writers that bring none
        self._offset = 0.0  # keeps one timeline when a source restarts at t = 0
        self._last_t: float | None = None
        self.total = 0

    def _time(self, t: float) -> float:
        if self._last_t is not None and t + self._offset < self._last_t:
            self._offset = self._last_t - t + STEP_S  # the timeline restarted: continue after the last step
        self._last_t = t + self._offset
        return self._last_t

    def add(self, t: float, track_ids: list[int], positions: np.ndarray, dedup: StepDedup | None = None) -> int:
        """Count the tracks' floor points (N, 2 normalized) at time t; returns the counts added."""
        dedup = dedup or self._dedup
        with self._lock:
            now = self._time(t)
            self._decay(now)
            dedup.at(t)
            pts = np.asarray(positions, np.float64).reshape(-1, 2)
            added = 0
            for tid, (x, y) in zip(track_ids, pts, strict=True):
                if not (np.isfinite(x) and np.isfinite(y)) or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    continue
                cx, cy = min(int(x * self.width), self.width - 1), min(int(y * self.height), self.height - 1)
                if not dedup.fresh((tid, cx, cy)):
                    continue
                self._bucket(self._minutes, math.floor(now / 60.0), MINUTES)[cy, cx] += 1
                self._bucket(self._hours, math.floor(now / 3600.0), HOURS)[cy, cx] += 1
                self._live[cy, cx] += 1.0
                added += 1
            self.total += added
            return added

    def _bucket(self, ring: OrderedDict[int, np.ndarray], key: int, keep: int) -> np.ndarray:
        grid = ring.get(key)
        if grid is None:
            grid = ring[key] = np.zeros((self.height, self.width), np.uint32)
            while ring and next(iter(ring)) <= key - keep:
                ring.popitem(last=False)
        return grid

    def _decay(self, now: float) -> None:
        if self._live_t is not None and now > self._live_t:
            self._live *= math.exp(-(now - self._live_t) / LIVE_TAU_S)
        self._live_t = now if self._live_t is None else max(self._live_t, now)

    def grid(self, window: str = "hour") -> np.ndarray:
        """(H, W) float counts for a window: live | hour (60 min buckets) | day (24 h) | week (168 h)."""
        if window not in WINDOWS:
            raise ValueError(f"unknown heatmap window {window!r} (one of {', '.join(WINDOWS)})")
        with self._lock:
            out = np.zeros((self.height, self.width), np.float64)
            if self._last_t is None:
                return out
            if window == "live":
                return self._live.copy()
            if window == "hour":
                ring, first = self._minutes, math.floor(self._last_t / 60.0) - MINUTES + 1
            else:
                span = 24 if window == "day" else HOURS
                ring, first = self._hours, math.floor(self._last_t / 3600.0) - span + 1
            for key, grid in ring.items():
                if key >= first:
                    out += grid
            return out


_STORES: dict[str, HeatmapStore] = {}
_STORES_LOCK = threading.Lock()


def heatmap_store(camera: str) -> HeatmapStore:
    """The camera's store (created on first use; it outlives analyzer rebuilds)."""
    with _STORES_LOCK:
        store = _STORES.get(camera)
        if store is None:
            store = _STORES[camera] = HeatmapStore()
        return store


def drop_heatmap_store(camera: str) -> None:
    """Forget a camera's history (the camera was removed)."""
    with _STORES_LOCK:
        _STORES.pop(camera, None)


class HeatmapAnalyzer:
    name = "heatmap"

    def __init__(self, camera: str, store: HeatmapStore | None = None) -> None:
        self.camera = camera
        self.store = store if store is not None else heatmap_store(camera)
        self.counted = 0  # counts this analyzer added (the store's total also holds earlier runs')
        self._dedup = StepDedup()

    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]:
        self.counted += self.store.add(frame.t, [tr.track_id for tr in frame.tracks], frame.positions, self._dedup)
        return []

    def snapshot(self) -> dict[str, Any]:
        # Small on purpose: it goes into every state push. The grids are read via the store. Only what
        # this pipeline counted, so a pipeline's output depends on its own frames alone.
        return {"cells": [self.store.width, self.store.height], "counted": self.counted}

    def grid(self, window: str = "hour") -> np.ndarray:
        return self.store.grid(window)


def render_heatmap(grid: np.ndarray, background_bgr: np.ndarray | None, *, size: tuple[int, int] = (640, 360)) -> bytes:
    """PNG of the grid colour-mapped over an anonymized background (dark grey when there is none).

    The caller passes the worker's anonymized frame, never a raw one. Cells with no counts stay
    transparent; the hottest cell is full red, the rest scale with the square root of their count
    (so a busy corridor does not hide everything else).
    """
    base = np.full((size[1], size[0], 3), 48, np.uint8) if background_bgr is None else np.asarray(background_bgr, np.uint8)
    h, w = base.shape[:2]
    grid = np.nan_to_num(np.asarray(grid, np.float64), nan=0.0)
    peak = float(grid.max()) if grid.size else 0.0
    out = (base.astype(np.float32) * 0.6).astype(np.uint8)  # dimmed, so the heat reads
    if peak > 0:
        level: np.ndarray = cv2.resize(np.sqrt(grid / peak).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        # JET up to 0.875: blue -> green -> bright red (above it JET darkens to maroon, which reads as cold).
        coloured = cv2.applyColorMap((level * 0.875 * 255).astype(np.uint8), cv2.COLORMAP_JET)
        alpha = np.clip(level * 1.5, 0.0, 0.75)[..., None]
        alpha[level <= 0.01] = 0.0
        out = (out * (1 - alpha) + coloured * alpha).astype(np.uint8)
    ok, buf = cv2.imencode(".png", out)
    if not ok:
        raise RuntimeError("could not encode the heatmap PNG")
    return bytes(buf.tobytes())


def render_heatmap_jpeg(grid: np.ndarray, anonymized_jpeg: bytes | None) -> bytes:
    """render_heatmap over a decoded anonymized JPEG (the worker's latest_jpeg())."""
    background = None
    if anonymized_jpeg:
        background = cv2.imdecode(np.frombuffer(anonymized_jpeg, np.uint8), cv2.IMREAD_COLOR)
    return render_heatmap(grid, background)
