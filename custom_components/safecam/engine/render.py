"""Producing the anonymized output of a camera worker, off the analysis path.

- `OnDemandRenderer` (live cameras): keeps the newest analysed frame and anonymizes + encodes it
  only when someone asks for a picture (the HA camera entity, a stream, a snapshot), once per
  frame however many ask. Analysis alone (sensors, automations) then renders nothing at all.
- `AsyncRenderer` (video files, every frame written): anonymizes frame N in a second thread while
  the detector already runs on frame N+1 (OpenCV releases the GIL).

The raw frame stays inside the worker's objects (held by reference, never copied out); what leaves
is the anonymizer's output only. bench/speed.py measures both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import cv2
import numpy as np

from .pipeline import CameraPipeline, FrameResult

_LOGGER = logging.getLogger(__name__)
Sink = Callable[[np.ndarray, FrameResult], None]


class AsyncRenderer:
    """Renders submitted frames in order in one thread and hands the anonymized image to `sink`.

    `latest_only`: live cameras only need the newest picture, so a frame waiting to be rendered is
    replaced by a newer one; otherwise (video files) `submit` blocks while `depth` frames wait.
    """

    def __init__(self, pipeline: CameraPipeline, sink: Sink, *, latest_only: bool = False, depth: int = 2) -> None:
        self._pipeline = pipeline
        self._sink = sink
        self._latest_only = latest_only
        self._depth = 1 if latest_only else depth
        self._queue: deque[tuple[np.ndarray, FrameResult]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="safecam-render", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray, result: FrameResult) -> None:
        with self._cond:
            if self.error is not None:
                raise self.error
            if self._latest_only:
                self._queue.clear()
            while len(self._queue) >= self._depth and not self._closed:
                self._cond.wait()
            self._queue.append((image, result))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                image, result = self._queue.popleft()
                self._cond.notify_all()
            try:
                self._sink(self._pipeline.render(image, result), result)
            except Exception as err:
                _LOGGER.exception("rendering failed")
                with self._cond:
                    self.error = err
                    self._closed = True
                    self._queue.clear()
                    self._cond.notify_all()
                return

    def close(self) -> None:
        """Render what is queued, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error


class OnDemandRenderer:
    """The newest analysed frame, anonymized and JPEG-encoded only when asked for (`jpeg`).

    `submit` is O(1) (it keeps a reference); `jpeg` renders in the caller's thread, at most once
    per frame (concurrent callers wait for that one render), and drops the raw frame once it is
    rendered. Failing closed stays the anonymizer's job: a frame whose analysis failed is rendered
    fully obscured; a render that raises gives no picture (None), never the frame.
    """

    def __init__(self, pipeline: CameraPipeline, *, quality: int = 80, clock: Callable[[], float] = time.monotonic) -> None:
        self._pipeline = pipeline
        self._params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self._clock = clock
        self._lock = threading.Lock()  # guards the fields below; never held while rendering
        self._render_lock = threading.Lock()  # one render at a time
        self._seq = 0  # frames submitted
        self._frame: tuple[np.ndarray, FrameResult] | None = None  # newest frame, until rendered or replaced
        self._frame_time: float | None = None  # clock() when the newest frame was submitted
        self._jpeg: tuple[int, bytes] | None = None  # (seq, JPEG) of the last frame rendered
        self._failed = 0  # seq of the last frame whose render failed (not retried: one log line per frame)
        self.rendered = 0  # frames rendered so far

    def submit(self, image: np.ndarray, result: FrameResult, jpeg: bytes | None = None) -> None:
        """The newest analysed frame; `jpeg`: its picture when already rendered (an event snapshot)."""
        with self._lock:
            self._seq += 1
            self._frame_time = self._clock()
            if jpeg is None:
                self._frame = (image, result)
            else:
                self._frame, self._jpeg = None, (self._seq, jpeg)

    def jpeg(self, max_age_s: float | None = None) -> bytes | None:
        """The newest frame's anonymized JPEG, or None: no frame yet, older than max_age_s, or not renderable."""
        with self._render_lock:
            with self._lock:
                seq, frame, at, cached = self._seq, self._frame, self._frame_time, self._jpeg
            if at is None or (max_age_s is not None and self._clock() - at > max_age_s):
                return None
            if cached is not None and cached[0] == seq:
                return cached[1]
            if frame is None or self._failed == seq:  # closed before anyone asked for it, or unrenderable
                return None
            image, result = frame
            try:
                ok, buf = cv2.imencode(".jpg", self._pipeline.render(image, result), self._params)
            except Exception:  # a failed render shows no picture (the caller serves its placeholder)
                _LOGGER.exception("rendering failed")
                ok = False
            if not ok:
                self._failed = seq
                return None
            data = bytes(buf.tobytes())
            self.rendered += 1
            with self._lock:
                if self._jpeg is None or self._jpeg[0] < seq:  # a newer snapshot may have come in meanwhile
                    self._jpeg = (seq, data)
                if self._seq == seq:
                    self._frame = None  # rendered: the raw frame is not needed any more
            return data

    def close(self) -> None:
        """Drop the raw frame; a picture already rendered stays available (subject to max_age_s)."""
        with self._lock:
            self._frame = None
