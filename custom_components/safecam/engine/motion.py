"""Motion gate: skip the detector on frames where nothing moved.

Frame differencing on a small grey copy costs well under a millisecond. Stationary people are
not dropped: detection is forced every `force_every_s`, and the tracker keeps (and predicts)
tracks in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class MotionConfig:
    enabled: bool = True
    width: int = 160
    pixel_threshold: int = 18  # grey levels; above sensor noise of typical CCTV
    min_changed_fraction: float = 0.002  # 0.2 % of the small frame, about one distant walker
    force_every_s: float = 2.0


class MotionGate:
    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._previous: np.ndarray | None = None
        self._last_forced_t: float | None = None
        self.changed_fraction = 0.0

    def measure(self, image: np.ndarray) -> float:
        """Fraction of the small grey frame that changed since the previous call (1.0 at first).

        Stateful (keeps the previous frame): call it for every frame, in order, from one thread
        (the decode-ahead thread does, so it overlaps inference).
        """
        cfg = self.config
        h, w = image.shape[:2]
        # Nearest-neighbour subsampling is 10x cheaper than area averaging; the blur below removes its noise.
        small = cv2.resize(image, (cfg.width, max(1, round(h * cfg.width / w))), interpolation=cv2.INTER_NEAREST)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return 1.0
        diff = cv2.absdiff(grey, previous)
        return float(np.count_nonzero(diff > cfg.pixel_threshold)) / diff.size

    def decide(self, changed_fraction: float, t: float) -> bool:
        """Run the detector? On motion, and at least every force_every_s."""
        cfg = self.config
        self.changed_fraction = changed_fraction
        if not cfg.enabled:
            return True
        due = self._last_forced_t is None or t - self._last_forced_t >= cfg.force_every_s
        if due or self.changed_fraction >= cfg.min_changed_fraction:
            self._last_forced_t = t if due else self._last_forced_t
            return True
        return False
