"""Rendering in a second thread of the camera worker: anonymize (and encode) frame N while the
detector already runs on frame N+1. OpenCV releases the GIL, and OpenVINO leaves part of the second
core idle on small models, so this hides most of the anonymizer's cost (bench/speed.py measures it).

The raw frame moves between two threads of the same worker and nowhere else; only the sink's
output (anonymized pixels) leaves.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

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
