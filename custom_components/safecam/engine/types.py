"""The few data types every engine stage speaks.

`Detections` is the one currency between stages (detector -> tracker -> scene -> anonymizer):
numpy arrays, so stages stay vectorized and swappable. Boxes are in pixels of the analysed
frame (x1, y1, x2, y2); conversion to normalized coordinates happens only at the edges
(config in, JSON out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..contract import EVENT_TYPES, SafetyEvent

FloatArray = np.ndarray


@dataclass(slots=True)
class Detections:
    """N boxes with scores, classes and (after tracking) track ids."""

    boxes: FloatArray  # (N, 4) float32 x1, y1, x2, y2 in pixels
    scores: FloatArray  # (N,) float32
    classes: np.ndarray  # (N,) int32
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (N,) or empty

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        ids = self.track_ids[index] if len(self.track_ids) == len(self) else self.track_ids
        return Detections(self.boxes[index], self.scores[index], self.classes[index], ids)


@dataclass(slots=True, frozen=True)
class Track:
    """A tracked person as the scene stages see it."""

    track_id: int
    box: tuple[float, float, float, float]  # pixels
    score: float
    confirmed: bool
    age_s: float  # seconds since first seen
    lost_frames: int  # 0 when matched to a detection this frame


__all__ = ["EVENT_TYPES", "Detections", "FloatArray", "SafetyEvent", "Track"]
