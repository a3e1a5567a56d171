"""ByteTrack-style multi-person tracker: Kalman motion model, IoU association in two passes
(high-score detections first, then low-score ones for tracks the first pass left), tentative
tracks confirmed after a few hits, and stationary-aware loss handling.

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
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


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


def _xyxy_to_xyah(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w / max(h, 1e-6), h], np.float64)


_I8 = np.eye(8)
# Noise scales relative to box height (people far away move fewer pixels).
_Q_SCALE = np.array([0.05, 0.05, 1e-2, 0.05, 0.5, 0.5, 1e-3, 0.5])
_Q_H = np.array([1, 1, 0, 1, 1, 1, 0, 1], bool)
_R_SCALE = np.array([0.05, 0.05, 1e-2, 0.05])
_R_H = np.array([1, 1, 0, 1], bool)


class KalmanBox:
    """Constant-velocity Kalman filter on (cx, cy, aspect, height), velocities per second."""

    def __init__(self, box: np.ndarray) -> None:
        self.x = np.concatenate([_xyxy_to_xyah(box), np.zeros(4)])
        h = self.x[3]
        std = np.array([0.1 * h, 0.1 * h, 1e-2, 0.1 * h, 1.0 * h, 1.0 * h, 1e-3, 1.0 * h])
        self.P = np.diag(std**2)

    def predict(self, dt: float) -> None:
        if dt <= 0:
            return
        F = _I8.copy()
        F[:4, 4:] = _I8[:4, :4] * dt
        q = np.where(_Q_H, _Q_SCALE * max(self.x[3], 1.0), _Q_SCALE) ** 2 * dt
        self.x = F @ self.x
        self.P = F @ self.P @ F.T
        self.P[np.diag_indices(8)] += q

    def update(self, box: np.ndarray) -> None:
        z = _xyxy_to_xyah(box)
        S = self.P[:4, :4] + np.diag(np.where(_R_H, _R_SCALE * max(self.x[3], 1.0), _R_SCALE) ** 2)
        K = np.linalg.solve(S, self.P[:4, :]).T  # P H^T S^-1, with H selecting the first 4 states
        self.x = self.x + K @ (z - self.x[:4])
        self.P = self.P - K @ self.P[:4, :]

    def freeze_velocity(self) -> None:
        self.x[4:] = 0.0

    @property
    def box(self) -> np.ndarray:
        cx, cy, a, h = self.x[:4]
        h = max(h, 1.0)
        w = a * h
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    high_score: float = 0.5  # first association pass and track birth
    low_score: float = 0.1  # second pass keeps tracks alive through partial occlusion
    new_track_score: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.4
    min_hits: int = 3  # detections before a track is confirmed (kills one-frame false positives)
    max_lost_s: float = 1.5  # a moving person not re-detected for this long is gone
    max_lost_stationary_s: float = 10.0  # a person standing still is kept much longer
    stationary_speed: float = 0.15  # box heights per second
    max_tracks: int = 256


@dataclass(slots=True)
class _TrackState:
    track_id: int
    kf: KalmanBox
    score: float
    first_t: float
    last_seen_t: float
    last_box: np.ndarray
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
        self._next_id = 1
        self._t: float | None = None

    def _advance(self, t: float) -> None:
        dt = 0.0 if self._t is None else max(0.0, t - self._t)
        self._t = t
        for tr in self._tracks:
            if not tr.matched and tr.stationary:
                tr.kf.freeze_velocity()  # a lost still person stays where they were
            tr.kf.predict(dt)

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

        active = [tr for tr in self._tracks if tr.confirmed]
        tentative = [tr for tr in self._tracks if not tr.confirmed]
        remaining_high = [int(i) for i in high]

        # Pass 1: confirmed (incl. lost) tracks vs high-score detections.
        unmatched_active = self._associate(active, boxes, scores, remaining_high, cfg.match_iou, t)
        # Pass 2: tracks still unmatched vs low-score detections (occluded, partly visible).
        self._associate(unmatched_active, boxes, scores, [int(i) for i in low], cfg.low_match_iou, t)
        # Pass 3: tentative tracks vs the high detections left over.
        self._associate(tentative, boxes, scores, remaining_high, cfg.match_iou, t)

        for i in remaining_high:
            if scores[i] >= cfg.new_track_score:
                self._tracks.append(_TrackState(self._next_id, KalmanBox(boxes[i]), float(scores[i]), t, t, boxes[i].copy()))
                self._next_id += 1

        kept: list[_TrackState] = []
        for tr in self._tracks:
            if tr.matched:
                tr.lost_frames = 0
            else:
                tr.lost_frames += 1
                if not tr.confirmed:
                    continue  # a tentative track that missed a frame was noise
                limit = cfg.max_lost_stationary_s if tr.stationary else cfg.max_lost_s
                if t - tr.last_seen_t > limit:
                    continue
            kept.append(tr)
        if len(kept) > cfg.max_tracks:  # bounded state: drop the longest-lost first
            kept.sort(key=lambda tr: tr.last_seen_t, reverse=True)
            kept = kept[: cfg.max_tracks]
        self._tracks = kept
        return self.tracks()

    def _associate(
        self,
        tracks: list[_TrackState],
        boxes: np.ndarray,
        scores: np.ndarray,
        candidates: list[int],
        min_iou: float,
        t: float,
    ) -> list[_TrackState]:
        """Match tracks to candidate detections (consumed from `candidates`); return the unmatched tracks."""
        if not tracks or not candidates:
            return list(tracks)
        track_boxes = np.stack([tr.kf.box for tr in tracks])
        iou = iou_matrix(track_boxes, boxes[candidates])
        matched_cols: set[int] = set()
        matched_rows: set[int] = set()
        for r, c in greedy_match(iou, min_iou):
            tr, det = tracks[r], candidates[c]
            box = boxes[det]
            dt = t - tr.last_seen_t
            tr.kf.update(box)
            if dt > 0:  # speed in box heights per second, from observed (not predicted) positions
                moved = np.hypot(*((box[:2] + box[2:]) / 2 - (tr.last_box[:2] + tr.last_box[2:]) / 2))
                tr.speeds.append(float(moved / max(box[3] - box[1], 1.0) / dt))
                del tr.speeds[:-10]
                tr.stationary = len(tr.speeds) >= 3 and float(np.median(tr.speeds)) < self.config.stationary_speed
            tr.last_box = box.copy()
            tr.score = float(scores[det])
            tr.last_seen_t = t
            tr.matched = True
            tr.hits += 1
            if tr.hits >= self.config.min_hits:
                tr.confirmed = True
            matched_rows.add(r)
            matched_cols.add(c)
        for c in sorted(matched_cols, reverse=True):
            del candidates[c]
        return [tr for r, tr in enumerate(tracks) if r not in matched_rows]

    def tracks(self, include_tentative: bool = False) -> list[Track]:
        t = self._t or 0.0
        return [
            Track(
                track_id=tr.track_id,
                box=tuple(float(v) for v in tr.kf.box),  # type: ignore[arg-type]
                score=tr.score,
                confirmed=tr.confirmed,
                age_s=t - tr.first_t,
                lost_frames=tr.lost_frames,
            )
            for tr in self._tracks
            if tr.confirmed or include_tentative
        ]

    @property
    def has_tentative(self) -> bool:
        """New people not confirmed yet: the detector should keep running until they are."""
        return any(not tr.confirmed for tr in self._tracks)

    def reset(self) -> None:
        self._tracks.clear()
        self._t = None
