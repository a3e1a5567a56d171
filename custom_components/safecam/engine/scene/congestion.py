"""Congestion level of one zone (low / medium / high) with hysteresis in value and in time.

The value is people in the zone, or people per m² on a calibrated floor. A level is entered at its
threshold and left only below `(1 - BAND) x threshold`, and any change must hold for `hold_s`:
people counts flicker with every missed or doubled detection, and a level that flips every second
is useless to a site owner.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("low", "medium", "high")
BAND = 0.25  # a level is left only below 75 % of its threshold


@dataclass(frozen=True, slots=True)
class CongestionLevels:
    medium: float
    high: float
    per_m2: bool = False  # thresholds are people per m² (needs calibration), else people


class CongestionState:
    def __init__(self, levels: CongestionLevels, hold_s: float) -> None:
        self.levels = levels
        self.hold_s = hold_s
        self.level = "low"
        # Since when the value has been continuously at/above (or at/below) each other level: a
        # value swinging between medium and high still holds "at least medium".
        self._up_since: dict[str, float] = {}
        self._down_since: dict[str, float] = {}

    def _target(self, value: float) -> str:
        thresholds = {"medium": self.levels.medium, "high": self.levels.high}
        entered = "high" if value >= thresholds["high"] else "medium" if value >= thresholds["medium"] else "low"
        if LEVELS.index(entered) >= LEVELS.index(self.level):
            return entered
        # Going down: keep each level above `entered` while the value stays inside its band.
        for level in LEVELS[LEVELS.index(self.level) : LEVELS.index(entered) : -1]:
            if value >= thresholds[level] * (1 - BAND):
                return level
        return entered

    def update(self, value: float, t: float) -> str | None:
        """Feed this frame's value; returns the new level when it just rose (an event), else None."""
        if any(t < since for since in (*self._up_since.values(), *self._down_since.values())):
            self._up_since.clear()  # the timeline restarted (a looping file): time the change afresh
            self._down_since.clear()
        target, current = LEVELS.index(self._target(value)), LEVELS.index(self.level)
        for i, level in enumerate(LEVELS):
            for since, held in ((self._up_since, i > current and target >= i), (self._down_since, i < current and target <= i)):
                if held:
                    since.setdefault(level, t)
                else:
                    since.pop(level, None)
        up = [i for i, level in enumerate(LEVELS) if t - self._up_since.get(level, t + 1) >= self.hold_s]
        down = [i for i, level in enumerate(LEVELS) if t - self._down_since.get(level, t + 1) >= self.hold_s]
        if not up and not down:
            return None
        self.level = LEVELS[max(up)] if up else LEVELS[min(down)]
        self._up_since.clear()
        self._down_since.clear()
        return self.level if up else None
