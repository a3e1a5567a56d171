"""Cut the compact PPE training set: one JPEG context crop per labelled person, plus labels and boxes.

    .venv/bin/python models/ppe/prepare.py [--shared ../shared/data] [--out run/ppe_data]

The full images (ppe_train is 73 MB) cannot travel to the GPU machine (64 MiB working tree), and the
classifier only ever sees person crops, so this keeps, per labelled person: the person box grown by
CONTEXT on every side (room for box jitter), downscaled to at most MAX_SIDE px, as JPEG. Boxes are
stored in crop pixels: the labelled box and, when the person detector finds that person, its box
(training on both teaches the classifier the detector's box placement).

Labels come from models/ppe/labels.py (1 = wearing, 0 = not wearing, -1 = unlabelled). The dev split
(shared/data/ppe) is cut the same way for evaluation only; train.py never trains on it.
Output: <out>/ppe_crops.npz (git-ignored; training data is never committed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAFECAM_MODEL_MIRROR", str(REPO.parent / "shared" / "models"))

from custom_components.safecam.engine.detect import Detector  # noqa: E402
from custom_components.safecam.engine.track import greedy_match, iou_matrix  # noqa: E402
from models.ppe.labels import load_split  # noqa: E402

CONTEXT = 0.35
MAX_SIDE = 256
JPEG_QUALITY = 90
MATCH_IOU = 0.5
DET_SCORE = 0.25
SPLITS = {"ppe_train": 0, "ppe": 1}


def _state(value: bool | None) -> int:
    return -1 if value is None else int(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "run" / "ppe_data"))
    args = ap.parse_args()
    detector = Detector.from_catalog("yolox_nano", provider="auto")
    blobs: list[bytes] = []
    rows: dict[str, list] = {k: [] for k in ("split", "image", "helmet", "vest", "gt", "det", "det_score", "person_px")}
    started = time.perf_counter()
    for split_name, split in SPLITS.items():
        for image_no, (path, persons) in enumerate(load_split(Path(args.shared) / split_name)):
            if not persons:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"cannot read {path}")
            h, w = image.shape[:2]
            scale = np.array([w, h, w, h], np.float64)
            gt = np.array([p.box for p in persons], np.float64) * scale
            dets = detector(image)
            dets = dets[dets.scores >= DET_SCORE]
            matched = dict((g, d) for d, g in greedy_match(iou_matrix(dets.boxes, gt.astype(np.float32)), MATCH_IOU))
            for k, person in enumerate(persons):
                box = gt[k]
                det = dets.boxes[matched[k]].astype(np.float64) if k in matched else None
                lo = np.minimum(box[:2], det[:2]) if det is not None else box[:2]
                hi = np.maximum(box[2:], det[2:]) if det is not None else box[2:]
                grow = (hi - lo) * CONTEXT
                cx1, cy1 = np.maximum(np.floor(lo - grow), 0).astype(int)
                cx2, cy2 = np.minimum(np.ceil(hi + grow), [w, h]).astype(int)
                if cx2 - cx1 < 4 or cy2 - cy1 < 4:
                    continue
                crop = image[cy1:cy2, cx1:cx2]
                f = min(1.0, MAX_SIDE / max(crop.shape[:2]))
                if f < 1.0:
                    crop = cv2.resize(
                        crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))), interpolation=cv2.INTER_AREA
                    )
                fx, fy = crop.shape[1] / (cx2 - cx1), crop.shape[0] / (cy2 - cy1)

                def to_crop(b: np.ndarray, fx: float = fx, fy: float = fy, ox: int = cx1, oy: int = cy1) -> list[float]:
                    return [(b[0] - ox) * fx, (b[1] - oy) * fy, (b[2] - ox) * fx, (b[3] - oy) * fy]

                ok, jpg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                assert ok
                blobs.append(jpg.tobytes())
                rows["split"].append(split)
                rows["image"].append(image_no)
                rows["helmet"].append(_state(person.helmet))
                rows["vest"].append(_state(person.vest))
                rows["gt"].append(to_crop(box))
                rows["det"].append(to_crop(det) if det is not None else [np.nan] * 4)
                rows["det_score"].append(float(dets.scores[matched[k]]) if k in matched else 0.0)
                rows["person_px"].append(float(box[3] - box[1]))
        print(
            f"{split_name}: {sum(1 for s in rows['split'] if s == split)} persons, {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    offsets = np.cumsum([0, *map(len, blobs)]).astype(np.int64)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "ppe_crops.npz",
        jpeg=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=offsets,
        split=np.array(rows["split"], np.int8),
        image=np.array(rows["image"], np.int32),
        helmet=np.array(rows["helmet"], np.int8),
        vest=np.array(rows["vest"], np.int8),
        gt=np.array(rows["gt"], np.float32),
        det=np.array(rows["det"], np.float32),
        det_score=np.array(rows["det_score"], np.float32),
        person_px=np.array(rows["person_px"], np.float32),
    )
    size = (out / "ppe_crops.npz").stat().st_size
    print(f"wrote {out / 'ppe_crops.npz'}: {len(blobs)} crops, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
