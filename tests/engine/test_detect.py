"""Real YOLOX-nano on real frames of the shared MOT clips, scored against their ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.safecam.engine.detect import Detector, DetectorConfig, letterbox, nms
from custom_components.safecam.engine.track import greedy_match, iou_matrix

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


def test_detector_runs_on_openvino(detector):
    assert detector.session.get_providers()[0] == "OpenVINOExecutionProvider"


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
