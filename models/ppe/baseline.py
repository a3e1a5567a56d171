"""The cheap CPU baseline the CNN is measured against: colour histograms + logistic regression.

    .venv/bin/python models/ppe/baseline.py [--data run/ppe_data/ppe_crops.npz]

Per person crop (engine.ppe.crop_person, labelled box for training, detector box where there is one
for the dev split): HSV histograms of the head band (top quarter) and the torso band, one logistic
regression per item (class-balanced, plain numpy). Prints dev accuracy over labelled persons and
violation precision / recall (persons the detector missed count as wrong, as in train.py), as one
JSON line. Numbers quoted in MODEL_CARD.md come from this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from custom_components.safecam.engine.ppe import crop_person  # noqa: E402

CROP_W, CROP_H = 64, 128

BANDS = {"helmet": (0.0, 0.28), "vest": (0.22, 0.65)}


def _features(crop: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    feats = []
    for lo, hi in BANDS.values():
        band = hsv[int(lo * CROP_H) : int(hi * CROP_H)]
        hist = cv2.calcHist([band], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
        feats.append(hist / max(hist.sum(), 1.0))
    return np.concatenate(feats)


def _fit(x: np.ndarray, y: np.ndarray, steps: int = 3000, lr: float = 0.5, l2: float = 1e-3) -> np.ndarray:
    x = np.c_[x, np.ones(len(x))]
    w = np.zeros(x.shape[1])
    weight = np.where(y == 1, 0.5 / max(y.mean(), 1e-6), 0.5 / max(1 - y.mean(), 1e-6))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        w -= lr * (x.T @ ((p - y) * weight) / len(x) + l2 * w)
    return w


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO / "run" / "ppe_data" / "ppe_crops.npz"))
    d = np.load(ap.parse_args().data)
    feats = []
    for k in range(len(d["split"])):
        img = cv2.imdecode(d["jpeg"][d["offsets"][k] : d["offsets"][k + 1]], cv2.IMREAD_COLOR)
        assert img is not None
        box = d["det"][k] if d["split"][k] == 1 and not np.isnan(d["det"][k, 0]) else d["gt"][k]
        feats.append(_features(crop_person(img, box, (CROP_W, CROP_H))))
    x = np.log1p(100 * np.array(feats))
    train, dev = d["split"] == 0, d["split"] == 1
    # Dev persons the detector did not find count as wrong / missed, as in train.py and bench/ppe.py.
    missed = dev & np.isnan(d["det"][:, 0])
    out: dict[str, object] = {"baseline": "hsv_hist+logreg"}
    tp = fp = fn = 0
    for item in ("helmet", "vest"):
        y = d[item].astype(np.int64)
        lab = train & (y >= 0)
        w = _fit(x[lab], y[lab].astype(np.float64))
        worn = (np.c_[x, np.ones(len(x))] @ w) > 0
        m = dev & (y >= 0)
        out[f"{item}_accuracy"] = round(float((((worn == (y == 1)) & ~missed)[m]).mean()), 4)
        says_no = ~worn & ~missed & m
        item_tp, item_fp = int((says_no & (y == 0)).sum()), int((says_no & (y == 1)).sum())
        item_fn = int((m & (y == 0)).sum()) - item_tp
        out[f"{item}_violation_precision"] = round(item_tp / max(item_tp + item_fp, 1), 4)
        out[f"{item}_violation_recall"] = round(item_tp / max(item_tp + item_fn, 1), 4)
        tp, fp, fn = tp + item_tp, fp + item_fp, fn + item_fn
    out["violation_precision"] = round(tp / max(tp + fp, 1), 4)
    out["violation_recall"] = round(tp / max(tp + fn, 1), 4)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
