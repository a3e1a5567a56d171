"""Person detection and tracking accuracy against the MOT ground truth of ../shared/data/pedestrians.

Prints JSON lines, then a table:
- detector: recall / precision at IoU 0.5 per score threshold, with and without tiling, on the
  clips as they are and with people shrunk to half size (a stand-in for distant CCTV people);
- tracker (the whole pipeline as the product runs it, motion gate on): recall, precision,
  ID switches, IDF1, MOTA (py-motmetrics).

Run: .venv/bin/python bench/accuracy.py
"""

from __future__ import annotations

import argparse

import cv2
import motmetrics as mm
import numpy as np
from common import MOT_CLIPS, PEDESTRIANS, emit, load_mot_gt, match_counts, read_frames, table

from custom_components.safecam.engine.detect import Detector, DetectorConfig
from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig
from custom_components.safecam.engine.track import iou_matrix


def shrink(frame: np.ndarray, factor: float) -> np.ndarray:
    """People at `factor` size: the frame scaled down and centred on a grey canvas of the same size."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (int(w * factor), int(h * factor)), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(frame, 114)
    oy, ox = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    canvas[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    return canvas


def shrink_boxes(boxes: np.ndarray, factor: float, w: int, h: int) -> np.ndarray:
    off = np.array([(w - int(w * factor)) // 2, (h - int(h * factor)) // 2] * 2)
    return boxes * factor + off


def detection_figures(provider: str, thresholds: list[float]) -> list[dict]:
    rows = []
    for tiles in (0, 2):
        det = Detector.from_catalog(provider=provider, config=DetectorConfig(tiles=tiles, score_threshold=min(thresholds)))
        for clip in MOT_CLIPS:
            frames, gt = read_frames(PEDESTRIANS / f"{clip}.mp4"), load_mot_gt(clip)
            for scale in (1.0, 0.5):
                preds = []
                for i, frame in enumerate(frames):
                    if i not in gt:
                        continue
                    h, w = frame.shape[:2]
                    d = det(frame if scale == 1.0 else shrink(frame, scale))
                    gboxes = gt[i][1] if scale == 1.0 else shrink_boxes(gt[i][1], scale, w, h)
                    preds.append((d, gboxes, gt[i][2]))
                for thr in thresholds:
                    tp = fp = fn = 0
                    for d, gboxes, flags in preds:
                        a, b, c = match_counts(d.boxes[d.scores >= thr], gboxes, flags)
                        tp, fp, fn = tp + a, fp + b, fn + c
                    row = {
                        "bench": "detection",
                        "clip": clip,
                        "people_scale": scale,
                        "tiles": tiles,
                        "score": thr,
                        "recall": round(tp / max(tp + fn, 1), 3),
                        "precision": round(tp / max(tp + fp, 1), 3),
                        "fp_per_frame": round(fp / max(len(preds), 1), 3),
                    }
                    emit(row)
                    rows.append(row)
    return rows


def tracking_figures(provider: str, config: PipelineConfig | None = None) -> list[dict]:
    rows = []
    for clip in MOT_CLIPS:
        frames, gt = read_frames(PEDESTRIANS / f"{clip}.mp4"), load_mot_gt(clip)
        pipeline = CameraPipeline(Detector.from_catalog(provider=provider), config=config)
        acc = mm.MOTAccumulator(auto_id=True)
        tp = fp = fn = 0
        for i, frame in enumerate(frames):
            res = pipeline.process(frame, i / 25.0, i, render=False)
            pboxes = np.array([tr.box for tr in res.tracks], np.float64).reshape(-1, 4)
            pids = [tr.track_id for tr in res.tracks]
            ids, gboxes, flags = gt.get(i, (np.zeros(0, int), np.zeros((0, 4)), np.zeros(0, bool)))
            # Tracks matching an ignored GT box are dropped before scoring (MOT convention).
            ign = (
                iou_matrix(pboxes, gboxes[~flags]).max(axis=1) >= 0.5
                if (~flags).any() and len(pboxes)
                else np.zeros(len(pboxes), bool)
            )
            pboxes, pids = pboxes[~ign], [p for p, x in zip(pids, ign, strict=True) if not x]
            a, b, c = match_counts(pboxes, gboxes[flags], np.ones(int(flags.sum()), bool))
            tp, fp, fn = tp + a, fp + b, fn + c
            dist = 1 - iou_matrix(gboxes[flags], pboxes)
            dist[dist > 0.5] = np.nan
            acc.update(list(ids[flags]), pids, dist)
        summary = mm.metrics.create().compute(acc, metrics=["idf1", "num_switches", "mota", "num_unique_objects"], name=clip)
        row = {
            "bench": "tracking",
            "clip": clip,
            "recall": round(tp / max(tp + fn, 1), 3),
            "precision": round(tp / max(tp + fp, 1), 3),
            "id_switches": int(summary["num_switches"].iloc[0]),
            "idf1": round(float(summary["idf1"].iloc[0]), 3),
            "mota": round(float(summary["mota"].iloc[0]), 3),
            "gt_identities": int(summary["num_unique_objects"].iloc[0]),
        }
        emit(row)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--provider", default="openvino", choices=["openvino", "cpu"])
    parser.add_argument("--skip-detection", action="store_true")
    args = parser.parse_args()
    track_rows = tracking_figures(args.provider)
    det_rows = [] if args.skip_detection else detection_figures(args.provider, [0.3, 0.4, 0.5])
    print()
    table(track_rows, ["clip", "recall", "precision", "id_switches", "idf1", "mota", "gt_identities"])
    if det_rows:
        print()
        table(det_rows, ["clip", "people_scale", "tiles", "score", "recall", "precision", "fp_per_frame"])


if __name__ == "__main__":
    main()
