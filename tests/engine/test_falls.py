"""Falls / man-down: real clips through the full pipeline, plus rule logic (cooldown, zones, config) on synthetic tracks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from custom_components.safecam.engine.config import ConfigError, ZoneConfig, parse_scene
from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig
from custom_components.safecam.engine.pose import Pose, shared_multipose
from custom_components.safecam.engine.scene import build_analyzers
from custom_components.safecam.engine.scene.base import AnalysisFrame
from custom_components.safecam.engine.scene.falls import FallsAnalyzer, FallsConfig, parse_falls
from custom_components.safecam.engine.sources import open_source, throttle
from custom_components.safecam.engine.types import Detections, Track

# ---- real clips, full pipeline ------------------------------------------------------------------


def _run(detector, path, falls, fps=10.0):
    pipeline = CameraPipeline(detector, parse_scene({"falls": falls}), PipelineConfig(camera="room"))
    events, snapshots, result = [], [], None
    source = throttle(open_source(str(path)), fps)
    while (frame := source.read()) is not None:
        result = pipeline.process(frame.image, frame.t, frame.index, render=False)
        events += [e for e in result.events if e.event_type in ("fall", "immobile")]
        snapshots.append(result.analytics["falls"])
    source.close()
    return events, snapshots, result, next(a for a in pipeline.analyzers if isinstance(a, FallsAnalyzer))


@pytest.fixture(scope="module")
def backward_fall(detector, shared_data):
    """GMDCSA24 subject 1 fall 13: stands, falls backwards at 0.4 s (labels.csv), lies on the floor to the end."""
    return _run(detector, shared_data / "falls" / "gmdcsa24_s1_fall_13.mp4", {"immobile_s": 2})


def test_a_real_fall_raises_one_fall_event_soon_after_it_starts(backward_fall):
    events, _, _, _ = backward_fall
    falls = [e for e in events if e.event_type == "fall"]
    assert len(falls) == 1
    fall = falls[0]
    assert 0.4 <= fall.t <= 0.4 + 2.5  # labelled start 0.4 s; the body is on the floor by about 1.4 s
    assert fall.camera == "room" and isinstance(fall.track_id, int)
    assert fall.confidence is not None and 0.0 < fall.confidence <= 1.0
    assert fall.snapshot is None  # the worker attaches the anonymized frame, not the analyzer


def test_the_fallen_person_stays_down_and_becomes_immobile(backward_fall):
    events, snapshots, _, _ = backward_fall
    fall = next(e for e in events if e.event_type == "fall")
    immobile = [e for e in events if e.event_type == "immobile"]
    assert len(immobile) == 1 and immobile[0].track_id == fall.track_id
    assert fall.t < immobile[0].t <= fall.t + 2.5  # immobile_s = 2 after lying began
    last = snapshots[-1]
    assert set(last) == {"person_down", "down", "immobile"}
    assert last["person_down"] is True
    assert [d["track_id"] for d in last["down"]] == [fall.track_id]
    assert set(last["down"][0]) == {"track_id", "since", "zone"} and last["down"][0]["zone"] is None
    assert last["down"][0]["since"] <= fall.t
    assert not snapshots[0]["person_down"]


def test_the_person_on_the_floor_stays_masked(backward_fall):
    """By eye, the last frame shows the body on the floor around (290, 420) px; the detector no longer
    tracks it, yet the anonymizer's boxes still cover it."""
    _, _, result, analyzer = backward_fall
    assert result is not None
    assert not any(tr.box[0] <= 290 <= tr.box[2] and tr.box[1] <= 420 <= tr.box[3] for tr in result.tracks)
    assert any(b[0] <= 290 <= b[2] and b[1] <= 420 <= b[3] for b in analyzer.mask_boxes())
    assert any(b[0] <= 290 <= b[2] and b[1] <= 420 <= b[3] for b in result.mask_boxes)


def test_bending_to_the_floor_while_seated_is_not_a_fall(detector, shared_data):
    """GMDCSA24 subject 1 ADL 16: seated, bends to pick a phone off the floor and sits up again."""
    events, snapshots, _, _ = _run(detector, shared_data / "falls" / "gmdcsa24_s1_adl_16.mp4", {"immobile_s": 2})
    assert events == []
    assert not any(s["person_down"] for s in snapshots)


# ---- registration, model handling ---------------------------------------------------------------


def test_falls_run_only_when_configured():
    assert not any(isinstance(a, FallsAnalyzer) for a in build_analyzers(parse_scene({}), "cam"))
    assert not any(isinstance(a, FallsAnalyzer) for a in build_analyzers(parse_scene({"falls": {"enabled": False}}), "cam"))
    built = [a for a in build_analyzers(parse_scene({"falls": {}}), "cam") if isinstance(a, FallsAnalyzer)]
    assert len(built) == 1 and built[0].pose_error is None and built[0].name == "falls"


