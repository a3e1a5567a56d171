"""safecam.export_report: a period's hourly long-term statistics of the safecam sensors as CSV + PNG charts.

The numbers come from Home Assistant's recorder (statistics_during_period, hourly), so a report covers
whatever the recorder kept, across restarts, for the cameras asked for: people (mean/min/max per hour),
gate entries and exits and safety events per type (per-hour change of the total_increasing counters),
and every other safecam sensor with a state class. Files go to <config>/www/safecam/exports/ (served under
/local/safecam/exports/, without authentication: admins only, exports.py); charts are drawn with Pillow
(an HA core dependency; matplotlib is not).

Imports nothing of the engine (registered at HA start with the other actions).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import ATTR_AREA_ID, ATTR_DEVICE_ID, ATTR_ENTITY_ID, ATTR_FLOOR_ID, ATTR_LABEL_ID
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .entries import ATTR_CONFIG_ENTRY_ID, async_targeted_entry_ids
from .exports import async_check_admin, export_folder, export_name, export_url, write_exports
from .validation import vol

SERVICE_EXPORT_REPORT = "export_report"
ATTR_START, ATTR_END, ATTR_HOURS, ATTR_DAYS, ATTR_NAME = "start", "end", "hours", "days", "name"
MAX_PERIOD = timedelta(days=31)  # an hourly chart of a month is 744 slots: still readable at CHART_SIZE
DEFAULT_PERIOD = timedelta(hours=24)
CHART_SIZE = (1000, 420)
_TARGET_KEYS = (ATTR_ENTITY_ID, ATTR_DEVICE_ID, ATTR_AREA_ID, ATTR_FLOOR_ID, ATTR_LABEL_ID, ATTR_CONFIG_ENTRY_ID)

EXPORT_REPORT_SCHEMA = vol.Schema(
    {
        **cv.ENTITY_SERVICE_FIELDS,  # target: safecam camera devices (or their entities, or areas); none = all cameras
        vol.Optional(ATTR_CONFIG_ENTRY_ID): vol.All(cv.ensure_list, [cv.string]),
        vol.Exclusive(ATTR_START, "period"): cv.datetime,
        vol.Exclusive(ATTR_HOURS, "period"): vol.All(vol.Coerce(int), vol.Range(min=1, max=744)),
        vol.Exclusive(ATTR_DAYS, "period"): vol.All(vol.Coerce(int), vol.Range(min=1, max=31)),
        vol.Optional(ATTR_END): cv.datetime,
        vol.Optional(ATTR_NAME): cv.string,  # checked by export_name: a refusal is a ServiceValidationError
    }
)

EVENT_COLORS = {
    "intrusion": (214, 39, 40),
    "approach": (255, 127, 14),
    "fall": (148, 103, 189),
    "immobile": (140, 86, 75),
    "distancing": (227, 119, 194),
    "congestion": (188, 189, 34),
    "machine_activity": (23, 190, 207),
    "ppe_violation": (31, 119, 180),
}
ENTRIES_COLOR, EXITS_COLOR = (46, 160, 67), (230, 120, 20)
LINE_COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (140, 86, 75), (127, 127, 127))


@callback
def async_setup_report(hass: HomeAssistant) -> None:
    hass.services.async_register(
        DOMAIN,
        SERVICE_EXPORT_REPORT,
        _async_export_report,
        schema=EXPORT_REPORT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


# ---- which statistics --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportSeries:
    """One safecam sensor with long-term statistics."""

    entity_id: str
    camera: str  # the config entry's title
    name: str
    role: str  # "people", "entries", "exits", "events:<type>", or "other"


def _role(key: str) -> str:
    """What a sensor is, from its unique id key (entity.SafecamEntity: "<entry_id>_<key>")."""
    if key == "people":
        return "people"
    if key.startswith("gate_") and key.endswith(("_in", "_out")):
        return "entries" if key.endswith("_in") else "exits"
    if key.startswith("events_"):
        return f"events:{key.removeprefix('events_')}"
    return "other"


def report_series(hass: HomeAssistant, entries: Iterable[ConfigEntry]) -> list[ReportSeries]:
    """The cameras' sensors that have a state class (the recorder keeps statistics only for those)."""
    registry = er.async_get(hass)
    series = []
    for entry in entries:
        for reg in er.async_entries_for_config_entry(registry, entry.entry_id):
            if reg.domain != "sensor" or not (reg.capabilities or {}).get("state_class"):
                continue
            state = hass.states.get(reg.entity_id)
            own = reg.name or reg.original_name or reg.entity_id
            name = f"{entry.title} {own}" if reg.has_entity_name else own
            if state is not None and not state.attributes.get("restored"):  # the name shown in HA (a loaded camera)
                name = str(state.attributes.get("friendly_name", name))
            key = reg.unique_id.removeprefix(f"{entry.entry_id}_")
            series.append(ReportSeries(reg.entity_id, entry.title, name, _role(key)))
    return sorted(series, key=lambda s: (s.camera, s.entity_id))


