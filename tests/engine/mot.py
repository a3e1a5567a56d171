"""MOT ground-truth helpers for tests (format in ../shared/data/DATA.md)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def load_gt(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """0-based frame index -> (ids, xyxy boxes, evaluate flags)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    out = {}
    for f in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == f]
        boxes = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], axis=1)
        out[f - 1] = (r[:, 1].astype(int), boxes, r[:, 6] != 0)
    return out


def frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out = []
    while limit is None or len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out
