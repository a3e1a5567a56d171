"""Weekly time windows on the wall clock: when a zone is armed, when a machine may run.

Written by a site owner as `[{days: weekdays, from: "07:00", to: "18:00"}, ...]`. A window whose
`to` is not after its `from` runs overnight into the next day (its `days` name the day it starts).
Wall-clock time, not the camera's timeline: the caller passes an aware or local `datetime`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..config import ConfigError, reject_unknown_keys

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS = {"daily": DAYS, "weekdays": DAYS[:5], "weekend": DAYS[5:]}
_KEYS = {"days", "from", "to"}


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[int]  # 0 = Monday (datetime.weekday())
    start: int  # minutes after midnight
    end: int  # minutes after midnight, 1..1440; end <= start: runs overnight

    def contains(self, now: datetime) -> bool:
        minute = now.hour * 60 + now.minute
        day = now.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # Overnight: the evening part belongs to the start day, the morning part to the day after it.
        return (day in self.days and minute >= self.start) or ((day - 1) % 7 in self.days and minute < self.end)


@dataclass(frozen=True, slots=True)
class Schedule:
    windows: tuple[Window, ...]

    def active(self, now: datetime) -> bool:
        return any(w.contains(now) for w in self.windows)


def _minutes(value: object, what: str, *, end: bool) -> int:
    # YAML 1.1 reads an unquoted 18:30 as the base-60 integer 1110, i.e. minutes after midnight;
    # accept that, but not small integers like 7 (that would silently mean 00:07).
    if isinstance(value, int) and not isinstance(value, bool) and 60 <= value <= 1440:
        return value
    if isinstance(value, str):
        parts = value.strip().split(":")
        if len(parts) == 2 and all(p.isdigit() and len(p) <= 2 for p in parts):
            h, m = int(parts[0]), int(parts[1])
            if (h < 24 and m < 60) or (end and h == 24 and m == 0):
                return h * 60 + m
    raise ConfigError(f'{what}: expected a time "HH:MM" (00:00 to {"24:00" if end else "23:59"}), got {value!r}')


def _days(value: object, what: str) -> frozenset[int]:
    if value is None:
        return frozenset(range(7))
    names = DAY_GROUPS.get(value.strip().lower(), [value]) if isinstance(value, str) else value
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        raise ConfigError(f"{what}: 'days' must be a list of {', '.join(DAYS)} or one of {', '.join(DAY_GROUPS)}")
    out = set()
    for name in names:
        key = name.strip().lower()[:3] if isinstance(name, str) else None
        if key not in DAYS:
            raise ConfigError(f"{what}: unknown day {name!r} (use {', '.join(DAYS)})")
        out.add(DAYS.index(key))
    return frozenset(out)


def parse_schedule(value: object, what: str) -> Schedule:
    """A list of {days, from, to} windows (one mapping is accepted as a list of one)."""
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f'{what}: expected a list of windows like {{days: weekdays, from: "07:00", to: "18:00"}}')
    windows = []
    for i, item in enumerate(items):
        where = f"{what} window {i + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with days, from, to")
        reject_unknown_keys(item, _KEYS, where)
        if "from" not in item or "to" not in item:
            raise ConfigError(f"{where}: needs both 'from' and 'to'")
        start, end = _minutes(item["from"], f"{where} 'from'", end=False), _minutes(item["to"], f"{where} 'to'", end=True)
        if start == end:
            raise ConfigError(f"{where}: 'from' and 'to' are the same time (the window would be empty)")
        windows.append(Window(_days(item.get("days"), where), start, end))
    return Schedule(tuple(windows))
