"""Site fusion: gate-flow occupancy across cameras and floor-position merging of overlapping cameras.

The fusion runs in Home Assistant (site_fusion.py, pure Python + Pillow) on what the engine computes:
the tests feed it through the engine's calibrations and detector. Synthetic multi-camera tracks (people
placed on a floor plan, seen through each camera's own calibration) check the merge rules; TUD-Stadtmitte
split into two overlapping virtual cameras, with the real detector on each crop, checks the fused count
against the ground-truth people per frame; the engine's FloorAnalyzer is checked against the street's metres.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from custom_components.safecam.engine.calibration import Calibration
from custom_components.safecam.site_fusion import (
    DOT_MERGED,
    DOT_ONE_CAMERA,
    JET_PALETTE,
    LEGEND_PX,
    PLAN_BG,
    PLAN_GRID,
    PLAN_GRID_MAJOR,
    PLAN_INK,
    PLAN_LEGEND_BG,
    FloorObservation,
    FloorPlan,
    FusedPerson,
    GateFlowOccupancy,
    SiteFusion,
    SiteGate,
    SiteHeatmap,
    fuse_positions,
    render_floor_plan,
    render_site_heatmap,
)

from .mot import frames, load_gt

# Two cameras over one 10 m x 4 m floor; A sees x 0..6 m, B sees x 4..10 m (2 m overlap), from different angles.
CAM_A = Calibration.from_points([[0.1, 0.4], [0.9, 0.4], [1.0, 1.0], [0.0, 1.0]], [[0, 4], [6, 4], [5, 0], [1, 0]])
CAM_B = Calibration.from_points([[0.0, 0.3], [1.0, 0.5], [1.0, 1.0], [0.0, 0.9]], [[4, 0], [4, 4], [10, 4], [10, 0]])
CAMS = {"a": CAM_A, "b": CAM_B}


def _seen(cal: Calibration, floor: np.ndarray, rng: np.random.Generator, noise_m: float = 0.15) -> np.ndarray:
    """The normalized image points a camera reports for people at these floor points (in its view only)."""
    jittered = floor + rng.normal(0.0, noise_m, floor.shape)
    img = cal.to_image(jittered)
    inside = ((img >= 0) & (img <= 1)).all(axis=1)
    return np.asarray(img[inside])


def test_overlapping_cameras_seeing_the_same_three_people_count_three():
    rng = np.random.default_rng(1)
    people = np.array([[4.5, 1.0], [5.0, 2.5], [5.5, 3.5]])  # all in the overlap, over 1 m apart
    site = SiteFusion(CAMS)
    for cam, cal in CAMS.items():
        pts = _seen(cal, people, rng)
        assert len(pts) == 3
        site.update(cam, 10.0, pts)
    fused = site.people(10.0)
    assert site.naive_count(10.0) == 6
    assert len(fused) == 3
    assert all(p.cameras == ("a", "b") for p in fused)
    got = np.array([[p.x, p.y] for p in fused])
    assert np.abs(np.sort(got, axis=0) - np.sort(people, axis=0)).max() < 0.4


def test_disjoint_people_of_two_cameras_sum():
    rng = np.random.default_rng(2)
    site = SiteFusion(CAMS)
    site.update("a", 0.0, _seen(CAM_A, np.array([[1.5, 1.0], [2.5, 3.0]]), rng))
    site.update("b", 0.0, _seen(CAM_B, np.array([[7.0, 1.0], [8.0, 2.0], [9.0, 3.0]]), rng))
    assert len(site.people(0.0)) == 5


def test_one_cameras_close_people_are_never_merged_and_time_separates():
    close = [FloorObservation("a", 0.0, 1.0, 1.0), FloorObservation("a", 0.0, 1.3, 1.0)]
    assert len(fuse_positions(close)) == 2
    later = [FloorObservation("a", 0.0, 1.0, 1.0), FloorObservation("b", 3.0, 1.0, 1.0)]
    assert len(fuse_positions(later, max_dt_s=0.5)) == 2
    assert len(fuse_positions(later, max_dt_s=5.0)) == 1


def test_merge_does_not_chain_people_walking_in_a_line():
    # b's person is 0.9 m from a's and from c's, a's and c's 1.8 m apart: at most two can be one.
    line = [FloorObservation("a", 0, 0.0, 0.0), FloorObservation("b", 0, 0.9, 0.0), FloorObservation("c", 0, 1.8, 0.0)]
    assert len(fuse_positions(line, radius_m=1.0)) == 2
    # Closest pairs first: a's person near b's and c's, with two candidates for b's; the closest wins.
    obs = [FloorObservation("a", 0, 0.0, 0.0), FloorObservation("b", 0, 0.2, 0.0), FloorObservation("b", 0, -0.7, 0.0)]
    fused = fuse_positions(obs)
    assert len(fused) == 2
    pair = next(p for p in fused if len(p.observations) == 2)
    assert pair.x == pytest.approx(0.1)


def test_synthetic_multi_camera_tracks_never_double_count():
    """Five people walk across the floor for 20 s, through A's view, the overlap and B's view."""
    rng = np.random.default_rng(3)
    starts = np.array([[0.5, 0.6], [1.0, 1.6], [9.5, 2.4], [0.2, 3.4], [9.0, 0.8]])
    speed = np.array([[0.45, 0.0], [0.4, 0.02], [-0.45, 0.0], [0.5, -0.01], [-0.35, 0.05]])  # m/s
    site = SiteFusion(CAMS)
    errors, double = [], 0
    for step in range(100):
        t = step * 0.2
        truth = starts + speed * t
        truth = truth[(truth[:, 0] >= 0) & (truth[:, 0] <= 10)]
        for cam, cal in CAMS.items():
            site.update(cam, t + rng.uniform(0, 0.1), _seen(cal, truth, rng))  # unsynchronised cameras
        fused = len(site.people(t + 0.1))
        errors.append(fused - len(truth))
        double += site.naive_count(t + 0.1) > len(truth)
    assert double > 20  # the overlap is used: a naive sum would double count often
    assert max(errors) <= 0  # never more people than there are
    assert np.mean(np.abs(errors)) < 0.1  # and almost never fewer (two people meeting in the overlap)


def test_stale_cameras_drop_out():
    site = SiteFusion(CAMS, max_age_s=2.0)
    site.update("a", 0.0, CAM_A.to_image(np.array([[2.0, 2.0]])))
    site.update("b", 5.0, CAM_B.to_image(np.array([[8.0, 2.0]])))
    assert len(site.people(5.0)) == 1


# ---- gate flows -------------------------------------------------------------------------------


def test_gate_flows_sum_across_cameras_and_never_go_negative():
    gates = [SiteGate("a", "front", "in"), SiteGate("b", "back", "out")]  # b's gate enters the site going "out"
    occ = GateFlowOccupancy(gates, ["a", "b"], empty_reset_s=30)
    occ.update(0, "a", {"front": {"in": 10, "out": 4}}, people=1)  # baselines: earlier crossings are not ours
    occ.update(0, "b", {"back": {"in": 2, "out": 2}}, people=0)
    assert occ.occupancy == 0
    occ.update(1, "a", {"front": {"in": 12, "out": 4}}, people=2)  # 2 enter at the front
    occ.update(2, "b", {"back": {"in": 2, "out": 3}}, people=1)  # 1 enters at the back
    assert occ.occupancy == 3
    occ.update(3, "b", {"back": {"in": 6, "out": 3}}, people=1)  # 4 leave at the back (one entry was missed)
    assert occ.occupancy == 0 and (occ.entries, occ.exits) == (3, 4)
    occ.update(4, "a", {"front": {"in": 1, "out": 0}}, people=1)  # a's counters were reset, then 1 entry
    assert occ.occupancy == 1


def test_gate_flow_drift_resets_only_when_every_camera_sees_nobody():
    occ = GateFlowOccupancy([SiteGate("a", "door", "in")], ["a", "b"], empty_reset_s=30)
    occ.update(0, "a", {"door": {"in": 0, "out": 0}}, people=0)
    occ.update(1, "a", {"door": {"in": 3, "out": 1}}, people=0)  # an exit missed: 2 counted, all gone
    assert occ.occupancy == 2
    occ.update(50, "a", {"door": {"in": 3, "out": 1}}, people=0)
    assert occ.occupancy == 2  # b has not reported: it may see someone
    occ.update(51, "b", {}, people=1)
    occ.update(90, "a", {"door": {"in": 3, "out": 1}}, people=0)
    assert occ.occupancy == 2  # b still sees someone
    occ.update(100, "b", {}, people=0)
    occ.update(120, "a", {"door": {"in": 3, "out": 1}}, people=0)
    assert occ.occupancy == 2  # b empty for only 20 s
    occ.update(131, "b", {}, people=0)
    assert occ.occupancy == 0
    with pytest.raises(ValueError, match="inward"):
        SiteGate("a", "door", "inside")


# ---- real clip: TUD-Stadtmitte as two overlapping virtual cameras --------------------------------

SPANS = {"left": (0.0, 0.6), "right": (0.4, 1.0)}  # crop spans, fraction of the width: 20 % overlap


def _floor_homography(rows: np.ndarray, w: int, h: int) -> np.ndarray:
    """The street's floor mapping from the ground truth: box bottom-centres (normalized) -> world x, y (metres)."""
    src = np.stack([(rows[:, 2] + rows[:, 4] / 2) / w, (rows[:, 3] + rows[:, 5]) / h], axis=1)
    hom, _ = cv2.findHomography(src, rows[:, 7:9], 0)
    return np.asarray(hom)


