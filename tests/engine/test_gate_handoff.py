"""Gate hand-off: a crossing split across two track ids (the person was hidden while crossing, the tracker
lost them on one side and started a new track on the other) counts once, and only then.

Synthetic tracks are fed to GateCounter in the pipeline's order (hold all tracks, update the counted
ones, prune), the way the tracker reports them: a confirmed track out of sight keeps coming with
`lost_frames > 0` until the tracker drops it; a new track is tentative for its first looks.
Plus TUD-Stadtmitte through the full pipeline, where people walk behind one another across the lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from custom_components.safecam.engine.config import GateConfig, parse_scene
from custom_components.safecam.engine.pipeline import CameraPipeline
from custom_components.safecam.engine.scene.gates import GateCounter
from custom_components.safecam.engine.types import Track

from .mot import frames, load_gt

W, H = 640, 480
FPS = 25.0
HEIGHT = 0.4  # a standing person's box height, normalized (192 px)
SPEED = 0.8 * HEIGHT * H / W  # a walker: about 0.8 body heights per second, in normalized x per second
GRACE = 3  # the pipeline's count_grace_frames: a lost person still counts this many missed looks


def person(tid: int, x: float, y: float = 0.8, lost: int = 0, confirmed: bool = True, height: float = HEIGHT) -> Track:
    """A track whose feet (bottom-centre) stand at (x, y), normalized."""
    half = height * H / 5  # a person is about 2.5 times taller than wide
    box = (x * W - half, (y - height) * H, x * W + half, y * H)
    return Track(tid, box, 0.9, confirmed, 0.0, lost)


class Feed:
    """GateCounter fed frame by frame as the pipeline feeds it."""

    def __init__(self, gates: GateCounter | None = None) -> None:
        self.gates = gates or GateCounter((GateConfig("door", ((0.5, 0.05), (0.5, 0.95))),))
        self.t = 0.0
        self.crossings: list[tuple[str, int, str]] = []

    def frame(self, *tracks: Track) -> None:
        counted = [tr for tr in tracks if tr.confirmed and tr.lost_frames <= GRACE]
        feet = np.array([((tr.box[0] + tr.box[2]) / 2 / W, tr.box[3] / H) for tr in counted], np.float64).reshape(-1, 2)
        self.gates.hold(list(tracks), W, H, self.t)
        self.crossings += self.gates.update(np.clip(feet, 0.0, 1.0), [tr.track_id for tr in counted])
        self.gates.prune({tr.track_id for tr in tracks if tr.confirmed})
        self.t += 1 / FPS

    def count(self) -> dict[str, int]:
        return self.gates.snapshot()["door"]


def walk_then_hide(feed: Feed, tid: int = 1, x0: float = 0.8, x1: float = 0.56, y: float = 0.8) -> float:
    """Track `tid` walks right to left from x0 to x1 (seen), then is hidden; returns the x it would be at now."""
    n = round(abs(x1 - x0) / SPEED * FPS)
    for k, x in enumerate(np.linspace(x0, x1, n)):
        feed.frame(person(tid, float(x), y, confirmed=k >= 2))
    return x1


def lost(tid: int, x: float, k: int, y: float = 0.8) -> Track:
    """Track `tid` in its k-th missed frame, predicted on at the walking speed (the tracker's prediction)."""
    return person(tid, x - SPEED * k / FPS, y, lost=k)


def reborn(feed: Feed, tid: int, x: float, seconds: float, y: float = 0.8, *others_lost: tuple[int, float, int]) -> None:
    """A new track `tid` appears at x and walks on to the left for `seconds`, while the given lost tracks stay lost."""
    for k in range(round(seconds * FPS)):
        extra = [lost(o, ox, ok + k, y) for o, ox, ok in others_lost]
        feed.frame(person(tid, x - SPEED * k / FPS, y, confirmed=k >= 2), *extra)


def hidden(feed: Feed, tid: int, x: float, frames_: int, y: float = 0.8) -> int:
    """Track `tid` stays lost for `frames_` frames after being seen at x; returns how many frames it has been lost."""
    for k in range(1, frames_ + 1):
        feed.frame(lost(tid, x, k, y))
    return frames_


# ---- a split crossing counts once ------------------------------------------------------------------


def test_a_crossing_split_between_a_lost_track_and_a_new_one_counts_once_when_the_lost_one_ends():
    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 10)  # 0.4 s behind someone, on the line
    # Where track 1 would be by now: born there, on the other side, walking on.
    born_x = x - SPEED * k / FPS - 0.01
    assert born_x < 0.49
    reborn(feed, 2, born_x, 0.5, 0.8, (1, x, k + 1))
    assert feed.count()["in"] == 0  # not yet: track 1 may still come back
    feed.frame(person(2, born_x - 0.05))  # the tracker has dropped track 1 now
    assert feed.count() == {"in": 1, "out": 0, "net": 1}
    assert feed.crossings == [("door", 2, "in")]  # reported for the track that carries on
    for _ in range(40):  # nothing more while the new track walks on
        feed.frame(person(2, born_x - 0.06))
    assert feed.count() == {"in": 1, "out": 0, "net": 1}


