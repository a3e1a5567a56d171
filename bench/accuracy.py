"""Person detection and tracking accuracy against the MOT ground truth of ../shared/data/pedestrians.

Prints JSON lines, then a table:
- detector: recall / precision at IoU 0.5 per score threshold, with and without tiling, on the
  clips as they are and with people shrunk to half size (a stand-in for distant CCTV people);
- tracker (the whole pipeline as the product runs it, motion gate on): recall, precision,
  ID switches, IDF1, MOTA (py-motmetrics), at the clips' 25 fps and at lower analysis rates
  (`--fps 25 5`: every 5th frame, Home Assistant's default rate; scored on the analysed frames).

`--views`: tracking also on each clip mirrored, reversed and both, and at 5 fps from each of the 5 starting
frames; reported per clip and rate as mean IDF1 / MOTA and total ID switches over those runs.

Run: .venv/bin/python bench/accuracy.py [--fps 25 5] [--views] [--nms-iou 0.45] [--tiles 0 2] [--skip-detection]
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


def detection_figures(
    provider: str, thresholds: list[float], nms_iou: float | None = None, tile_options: tuple[int, ...] = (0, 2)
) -> list[dict]:
    rows = []
    nms = {} if nms_iou is None else {"nms_iou": nms_iou}
    for tiles in tile_options:
        det = Detector.from_catalog(provider=provider, config=DetectorConfig(tiles=tiles, score_threshold=min(thresholds), **nms))
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


VIEWS = ("as is", "mirrored", "reversed", "mirrored+reversed")


def view_of(frames: list[np.ndarray], gt: dict, view: str) -> tuple[list[np.ndarray], dict]:
    """The clip mirrored left-right and/or played backwards, with its ground truth: more real detector output on
    the same few annotated people (18 in the two clips), so tracker comparisons rest on more than a handful of events."""
    w, n = frames[0].shape[1], len(frames)
    if "mirrored" in view:
        frames = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
        gt = {i: (ids, np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1), fl) for i, (ids, b, fl) in gt.items()}
    if "reversed" in view:
        frames, gt = frames[::-1], {n - 1 - i: v for i, v in gt.items()}
    return frames, gt


def tracking_figures(
    provider: str,
    config: PipelineConfig | None = None,
    fps: int = 25,
    detector: DetectorConfig | None = None,
    views: tuple[str, ...] = ("as is",),
) -> list[dict]:
    """One row per clip; with more views, one per clip, view and phase (which of the `step` frames starts)."""
    rows = []
    step = 25 // fps
    phases = range(step) if views != ("as is",) else range(1)
    runs = [(clip, view, phase) for clip in MOT_CLIPS for view in views for phase in phases]
    for clip, view, phase in runs:
        frames, gt = view_of(read_frames(PEDESTRIANS / f"{clip}.mp4"), load_mot_gt(clip), view)
        pipeline = CameraPipeline(Detector.from_catalog(provider=provider, config=detector), config=config)
        acc = mm.MOTAccumulator(auto_id=True)
        tp = fp = fn = 0
        for i in range(phase, len(frames), step):
            res = pipeline.process(frames[i], i / 25.0, i, render=False)
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
            "fps": fps,
            **({"view": view, "phase": phase} if views != ("as is",) else {}),
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
    parser.add_argument("--fps", type=int, nargs="+", default=[25], help="tracking at these analysis rates (divisors of 25)")
    parser.add_argument("--nms-iou", type=float, help="detector NMS IoU (default: the product's DetectorConfig)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[0, 2], help="detector tiling options to compare")
    parser.add_argument("--views", action="store_true", help="tracking also on the clips mirrored / reversed, every phase")
    args = parser.parse_args()
    detector = None if args.nms_iou is None else DetectorConfig(nms_iou=args.nms_iou)
    views = VIEWS if args.views else ("as is",)
    track_rows = [row for fps in args.fps for row in tracking_figures(args.provider, fps=fps, detector=detector, views=views)]
    if args.views:  # per clip and rate over all views: mean IDF1 / MOTA, total ID switches
        groups: dict[tuple[str, int], list[dict]] = {}
        for row in track_rows:
            groups.setdefault((row["clip"], row["fps"]), []).append(row)
        track_rows = [
            {
                "bench": "tracking_views",
                "clip": clip,
                "fps": fps,
                "runs": len(g),
                "recall": round(float(np.mean([r["recall"] for r in g])), 3),
                "precision": round(float(np.mean([r["precision"] for r in g])), 3),
                "id_switches": sum(r["id_switches"] for r in g),
                "idf1": round(float(np.mean([r["idf1"] for r in g])), 3),
                "mota": round(float(np.mean([r["mota"] for r in g])), 3),
                "gt_identities": g[0]["gt_identities"],
            }
            for (clip, fps), g in groups.items()
        ]
        for row in track_rows:
            emit(row)
    det_rows = [] if args.skip_detection else detection_figures(args.provider, [0.3, 0.4, 0.5], args.nms_iou, tuple(args.tiles))
    print()
    runs = ["runs"] if args.views else []
    table(track_rows, ["clip", "fps", *runs, "recall", "precision", "id_switches", "idf1", "mota", "gt_identities"])
    if det_rows:
        print()
        table(det_rows, ["clip", "people_scale", "tiles", "score", "recall", "precision", "fp_per_frame"])


if __name__ == "__main__":
    main()