def _virtual_site(shared_data, w: int = 640, h: int = 480) -> SiteFusion:
    """Each crop's calibration: four crop points, mapped through the full frame's floor homography."""
    rows = np.loadtxt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt", delimiter=",", ndmin=2)
    full = _floor_homography(rows, w, h)
    crop_pts = np.array([[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]])
    cals = {}
    for cam, (x0, x1) in SPANS.items():
        full_pts = np.c_[x0 + crop_pts[:, 0] * (x1 - x0), crop_pts[:, 1]]
        cals[cam] = Calibration.from_points(crop_pts, cv2.perspectiveTransform(full_pts[None], full)[0])
    return SiteFusion(cals, radius_m=1.0)


def _gt(shared_data) -> dict:
    return load_gt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt")


def test_virtual_cameras_on_stadtmitte_ground_truth_boxes_fuse_to_the_true_count(shared_data):
    """Each virtual camera sees the ground-truth boxes cut at its edges (kept when half a box shows)."""
    gt, w, h = _gt(shared_data), 640, 480
    site = _virtual_site(shared_data)
    exact, doubled = 0, 0
    for i in sorted(gt):
        boxes = gt[i][1]
        for cam, (x0, x1) in SPANS.items():
            c0, c1 = x0 * w, x1 * w
            left, right = np.clip(boxes[:, 0], c0, c1), np.clip(boxes[:, 2], c0, c1)
            keep = right - left >= 0.5 * (boxes[:, 2] - boxes[:, 0])
            site.update(cam, i / 25.0, np.stack([((left + right) / 2 - c0)[keep] / (c1 - c0), boxes[keep, 3] / h], axis=1))
        fused = len(site.people(i / 25.0))
        assert fused <= site.naive_count(i / 25.0)
        exact += fused == len(boxes)
        doubled += site.naive_count(i / 25.0) > len(boxes)
    assert doubled >= 0.5 * len(gt)  # people in the overlap: the naive sum is too high in many frames
    assert exact >= 0.95 * len(gt)


