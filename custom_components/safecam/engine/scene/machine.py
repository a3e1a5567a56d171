"""Is the machine in an equipment zone moving? Frame differencing on a tiny grey copy of the zone.

The only pixels kept are a reference of the zone's bounding box, downscaled to at most
`SIZE` pixels a side, in grey, mean-removed: it never leaves this object (no snapshot, event or log
carries it). People are not the machine: pixels under anyone's box (this sample's and the previous
one's) are left out, and a zone mostly hidden by people gives no reading at all. Mean removal
makes a global brightness change (lights, auto exposure) read as no motion.

"Active" needs motion in most recent samples (ACTIVE_SHARE of the last `window_s`) and ends when
few are left (IDLE_SHARE): one flickering pixel block or a single compression burst is not a
running machine, and a machine that pauses between strokes does not flap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 48  # the reference's longer side, pixels
MIN_SAMPLE_S = 0.2  # sample at most 5 times a second: slow motion adds up, high fps costs nothing
ACTIVE_SHARE, IDLE_SHARE = 0.6, 0.2
MIN_VISIBLE = 0.3  # below this share of the zone visible (not under people), skip the sample


@dataclass(frozen=True, slots=True)
class MotionSettings:
    pixel_threshold: float = 14.0  # grey levels (after blur): above compression noise
    min_fraction: float = 0.03  # share of the zone's visible pixels that must change
    window_s: float = 2.0


class MachineMotion:
    def __init__(self, polygon: Sequence[tuple[float, float]], settings: MotionSettings | None = None) -> None:
        self.polygon = np.asarray(polygon, np.float64)
        self.settings = settings or MotionSettings()
        self.active = False
        self.share = 0.0  # share of recent samples with motion (the event's confidence)
        self._size: tuple[int, int] | None = None  # frame (w, h) the crop geometry was made for
        self._crop = (0, 0, 1, 1)
        self._mask = np.zeros((1, 1), bool)
        self._reference: np.ndarray | None = None
        self._ref_t = 0.0
        self._people_before: np.ndarray | None = None
        self._samples: deque[tuple[float, bool]] = deque()

    def _geometry(self, w: int, h: int) -> None:
        pts = self.polygon * [w, h]
        x1, y1 = np.floor(pts.min(axis=0)).astype(int)
        x2, y2 = np.ceil(pts.max(axis=0)).astype(int)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, max(x2, x1 + 1)), min(h, max(y2, y1 + 1))
        scale = SIZE / max(x2 - x1, y2 - y1, 1)
        sw, sh = max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))
        mask = np.zeros((sh, sw), np.uint8)
        small = (pts - [x1, y1]) * [sw / (x2 - x1), sh / (y2 - y1)]
        cv2.fillPoly(mask, [np.round(small).astype(np.int32)], 1)
        self._size, self._crop, self._mask = (w, h), (x1, y1, x2, y2), mask.astype(bool)
        self._reference, self._people_before = None, None

    def _people_mask(self, boxes: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = self._crop
        sh, sw = self._mask.shape
        out = np.zeros((sh, sw), bool)
        if len(boxes):
            sx, sy = sw / (x2 - x1), sh / (y2 - y1)
            for bx1, by1, bx2, by2 in boxes:
                # One small pixel of margin: blur spreads a person's edge into the neighbours.
                c1, r1 = int(np.floor((bx1 - x1) * sx)) - 1, int(np.floor((by1 - y1) * sy)) - 1
                c2, r2 = int(np.ceil((bx2 - x1) * sx)) + 1, int(np.ceil((by2 - y1) * sy)) + 1
                out[max(0, r1) : max(0, r2), max(0, c1) : max(0, c2)] = True
        return out

    def update(self, image: np.ndarray, people_boxes: np.ndarray, t: float) -> bool:
        """One frame (read now, never kept) and everyone's boxes (pixels); returns `active`."""
        h, w = image.shape[:2]
        if self._size != (w, h):
            self._geometry(w, h)
        if self._reference is not None and 0 <= t - self._ref_t < MIN_SAMPLE_S:
            return self.active
        x1, y1, x2, y2 = self._crop
        crop = image[y1:y2, x1:x2]
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        resized = cv2.resize(grey, self._mask.shape[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
        small = np.asarray(cv2.GaussianBlur(resized, (3, 3), 0), np.float32)
        small -= float(small[self._mask].mean())
        people = self._people_mask(np.asarray(people_boxes, np.float64).reshape(-1, 4))
        reference, before = self._reference, self._people_before
        self._reference, self._ref_t, self._people_before = small, t, people
        if reference is None or before is None:
            return self.active
        visible = self._mask & ~people & ~before
        if visible.sum() < MIN_VISIBLE * self._mask.sum():
            return self.active  # mostly hidden by people: no reading, keep the state
        changed = np.abs(small - reference)[visible] > self.settings.pixel_threshold
        self._samples.append((t, float(changed.mean()) >= self.settings.min_fraction))
        while self._samples and (t - self._samples[0][0] > self.settings.window_s or self._samples[0][0] > t):
            self._samples.popleft()
        self.share = sum(m for _, m in self._samples) / len(self._samples)
        if len(self._samples) >= 3:
            if not self.active and self.share >= ACTIVE_SHARE:
                self.active = True
            elif self.active and self.share <= IDLE_SHARE:
                self.active = False
        return self.active
