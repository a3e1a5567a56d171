"""Shared helpers for the benchmarks: data paths, MOT ground truth, box matching, output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAFECAM_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
PEDESTRIANS = SHARED / "data" / "pedestrians"
MOT_CLIPS = ("tud_stadtmitte", "tud_campus")

sys.path.insert(0, str(REPO))
os.environ.setdefault("SAFECAM_MODEL_MIRROR", str(MODELS))

# One MOT ground-truth reader for tests and benchmarks.
from tests.engine.mot import frames, load_gt


def read_frames(path: Path) -> list[np.ndarray]:
    return frames(path)


def load_mot_gt(clip: str) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """frame index (0-based) -> (ids, xyxy boxes, evaluate flags)."""
    return load_gt(PEDESTRIANS / f"{clip}.gt.txt")


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