def test_a_missing_pose_model_leaves_the_camera_running(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("SAFECAM_CACHE_DIR", str(tmp_path / "cache"))
    shared_multipose.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            (analyzer,) = [a for a in build_analyzers(parse_scene({"falls": True}), "cam") if isinstance(a, FallsAnalyzer)]
    finally:
        shared_multipose.cache_clear()
    assert analyzer.pose_error is not None and "movenet_multipose_lightning" in analyzer.pose_error
    assert "fall detection is off" in caplog.text
    frame = _frame(0.0, [_track(1, (100, 100, 160, 300))])
    assert analyzer.update(frame) == [] and analyzer.snapshot()["person_down"] is False


# ---- config -------------------------------------------------------------------------------------

ZONES = (
    ZoneConfig("walkway", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))),
    ZoneConfig("bench", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))),
)


def test_config_defaults_and_shorthands():
    assert parse_falls({}, ZONES) == FallsConfig()
    assert parse_falls(True, ZONES) == FallsConfig(enabled=True)
    assert parse_falls(False, ZONES).enabled is False
    cfg = parse_falls({"enabled": True, "immobile_s": 30, "immobile_zones": ["walkway"], "cooldown_s": 0}, ZONES)
    assert cfg == FallsConfig(True, 30.0, ("walkway",), 0.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"immobile": 3}, "falls: unknown key(s) immobile (allowed: cooldown_s, enabled, immobile_s, immobile_zones)"),
        ({"immobile_zones": ["dock"]}, "falls: immobile_zones names unknown zone 'dock' (zones: bench, walkway)"),
        ({"immobile_zones": "walkway"}, "falls: 'immobile_zones' must be a list of zone names"),
        ({"immobile_s": "20"}, "falls: 'immobile_s' must be a number of seconds"),
        ({"immobile_s": 0}, "falls: 'immobile_s' must be between 1 and 86400 seconds, got 0"),
        ({"cooldown_s": -1}, "falls: 'cooldown_s' must be between 0 and 86400 seconds, got -1"),
        ({"enabled": "yes"}, "falls: 'enabled' must be true or false"),
        ([1], "falls: expected a mapping with enabled, immobile_s, immobile_zones, cooldown_s (or true/false)"),
    ],
)
def test_config_errors_are_one_line_and_name_the_problem(data, message):
    with pytest.raises(ConfigError) as err:
        parse_scene({"zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in ZONES], "falls": data})
    assert str(err.value) == message


# ---- rule logic on synthetic tracks and poses ---------------------------------------------------

W, H = 640, 480
# A standing body, keypoint heights as fractions of the body height from the top (COCO order), x offsets.
_UP_Y = np.array([0.06, 0.05, 0.05, 0.06, 0.06, 0.2, 0.2, 0.35, 0.35, 0.48, 0.48, 0.52, 0.52, 0.73, 0.73, 0.95, 0.95])
_UP_X = np.array([0, -0.02, 0.02, -0.04, 0.04, -0.1, 0.1, -0.12, 0.12, -0.12, 0.12, -0.06, 0.06, -0.06, 0.06, -0.06, 0.06])


def _pose(cx: float, bottom: float, height: float, lying: bool = False) -> Pose:
    kp = np.empty((17, 3), np.float32)
    if lying:  # the same body rotated onto the floor: head to the left
        kp[:, 0] = cx - height / 2 + _UP_Y * height
        kp[:, 1] = bottom - 0.1 * height + _UP_X * height
    else:
        kp[:, 0] = cx + _UP_X * height
        kp[:, 1] = bottom - height + _UP_Y * height
    kp[:, 2] = 0.6
    box = (float(kp[:, 0].min()), float(kp[:, 1].min()), float(kp[:, 0].max()), float(kp[:, 1].max()))
    return Pose(kp, 0.4, box)


def _track(tid: int, box, lost: int = 0, score: float = 0.9) -> Track:
    return Track(tid, tuple(float(v) for v in box), score, True, 1.0, lost)  # type: ignore[arg-type]


def _frame(t: float, tracks: list[Track], detected: bool = True) -> AnalysisFrame:
    counted = [tr for tr in tracks if tr.lost_frames <= 3]
    return AnalysisFrame(
        "cam",
        int(t * 10),
        t,
        np.zeros((H, W, 3), np.uint8),
        W,
        H,
        detected,
        Detections.empty(),
        counted,
        tracks,
        np.zeros((0, 2)),
        {},
    )


class Scene:
    """Drives a FallsAnalyzer with synthetic tracks; `poses` is what pose "sees" on the next frame."""

    def __init__(self, config: FallsConfig, zones=()) -> None:
        self.poses: list[Pose] = []
        self.pose_calls = 0
        self.analyzer = FallsAnalyzer(config, "cam", zones, pose=self._pose)
        self.events: list = []

    def _pose(self, image: np.ndarray) -> list[Pose]:
        self.pose_calls += 1
        return list(self.poses)

    def step(self, t: float, tracks: list[Track], poses: list[Pose] | None = None, detected: bool = True):
        self.poses = poses or []
        got = self.analyzer.update(_frame(t, tracks, detected))
        self.events += got
        return got

    def fall(self, tid: int, t0: float, x: float = 300.0, steps: int = 12) -> float:
        """Stand 1 s, then the detector loses the person and pose sees them on the floor; returns the end time."""
        box = (x - 40, 100, x + 40, 400)
        t = t0
        for _ in range(10):
            self.step(t, [_track(tid, box)], [_pose(x, 400, 300)])
            t = round(t + 0.1, 3)
        for k in range(steps):
            self.step(t, [_track(tid, box, lost=k + 1)], [_pose(x, 400, 300, lying=True)])
            t = round(t + 0.1, 3)
        return t

    def of(self, kind: str) -> list:
        return [e for e in self.events if e.event_type == kind]


def test_walking_people_cost_no_pose():
    s = Scene(FallsConfig())
    for k in range(50):
        x = 100 + 5 * k
        s.step(k * 0.1, [_track(1, (x, 100, x + 80, 400)), _track(2, (500 - x, 150, 560 - x, 380))])
    assert s.pose_calls == 0 and s.events == []


def test_pose_looks_for_someone_lost_in_the_open_not_behind_someone_else():
    s = Scene(FallsConfig())
    a, b = (100, 100, 180, 400), (400, 100, 480, 400)
    for k in range(10):
        s.step(k * 0.1, [_track(1, a), _track(2, b)])
    # 2 walks in front of 1: the detector loses 1 behind 2. No reason to look.
    for k in range(10, 15):
        s.step(k * 0.1, [_track(1, a, lost=k - 9), _track(2, (110, 90, 190, 410))])
    assert s.pose_calls == 0
    # 1 is found again; 3 vanishes in the middle of the room, nobody in front: pose looks where they were.
    c = (300, 100, 380, 400)
    for k in range(15, 25):
        s.step(k * 0.1, [_track(1, a), _track(2, b), _track(3, c)])
    assert s.pose_calls == 0
    s.step(2.5, [_track(1, a), _track(2, b), _track(3, c, lost=1)])
    assert s.pose_calls == 1


def test_fall_is_confirmed_over_several_frames_then_the_person_is_down():
    s = Scene(FallsConfig(immobile_s=20))
    end = s.fall(7, 0.0)
    (fall,) = s.of("fall")
    # Lying first seen at 1.0 s; confirmed after 3 pose frames spanning >= 0.4 s.
    assert fall.track_id == 7 and fall.zone is None and 1.3 <= fall.t <= 1.5
    snap = s.analyzer.snapshot()
    assert snap == {"person_down": True, "down": [{"track_id": 7, "since": 1.0, "zone": None}], "immobile": []}
    assert end > fall.t


def test_a_brief_dip_to_the_floor_is_not_a_fall():
    s = Scene(FallsConfig())
    box = (260, 100, 340, 400)
    for k in range(10):
        s.step(k * 0.1, [_track(1, box)], [_pose(300, 400, 300)])
    # Two lying-looking frames (a glitch, a quick reach to the floor), then upright again.
    s.step(1.0, [_track(1, box, lost=1)], [_pose(300, 400, 300, lying=True)])
    s.step(1.1, [_track(1, box, lost=2)], [_pose(300, 400, 300, lying=True)])
    for k in range(12, 30):
        s.step(k * 0.1, [_track(1, box)], [_pose(300, 400, 300)])
    assert s.events == [] and not s.analyzer.snapshot()["person_down"]


def test_lying_down_slowly_is_not_a_fall():
    s = Scene(FallsConfig())
    for k in range(10):
        s.step(k * 0.1, [_track(1, (260, 100, 340, 400))], [_pose(300, 400, 300)])
    # Sits on the floor for 2 s (neither upright nor lying), then lies down.
    sitting = _pose(300, 400, 160)
    for k in range(10, 30):
        s.step(k * 0.1, [_track(1, (250, 240, 350, 400))], [sitting])
    for k in range(30, 45):
        s.step(k * 0.1, [_track(1, (150, 330, 450, 400))], [_pose(300, 400, 300, lying=True)])
    assert s.of("fall") == []


def test_down_ends_when_the_person_gets_up():
    s = Scene(FallsConfig())
    t = s.fall(1, 0.0)
    assert s.analyzer.snapshot()["person_down"]
    for _ in range(15):  # tracked standing again where they lay
        s.step(t, [_track(1, (260, 100, 340, 400))], [_pose(300, 400, 300)])
        t = round(t + 0.1, 3)
    assert s.analyzer.snapshot() == {"person_down": False, "down": [], "immobile": []}


def test_fall_cooldown_is_per_track():
    s = Scene(FallsConfig(cooldown_s=60))
    t = s.fall(1, 0.0)
    for _ in range(15):
        s.step(t, [_track(1, (260, 100, 340, 400))], [_pose(300, 400, 300)])
        t = round(t + 0.1, 3)
    t = s.fall(1, t)  # the same person falls again within a minute: one alert is enough
    assert len(s.of("fall")) == 1 and s.analyzer.snapshot()["person_down"]
    s.fall(2, t + 1, x=500)  # someone else falling is a new alert
    assert [e.track_id for e in s.of("fall")] == [1, 2]

    s = Scene(FallsConfig(cooldown_s=5))
    t = s.fall(1, 0.0)
    for _ in range(50):
        s.step(t, [_track(1, (260, 100, 340, 400))], [_pose(300, 400, 300)])
        t = round(t + 0.1, 3)
    s.fall(1, t)
    assert len(s.of("fall")) == 2


def test_staying_down_becomes_immobile_once_and_the_tracker_may_forget_them():
    zones = (ZoneConfig("shop", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))),)
    s = Scene(FallsConfig(immobile_s=3), zones)
    t = s.fall(4, 0.0)
    (fall,) = s.of("fall")
    assert fall.zone == "shop"
    for _ in range(60):  # the tracker has dropped the track; pose still finds the body every check
        s.step(t, [], [_pose(300, 400, 300, lying=True)], detected=False)
        t = round(t + 0.1, 3)
    (immobile,) = s.of("immobile")
    assert immobile.track_id == 4 and immobile.zone == "shop"
    assert abs(immobile.t - (1.0 + 3)) <= 0.15  # down since 1.0 s
    snap = s.analyzer.snapshot()
    assert snap["immobile"] == [{"track_id": 4, "since": 1.0, "zone": "shop"}] and snap["person_down"]
    # Lying body from the synthetic pose: x 150-450, y about 340-400; the mask covers it.
    (mask,) = s.analyzer.mask_boxes()
    assert mask[0] <= 150 and mask[2] >= 450 and mask[1] <= 340 and mask[3] >= 400
    # Pose only looks every down_check_s while someone is down.
    assert s.pose_calls < 20 + 60 // 4


