"""safecam.export_report against the real recorder: hourly long-term statistics in, CSV and charts out.

A real camera entry (real engine, tud_campus.mp4) registers the sensors; hourly statistics for its
people sensor, gate counters and intrusion counter go into the recorder's database through the
recorder's own import API (as if HA had compiled them over four hours). The report must give back
exactly those numbers for the period asked for, and its bar charts must draw them in proportion.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import voluptuous as vol
from homeassistant.components.recorder import Recorder
from homeassistant.components.recorder.models import StatisticData, StatisticMeanType, StatisticMetaData
from homeassistant.components.recorder.statistics import async_import_statistics
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import async_wait_recording_done

from custom_components.safecam.const import DOMAIN

from .conftest import setup_loaded, unload

PEOPLE, ENTRIES, EXITS, INTRUSIONS = (
    "sensor.demo_people",
    "sensor.demo_middle_entries",
    "sensor.demo_middle_exits",
    "sensor.demo_intrusion_events",
)
# Per hour h0..h3: people (mean, min, max); counters as running totals (state = sum), h0 is before the period.
PEOPLE_HOURS = [(0.5, 0, 2), (1.5, 0, 4), (0.25, 0, 1), (3.0, 2, 5)]
TOTALS = {ENTRIES: [10, 13, 13, 20], EXITS: [4, 5, 7, 7], INTRUSIONS: [0, 2, 5, 5]}
# Current HA requires unit_class in the metadata (None: no unit conversion); HA 2025.4's recorder drops rows that have it.
UNIT_CLASS: dict[str, None] = {"unit_class": None} if "unit_class" in StatisticMetaData.__annotations__ else {}
# BGR colours of the bars (report.py draws entries green, exits orange, intrusions red): what a reader sees.
ENTRIES_BGR, EXITS_BGR, INTRUSION_BGR = (67, 160, 46), (20, 120, 230), (40, 39, 214)


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder's test database must exist before hass does (the custom-integrations fixture asks for hass)."""


def _import(hass: HomeAssistant, base: datetime) -> None:
    people: list[StatisticData] = [
        {"start": base + timedelta(hours=i), "mean": mean, "min": low, "max": high}
        for i, (mean, low, high) in enumerate(PEOPLE_HOURS)
    ]
    meta: StatisticMetaData = {
        "has_mean": True,
        "mean_type": StatisticMeanType.ARITHMETIC,
        "has_sum": False,
        "name": None,
        "source": "recorder",
        "statistic_id": PEOPLE,
        **UNIT_CLASS,
        "unit_of_measurement": None,  # people counts have no unit (sensor.py)
    }
    async_import_statistics(hass, meta, people)
    for statistic_id, totals in TOTALS.items():
        rows: list[StatisticData] = [{"start": base + timedelta(hours=i), "state": t, "sum": t} for i, t in enumerate(totals)]
        meta = {
            "has_mean": False,
            "mean_type": StatisticMeanType.NONE,
            "has_sum": True,
            "name": None,
            "source": "recorder",
            "statistic_id": statistic_id,
            **UNIT_CLASS,
            "unit_of_measurement": None,
        }
        async_import_statistics(hass, meta, rows)


def _bars(png: Path, bgr: tuple[int, int, int]) -> list[int]:
    """Heights (px) of the bars of one colour, left to right: runs of columns that reach the common baseline."""
    img = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert img is not None
    mask = np.all(np.abs(img.astype(int) - np.array(bgr)) <= 2, axis=2)
    ys, xs = np.nonzero(mask)
    assert len(ys), f"no {bgr} pixels in {png.name}"
    baseline = ys.max()
    columns = sorted({x for x in xs if mask[baseline, x]})  # legend swatches do not reach the baseline
    heights, run = [], [columns[0]]
    for x in columns[1:] + [-1]:
        if x == run[-1] + 1:
            run.append(x)
            continue
        heights.append(max(int(mask[:, c].sum()) for c in run))
        run = [x]
    return heights