def test_a_crossing_the_lost_track_itself_counts_is_not_handed_off_again():
    """Hidden just before the line: the new track is born beyond it while the lost track is still counted at its
    predicted position (count_grace_frames), and that prediction crosses the line too. One person, one crossing."""
    feed = Feed()
    x = walk_then_hide(feed, x1=0.515)  # clearly on the near side (margin 0.01), hidden from the next frame
    feed.frame(lost(1, x, 1))
    # Born beyond the line as the prediction reaches it; two frames later the prediction is clearly beyond it too.
    reborn(feed, 2, 0.48, 0.5, 0.8, (1, x, 2))
    assert feed.count()["in"] == 1  # counted for the lost track's prediction, as any counted track's crossing
    feed.frame(person(2, 0.40))  # the tracker has dropped track 1
    for _ in range(5):
        feed.frame(person(2, 0.39))
    assert feed.count() == {"in": 1, "out": 0, "net": 1}


def test_the_hand_off_counts_in_the_direction_of_travel():
    feed = Feed()
    n = round(0.24 / SPEED * FPS)
    for k, x in enumerate(np.linspace(0.2, 0.44, n)):  # left to right: "out"
        feed.frame(person(1, float(x), confirmed=k >= 2))
    for k in range(1, 11):
        feed.frame(person(1, 0.44 + SPEED * k / FPS, lost=k))
    born_x = 0.44 + SPEED * 10 / FPS + 0.01
    for k in range(12):
        feed.frame(person(2, born_x + SPEED * k / FPS, confirmed=k >= 2), person(1, 0.44 + SPEED * (11 + k) / FPS, lost=11 + k))
    feed.frame(person(2, born_x + 0.1))
    assert feed.count() == {"in": 0, "out": 1, "net": -1}


def test_a_new_track_that_walks_back_through_counts_as_usual_after_the_hand_off():
    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 8)
    born_x = x - SPEED * k / FPS - 0.01
    reborn(feed, 2, born_x, 0.4, 0.8, (1, x, k + 1))
    feed.frame(person(2, 0.40))  # track 1 dropped: the hand-off counts
    for xx in np.linspace(0.40, 0.7, 30):  # and the person walks back out, and in again: re-entries count
        feed.frame(person(2, float(xx)))
    for xx in np.linspace(0.7, 0.3, 30):
        feed.frame(person(2, float(xx)))
    assert feed.count() == {"in": 2, "out": 1, "net": 1}


# ---- and only then ----------------------------------------------------------------------------------


def test_a_lost_track_that_comes_back_is_not_handed_off():
    # Track 1 is hidden on the line while someone else appears beyond it; then track 1 is seen again.
    for back_at in (0.58, 0.40):  # back where it was (it never crossed), or beyond the line (it crossed itself)
        feed = Feed()
        x = walk_then_hide(feed)
        k = hidden(feed, 1, x, 10)
        born_x = x - SPEED * k / FPS - 0.01
        reborn(feed, 2, born_x, 0.3, 0.8, (1, x, k + 1))
        for _ in range(5):
            feed.frame(person(1, back_at), person(2, born_x - 0.02))
        for _ in range(50):  # track 1 is gone for good this time: it was matched, so it hands nothing off
            feed.frame(person(2, born_x - 0.03))
        expected = 0 if back_at > 0.5 else 1  # its own crossing counts, once
        assert feed.count() == {"in": expected, "out": 0, "net": expected}, back_at


