"""Tracker: ID continuity on the real MOT clips, occlusion, stationary people, bounded state."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import numpy as np
import pytest

from custom_components.safecam.engine.pipeline import CameraPipeline
from custom_components.safecam.engine.track import Tracker, TrackerConfig, greedy_match, iou_matrix, linear_match
from custom_components.safecam.engine.types import Detections

from .mot import frames, load_gt


def _dets(*boxes, score=0.9):
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.full(len(b), score, np.float32), np.zeros(len(b), np.int32))


def _track_ids_per_person(pipeline, images, gt, step: int) -> tuple[dict[int, Counter[int]], set[int]]:
    """Every `step`-th frame through the pipeline: for each ground-truth person, how often each track id
    covered them (one-to-one matching per frame, as MOT metrics do), and every track id reported."""
    per_person: dict[int, Counter[int]] = defaultdict(Counter)
    seen_ids: set[int] = set()
    for i in range(0, len(images), step):
        res = pipeline.process(images[i], i / 25, i, render=False)
        seen_ids.update(t.track_id for t in res.tracks)
        if i not in gt or not res.tracks:
            continue
        ids, gboxes, flags = gt[i]
        for g, j in greedy_match(iou_matrix(gboxes, np.array([t.box for t in res.tracks])), 0.5):
            if flags[g]:
                per_person[int(ids[g])][res.tracks[j].track_id] += 1
    return per_person, seen_ids


def test_ids_stay_with_people_on_tud_campus(detector, shared_data):
    """Each ground-truth person is followed mostly by one track id, and ids are not handed around."""
    clip = shared_data / "pedestrians"
    gt = load_gt(clip / "tud_campus.gt.txt")
    per_person, seen_ids = _track_ids_per_person(CameraPipeline(detector), frames(clip / "tud_campus.mp4"), gt, step=1)
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


def _best_total(score: np.ndarray, threshold: float) -> float:
    """The largest total score of a one-to-one matching above threshold, by trying every one (small matrices)."""
    n, m = score.shape
    best = 0.0
    if n > m:
        return _best_total(score.T, threshold)
    for cols in itertools.permutations(range(m), n):
        best = max(best, sum(score[r, c] for r, c in enumerate(cols) if score[r, c] >= threshold))
    return best


def test_linear_match_finds_the_best_one_to_one_matching():
    # Greedy takes the single best pair (0, 0) and leaves row 1 without a match; the optimum pairs both.
    score = np.array([[0.9, 0.8], [0.7, 0.0]])
    assert sorted(linear_match(score, 0.2)) == [(0, 1), (1, 0)]
    assert greedy_match(score, 0.2) == [(0, 0)]
    rng = np.random.default_rng(7)
    for _ in range(300):
        n, m = (int(v) for v in rng.integers(0, 6, 2))
        score = rng.uniform(0, 1, (n, m)) * (rng.uniform(0, 1, (n, m)) < 0.5)
        pairs = linear_match(score, 0.3)
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
        assert all(score[r, c] >= 0.3 for r, c in pairs)
        total = sum(score[r, c] for r, c in pairs)
        assert total == pytest.approx(_best_total(score, 0.3) if n and m else 0.0)


def test_ids_stay_with_people_at_5_fps(detector, shared_data):
    """At Home Assistant's default rate people move far between looks and new tracks have no velocity:
    newcomers walking close together must still keep their own tracks (tud_campus, every 5th frame)."""
    clip = shared_data / "pedestrians"
    gt = load_gt(clip / "tud_campus.gt.txt")
    per_person, _ = _track_ids_per_person(CameraPipeline(detector), frames(clip / "tud_campus.mp4"), gt, step=5)
    followed = [c for c in per_person.values() if sum(c.values()) >= 4]
    assert len(followed) >= 4
    # Nobody's looks are shared out between tracks: a person's main track has most of them.
    for counts in followed:
        assert counts.most_common(1)[0][1] / sum(counts.values()) >= 0.8  # as at 25 fps (test above)


@pytest.mark.xfail(
    strict=True,
    reason="issue #4, known limitation kept on purpose: a lost track's box keeps its size velocity. Freezing it "
    "(ByteTrack/BoT-SORT) or bounding it against the last detected size was measured (bench/accuracy.py, --fps 25 5) "
    "and worsened IDF1 / ID switches / MOTA on at least one clip and rate; the tracker gates what a drifted track may "
    "claim instead (test below).",
)
def test_a_lost_tracks_box_does_not_grow_from_its_last_detections():
    """The drift behind issue #4's x80 miss: a walker's last boxes grow (merging with someone in front), then
    the walker is hidden; the prediction keeps growing the box, which can then claim a newcomer's detection."""
    tr = Tracker()
    t = 0.0
    for k in range(20):  # walking right, 25 fps, box 100 px tall
        tr.update(_dets([100 + 2 * k, 100, 140 + 2 * k, 200]), t)
        t += 0.04
    for k in range(5):  # the box's bottom edge slides down 8 px a frame: 140 px tall at the last detection
        tr.update(_dets([140 + 2 * k, 100, 180 + 2 * k, 208 + 8 * k]), t)
        t += 0.04
    for _ in range(20):  # hidden for 0.8 s (within max_lost_s: the track is kept)
        tr.update(Detections.empty(), t)
        t += 0.04
    (track,) = tr.tracks(include_tentative=True)
    assert track.lost_frames == 20
    assert track.box[3] - track.box[1] <= 1.2 * 140  # people do not grow 20 % in 0.8 s