# ---- the action ----------------------------------------------------------------------------------


def _error(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders or None)


def report_period(data: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    """(start, end) in UTC from the action's fields; a naive date-time is HA's local time."""
    end = dt_util.as_utc(data[ATTR_END]) if ATTR_END in data else now
    if ATTR_START in data:
        start = dt_util.as_utc(data[ATTR_START])
    elif ATTR_DAYS in data:
        start = end - timedelta(days=data[ATTR_DAYS])
    else:
        start = end - (timedelta(hours=data[ATTR_HOURS]) if ATTR_HOURS in data else DEFAULT_PERIOD)
    if not start < end or end - start > MAX_PERIOD:
        raise _error("report_period_invalid", start=start.isoformat(), end=end.isoformat())
    return start.replace(minute=0, second=0, microsecond=0), end  # whole hours: hourly statistics start on the hour


async def _report_entries(hass: HomeAssistant, call: ServiceCall) -> list[ConfigEntry]:
    """The targeted safecam cameras; without a target, all of them (loaded or not: their statistics stay)."""
    if any(key in call.data for key in _TARGET_KEYS):
        ids = await async_targeted_entry_ids(call)
        entries = [e for e in hass.config_entries.async_entries(DOMAIN) if e.entry_id in ids]
    else:
        entries = hass.config_entries.async_entries(DOMAIN)
    if not entries:
        raise _error("report_no_camera")
    return entries


async def _async_export_report(call: ServiceCall) -> ServiceResponse:
    await async_check_admin(call)  # /local is public: only an administrator publishes there
    hass = call.hass
    if "recorder" not in hass.config.components:
        raise _error("report_needs_recorder")
    start, end = report_period(dict(call.data), dt_util.utcnow())
    local = dt_util.as_local(start), dt_util.as_local(end)
    # Without a name, one nobody can guess (exports.py).
    name = export_name(call.data.get(ATTR_NAME), f"report_{local[0]:%Y%m%d_%H%M}_{local[1]:%Y%m%d_%H%M}")
    entries = await _report_entries(hass, call)
    return await async_export_report(hass, entries, start, end, name)


async def async_export_report(
    hass: HomeAssistant, entries: list[ConfigEntry], start: datetime, end: datetime, name: str
) -> dict[str, Any]:
    """Read the hourly statistics and write <name>.csv and the charts; returns paths and /local URLs."""
    from homeassistant.components.recorder import get_instance  # only once the recorder runs
    from homeassistant.components.recorder.statistics import statistics_during_period

    series = report_series(hass, entries)
    ids = {s.entity_id for s in series}
    types: set[Literal["change", "last_reset", "max", "mean", "min", "state", "sum"]] = {
        "mean",
        "min",
        "max",
        "sum",
        "state",
        "change",
    }
    stats: dict[str, list[Any]] = {}
    if ids:
        stats = await get_instance(hass).async_add_executor_job(
            statistics_during_period, hass, start, end, ids, "hour", None, types
        )
    written = await hass.async_add_executor_job(write_report, hass, name, series, stats, start, end)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "entities": len(series),
        "files": {kind: str(path) for kind, path in written.items()},
        "urls": {kind: export_url(path) for kind, path in written.items()},
    }


# ---- files (executor) ------------------------------------------------------------------------------


