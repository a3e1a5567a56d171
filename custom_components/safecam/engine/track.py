"""ByteTrack-style multi-person tracker: Kalman motion model, IoU association in two passes
(high-score detections first, then low-score ones for tracks the first pass left), a recovery
pass in buffered-IoU space for tracks whose prediction drifted while hidden (and a size gate
that keeps a drifted prediction off other people's detections), tentative tracks (matched by
optimal assignment) confirmed after a few hits (or two far enough apart in time), and
stationary-aware loss handling.

Time-based (seconds), not frame-based, so it behaves the same at 2 fps and at 25 fps and when
the motion gate skips detection on some frames (`predict` without `update`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .types import Detections, Track


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)  # = clip(.., 0, None), without its wrapper cost
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def buffered_boxes(boxes: np.ndarray, buffer: float) -> np.ndarray:
    """(N,4) xyxy boxes grown by `buffer` times their width/height on every side (C-BIoU's matching space)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + np.stack([-w, -h, w, h], axis=1) * buffer


def greedy_match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending score above threshold, each row and column once.

    Greedy rather than Hungarian: equivalent on the sparse, well-separated IoU matrices of
    people tracking and keeps scipy out of Home Assistant's dependencies.
    """
    pairs: list[tuple[int, int]] = []
    if score.size == 0:
        return pairs
    rows, cols = np.nonzero(score >= threshold)
    order = np.argsort(-score[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def _min_cost_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Rows -> columns of least total cost, every row assigned (n <= m): Hungarian algorithm with potentials, O(n^2 m)."""
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, np.int64)  # column j (1-based) -> row (1-based) assigned to it, 0 = none
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    return [(int(owner[j]) - 1, j - 1) for j in range(1, m + 1) if owner[j]]


def linear_match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) above threshold, each row and column once, with the largest total score.

    ByteTrack's linear assignment. Greedy matching is the same wherever the boxes are well apart;
    where they overlap, greedy can give the best-overlapping detection to the wrong track and leave
    the other track nothing. Solved per group of rows and columns linked by a pair above threshold
    (pure numpy, no scipy in Home Assistant), so a frame of people apart costs about what greedy does.
    """
    if score.size == 0:
        return []
    rows, cols = np.nonzero(score >= threshold)
    if len(rows) == 0:
        return []
    n = score.shape[0]
    parent = list(range(n + score.shape[1]))  # union-find over rows 0..n-1 and columns n..n+m-1

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    links = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
    for r, c in links:
        parent[find(r)] = find(n + c)
    groups: dict[int, tuple[set[int], set[int]]] = {}
    for r, c in links:
        g = groups.setdefault(find(r), (set(), set()))
        g[0].add(r)
        g[1].add(c)
    pairs: list[tuple[int, int]] = []
    for group_rows, group_cols in groups.values():
        gr, gc = sorted(group_rows), sorted(group_cols)
        sub = score[np.ix_(gr, gc)]
        if len(gr) == 1 or len(gc) == 1:  # one track or one detection: the best pair
            k = int(np.argmax(sub))
            pairs.append((gr[k // len(gc)], gc[k % len(gc)]))
            continue
        cost = np.where(sub >= threshold, -sub, 0.0)  # pairs below threshold are no match (cost 0)
        flip = len(gr) > len(gc)
        found = _min_cost_assignment(cost.T if flip else cost)
        for a, b in found:
            r, c = (b, a) if flip else (a, b)
            if sub[r, c] >= threshold:
                pairs.append((gr[r], gc[c]))
    return pairs


def _median(values: list[float]) -> float:
    """statistics.median for a few floats, without its generality (it runs once per track per frame)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """(M,4) xyxy -> (M,4) centre x, centre y, aspect w/h, height."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / np.maximum(h, 1e-6), h], axis=1)


def _xyah_to_xyxy(x: np.ndarray) -> np.ndarray:
    """(N,>=4) Kalman states -> (N,4) xyxy boxes."""
    h = np.maximum(x[:, 3], 1.0)
    w = x[:, 2] * h
    cx, cy = x[:, 0], x[:, 1]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


# Constant-velocity Kalman filter on (cx, cy, aspect, height), velocities per second, kept for all
# tracks at once: state X (N,8), row i belonging to Tracker._tracks[i] (4 positions, then their 4
# velocities). With a diagonal start, diagonal noise and only positions measured, the 8x8
# covariance never couples one coordinate with another: it is 4 independent (position, velocity)
# filters, so only their 2x2 blocks are kept, as P (N,3,4) = variance of position, covariance of
# position and velocity, variance of velocity, per coordinate. Same filter as the full matrices
# (to rounding), in a handful of elementwise operations instead of batched 8x8 matmuls and solves.
# Noise scales relative to box height (people far away move fewer pixels).
_Q_SCALE = np.array([0.05, 0.05, 1e-2, 0.05, 0.5, 0.5, 1e-3, 0.5])
_Q_H = np.array([1, 1, 0, 1, 1, 1, 0, 1], bool)
_R_SCALE = np.array([0.05, 0.05, 1e-2, 0.05])
_R_H = np.array([1, 1, 0, 1], bool)
_INIT_STD = np.array([0.1, 0.1, 0.0, 0.1, 1.0, 1.0, 0.0, 1.0])  # times the box height ...
_INIT_STD_FIXED = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-3, 0.0])  # ... plus these (aspect and its velocity)


def _kalman_init(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States (M,8) at rest and their covariance blocks (M,3,4) for new tracks."""
    z = _xyxy_to_xyah(boxes)
    x = np.concatenate([z, np.zeros_like(z)], axis=1)
    var = (_INIT_STD * z[:, 3:4] + _INIT_STD_FIXED) ** 2
    P = np.zeros((len(boxes), 3, 4))
    P[:, 0], P[:, 2] = var[:, :4], var[:, 4:]
    return x, P