def test_a_drifted_lost_track_does_not_claim_a_newcomer_of_another_size():
    """Issue #4: a far person's last boxes grow (merging with someone passing in front), then they are hidden; their
    lost track's prediction keeps growing and overlaps a nearer newcomer, twice their size. The newcomer gets a
    track of their own, and the far person's track still takes them back when they reappear as last seen."""
    tr = Tracker()
    t = 0.0
    for k in range(20):  # a far person walking right, 25 fps, box 60 px tall
        out = tr.update(_dets([100 + 2 * k, 100, 130 + 2 * k, 160]), t)
        t += 0.04
    (far,) = (o.track_id for o in out)
    for k in range(4):  # merging: the box's bottom edge slides down, 100 px tall at the last detection
        tr.update(_dets([140 + 2 * k, 100, 170 + 2 * k, 170 + 10 * k]), t)
        t += 0.04
    for _ in range(20):  # hidden for 0.8 s
        tr.update(Detections.empty(), t)
        t += 0.04
    (drifted,) = tr.tracks(include_tentative=True)
    assert drifted.box[3] - drifted.box[1] > 140  # the prediction did grow (the problem this guards against)

    tr.update(_dets([150, 100, 230, 320]), t)  # a newcomer 220 px tall where the drifted box is
    t += 0.04
    by_id = {o.track_id: o for o in tr.tracks(include_tentative=True)}
    assert by_id[far].lost_frames == 21  # the far person's track did not take the newcomer's detection
    assert len(by_id) == 2  # the newcomer has a (tentative) track of their own

    out = tr.update(_dets([150, 100, 230, 320], [178, 100, 212, 200]), t)  # the far person reappears as last seen
    assert {o.track_id: o.lost_frames for o in out}.get(far) == 0


def test_the_per_coordinate_kalman_filter_is_the_full_8x8_filter():
    """The tracker keeps 4 independent (position, velocity) 2x2 blocks instead of an 8x8 covariance: a
    step of both must agree, written out here from the textbook form (F P F^T + Q; K = P H^T S^-1,
    P - K H P with H = [I 0]) for random states and random (coupled) block covariances."""
    from custom_components.safecam.engine import track

    rng = np.random.default_rng(7)
    n, dt = 5, 0.12
    x = np.concatenate([rng.uniform(50, 500, (n, 2)), rng.uniform(0.3, 0.6, (n, 1)), rng.uniform(40, 200, (n, 1))], axis=1)
    x = np.concatenate([x, rng.normal(0, 20, (n, 4))], axis=1)
    pp, vv = rng.uniform(1, 100, (n, 4)), rng.uniform(1, 100, (n, 4))
    pv = rng.uniform(-0.9, 0.9, (n, 4)) * np.sqrt(pp * vv)  # any valid covariance of position and velocity
    blocks = np.stack([pp, pv, vv], axis=1)
    full = np.zeros((n, 8, 8))
    i = np.arange(4)
    full[:, i, i], full[:, i, i + 4], full[:, i + 4, i], full[:, i + 4, i + 4] = pp, pv, pv, vv

    F = np.eye(8)
    F[i, i + 4] = dt
    q = np.where(track._Q_H, track._Q_SCALE * np.maximum(x[:, 3:4], 1.0), track._Q_SCALE) ** 2 * dt
    x_pred, p_pred = track._kalman_predict(x, blocks, dt)
    full_pred = F @ full @ F.T
    full_pred[:, np.arange(8), np.arange(8)] += q
    np.testing.assert_allclose(x_pred, (F @ x[:, :, None])[:, :, 0], rtol=1e-12)
    np.testing.assert_allclose(p_pred[:, 0], full_pred[:, i, i], rtol=1e-12)
    np.testing.assert_allclose(p_pred[:, 1], full_pred[:, i, i + 4], rtol=1e-12)
    np.testing.assert_allclose(p_pred[:, 2], full_pred[:, i + 4, i + 4], rtol=1e-12)

    boxes = track._xyah_to_xyxy(x_pred + rng.normal(0, 3, (n, 8)))
    x_upd, p_upd = track._kalman_update(x_pred, p_pred, boxes)
    z = track._xyxy_to_xyah(boxes)
    S = full_pred[:, :4, :4].copy()
    S[:, i, i] += np.where(track._R_H, track._R_SCALE * np.maximum(x_pred[:, 3:4], 1.0), track._R_SCALE) ** 2
    K = full_pred[:, :, :4] @ np.linalg.inv(S)
    want_x = x_pred + (K @ (z - x_pred[:, :4])[:, :, None])[:, :, 0]
    want_p = full_pred - K @ full_pred[:, :4, :]
    np.testing.assert_allclose(x_upd, want_x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p_upd[:, 0], want_p[:, i, i], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p_upd[:, 1], want_p[:, i, i + 4], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p_upd[:, 1], want_p[:, i + 4, i], rtol=1e-9, atol=1e-9)  # still symmetric
    np.testing.assert_allclose(p_upd[:, 2], want_p[:, i + 4, i + 4], rtol=1e-9, atol=1e-9)
    off_block = want_p.copy()
    off_block[:, i, i] = off_block[:, i, i + 4] = off_block[:, i + 4, i] = off_block[:, i + 4, i + 4] = 0
    assert np.abs(off_block).max() < 1e-9  # nothing couples one coordinate with another