def test_down_is_dropped_when_the_body_is_no_longer_there():
    s = Scene(FallsConfig())
    t = s.fall(1, 0.0)
    for _ in range(40):
        s.step(t, [], [], detected=False)
        t = round(t + 0.1, 3)
    assert s.analyzer.snapshot()["down"] == [] and s.analyzer.mask_boxes() == []


def test_standing_still_is_immobile_only_in_immobile_zones():
    s = Scene(FallsConfig(immobile_s=5, immobile_zones=("walkway",), cooldown_s=60), ZONES)
    for k in range(80):
        t = k * 0.1
        jitter = 2 * np.sin(k)  # a standing person's box wobbles a little
        still_left = _track(1, (100 + jitter, 100, 180 + jitter, 400))
        still_right = _track(2, (420, 100, 500, 400))
        walker = _track(3, (10 + 3 * k, 120, 70 + 3 * k, 380))  # walks along the walkway
        s.step(t, [still_left, still_right, walker])
    (immobile,) = s.of("immobile")
    assert immobile.track_id == 1 and immobile.zone == "walkway" and abs(immobile.t - 5.0) < 0.15
    snap = s.analyzer.snapshot()
    assert snap["immobile"] == [{"track_id": 1, "since": 0.0, "zone": "walkway"}]
    assert snap["person_down"] is True and snap["down"] == []
    # Moving on ends it; standing still again later is a new episode, but within the cooldown.
    for k in range(80, 200):
        x = 100 + 5 * min(k - 80, 20)  # walks 100 px along the walkway, then stands still there for 10 s
        s.step(k * 0.1, [_track(1, (x, 100, x + 80, 400))])
    assert len(s.of("immobile")) == 1
