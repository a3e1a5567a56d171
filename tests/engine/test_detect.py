"""Real YOLOX-nano on real frames of the shared MOT clips, scored against their ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.safecam.engine.detect import Detector, DetectorConfig, letterbox, nms
from custom_components.safecam.engine.track import greedy_match, iou_matrix
from tests.conftest import OPENVINO_EP, expected_auto_provider

from .mot import frames, load_gt


def _recall_precision(detector, clip_dir, clip, step=10, score=0.5):
    gt = load_gt(clip_dir / f"{clip}.gt.txt")
    tp = fp = fn = 0
    for i, frame in enumerate(frames(clip_dir / f"{clip}.mp4")):
        if i % step or i not in gt:
            continue
        d = detector(frame)
        boxes = d.boxes[d.scores >= score]
        _, gboxes, flags = gt[i]
        pairs = greedy_match(iou_matrix(boxes, gboxes), 0.5)
        tp += sum(1 for _, g in pairs if flags[g])
        fp += len(boxes) - len(pairs)
        fn += int(flags.sum()) - sum(1 for _, g in pairs if flags[g])
    return tp / (tp + fn), tp / (tp + fp)


def test_detector_runs_on_the_installed_provider(detector):
    assert detector.session.get_providers()[0] == expected_auto_provider()


@pytest.mark.openvino
def test_detector_runs_on_openvino(detector):
    assert detector.session.get_providers()[0] == OPENVINO_EP


def test_finds_the_people_of_tud_stadtmitte(detector, shared_data):
    recall, precision = _recall_precision(detector, shared_data / "pedestrians", "tud_stadtmitte")
    assert recall >= 0.75
    assert precision >= 0.85


def test_empty_scene_has_no_people(detector):
    # A plain grey wall with noise: nothing to find.
    rng = np.random.default_rng(0)
    wall = np.clip(120 + rng.normal(0, 6, (480, 640, 3)), 0, 255).astype(np.uint8)
    d = detector(wall)
    assert (d.scores >= 0.3).sum() == 0


def test_boxes_follow_letterbox_scaling(detector, shared_data):
    """The same frame at half size gives the same boxes at half the coordinates."""
    import cv2

    frame = frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 1)[0]
    full = detector(frame)
    half = detector(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA))
    big_full = full.boxes[full.scores >= 0.6]
    big_half = half.boxes[half.scores >= 0.6] * 2
    pairs = greedy_match(iou_matrix(big_full, big_half), 0.6)
    assert len(big_full) >= 4
    assert len(pairs) >= len(big_full) - 1


def test_tiling_keeps_whole_frame_detections(shared_data):
    tiled = Detector.from_catalog(config=DetectorConfig(tiles=2))
    plain = Detector.from_catalog()
    frame = frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 1)[0]
    a, b = plain(frame), tiled(frame)
    strong = a.boxes[a.scores >= 0.6]
    pairs = greedy_match(iou_matrix(strong, b.boxes[b.scores >= 0.5]), 0.7)
    assert len(pairs) == len(strong)
    # No duplicates of one person left over from the tiles.
    kept = b.boxes[b.scores >= 0.5]
    overlap = iou_matrix(kept, kept) - np.eye(len(kept))
    assert overlap.max(initial=0) < 0.6


def test_letterbox_pads_with_114_top_left():
    img = np.zeros((100, 200, 3), np.uint8)
    blob, r = letterbox(img, 416)
    assert r == pytest.approx(416 / 200)
    assert blob.shape == (1, 3, 416, 416)
    assert blob[0, :, 0, 0].tolist() == [0, 0, 0]
    assert blob[0, :, 415, 0].tolist() == [114, 114, 114]


def test_nms_suppresses_overlaps_only():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = nms(boxes, np.array([0.9, 0.8, 0.7]), 0.45)
    assert sorted(keep.tolist()) == [0, 2]


# ---- the objectness pre-filtered decode and OpenCV NMS against the code they replaced ----


def _reference_nms(boxes, scores, iou, containment=1.01):
    """nms() before: the greedy loop in numpy."""
    order = np.argsort(-scores)
    keep = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        contained = inter / (np.minimum(areas[i], areas[rest]) + 1e-9)
        order = rest[(overlap <= iou) & (contained <= containment)]
    return np.asarray(keep, np.int64)


def _reference_decode(out, cells, strides, cfg, r, region, width, height):
    """Detector._detect_region before (after session.run): every grid row scored, then numpy NMS."""
    x0, y0, x1, y1 = region
    cls_scores = out[:, 5:][:, list(cfg.classes)] * out[:, 4:5]
    best = cls_scores.argmax(axis=1)
    score = cls_scores[np.arange(len(best)), best]
    mask = score >= cfg.score_threshold
    if not mask.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    rows, score, best = out[mask], score[mask], best[mask]
    stride = strides[mask]
    centre = (rows[:, :2] + cells[mask]) * stride
    size = np.exp(np.clip(rows[:, 2:4], -10, 10)) * stride
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / r
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] + x0, 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] + y0, 0, height)
    big_enough = ((boxes[:, 2] - boxes[:, 0]) >= cfg.min_box_px) & ((boxes[:, 3] - boxes[:, 1]) >= cfg.min_box_px)
    if (x0, y0, x1, y1) != (0, 0, width, height):
        cut = np.zeros(len(boxes), bool)
        if x0 > 0:
            cut |= boxes[:, 0] <= x0 + 3.0
        if x1 < width:
            cut |= boxes[:, 2] >= x1 - 3.0
        if y0 > 0:
            cut |= boxes[:, 1] <= y0 + 3.0
        if y1 < height:
            cut |= boxes[:, 3] >= y1 - 3.0
        big_enough &= ~cut
    boxes, score, best = boxes[big_enough], score[big_enough], best[big_enough]
    keep = _reference_nms(boxes, score, cfg.nms_iou)
    return boxes[keep], score[keep], np.asarray(cfg.classes, np.int32)[best[keep]]


class _Recording:
    """The real session, remembering its outputs so the reference decoder reads the same numbers."""

    def __init__(self, session):
        self.session = session
        self.outputs = []

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, names, feeds):
        out = self.session.run(names, feeds)
        self.outputs.append(out[0][0])
        return out


@pytest.mark.parametrize(
    ("clip", "step", "tiles"),
    [("tud_stadtmitte", 6, 0), ("overhead_concourse_crowd", 10, 0), ("tud_stadtmitte", 60, 2)],
)
def test_decode_and_nms_give_exactly_what_the_previous_code_gave(detector, shared_data, clip, step, tiles):
    cfg = DetectorConfig(tiles=tiles)
    recording = _Recording(detector.session)
    fast = Detector(recording, cfg)
    compared = boxes_seen = 0
    for frame in frames(shared_data / "pedestrians" / f"{clip}.mp4")[::step]:
        recording.outputs.clear()
        got = fast(frame)
        h, w = frame.shape[:2]
        regions = fast.regions(w, h)
        parts = []
        for out, region in zip(recording.outputs, regions, strict=True):
            x0, y0, x1, y1 = region
            r = letterbox(frame[y0:y1, x0:x1], cfg.input_size)[1]
            parts.append(_reference_decode(out, fast._cells, fast._strides, cfg, r, region, w, h))
        boxes, scores, classes = (np.concatenate([p[k] for p in parts]) for k in range(3))
        if len(regions) > 1 and len(boxes):
            keep = _reference_nms(boxes, scores, cfg.nms_iou, containment=0.8)
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        np.testing.assert_array_equal(got.boxes, boxes.astype(np.float32))
        np.testing.assert_array_equal(got.scores, scores.astype(np.float32))
        np.testing.assert_array_equal(got.classes, classes.astype(np.int32))
        compared += 1
        boxes_seen += len(boxes)
    assert compared >= 3
    assert boxes_seen >= 5 * compared  # busy scenes: NMS had real work to do


def test_opencv_nms_keeps_what_the_greedy_loop_keeps():
    """Random overlapping boxes at many IoU thresholds: same kept indices, same order."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        n = int(rng.integers(1, 120))
        xy = rng.uniform(0, 300, (n, 2)).astype(np.float32)
        wh = rng.uniform(4, 80, (n, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + wh], axis=1)
        scores = rng.uniform(0.1, 1.0, n).astype(np.float32)
        iou = (0.3, 0.45, 0.6, 0.7)[trial % 4]
        np.testing.assert_array_equal(nms(boxes, scores, iou), _reference_nms(boxes, scores, iou))
    # Non-positive scores (which OpenCV's NMS would drop) take the numpy path and are kept.
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert sorted(nms(boxes, np.array([0.0, -1.0], np.float32), 0.45).tolist()) == [0, 1]
