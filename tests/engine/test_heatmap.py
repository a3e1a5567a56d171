"""Occupancy heatmap: once per track, cell and second; exact time windows; live decay; rendering.

Synthetic tracks check the counting rules; TUD-Stadtmitte through the real detector and tracker
checks that the heat lies where the ground-truth people walked.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig
from custom_components.safecam.engine.scene import build_analyzers
from custom_components.safecam.engine.scene.base import AnalysisFrame
from custom_components.safecam.engine.scene.heatmap import (
    GRID_H,
    GRID_W,
    LIVE_TAU_S,
    HeatmapAnalyzer,
    HeatmapStore,
    drop_heatmap_store,
    heatmap_store,
    render_heatmap,
)

from .mot import frames, load_gt


def _cell(x: float, y: float) -> tuple[int, int]:
    return int(y * GRID_H), int(x * GRID_W)


def test_a_person_standing_still_counts_once_per_second():
    store = HeatmapStore()
    for i in range(250):  # 10 s at 25 fps, same spot
        store.add(i / 25.0, [7], np.array([[0.5, 0.5]]))
    grid = store.grid("hour")
    assert grid[_cell(0.5, 0.5)] == 10
    assert grid.sum() == 10


def test_two_people_in_one_cell_count_twice_and_a_walker_heats_each_cell_once():
    store = HeatmapStore()
    for i in range(50):  # 2 s at 25 fps, two people side by side in one cell
        store.add(i / 25.0, [1, 2], np.array([[0.2, 0.2], [0.2 + 0.001, 0.2]]))
    assert store.grid("hour")[_cell(0.2, 0.2)] == 4
    walker = HeatmapStore()
    xs = np.linspace(0.01, 0.99, 100)  # crosses every column within one second
    for i, x in enumerate(xs):
        walker.add(i / 200.0, [3], np.array([[x, 0.9]]))
    row = walker.grid("hour")[int(0.9 * GRID_H)]
    assert (row == 1).all()


def test_points_off_the_frame_or_nan_are_ignored():
    store = HeatmapStore()
    store.add(0.0, [1, 2, 3], np.array([[np.nan, 0.5], [1.2, 0.5], [0.5, -0.1]]))
    assert store.grid("hour").sum() == 0 and store.total == 0


def test_windows_are_exact_sums_of_their_buckets():
    store = HeatmapStore()
    p = np.array([[0.1, 0.1]])
    store.add(0.0, [1], p)  # week old-ish: 3 days before "now"
    store.add(3 * 86400.0 - 2 * 3600.0, [1], p)  # 2 h before now: in day and week, not hour
    store.add(3 * 86400.0 - 61 * 60.0, [1], p)  # 61 min before now: not in the last hour
    store.add(3 * 86400.0 - 30 * 60.0, [1], p)  # 30 min before now
    store.add(3 * 86400.0, [1], p)  # now
    assert store.grid("hour").sum() == 2
    assert store.grid("day").sum() == 4
    assert store.grid("week").sum() == 5
    store.add(10.5 * 86400.0, [1], p)  # 7.5 days after "now": all earlier counts fall out of the week
    assert store.grid("week").sum() == 1
    with pytest.raises(ValueError, match="window"):
        store.grid("month")


def test_live_map_decays_and_a_restarted_timeline_keeps_counting():
    store = HeatmapStore()
    store.add(0.0, [1], np.array([[0.5, 0.5]]))
    store.add(LIVE_TAU_S, [], np.zeros((0, 2)))
    assert store.grid("live")[_cell(0.5, 0.5)] == pytest.approx(math.exp(-1.0))
    assert store.grid("hour").sum() == 1
    # The source restarts at t = 0 (engine restart on a file): history and counting continue.
    store.add(0.0, [1], np.array([[0.5, 0.5]]))
    assert store.grid("week")[_cell(0.5, 0.5)] == 2


def test_every_camera_gets_a_heatmap_whose_history_outlives_a_rebuild():
    drop_heatmap_store("hm-cam")
    (first,) = [a for a in build_analyzers(parse_scene({}), "hm-cam") if a.name == "heatmap"]
    assert isinstance(first, HeatmapAnalyzer)
    first.store.add(0.0, [1], np.array([[0.3, 0.3]]))
    (again,) = [a for a in build_analyzers(parse_scene({}), "hm-cam") if a.name == "heatmap"]
    assert isinstance(again, HeatmapAnalyzer) and again.grid("hour").sum() == 1
    assert again.snapshot() == {"cells": [GRID_W, GRID_H], "counted": 0}  # counted by an earlier analyzer


def test_heat_lies_where_the_stadtmitte_people_walked(detector, shared_data):
    peds = shared_data / "pedestrians"
    gt = load_gt(peds / "tud_stadtmitte.gt.txt")
    clip = frames(peds / "tud_stadtmitte.mp4")
    drop_heatmap_store("hm-stadtmitte")  # a clean history for this test
    pipeline = CameraPipeline(detector, parse_scene({}), PipelineConfig(camera="hm-stadtmitte"))
    (analyzer,) = [a for a in pipeline.analyzers if isinstance(a, HeatmapAnalyzer)]
    h, w = clip[0].shape[:2]
    walked = np.zeros((GRID_H, GRID_W), bool)  # cells ground-truth feet (or a neighbour) were in
    for i, image in enumerate(clip):
        pipeline.process(image, i / 25.0, i, render=False)
        _, boxes, _ = gt.get(i, (None, np.zeros((0, 4)), None))
        for x0, _, x1, y1 in boxes:
            r, c = _cell(min((x0 + x1) / 2 / w, 0.999), min(y1 / h, 0.999))
            walked[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
    grid = analyzer.grid("hour")
    assert analyzer.snapshot()["counted"] == grid.sum()
    # About 10 people over 7.2 s: one count per person and cell visited per second, so dozens, not thousands.
    assert 20 <= grid.sum() <= 400
    assert grid[walked].sum() / grid.sum() >= 0.9
    assert (grid[walked] > 0).sum() >= 10  # the heat spreads along the walks, not in one spot

    png = render_heatmap(grid, clip[0])  # a test-side background; the HA side renders on anonymized frames
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == clip[0].shape
    r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
    hot = img[int((r + 0.5) * h / GRID_H), int((c + 0.5) * w / GRID_W)].astype(int)
    cold_r, cold_c = np.argwhere(~walked)[0]
    cold = img[int((cold_r + 0.5) * h / GRID_H), int((cold_c + 0.5) * w / GRID_W)].astype(int)
    assert hot[2] > 150 and hot[2] > hot[0] + 80 and hot[2] > hot[1] + 80  # the hottest cell is red (BGR)
    background = (clip[0][int((cold_r + 0.5) * h / GRID_H), int((cold_c + 0.5) * w / GRID_W)] * 0.6).astype(int)
    assert np.abs(cold - background).max() <= 2  # where nobody walked the (dimmed) background shows


def test_two_writers_of_one_store_count_independently():
    """Two pipelines of one camera name share the history, but each counts its own frames."""
    store = HeatmapStore()
    a, b = HeatmapAnalyzer("x", store), HeatmapAnalyzer("x", store)
    person = SimpleNamespace(track_id=1)  # the analyzer reads only the track id (and frame.positions)
    for i in range(10):  # both see one person standing still for 2 s at 5 fps
        frame = AnalysisFrame(
            "x", i, i / 5.0, np.zeros((1, 1, 3), np.uint8), 1, 1, True, None, [person], [], np.array([[0.5, 0.5]]), {}
        )  # type: ignore[arg-type]
        assert a.update(frame) == [] and b.update(frame) == []
    assert a.counted == b.counted == 2
    assert store.grid("hour").sum() == 4


def test_store_is_shared_per_camera_name():
    assert heatmap_store("hm-a") is heatmap_store("hm-a")
    assert heatmap_store("hm-a") is not heatmap_store("hm-b")
