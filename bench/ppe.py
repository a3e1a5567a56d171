"""PPE benchmark on the dev split (shared/data/ppe, never trained on): helmet / vest per detected person.

    .venv/bin/python bench/ppe.py [--provider auto|openvino|cpu] [--min-score 0.3]

The same path as the CLI (`engine ppe`): the project's person detector (yolox_nano), then one look of
the PPE classifier per person (engine.ppe.detect_ppe). Ground truth: labelled persons and their
helmet / vest state from models/ppe/labels.py. A detection counts for a labelled person at IoU >= 0.5.

Figures (item = helmet or vest):
- person_recall: labelled persons the detector finds (at --min-score).
- <item>_accuracy: over persons whose item is labelled; a person the detector misses, or whose item
  comes back unknown (null), counts as wrong. <item>_accuracy_detected: over the found ones only.
- violation precision / recall: one violation per (person, item) labelled "not worn". Recall counts
  missed persons as missed violations; precision counts "not worn" said of a labelled "worn".
  "Not worn" said of an unlabelled item or an unlabelled person is reported as unlabelled_violations.
- ms_per_person: crop + classifier for one person (median over all detected persons), next to the
  detector's ms per image. The machine is shared, so the fixed-frame figures (one 640x480 dev frame,
  detector and one person crop, N repeats each, interleaved) also give the minimum: the least
  disturbed run. Compare costs as the ratio person / detector of the same run.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from common import SHARED, emit, table

from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.ppe import PERSON_SCORE, PPEClassifier
from custom_components.safecam.engine.track import greedy_match, iou_matrix
from models.ppe.labels import load_split

ITEMS = ("helmet", "vest")
REPEATS = 60
DEV = SHARED / "data" / "ppe"


def _fixed_cost(detector: Detector, classifier: PPEClassifier) -> tuple[list[float], list[float]]:
    """ms of the detector on one 640x480 dev frame and of one person look on it, interleaved."""
    path, persons = next((p, ps) for p, ps in load_split(DEV) if ps)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read {path}")
    image = cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA)
    box = np.asarray(persons[0].box) * np.array([640, 480, 640, 480])
    detector(image)  # warm-up (OpenVINO compiles on the first run)
    classifier.read(image, [box])
    det_ms: list[float] = []
    person_ms: list[float] = []
    for _ in range(REPEATS):
        tick = time.perf_counter()
        detector(image)
        det_ms.append((time.perf_counter() - tick) * 1000)
        tick = time.perf_counter()
        classifier.read(image, [box])
        person_ms.append((time.perf_counter() - tick) * 1000)
    return det_ms, person_ms


def main() -> int:
    ap = argparse.ArgumentParser(description="PPE accuracy and cost on shared/data/ppe")
    ap.add_argument("--provider", default="auto", choices=["auto", "openvino", "cpu"])
    ap.add_argument("--min-score", type=float, default=PERSON_SCORE)
    args = ap.parse_args()
    detector = Detector.from_catalog("yolox_nano", provider=args.provider)
    classifier = PPEClassifier.from_catalog(provider=args.provider)
    fixed_det, fixed_person = _fixed_cost(detector, classifier)

    n_gt = n_found = n_dets = 0
    right = dict.fromkeys(ITEMS, 0)
    labelled = dict.fromkeys(ITEMS, 0)
    right_found = dict.fromkeys(ITEMS, 0)
    labelled_found = dict.fromkeys(ITEMS, 0)
    unknown_found = dict.fromkeys(ITEMS, 0)
    tp = fp = fn = unlabelled_violations = 0
    item_tp, item_fp, item_fn = dict.fromkeys(ITEMS, 0), dict.fromkeys(ITEMS, 0), dict.fromkeys(ITEMS, 0)
    det_ms: list[float] = []
    person_ms: list[float] = []
    for path, persons in load_split(DEV):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"cannot read {path}")
        h, w = image.shape[:2]
        tick = time.perf_counter()
        dets = detector(image)
        det_ms.append((time.perf_counter() - tick) * 1000)
        dets = dets[dets.scores >= args.min_score]
        readings = []
        for box in dets.boxes:
            tick = time.perf_counter()
            readings.extend(classifier.read(image, [box]))
            person_ms.append((time.perf_counter() - tick) * 1000)
        gt = np.array([p.box for p in persons], np.float32).reshape(-1, 4) * np.array([w, h, w, h], np.float32)
        pairs = greedy_match(iou_matrix(dets.boxes, gt), 0.5) if len(gt) and len(dets) else []
        of_gt = {g: d for d, g in pairs}
        n_gt += len(persons)
        n_found += len(pairs)
        n_dets += len(dets)
        for g, person in enumerate(persons):
            reading = readings[of_gt[g]] if g in of_gt else None
            for item in ITEMS:
                truth = getattr(person, item)
                said = reading.get(item) if reading is not None else None
                if truth is None:
                    unlabelled_violations += said is False
                    continue
                labelled[item] += 1
                right[item] += said is truth
                if reading is not None:
                    labelled_found[item] += 1
                    right_found[item] += said is truth
                    unknown_found[item] += said is None
                if truth is False:
                    item_tp[item] += said is False
                    item_fn[item] += said is not False
                elif said is False:
                    item_fp[item] += 1
        matched = set(of_gt.values())
        unlabelled_violations += sum(
            1 for d, r in enumerate(readings) if d not in matched for item in ITEMS if r.get(item) is False
        )

    tp, fp, fn = sum(item_tp.values()), sum(item_fp.values()), sum(item_fn.values())
    record: dict[str, object] = {
        "bench": "ppe",
        "provider": args.provider,
        "min_score": args.min_score,
        "images": len(det_ms),
        "persons_labelled": n_gt,
        "person_recall": round(n_found / max(n_gt, 1), 4),
        "detections": n_dets,
        "violations_labelled": tp + fn,
        "violation_precision": round(tp / max(tp + fp, 1), 4),
        "violation_recall": round(tp / max(tp + fn, 1), 4),
        "unlabelled_violations": unlabelled_violations,
        "ms_per_person": round(float(np.median(person_ms)), 2),
        "ms_per_person_mean": round(float(np.mean(person_ms)), 2),
        "detector_ms_per_image": round(float(np.median(det_ms)), 2),
        "fixed_detector_ms_median": round(float(np.median(fixed_det)), 2),
        "fixed_detector_ms_min": round(float(np.min(fixed_det)), 2),
        "fixed_person_ms_median": round(float(np.median(fixed_person)), 2),
        "fixed_person_ms_min": round(float(np.min(fixed_person)), 2),
        "model": str(classifier.size),
    }
    for item in ITEMS:
        record[f"{item}_labelled"] = labelled[item]
        record[f"{item}_accuracy"] = round(right[item] / max(labelled[item], 1), 4)
        record[f"{item}_accuracy_detected"] = round(right_found[item] / max(labelled_found[item], 1), 4)
        record[f"{item}_unknown_detected"] = round(unknown_found[item] / max(labelled_found[item], 1), 4)
        record[f"{item}_violations_labelled"] = item_tp[item] + item_fn[item]
        record[f"{item}_violation_precision"] = round(item_tp[item] / max(item_tp[item] + item_fp[item], 1), 4)
        record[f"{item}_violation_recall"] = round(item_tp[item] / max(item_tp[item] + item_fn[item], 1), 4)
    emit(record)
    print()
    rows = [
        {"figure": "person recall (detector)", "value": record["person_recall"], "target": ""},
        {"figure": "helmet accuracy (labelled persons)", "value": record["helmet_accuracy"], "target": ">= 0.90"},
        {"figure": "vest accuracy (labelled persons)", "value": record["vest_accuracy"], "target": ">= 0.85"},
        {"figure": "violation precision", "value": record["violation_precision"], "target": ">= 0.8"},
        {"figure": "violation recall", "value": record["violation_recall"], "target": ">= 0.8"},
        {
            "figure": "  no-helmet precision / recall",
            "value": f"{record['helmet_violation_precision']} / "
            f"{record['helmet_violation_recall']} (n={record['helmet_violations_labelled']})",
            "target": "",
        },
        {
            "figure": "  no-vest precision / recall",
            "value": f"{record['vest_violation_precision']} / "
            f"{record['vest_violation_recall']} (n={record['vest_violations_labelled']})",
            "target": "",
        },
        {"figure": "ms per person (median)", "value": record["ms_per_person"], "target": ""},
        {"figure": "detector ms per image (median)", "value": record["detector_ms_per_image"], "target": ""},
        {
            "figure": "640x480: person / detector ms (min)",
            "value": f"{record['fixed_person_ms_min']} / {record['fixed_detector_ms_min']}",
            "target": "",
        },
    ]
    table(rows, ["figure", "value", "target"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
