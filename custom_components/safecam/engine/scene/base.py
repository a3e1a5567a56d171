"""The contract every scene analyzer (falls, PPE, safety rules, dwell, ...) implements.

The pipeline calls `update(frame)` once per analysed frame, in the worker thread, after tracking
and zones/gates. An analyzer may look at `frame.image` (the raw frame) during the call only: it
must never keep it, copy it out, log it or put pixels into its snapshot or events (design
invariant 1). What it returns is geometry, states and `SafetyEvent`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..types import Detections, SafetyEvent, Track


@dataclass(frozen=True, slots=True)
class AnalysisFrame:
    camera: str
    index: int
    t: float  # seconds on the camera's timeline (media time for files, monotonic for streams)
    image: np.ndarray  # RAW BGR frame: read during update() only, never keep or emit
    width: int
    height: int
    detected: bool  # the detector ran on this frame (not skipped by the motion gate)
    detections: Detections  # this frame's raw detections (empty when not detected)
    tracks: list[Track]  # counted people (confirmed, recently matched)
    all_tracks: list[Track]  # every live track incl. tentative and lost ones
    positions: np.ndarray  # (N, 2) normalized floor points (box bottom-centre) of `tracks`
    zones: dict[str, dict[str, Any]]  # the ZoneCounter snapshot of this frame


class Analyzer(Protocol):
    """One scene capability. `name` keys its snapshot in FrameResult.analytics / CameraState.analytics."""

    name: str

    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]: ...

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe current state (no pixels), e.g. {"person_down": False, "zones": {...}}."""
        ...

    # Optional: `def mask_boxes(self) -> list[tuple[float, float, float, float]]` (pixels) - people this
    # analyzer knows of that the tracker may have dropped (e.g. someone lying down); the anonymizer
    # covers them too. The pipeline looks it up with getattr.
