"""Hang detection for a camera worker loop.

A worker thread is normally either analysing a frame (bounded: an inference takes milliseconds
to a second) or waiting for the camera, which is fine as long as the waiting itself makes
progress (reads and reconnect attempts time out). A `Watchdog` records when each bounded step
began; `overdue()` names a step that has been running for longer than `limit_s` (a hung
inference, a library call that ignores its timeout). Python cannot kill a thread, so the worker
abandons the hung one and starts a fresh loop (see CameraWorker).

    dog = Watchdog(limit_s=60)
    dog.probe("camera read", source.busy_s)      # a source that times its own open/read calls
    with dog.section("analysis"):
        result = pipeline.process(...)
    dog.overdue()                                 # -> ("analysis", 73.2) from another thread
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Watchdog:
    """Bounded steps of one worker loop run; read from a supervising thread. Thread-safe."""

    def __init__(self, limit_s: float) -> None:
        if not limit_s > 0:
            raise ValueError(f"limit_s must be positive, got {limit_s}")
        self.limit_s = limit_s
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}
        self._probes: dict[str, Callable[[], float]] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Time the body as step `name` (sections do not nest under one name)."""
        with self._lock:
            self._since[name] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._since.pop(name, None)

    def probe(self, name: str, busy_s: Callable[[], float]) -> None:
        """A step timed elsewhere: `busy_s()` returns how long it has been running (0 when idle)."""
        with self._lock:
            self._probes[name] = busy_s

    def overdue(self) -> tuple[str, float] | None:
        """(step, seconds) of the longest-running step past `limit_s`, or None."""
        now = time.monotonic()
        with self._lock:
            running = {name: now - since for name, since in self._since.items()}
            probes = dict(self._probes)
        for name, busy_s in probes.items():
            running[name] = max(running.get(name, 0.0), float(busy_s()))
        late = [(secs, name) for name, secs in running.items() if secs > self.limit_s]
        if not late:
            return None
        secs, name = max(late)
        return name, secs