def write_report(
    hass: HomeAssistant, name: str, series: list[ReportSeries], stats: dict[str, list[Any]], start: datetime, end: datetime
) -> dict[str, Path]:
    """Write the CSV and the three charts into the exports folder; `name` is export_name's. Blocking (executor)."""
    folder = export_folder(hass)
    paths = {kind: folder / f"{name}{suffix}" for kind, suffix in _FILES.items()}
    hours = hour_slots(start, end)
    pngs = {paths[kind]: png for kind, png in charts(series, stats, hours).items()}
    write_exports(hass, {paths["csv"]: report_csv(series, stats).encode(), **pngs})
    return paths


_FILES = {"csv": ".csv", "entries_exits": "_entries_exits.png", "people": "_people.png", "events": "_events.png"}
CSV_COLUMNS = ("hour_start", "hour_end", "camera", "entity_id", "name", "mean", "min", "max", "change", "state", "sum")


def _number(value: Any) -> str:
    if value is None:
        return ""
    v = round(float(value), 3)
    return str(int(v)) if v.is_integer() else str(v)


def _local(ts: float) -> str:
    return dt_util.as_local(dt_util.utc_from_timestamp(ts)).isoformat()


def report_csv(series: list[ReportSeries], stats: dict[str, list[Any]]) -> str:
    """One row per sensor and hour (local time with offset); mean/min/max for measurements, change/state/sum for counters."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = []
    for s in series:
        for row in stats.get(s.entity_id, []):
            values = [_number(row.get(k)) for k in ("mean", "min", "max", "change", "state", "sum")]
            rows.append(
                (
                    row["start"],
                    s.camera,
                    s.entity_id,
                    [_local(row["start"]), _local(row["end"]), s.camera, s.entity_id, s.name, *values],
                )
            )
    for *_, line in sorted(rows, key=lambda r: r[:3]):
        writer.writerow(line)
    return out.getvalue()


def hour_slots(start: datetime, end: datetime) -> list[datetime]:
    """The hours of the period (UTC starts), one chart slot each."""
    slots, t = [], start
    while t < end:
        slots.append(t)
        t += timedelta(hours=1)
    return slots


def _per_hour(
    stats: dict[str, list[Any]], ids: Iterable[str], field: str, hours: list[datetime], how: str = "sum"
) -> list[float | None]:
    """One value per hour slot: the sum (or max) over the given statistics; None where none has a value."""
    index = {int(h.timestamp()): i for i, h in enumerate(hours)}
    values: list[float | None] = [None] * len(hours)
    for statistic_id in ids:
        for row in stats.get(statistic_id, []):
            i = index.get(int(row["start"]))
            v = row.get(field)
            if i is None or v is None:
                continue
            old = values[i]
            values[i] = float(v) if old is None else (old + float(v) if how == "sum" else max(old, float(v)))
    return values


def charts(series: list[ReportSeries], stats: dict[str, list[Any]], hours: list[datetime]) -> dict[str, bytes]:
    """entries/exits per hour (all gates), people per hour (mean and max per camera), events per type per hour."""
    gates = [
        Series("Entries", ENTRIES_COLOR, _per_hour(stats, [s.entity_id for s in series if s.role == "entries"], "change", hours)),
        Series("Exits", EXITS_COLOR, _per_hour(stats, [s.entity_id for s in series if s.role == "exits"], "change", hours)),
    ]
    people: list[Series] = []
    cameras = sorted({s.camera for s in series if s.role == "people"})
    for n, camera in enumerate(cameras):
        ids = [s.entity_id for s in series if s.role == "people" and s.camera == camera]
        color = LINE_COLORS[n % len(LINE_COLORS)]
        people.append(Series(f"{camera} mean", color, _per_hour(stats, ids, "mean", hours)))
        people.append(Series(f"{camera} max", _lighter(color), _per_hour(stats, ids, "max", hours, how="max")))
    event_types = [t for t in EVENT_COLORS if any(s.role == f"events:{t}" for s in series)]
    events = [
        Series(
            t.replace("_", " "),
            EVENT_COLORS[t],
            _per_hour(stats, [s.entity_id for s in series if s.role == f"events:{t}"], "change", hours),
        )
        for t in event_types
    ]
    return {
        "entries_exits": draw_chart("Entries and exits per hour", hours, gates, "grouped"),
        "people": draw_chart("People per hour (mean and max)", hours, people, "line"),
        "events": draw_chart("Safety events per type per hour", hours, events, "stacked"),
    }


# ---- drawing (Pillow) -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    color: tuple[int, int, int]
    values: list[float | None]  # one per hour slot


def _lighter(color: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = color
    return (r + (255 - r) // 2, g + (255 - g) // 2, b + (255 - b) // 2)


def _nice_max(value: float) -> float:
    """The y axis top: 1, 2 or 5 times a power of ten, at least value (and at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def draw_chart(title: str, hours: list[datetime], series: list[Series], kind: Literal["grouped", "stacked", "line"]) -> bytes:
    """A CHART_SIZE PNG: hours along x (local time), the series as grouped bars, stacked bars or lines."""
    from PIL import Image, ImageDraw, ImageFont  # in the executor: Pillow loads its C parts on first use

    width, height = CHART_SIZE
    left, right, top, bottom = 60, 20, 60, 50
    img = Image.new("RGB", CHART_SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=13)
    title_font = ImageFont.load_default(size=16)
    draw.text((left, 10), title, fill=(20, 20, 20), font=title_font)
    x = left  # legend
    for s in series:
        draw.rectangle((x, 38, x + 12, 50), fill=s.color)
        draw.text((x + 16, 37), s.label, fill=(40, 40, 40), font=font)
        x += 16 + int(draw.textlength(s.label, font=font)) + 18

    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(hours), 1)
    slot = plot_w / n
    if kind == "stacked":
        totals = [sum(v or 0.0 for v in values) for values in zip(*(s.values for s in series), strict=True)] if series else []
        peak = max(totals, default=0.0)
    else:
        peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    y_max = _nice_max(peak)

    def y_of(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    for i in range(6):  # grid and y labels
        value = y_max * i / 5
        y = y_of(value)
        draw.line((left, y, left + plot_w, y), fill=(225, 225, 225))
        label = f"{value:g}"
        draw.text((left - 8 - draw.textlength(label, font=font), y - 7), label, fill=(90, 90, 90), font=font)
    draw.line((left, top, left, top + plot_h), fill=(120, 120, 120))
    draw.line((left, top + plot_h, left + plot_w, top + plot_h), fill=(120, 120, 120))

    every = max(1, math.ceil(48 / slot))  # hour labels at least 48 px apart
    for i, hour in enumerate(hours):
        if i % every:
            continue
        local = dt_util.as_local(hour)
        cx = left + (i + 0.5) * slot
        draw.line((cx, top + plot_h, cx, top + plot_h + 4), fill=(120, 120, 120))
        text = f"{local:%H:00}"
        draw.text((cx - draw.textlength(text, font=font) / 2, top + plot_h + 6), text, fill=(60, 60, 60), font=font)
        if i == 0 or local.hour < every:  # the date under the first hour and each midnight
            day = f"{local:%m-%d}"
            draw.text((cx - draw.textlength(day, font=font) / 2, top + plot_h + 22), day, fill=(110, 110, 110), font=font)

    if kind == "line":
        for s in series:
            points = [(left + (i + 0.5) * slot, y_of(v)) for i, v in enumerate(s.values) if v is not None]
            if len(points) > 1:
                draw.line(points, fill=s.color, width=2)
            for px, py in points:
                draw.ellipse((px - 2.5, py - 2.5, px + 2.5, py + 2.5), fill=s.color)
    elif kind == "grouped":
        bar = max(1.0, slot * 0.8 / max(len(series), 1))
        for k, s in enumerate(series):
            for i, v in enumerate(s.values):
                if v:
                    x0 = left + i * slot + slot * 0.1 + k * bar
                    draw.rectangle((x0, y_of(v), x0 + bar - 1, top + plot_h - 1), fill=s.color)
    else:
        base = [0.0] * len(hours)
        for s in series:
            for i, v in enumerate(s.values):
                if v:
                    x0 = left + i * slot + slot * 0.15
                    draw.rectangle((x0, y_of(base[i] + v), x0 + slot * 0.7 - 1, y_of(base[i]) - 1), fill=s.color)
                    base[i] += v
    if not series or all(v is None for s in series for v in s.values):
        text = "no data in this period"
        draw.text(
            (left + plot_w / 2 - draw.textlength(text, font=font) / 2, top + plot_h / 2), text, fill=(150, 150, 150), font=font
        )
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