def test_virtual_cameras_on_stadtmitte_with_the_detector_count_each_person_once(detector, shared_data):
    """The real detector on each crop. It misses people in the crowd (occlusions), so the reference is
    also the detector on the whole frame: fusing the two crops should count what one camera sees."""
    gt, clip = _gt(shared_data), frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4")
    h, w = clip[0].shape[:2]
    site = _virtual_site(shared_data, w, h)
    fused, naive, whole, truth = [], [], [], []
    for i in range(0, len(clip), 3):
        for cam, (x0, x1) in SPANS.items():
            c0, c1 = round(x0 * w), round(x1 * w)
            det = detector(clip[i][:, c0:c1])
            b = det.boxes[det.scores >= 0.5]
            site.update(cam, i / 25.0, np.stack([(b[:, 0] + b[:, 2]) / 2 / (c1 - c0), b[:, 3] / h], axis=1))
        fused.append(len(site.people(i / 25.0)))
        naive.append(site.naive_count(i / 25.0))
        whole.append(int((detector(clip[i]).scores >= 0.5).sum()))
        truth.append(len(gt[i][0]))
    f, n, wh, gt_n = (np.array(v, float) for v in (fused, naive, whole, truth))
    assert (f <= n).all() and (f < n).mean() >= 0.7  # merges happened in most frames
    assert n.mean() - f.mean() >= 0.5  # about one person stands in the overlap: the naive sum counts them twice
    assert abs(f.mean() - wh.mean()) <= 0.3  # fused crops count what the whole frame's detector counts
    assert (np.abs(f - wh) <= 1).mean() >= 0.9
    assert (f <= gt_n + 1).all() and (gt_n - f).mean() <= 1.5  # never many more than the true people, a few missed


