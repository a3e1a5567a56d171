"""The camera side of a site: a calibrated camera's people on the shared floor plan, in metres.

`FloorAnalyzer` ("floor") reports the counted people's floor points in CameraState.analytics["floor"]
(no pixels, no track ids), so a site can fuse cameras whatever runs them. The fusion across cameras,
the site heatmap and the floor plan pictures run in Home Assistant (custom_components/safecam/site_fusion.py,
pure Python + Pillow): the engine only computes what needs the camera's calibration.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration import Calibration

if TYPE_CHECKING:
    from .scene.base import AnalysisFrame
    from .types import SafetyEvent


class FloorAnalyzer:
    """analytics["floor"]: the counted people's floor points in metres, through the camera's `calibration:`.

    Built only for calibrated cameras. Points beyond the floor's horizon are left out. Geometry only:
    no pixels and no track ids (a site merges by position and time, never by identity).
    """

    name = "floor"

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration
        self._points: list[list[float]] = []

    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]:
        floor = self.calibration.to_floor(np.asarray(frame.positions, np.float64).reshape(-1, 2))
        self._points = [[round(float(x), 2), round(float(y), 2)] for x, y in floor if math.isfinite(x) and math.isfinite(y)]
        return []

    def snapshot(self) -> dict[str, Any]:
        return {"people": [list(p) for p in self._points]}
