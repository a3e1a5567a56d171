"""Shared helpers for the benchmarks: data paths, MOT ground truth, box matching, output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAFECAM_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
PEDESTRIANS = SHARED / "data" / "pedestrians"
MOT_CLIPS = ("tud_stadtmitte", "tud_campus")

sys.path.insert(0, str(REPO))
os.environ.setdefault("SAFECAM_MODEL_MIRROR", str(MODELS))


def load_mot_gt(clip: str) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """frame index (0-based) -> (ids, xyxy boxes, evaluate flags)."""
    rows = np.loadtxt(PEDESTRIANS / f"{clip}.gt.txt", delimiter=",", ndmin=2)
    out: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for f in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == f]
        boxes = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], axis=1)
        out[f - 1] = (r[:, 1].astype(int), boxes, r[:, 6] != 0)
    return out


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def match_counts(pred: np.ndarray, gt: np.ndarray, evaluate: np.ndarray, iou: float = 0.5) -> tuple[int, int, int]:
    """Greedy IoU matching; returns (true positives, false positives, false negatives).

    Predictions matched to a GT box flagged 'ignore' count as neither TP nor FP.
    """
    from custom_components.safecam.engine.track import greedy_match, iou_matrix

    pairs = greedy_match(iou_matrix(pred, gt), iou)
    matched_pred = {p for p, _ in pairs}
    tp = sum(1 for _, g in pairs if evaluate[g])
    ignored = sum(1 for _, g in pairs if not evaluate[g])
    fp = len(pred) - len(matched_pred)
    fn = int(evaluate.sum()) - tp
    del ignored
    return tp, fp, fn


def emit(record: dict) -> None:
    """One machine-readable JSON line per figure."""
    print(json.dumps(record, sort_keys=True), flush=True)


def table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(f"{r.get(c, '')}") for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(f"{r.get(c, '')}".ljust(w) for c, w in zip(columns, widths, strict=True)))