def _kalman_predict(x: np.ndarray, P: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    q = np.where(_Q_H, _Q_SCALE * np.maximum(x[:, 3:4], 1.0), _Q_SCALE) ** 2 * dt
    x = x.copy()
    x[:, :4] += x[:, 4:] * dt
    pp, pv, vv = P[:, 0], P[:, 1], P[:, 2]
    P = np.stack([pp + (2 * dt) * pv + (dt * dt) * vv + q[:, :4], pv + dt * vv, vv + q[:, 4:]], axis=1)
    return x, P


def _kalman_update(x: np.ndarray, P: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct states (M,8) / covariance blocks (M,3,4) with measured (M,4) xyxy boxes."""
    z = _xyxy_to_xyah(boxes)
    pp, pv, vv = P[:, 0], P[:, 1], P[:, 2]
    s = pp + np.where(_R_H, _R_SCALE * np.maximum(x[:, 3:4], 1.0), _R_SCALE) ** 2
    k_pos, k_vel = pp / s, pv / s  # the Kalman gain, per coordinate
    residual = z - x[:, :4]
    x = np.concatenate([x[:, :4] + k_pos * residual, x[:, 4:] + k_vel * residual], axis=1)
    P = np.stack([pp - k_pos * pp, pv - k_pos * pv, vv - k_vel * pv], axis=1)
    return x, P


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    high_score: float = 0.5  # first association pass and track birth
    low_score: float = 0.1  # second pass keeps tracks alive through partial occlusion
    new_track_score: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.4
    # Recovery pass: tracks still unmatched after the IoU passes vs high-score detections still
    # unclaimed, on boxes buffered by this fraction of their size (Cascaded Buffered IoU, Yang et
    # al. 2023). Bridges an occlusion during which the Kalman prediction drifted off the person,
    # which IoU alone turns into a lost track plus a newborn one (a broken path: a gate crossing
    # made while hidden is lost). Only same-size boxes pair up.
    recover_buffer: float = 0.5
    recover_iou: float = 0.3
    recover_height_ratio: float = 1.3
    # A lost track's prediction drifts: its velocity and box-size velocity, learnt from its last boxes (often
    # partial or merged with a neighbour's as it went out of sight), keep integrating, so the predicted box
    # can grow over a newcomer and claim their detection. A lost track only takes a detection whose height
    # is within this factor of the height it was last detected at (no one's box halves or doubles while
    # hidden for a second or two). Measured: bench/accuracy.py, and the same clips mirrored / reversed.
    lost_height_ratio: float = 2.0
    min_hits: int = 3  # detections before a track is confirmed (kills one-frame false positives)
    confirm_span_s: float = 0.15  # ...or 2 detections at least this far apart (low frame rates)
    max_lost_tentative_s: float = 0.25  # a tentative track missed for longer than this was noise
    max_lost_s: float = 1.5  # a moving person not re-detected for this long is gone
    max_lost_stationary_s: float = 10.0  # a person standing still is kept much longer
    stationary_speed: float = 0.15  # box heights per second
    max_tracks: int = 256


@dataclass(slots=True)
class _TrackState:
    """Bookkeeping of one track; its Kalman state and last observed box live in Tracker's arrays."""

    track_id: int
    score: float
    first_t: float
    last_seen_t: float
    hits: int = 1
    confirmed: bool = False
    matched: bool = True
    lost_frames: int = 0
    speeds: list[float] = field(default_factory=list)  # recent speeds, box heights / s
    stationary: bool = False  # median recent speed below the threshold (updated on each match)


class Tracker:
    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_TrackState] = []
        # Row i of these arrays belongs to self._tracks[i].
        self._x: np.ndarray = np.zeros((0, 8))  # Kalman states
        self._P: np.ndarray = np.zeros((0, 3, 4))  # Kalman covariance blocks (see _kalman_predict)
        self._last_box: np.ndarray = np.zeros((0, 4))  # last observed (not predicted) box
        self._next_id = 1
        self._t: float | None = None
        self._out: list[Track] | None = None  # Track views of the current state, built once per frame

    def _advance(self, t: float) -> None:
        dt = 0.0 if self._t is None else max(0.0, t - self._t)
        self._t = t
        self._out = None
        if not self._tracks:
            return
        frozen = [i for i, tr in enumerate(self._tracks) if not tr.matched and tr.stationary]
        if frozen:
            self._x[frozen, 4:] = 0.0  # a lost still person stays where they were
        if dt > 0:
            self._x, self._P = _kalman_predict(self._x, self._P, dt)

    def predict(self, t: float) -> list[Track]:
        """Advance tracks to time t without detections (motion gate skipped this frame)."""
        self._advance(t)
        return self.tracks()

    def update(self, detections: Detections, t: float) -> list[Track]:
        cfg = self.config
        self._advance(t)
        boxes, scores = detections.boxes.astype(np.float64), detections.scores
        high = np.nonzero(scores >= cfg.high_score)[0]
        low = np.nonzero((scores >= cfg.low_score) & (scores < cfg.high_score))[0]
        for tr in self._tracks:
            tr.matched = False

        # Every pass matches tracks no earlier pass matched, whose predictions are unchanged: box them once.
        predicted = _xyah_to_xyxy(self._x)
        active = [i for i, tr in enumerate(self._tracks) if tr.confirmed]
        tentative = [i for i, tr in enumerate(self._tracks) if not tr.confirmed]
        remaining_high = [int(i) for i in high]

        # Pass 1: confirmed (incl. lost) tracks vs high-score detections.
        unmatched_active = self._associate(active, predicted, boxes, scores, remaining_high, cfg.match_iou, t)
        # Pass 2: tracks still unmatched vs low-score detections (occluded, partly visible).
        still_lost = self._associate(unmatched_active, predicted, boxes, scores, [int(i) for i in low], cfg.low_match_iou, t)
        # Pass 3: tentative tracks vs the high detections left over, by optimal assignment: a new track
        # has no velocity yet, so where newcomers walk close together (and at low fps, where people move
        # far between looks) the greedy best overlap often belongs to the neighbour, which leaves the
        # neighbour's track nothing. (For confirmed tracks, whose predictions carry velocity, optimal
        # assignment measured no better than greedy: bench/accuracy.py, IDF1 on TUD-Stadtmitte.)
        unmatched_tentative = self._associate(tentative, predicted, boxes, scores, remaining_high, cfg.match_iou, t, optimal=True)
        # Pass 4: recovery of whatever is still unmatched, in buffered matching space.
        if cfg.recover_buffer > 0:
            left = still_lost + unmatched_tentative
            self._associate(left, predicted, boxes, scores, remaining_high, cfg.recover_iou, t, buffer=cfg.recover_buffer)

        born = [i for i in remaining_high if scores[i] >= cfg.new_track_score]
        if born:
            for i in born:
                self._tracks.append(_TrackState(self._next_id, float(scores[i]), t, t))
                self._next_id += 1
            x, P = _kalman_init(boxes[born])
            self._x = np.concatenate([self._x, x])
            self._P = np.concatenate([self._P, P])
            self._last_box = np.concatenate([self._last_box, boxes[born]])

        kept: list[int] = []
        for i, tr in enumerate(self._tracks):
            if tr.matched:
                tr.lost_frames = 0
            else:
                tr.lost_frames += 1
                if not tr.confirmed and t - tr.last_seen_t > cfg.max_lost_tentative_s:
                    continue  # a tentative track unseen for longer than that was noise
                limit = cfg.max_lost_stationary_s if tr.stationary else cfg.max_lost_s
                if t - tr.last_seen_t > limit:
                    continue
            kept.append(i)
        if len(kept) > cfg.max_tracks:  # bounded state: drop the longest-lost first
            kept.sort(key=lambda i: self._tracks[i].last_seen_t, reverse=True)
            kept = kept[: cfg.max_tracks]
        if len(kept) < len(self._tracks):  # drop rows only when a track went (the usual frame keeps all)
            self._tracks = [self._tracks[i] for i in kept]
            self._x, self._P, self._last_box = self._x[kept], self._P[kept], self._last_box[kept]
        self._out = None
        return self.tracks()

    def _associate(
        self,
        rows: list[int],
        predicted_all: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        candidates: list[int],
        min_iou: float,
        t: float,
        buffer: float = 0.0,
        optimal: bool = False,
    ) -> list[int]:
        """Match track rows (their predicted boxes: rows of `predicted_all`) to candidate detections (consumed
        from `candidates`); return the unmatched rows."""
        if not rows or not candidates:
            return list(rows)
        predicted, offered = predicted_all[rows], boxes[candidates]
        if buffer > 0:
            iou = iou_matrix(buffered_boxes(predicted, buffer), buffered_boxes(offered, buffer))
            ratio = (predicted[:, 3] - predicted[:, 1])[:, None] / np.maximum(offered[:, 3] - offered[:, 1], 1.0)[None, :]
            limit = self.config.recover_height_ratio
            iou[(ratio > limit) | (ratio < 1 / limit)] = 0.0
        else:
            iou = iou_matrix(predicted, offered)
        lost = [k for k, row in enumerate(rows) if self._tracks[row].lost_frames > 0]
        if lost and self.config.lost_height_ratio > 0:
            last = self._last_box[[rows[k] for k in lost]]
            ratio = (last[:, 3] - last[:, 1])[:, None] / np.maximum(offered[:, 3] - offered[:, 1], 1.0)[None, :]
            limit = self.config.lost_height_ratio
            iou[lost] = np.where((ratio > limit) | (ratio < 1 / limit), 0.0, iou[lost])
        pairs = linear_match(iou, min_iou) if optimal else greedy_match(iou, min_iou)
        if not pairs:
            return list(rows)
        # One batched Kalman update for every track matched in this pass.
        hit = [rows[r] for r, _ in pairs]
        dets = [candidates[c] for _, c in pairs]
        box = boxes[dets]
        self._x[hit], self._P[hit] = _kalman_update(self._x[hit], self._P[hit], box)

        # Speed in box heights per second, from observed (not predicted) positions.
        last = self._last_box[hit]
        moved = (box[:, :2] + box[:, 2:]) / 2 - (last[:, :2] + last[:, 2:]) / 2
        per_height = (np.hypot(moved[:, 0], moved[:, 1]) / np.maximum(box[:, 3] - box[:, 1], 1.0)).tolist()
        self._last_box[hit] = box

        cfg = self.config
        for k, (row, det) in enumerate(zip(hit, dets, strict=True)):
            tr = self._tracks[row]
            dt = t - tr.last_seen_t
            if dt > 0:
                tr.speeds.append(per_height[k] / dt)
                del tr.speeds[:-10]
                tr.stationary = len(tr.speeds) >= 3 and _median(tr.speeds) < cfg.stationary_speed
            tr.score = float(scores[det])
            tr.last_seen_t = t
            tr.matched = True
            tr.hits += 1
            if tr.hits >= cfg.min_hits or (tr.hits >= 2 and cfg.confirm_span_s > 0 and t - tr.first_t >= cfg.confirm_span_s):
                tr.confirmed = True
        for c in sorted((c for _, c in pairs), reverse=True):
            del candidates[c]
        matched = {r for r, _ in pairs}
        return [row for r, row in enumerate(rows) if r not in matched]

    def tracks(self, include_tentative: bool = False) -> list[Track]:
        if self._out is None:  # the pipeline asks twice per frame (update, then with tentatives)
            t = self._t or 0.0
            self._out = [
                Track(
                    track_id=tr.track_id,
                    box=tuple(box),
                    score=tr.score,
                    confirmed=tr.confirmed,
                    age_s=t - tr.first_t,
                    lost_frames=tr.lost_frames,
                )
                for tr, box in zip(self._tracks, self._boxes().tolist(), strict=True)
            ]
        if include_tentative:
            return list(self._out)
        return [tr for tr in self._out if tr.confirmed]

    def _boxes(self) -> np.ndarray:
        """Each track's box: the filtered size, standing where it was detected this frame (else predicted).

        The feet (bottom-centre) are what zones and gates use. The filtered position lags and
        overshoots: someone who walks up to a line and stops there would be placed past it and
        counted. A detection is only as noisy as the detector, which gate hysteresis absorbs.
        """
        boxes = _xyah_to_xyxy(self._x)
        seen = np.array([tr.last_seen_t == self._t for tr in self._tracks], bool)
        if seen.any():
            observed, filtered = self._last_box[seen], boxes[seen]
            w, h = filtered[:, 2] - filtered[:, 0], filtered[:, 3] - filtered[:, 1]
            cx, bottom = (observed[:, 0] + observed[:, 2]) / 2, observed[:, 3]
            boxes[seen] = np.stack([cx - w / 2, bottom - h, cx + w / 2, bottom], axis=1)
        return boxes

    @property
    def has_tentative(self) -> bool:
        """New people not confirmed yet: the detector should keep running until they are."""
        return any(not tr.confirmed for tr in self._tracks)
