"""bench/deployed.py's frame -> HA state matching: each change Home Assistant shows is paired, in order, with the
state message whose `people` change it shows, never with one published after it was shown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from deployed import Change, Latency, camera_rate, match_latency


def state(seq: int, people: int, ts: float, frames: int = 0) -> dict:
    return {"seq": seq, "people": people, "ts": ts, "frame_ts": ts - 0.05, "health": {"frames": frames, "effective_fps": 5.0}}


# people 0, 0 (re-published), 1, 2, 2, 1: four changes, published at 10.2, 10.6, 10.8, 11.2.
STATES = [state(1, 0, 10.2), state(2, 0, 10.4), state(3, 1, 10.6), state(4, 2, 10.8), state(5, 2, 11.0), state(6, 1, 11.2)]


def shown(*changes: tuple[float, str]) -> list[Change]:
    return [Change(at, "sensor.cam_0_people", value) for at, value in changes]


def test_changes_pair_in_order_even_when_home_assistant_lags_behind_later_messages() -> None:
    lat = Latency()
    # "1" is shown at 11.3, after the second "1" (seq 6) was published: it is still seq 3's change (shown in order).
    changes = shown((9.0, "unavailable"), (10.25, "0"), (11.3, "1"), (11.35, "2"), (11.4, "1"))
    match_latency(list(reversed(STATES)), changes, t0=10.0, t1=12.0, into=lat)
    assert lat.total_ms == pytest.approx([100.0, 750.0, 600.0, 250.0])
    assert lat.engine_ms == pytest.approx([50.0] * 4)
    assert lat.to_ha_ms == pytest.approx([50.0, 700.0, 550.0, 200.0])
    assert (lat.unmatched, lat.skipped) == (0, 0)


def test_a_change_never_published_before_it_was_shown_is_unmatched_and_outside_the_window_not_counted() -> None:
    lat = Latency()
    # "1" at 10.5 precedes seq 3's publish (10.6): no message can have caused it. "0" at 10.25 is before t0.
    match_latency(STATES, shown((10.25, "0"), (10.5, "1"), (10.65, "1")), t0=10.3, t1=12.0, into=lat)
    assert lat.total_ms == pytest.approx([100.0])  # 10.65 - seq 3's frame (10.55)
    assert lat.unmatched == 1


def test_a_change_home_assistant_never_showed_counts_as_skipped() -> None:
    lat = Latency()
    match_latency(STATES, shown((10.25, "0"), (10.85, "2")), t0=10.0, t1=12.0, into=lat)  # seq 3's "1" never shown
    assert lat.total_ms == pytest.approx([100.0, 100.0])
    assert lat.skipped == 1


def test_rate_is_frames_over_frame_time_inside_the_window() -> None:
    states = [state(1, 0, 10.05, frames=100), state(2, 1, 20.05, frames=150), state(3, 1, 35.05, frames=224)]
    assert camera_rate(states, 10.0, 30.0) == (pytest.approx(5.0), 5.0)  # seq 3 (frame at 35.0) is outside
    assert camera_rate(states[:1], 0.0, 40.0) is None
