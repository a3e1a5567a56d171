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


# Event types a site owner sees (HA event entity, MQTT, CLI). "gate_crossing" is internal.
EVENT_TYPES = (
    "intrusion",
    "approach",
    "fall",
    "immobile",
    "distancing",
    "congestion",
    "machine_activity",
    "ppe_violation",
)


@dataclass(slots=True, frozen=True)
class SafetyEvent:
    """Something a site owner is told about (intrusion, fall, ...)."""

    event_type: str
    t: float
    camera: str
    track_id: int | None = None
    zone: str | None = None
    confidence: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # JPEG of the *anonymized* frame the event happened on (the worker attaches it); never raw.
    snapshot: bytes | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "event",
            "event_type": self.event_type,
            "t": round(self.t, 3),
            "camera": self.camera,
            "track_id": self.track_id,
            "zone": self.zone,
        }
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 3)
        out.update(self.details)
        return out