def test_two_unrelated_people_are_not_one_crossing():
    # Someone leaves view near the line (at the bottom of the frame); someone else appears beyond the line
    # at the far end of it at about the same time: far from where the first would be.
    feed = Feed()
    x = walk_then_hide(feed, y=0.9)
    k = hidden(feed, 1, x, 5, y=0.9)
    reborn(feed, 2, 0.45, 0.4, 0.45, (1, x, k + 1))  # half a frame higher up: about a metre or more away
    feed.frame(person(2, 0.40, 0.45))
    assert feed.count()["in"] == 0

    # Someone appears right beyond the line, but walking in from the left while the lost person was
    # walking in from the right much further away: too far from where the lost person would be.
    feed = Feed()
    x = walk_then_hide(feed, x1=0.75)
    k = hidden(feed, 1, x, 5)
    reborn(feed, 2, 0.40, 0.4, 0.8, (1, x, k + 1))
    feed.frame(person(2, 0.38))
    assert feed.count()["in"] == 0


def test_a_new_track_born_too_late_or_of_another_size_is_not_a_continuation():
    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 45)  # 1.8 s: longer than the tracker keeps a moving person it cannot see
    born_x = x - SPEED * k / FPS
    reborn(feed, 2, born_x, 0.4, 0.8, (1, x, k + 1))
    feed.frame(person(2, born_x - 0.03))
    assert feed.count()["in"] == 0

    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 8)
    born_x = x - SPEED * k / FPS
    for j in range(10):  # a child (or someone much nearer the camera) appears where the adult went
        feed.frame(person(2, born_x - SPEED * j / FPS, height=0.2, confirmed=j >= 2), lost(1, x, k + 1 + j))
    feed.frame(person(2, born_x - 0.05, height=0.2))
    assert feed.count()["in"] == 0


def test_a_new_track_on_the_same_side_or_never_confirmed_counts_nothing():
    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 3)
    for j in range(12):  # someone appears on the near side of the line, where track 1 was, and stands there
        feed.frame(person(2, 0.57, confirmed=j >= 2), lost(1, x, k + 1 + j))
    feed.frame(person(2, 0.57))
    assert feed.count()["in"] == 0

    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 10)
    born_x = x - SPEED * k / FPS
    feed.frame(person(2, born_x, confirmed=False), lost(1, x, k + 1))  # one look, then never again: noise
    for j in range(2, 40):
        feed.frame(lost(1, x, k + j))
    feed.frame()  # track 1 dropped
    assert feed.count()["in"] == 0


def test_each_lost_track_hands_off_once_and_each_new_track_continues_one():
    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 10)
    born_x = x - SPEED * k / FPS
    for j in range(12):  # two new people where track 1 went: one of them is track 1's person
        feed.frame(
            person(2, born_x - SPEED * j / FPS, confirmed=j >= 2),
            person(3, born_x - 0.02 - SPEED * j / FPS, 0.82, confirmed=j >= 2),
            lost(1, x, k + 1 + j),
        )
    feed.frame(person(2, born_x - 0.1), person(3, born_x - 0.12, 0.82))
    assert feed.count() == {"in": 1, "out": 0, "net": 1}


def test_a_new_track_whose_best_placed_lost_track_comes_back_continues_the_next_one():
    # Two people walk one behind the other towards the line and both go out of sight; a new track appears
    # beyond the line, best placed for the first; the first is then seen again on the near side (never
    # crossed): the new track is the second person, who did cross.
    feed = Feed()
    n = round(0.24 / SPEED * FPS)
    for k, x in enumerate(np.linspace(0.8, 0.56, n)):
        feed.frame(person(1, float(x), confirmed=k >= 2), person(3, float(x) + 0.04, 0.83, confirmed=k >= 2))
    for k in range(1, 11):
        feed.frame(lost(1, 0.56, k), lost(3, 0.60, k, 0.83))
    born_x = 0.56 - SPEED * 10 / FPS - 0.01
    for j in range(8):
        feed.frame(person(2, born_x - SPEED * j / FPS, confirmed=j >= 2), lost(1, 0.56, 11 + j), lost(3, 0.60, 11 + j, 0.83))
    for j in range(5):  # track 1 is back where it was hidden: it never crossed
        feed.frame(person(2, born_x - 0.04), person(1, 0.58), lost(3, 0.60, 19 + j, 0.83))
    assert feed.count()["in"] == 0
    feed.frame(person(2, born_x - 0.05), person(1, 0.58))  # track 3 dropped: it hands its crossing to track 2
    assert feed.count() == {"in": 1, "out": 0, "net": 1}
    assert feed.crossings == [("door", 2, "in")]