# ---- the camera side (analytics["floor"]), dynamic sites, the site heatmap and floor plan ----------


def test_floor_analyzer_reports_the_detected_people_in_street_metres(detector, shared_data):
    """A calibrated camera's pipeline puts its people on the floor: compared with the ground truth's world x, y."""
    from custom_components.safecam.engine.config import parse_scene
    from custom_components.safecam.engine.motion import MotionConfig
    from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig

    rows = np.loadtxt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt", delimiter=",", ndmin=2)
    hom = _floor_homography(rows, 640, 480)
    quad = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
    floor = cv2.perspectiveTransform(np.array([quad], np.float64), hom)[0].tolist()
    pipeline = CameraPipeline(
        detector,
        parse_scene({"calibration": {"image": quad, "floor": floor}}),
        PipelineConfig(motion=MotionConfig(enabled=False)),
    )
    gt = _gt(shared_data)
    world = {int(r[0]) - 1: rows[rows[:, 0] == r[0], 7:9] for r in rows}
    errors, counted = [], 0
    for i, image in enumerate(frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 40)):
        result = pipeline.process(image, i / 25.0, i, render=False)
        pts = np.asarray(result.analytics["floor"]["people"], float).reshape(-1, 2)
        assert len(pts) <= result.people  # no point without a counted person (beyond the horizon: left out)
        counted += len(pts)
        if len(pts) and i in gt:
            d = np.hypot(*(pts[:, None, :] - world[i][None, :, :]).transpose(2, 0, 1))
            errors += list(d.min(axis=1))  # each reported person: distance to the nearest true person
    assert counted > 80  # about 6 people in each of 40 frames
    # Box bottoms of a head-height camera are coarse in depth; half a metre is a stride, 1 m the fusion radius.
    assert np.median(errors) < 0.5 and np.mean(np.array(errors) < 1.0) > 0.7


def test_site_cameras_join_by_floor_points_and_leave():
    site = SiteFusion(radius_m=1.0)
    site.update_floor("a", 0.0, np.array([[2.0, 2.0], [5.0, 1.0]]))
    site.update_floor("b", 0.1, np.array([[5.3, 1.2], [np.nan, 1.0]]))  # NaN: beyond b's horizon
    assert site.naive_count(0.1) == 3 and len(site.people(0.1)) == 2
    site.forget("a")
    assert len(site.people(0.1)) == 1
    with pytest.raises(ValueError, match="floor points"):
        site.update("b", 0.2, np.array([[0.5, 0.5]]))


def test_gate_flow_unknown_camera_state_never_counts_as_empty_and_cameras_can_change():
    occ = GateFlowOccupancy([SiteGate("a", "door", "in")], ["b"], empty_reset_s=10)
    occ.update(0, "a", {"door": {"in": 0, "out": 0}}, people=0)
    occ.update(1, "a", {"door": {"in": 2, "out": 0}}, people=0)
    occ.update(1, "b", {}, people=None)  # b has no video: it may see someone
    occ.update(30, "a", {"door": {"in": 2, "out": 0}}, people=0)
    assert occ.occupancy == 2
    occ.set_cameras(["a"])  # b left the site: a alone decides, a has seen nobody since t = 0
    occ.update(31, "a", {"door": {"in": 2, "out": 0}}, people=0)
    assert occ.occupancy == 0 and occ.cameras == {"a"}
    occ.update(32, "a", {"door": {"in": 3, "out": 0}}, people=1)
    occ.set_cameras([])  # a deleted: its last counts stay, it no longer holds the reset back
    occ.update(33, "c", {}, people=0)
    assert occ.occupancy == 1 and occ.cameras == frozenset()


