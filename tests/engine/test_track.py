"""Tracker: ID continuity on the real MOT clips, occlusion, stationary people, bounded state."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from custom_components.safecam.engine.pipeline import CameraPipeline
from custom_components.safecam.engine.track import Tracker, TrackerConfig, greedy_match, iou_matrix
from custom_components.safecam.engine.types import Detections

from .mot import frames, load_gt


def _dets(*boxes, score=0.9):
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.full(len(b), score, np.float32), np.zeros(len(b), np.int32))


def test_ids_stay_with_people_on_tud_campus(detector, shared_data):
    """Each ground-truth person is followed mostly by one track id, and ids are not handed around."""
    clip = shared_data / "pedestrians"
    gt = load_gt(clip / "tud_campus.gt.txt")
    pipeline = CameraPipeline(detector)
    per_person: dict[int, Counter[int]] = defaultdict(Counter)
    seen_ids: set[int] = set()
    for i, frame in enumerate(frames(clip / "tud_campus.mp4")):
        res = pipeline.process(frame, i / 25, i, render=False)
        seen_ids.update(t.track_id for t in res.tracks)
        if i not in gt or not res.tracks:
            continue
        ids, gboxes, flags = gt[i]
        # One-to-one matching per frame, as MOT metrics do.
        for g, j in greedy_match(iou_matrix(gboxes, np.array([t.box for t in res.tracks])), 0.5):
            if flags[g]:
                per_person[int(ids[g])][res.tracks[j].track_id] += 1
    followed = [c for c in per_person.values() if sum(c.values()) >= 20]
    assert len(followed) >= 4  # people visible long enough to judge
    for counts in followed:
        assert counts.most_common(1)[0][1] / sum(counts.values()) >= 0.8
    # No id churn: about one track per person (8 identities in the ground truth).
    assert len(seen_ids) <= 12


def test_track_survives_a_short_occlusion():
    tr = Tracker()
    t = 0.0
    for k in range(5):
        out = tr.update(_dets([100 + 4 * k, 100, 140 + 4 * k, 200]), t)
        t += 0.2
    first = out[0].track_id
    for _ in range(3):  # hidden for 0.6 s
        tr.update(Detections.empty(), t)
        t += 0.2
    out = tr.update(_dets([100 + 4 * 8, 100, 140 + 4 * 8, 200]), t)
    assert [o.track_id for o in out] == [first]
    assert out[0].lost_frames == 0


def test_unconfirmed_flicker_never_becomes_a_track():
    tr = Tracker()
    tr.update(_dets([10, 10, 50, 110]), 0.0)
    out = tr.update(Detections.empty(), 0.2)
    assert out == []
    tr.update(Detections.empty(), 0.4)  # a tentative track may miss one frame at 5 fps, not two
    assert tr.tracks(include_tentative=True) == []


def test_standing_person_is_kept_longer_than_a_walker():
    cfg = TrackerConfig(max_lost_s=1.0, max_lost_stationary_s=8.0)
    still, walker = Tracker(cfg), Tracker(cfg)
    t = 0.0
    for k in range(10):
        still.update(_dets([100, 100, 140, 200]), t)
        walker.update(_dets([100 + 20 * k, 100, 140 + 20 * k, 200]), t)
        t += 0.2
    for _ in range(15):  # detector misses both for 3 s
        t += 0.2
        still.update(Detections.empty(), t)
        walker.update(Detections.empty(), t)
    assert len(still.tracks()) == 1
    assert np.allclose(still.tracks()[0].box, [100, 100, 140, 200], atol=5)  # stays where it was
    assert walker.tracks() == []


def test_low_score_detection_keeps_a_track_alive():
    tr = Tracker()
    for k in range(4):
        out = tr.update(_dets([100, 100, 140, 200]), k * 0.2)
    tid = out[0].track_id
    for k in range(4, 20):  # partly occluded: only weak detections for 3 s
        out = tr.update(_dets([100, 100, 140, 200], score=0.3), k * 0.2)
    assert [o.track_id for o in out] == [tid]


def test_state_is_bounded():
    cfg = TrackerConfig(max_tracks=20)
    tr = Tracker(cfg)
    rng = np.random.default_rng(1)
    for k in range(60):
        xy = rng.uniform(0, 2000, (50, 2))
        boxes = np.concatenate([xy, xy + 30], axis=1)
        tr.update(_dets(*boxes), k * 0.1)
        assert len(tr.tracks(include_tentative=True)) <= 20 + 50
    assert len(tr.tracks()) <= 20