def test_the_hand_off_goes_to_the_birth_placed_best_not_the_first():
    # Track 1 is hidden on the line. Someone else walks into view beyond the line first, within the radius
    # allowed but well off where track 1 would be (at low rates, before a lost track has a velocity, this
    # is what an entrance next to a gate looks like); track 1's person reappears later, right where they
    # would be by then. The crossing is theirs, and counts once.
    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 5)
    other_x = x - SPEED * (k + 1) / FPS - 0.14  # 0.2 s after the loss, 0.14 off (the radius then: about 0.18)
    for j in range(10):
        feed.frame(person(2, other_x - SPEED * j / FPS, confirmed=j >= 2), lost(1, x, k + 1 + j))
    k += 11
    born_x = x - SPEED * k / FPS - 0.01
    for j in range(10):
        feed.frame(
            person(2, other_x - SPEED * (10 + j) / FPS),
            person(3, born_x - SPEED * j / FPS, confirmed=j >= 2),
            lost(1, x, k + j),
        )
    feed.frame(person(2, other_x - 0.2), person(3, born_x - 0.1))  # track 1 dropped: the hand-off counts
    assert feed.count() == {"in": 1, "out": 0, "net": 1}
    assert feed.crossings == [("door", 3, "in")]


def test_a_merged_last_box_does_not_misplace_the_lost_track():
    # The walker's last box before the loss merged with someone nearer the camera passing in front: taller,
    # feet lower. Where the walker went is judged from their usual boxes, so their reappearance beyond the
    # line, as tall as before, continues them.
    feed = Feed()
    x = walk_then_hide(feed)
    feed.frame(person(1, x - 0.005, 0.9, height=0.62))  # the merged box (about 1.55 times the walker's height)
    k = hidden(feed, 1, x, 10)
    born_x = x - SPEED * (k + 1) / FPS - 0.01
    reborn(feed, 2, born_x, 0.4, 0.8, (1, x, k + 1))
    feed.frame(person(2, born_x - 0.1))  # track 1 dropped
    assert feed.count() == {"in": 1, "out": 0, "net": 1}
    assert feed.crossings == [("door", 2, "in")]


def test_a_reset_drops_hand_offs_not_counted_yet_and_off_turns_it_off():
    feed = Feed()
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 10)
    born_x = x - SPEED * k / FPS
    reborn(feed, 2, born_x, 0.4, 0.8, (1, x, k + 1))
    feed.gates.reset()
    feed.frame(person(2, born_x - 0.05))
    assert feed.count()["in"] == 0

    feed = Feed(GateCounter((GateConfig("door", ((0.5, 0.05), (0.5, 0.95))),), handoff_s=0))
    x = walk_then_hide(feed)
    k = hidden(feed, 1, x, 10)
    born_x = x - SPEED * k / FPS
    reborn(feed, 2, born_x, 0.4, 0.8, (1, x, k + 1))
    feed.frame(person(2, born_x - 0.05))
    assert feed.count()["in"] == 0


# ---- real video ------------------------------------------------------------------------------------


def _truth(gt: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]], x: float, margin: float = 0.01) -> dict[str, int]:
    """Crossings of the full-height line at x by the annotated feet: clear side changes (more than `margin`)."""
    side: dict[int, int] = {}
    counts = {"in": 0, "out": 0}
    for f in sorted(gt):
        ids, boxes, _ = gt[f]
        for tid, b in zip(ids, boxes, strict=True):
            d = x - (b[0] + b[2]) / 2 / W
            if abs(d) > margin:
                new = 1 if d > 0 else -1
                if side.get(int(tid), new) != new:
                    counts["in" if new > 0 else "out"] += 1
                side[int(tid)] = new
    return counts


def test_stadtmitte_where_people_walk_behind_one_another_counts_within_five_percent(detector: Any, shared_data: Path):
    """TUD-Stadtmitte at 25 fps, nine full-height lines: pairs and groups cross behind one another, and the
    tracker loses some of them on one side of a line and starts new tracks on the other."""
    xs = [round(0.1 * k, 1) for k in range(1, 10)]
    pipeline = CameraPipeline(detector, parse_scene({"gates": [{"name": f"x{x}", "line": [[x, 0.0], [x, 1.0]]} for x in xs]}))
    for i, frame in enumerate(frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4")):
        result = pipeline.process(frame, i / 25, i, render=False)
    gt = load_gt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt")
    errors, true_total = [], 0
    for x in xs:
        truth = _truth(gt, x)
        true_total += truth["in"] + truth["out"]
        errors += [result.gates[f"x{x}"][d] - truth[d] for d in ("in", "out")]
    assert true_total >= 25
    assert sum(abs(e) for e in errors) <= 0.05 * true_total
    assert max(errors) <= 0  # the hand-off never counts a crossing nobody made