def test_site_heatmap_counts_each_fused_person_once_per_step_however_many_cameras_report():
    plan = FloorPlan(10.0, 4.0)
    heat = SiteHeatmap(plan)
    site = SiteFusion(radius_m=1.0)
    for k in range(50):  # 10 s, two cameras at 5 fps each see one standing person
        t = k * 0.2
        site.update_floor("a", t, np.array([[2.2, 1.1]]))
        heat.add(t, site.people(t))
        site.update_floor("b", t + 0.05, np.array([[2.4, 1.2]]))
        heat.add(t + 0.05, site.people(t + 0.05))
    grid = np.asarray(heat.grid("hour"))
    assert grid.shape == (8, 20)  # 0.5 m cells
    assert grid.sum() == 10 and grid[2, 4] == 10  # one per second, in the cell of (2.3 m, 1.15 m)
    heat.add(20.0, [FusedPerson(11.0, 1.0, ())])  # off the plan: not counted
    assert np.asarray(heat.grid("hour")).sum() == 10
    with pytest.raises(ValueError, match="window"):
        heat.grid("fortnight")


def test_floor_plan_png_shows_one_dot_per_person_in_plan_colours_only():
    plan = FloorPlan(10.0, 4.0)  # 800 x 320 px plan area
    people = [
        FusedPerson(2.0, 1.0, (FloorObservation("a", 0, 2.0, 1.0),)),
        FusedPerson(7.5, 3.0, (FloorObservation("a", 0, 7.4, 3.0), FloorObservation("b", 0, 7.6, 3.0))),
    ]
    img = _rgb(render_floor_plan(plan, people))
    assert img.shape == (320 + LEGEND_PX, 800, 3)
    assert tuple(img[80, 160]) == DOT_ONE_CAMERA and tuple(img[240, 600]) == DOT_MERGED  # 80 px per metre
    assert tuple(img[200, 400]) in (PLAN_BG, PLAN_GRID, PLAN_GRID_MAJOR)
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    palette = {PLAN_BG, PLAN_GRID, PLAN_GRID_MAJOR, PLAN_INK, PLAN_LEGEND_BG, DOT_ONE_CAMERA, DOT_MERGED}
    assert colours <= palette  # drawn from geometry only: nothing else can be in it
    blue = np.all(img == DOT_ONE_CAMERA, axis=2)
    ys, xs = np.nonzero(blue)
    assert abs(xs.mean() - 160) < 1 and abs(ys.mean() - 80) < 1 and blue.sum() > 300  # a 0.25 m dot
    heat = _rgb(render_site_heatmap(plan, [[1.0] * 20] * 8))
    assert heat.shape == img.shape


def _rgb(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_site_heatmap_colours_are_opencvs_jet_over_the_dimmed_plan():
    """Drawn with Pillow in Home Assistant, coloured like the cameras' heatmaps (OpenCV's JET)."""
    jet = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]  # BGR -> RGB
    assert np.abs(np.array(JET_PALETTE).reshape(256, 3) - jet.astype(int)).max() <= 1
    plan = FloorPlan(10.0, 4.0)
    grid = [[0.0] * 20 for _ in range(8)]
    grid[2][4] = 9.0  # the hottest cell: full red at its centre (2.25 m, 1.25 m), 80 px per metre
    grid[6][15] = 1.0  # a third as hot (square root): blue-cyan at (7.75 m, 3.25 m)
    img = _rgb(render_site_heatmap(plan, grid)).astype(int)
    assert img.shape == (320 + LEGEND_PX, 800, 3)
    hot, cool, cold = img[100, 180], img[260, 620], img[20, 700]
    assert hot[0] > 200 and hot[1] < 60 and hot[2] < 60
    assert cool[2] > cool[0] and cool[2] > 120
    assert tuple(cold) == tuple(int(c * 0.6) for c in PLAN_BG)  # no heat: the plan, dimmed


def test_plan_picture_is_the_background_stretched_to_the_mapped_extent():
    plan = FloorPlan(10.0, 4.0)
    picture = Image.new("RGB", (50, 20), (250, 240, 200))
    picture.paste((0, 0, 120), (25, 0, 50, 20))  # its right half dark blue
    img = _rgb(render_floor_plan(plan, [FusedPerson(2.0, 1.0, (FloorObservation("a", 0, 2.0, 1.0),))], picture))
    assert img.shape == (320 + LEGEND_PX, 800, 3)
    assert tuple(img[300, 100]) == (250, 240, 200) and tuple(img[300, 700]) == (0, 0, 120)
    assert tuple(img[80, 160]) == DOT_ONE_CAMERA