async def test_export_report(
    recorder_mock: Recorder, hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, tmp_path: Path
) -> None:
    hass.config.config_dir = str(tmp_path / "config")
    entry = make_entry(str(clip))
    await setup_loaded(hass, entry)  # registers the sensors (with their state classes)
    await unload(hass, entry)  # a report needs no running camera: the statistics stay

    base = dt_util.utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=8)
    _import(hass, base)
    await async_wait_recording_done(hass)

    start, end = base + timedelta(hours=1), base + timedelta(hours=4)  # h1..h3
    data: dict[str, Any] = {"config_entry_id": entry.entry_id, "start": start, "end": end, "name": "shift"}
    result = await hass.services.async_call(DOMAIN, "export_report", data, blocking=True, return_response=True)
    assert result is not None
    folder = tmp_path / "config" / "www" / "safecam" / "exports"
    files = {k: Path(v) for k, v in result["files"].items()}  # type: ignore[union-attr]
    assert files == {
        "csv": folder / "shift.csv",
        "entries_exits": folder / "shift_entries_exits.png",
        "people": folder / "shift_people.png",
        "events": folder / "shift_events.png",
    }
    assert result["urls"]["csv"] == "/local/safecam/exports/shift.csv"  # type: ignore[index]

    # CSV: exactly the imported hours of the period, with the imported numbers.
    rows = list(csv.DictReader(io.StringIO(files["csv"].read_text(encoding="utf-8"))))
    got = {(r["entity_id"], dt_util.as_utc(datetime.fromisoformat(r["hour_start"]))): r for r in rows}
    expected_keys = {(e, base + timedelta(hours=i)) for e in (PEOPLE, *TOTALS) for i in (1, 2, 3)}
    assert set(got) == expected_keys
    for i in (1, 2, 3):
        hour = base + timedelta(hours=i)
        mean, low, high = PEOPLE_HOURS[i]
        row = got[(PEOPLE, hour)]
        assert (float(row["mean"]), float(row["min"]), float(row["max"])) == (mean, low, high)
        assert row["change"] == row["sum"] == ""
        assert row["camera"] == "Demo" and row["name"] == "Demo People"
        assert datetime.fromisoformat(row["hour_end"]) - datetime.fromisoformat(row["hour_start"]) == timedelta(hours=1)
        for statistic_id, totals in TOTALS.items():
            row = got[(statistic_id, hour)]
            assert float(row["change"]) == totals[i] - totals[i - 1]
            assert float(row["sum"]) == float(row["state"]) == totals[i]
            assert row["mean"] == ""

    # Charts: PNGs of the documented size; bars in proportion to the hourly changes.
    for path in files.values():
        if path.suffix == ".png":
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            assert img is not None and img.shape[:2] == (420, 1000), path.name
    entries = _bars(files["entries_exits"], ENTRIES_BGR)  # 3, 0, 7 entries
    assert len(entries) == 2 and entries[1] / entries[0] == pytest.approx(7 / 3, rel=0.05)
    exits = _bars(files["entries_exits"], EXITS_BGR)  # 1, 2, 0 exits
    assert len(exits) == 2 and exits[1] / exits[0] == pytest.approx(2, rel=0.05)
    intrusions = _bars(files["events"], INTRUSION_BGR)  # 2, 3, 0 intrusions
    assert len(intrusions) == 2 and intrusions[1] / intrusions[0] == pytest.approx(1.5, rel=0.05)
    people = cv2.imread(str(files["people"]), cv2.IMREAD_COLOR)
    assert np.all(np.abs(people.astype(int) - np.array((180, 119, 31))) <= 2, axis=2).sum() > 200  # the mean line

    # Last N hours, no target: every camera; the default name says the period.
    result = await hass.services.async_call(DOMAIN, "export_report", {"hours": 12}, blocking=True, return_response=True)
    assert result is not None and Path(result["files"]["csv"]).name.startswith("report_")  # type: ignore[index]
    assert len(Path(result["files"]["csv"]).read_text().splitlines()) == 1 + 4 * 4  # type: ignore[index]  # h0..h3

    # Refused: a period that ends before it starts or spans more than 31 days, both last hours and a start, a path as name.
    for bad in ({"start": end, "end": start}, {"start": start - timedelta(days=40), "end": end}):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(DOMAIN, "export_report", bad, blocking=True, return_response=True)
        assert err.value.translation_key == "report_period_invalid"
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(DOMAIN, "export_report", {"hours": 3, "start": start}, blocking=True, return_response=True)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "export_report", {"name": "../escape"}, blocking=True, return_response=True)
    assert err.value.translation_key == "export_name_invalid"
    assert not (tmp_path / "config" / "www" / "safecam" / "escape.csv").exists()
