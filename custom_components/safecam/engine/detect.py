"""YOLOX person detector: letterbox preprocessing, grid/stride decoding, NMS, optional tiling.

Input spec (shared MODELS.md): float32 NCHW, BGR, 0-255, no mean/std; letterbox scale
r = min(S/h, S/w), image pasted top-left on a canvas of 114. Output rows are the stride 8, 16, 32
grids row-major with columns [dx, dy, log w, log h, obj, 80 class probs] (already sigmoided).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .types import Detections

if TYPE_CHECKING:
    from pathlib import Path

PERSON = 0
STRIDES = (8, 16, 32)
# Inference threads of each camera's OpenVINO session, unless configured. One: a camera analyses a few
# frames a second, and bench/speed.py measured on 2 cores that one thread needs less CPU per frame than
# OpenVINO's default of one per core (yolox_nano: 17.3 vs 20.2 CPU-ms; the second thread buys latency,
# not throughput), leaves a core for decoding, tracking and Home Assistant itself (pipeline overhead
# +9-10 % instead of +28 %), and several cameras do not oversubscribe the machine.
CAMERA_INFERENCE_THREADS = 1


def camera_inference_threads(provider: str) -> int | None:
    """Threads for a camera's detector on `provider`: CAMERA_INFERENCE_THREADS with OpenVINO, where it was
    measured; the runtime's default (None) with the CPU provider (aarch64 boards: not measured here)."""
    from .models import resolved_provider

    return CAMERA_INFERENCE_THREADS if resolved_provider(provider) == "openvino" else None


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize keeping aspect ratio, paste top-left on a size x size canvas of 114; NCHW float32."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    resized = cv2.resize(image, (round(w * r), round(h * r)), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas.transpose(2, 0, 1)[None].astype(np.float32), r


def _grids(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output row: grid cell (gx, gy) and its stride."""
    cells, strides = [], []
    for s in STRIDES:
        n = size // s
        gy, gx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cells.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
        strides.append(np.full((n * n, 1), s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, containment: float = 1.01) -> np.ndarray:
    """Greedy NMS; also drops a box mostly contained in a better one (tile-edge fragments)."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    if containment >= 1.0 and scores.min() > 0:
        # Plain IoU NMS (containment is <= 1 anyway): OpenCV's C++ loop, same rule, ~10x faster.
        # (It keeps only scores > its threshold, which must be >= 0.)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
        kept = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32), 0.0, iou)  # type: ignore[arg-type]  # stubs: Sequence
        return np.asarray(kept, np.int64).reshape(-1)
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        contained = inter / (np.minimum(areas[i], areas[rest]) + 1e-9)
        order = rest[(overlap <= iou) & (contained <= containment)]
    return np.asarray(keep, np.int64)


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """Detector input computed ahead of inference (see Detector.prepare)."""

    size: tuple[int, int]  # (width, height) of the frame it was made from
    regions: list[tuple[int, int, int, int]]
    blobs: list[tuple[np.ndarray, float]]  # (NCHW blob, letterbox scale) per region


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    input_size: int = 416
    score_threshold: float = 0.1  # low on purpose: the tracker uses low-score boxes (ByteTrack)
    nms_iou: float = 0.45
    classes: tuple[int, ...] = (PERSON,)
    # 0 = whole frame only; 2 = whole frame plus a 2x1 split of the wider side (small people
    # appear twice as large in the tiles). bench/detection.py measures what it buys.
    tiles: int = 0
    min_box_px: float = 4.0


class Detector:
    """Runs a YOLOX ONNX session on BGR frames and returns person detections in pixels."""

    def __init__(self, session: Any, config: DetectorConfig | None = None) -> None:
        self.session = session
        self.config = config or DetectorConfig()
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        fixed = inp.shape[2] if isinstance(inp.shape[2], int) else None
        if fixed is not None and fixed != self.config.input_size:
            raise ValueError(f"model input is {fixed}px, config asks {self.config.input_size}px")
        self._cells, self._strides = _grids(self.config.input_size)

    @classmethod
    def from_catalog(
        cls,
        name: str = "yolox_nano",
        *,
        model_dir: str | Path | None = None,
        provider: str = "auto",
        config: DetectorConfig | None = None,
        **session_options: Any,
    ) -> Detector:
        from .models import create_session, resolve_model

        path = resolve_model(name, model_dir)
        return cls(create_session(path, provider=provider, **session_options), config)

    def regions(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The whole frame, plus tiles when configured."""
        regions = [(0, 0, width, height)]
        if self.config.tiles == 2:
            # Two overlapping halves along the longer side (25 % overlap each way).
            if width >= height:
                half = int(width * 0.6)
                regions += [(0, 0, half, height), (width - half, 0, width, height)]
            else:
                half = int(height * 0.6)
                regions += [(0, 0, width, half), (0, height - half, width, height)]
        return regions

    def prepare(self, image: np.ndarray) -> PreparedInput:
        """Letterboxed input blobs; pure CPU work that a decode-ahead thread can do."""
        h, w = image.shape[:2]
        regions = self.regions(w, h)
        blobs = [letterbox(image[y0:y1, x0:x1], self.config.input_size) for x0, y0, x1, y1 in regions]
        return PreparedInput((w, h), regions, blobs)

    def __call__(self, image: np.ndarray, prepared: PreparedInput | None = None) -> Detections:
        cfg = self.config
        h, w = image.shape[:2]
        if prepared is None or prepared.size != (w, h):
            prepared = self.prepare(image)
        parts = [
            self._detect_region(blob, r, region, w, h) for (blob, r), region in zip(prepared.blobs, prepared.regions, strict=True)
        ]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        classes = np.concatenate([p[2] for p in parts])
        if len(prepared.regions) > 1 and len(boxes):
            keep = nms(boxes, scores, cfg.nms_iou, containment=0.8)
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        return Detections(boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int32))

    def _detect_region(
        self, blob: np.ndarray, r: float, region: tuple[int, int, int, int], width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.config
        x0, y0, x1, y1 = region
        out = self.session.run(None, {self._input_name: blob})[0][0]
        # Class probabilities are sigmoids (<= 1), so score = obj * cls <= obj: rows whose objectness
        # alone is below the threshold (nearly all of the grid) go before any per-class work.
        cand = np.flatnonzero(out[:, 4] >= cfg.score_threshold)
        rows = out[cand]
        cls_scores = rows[:, [5 + c for c in cfg.classes]] * rows[:, 4:5]
        best = cls_scores.argmax(axis=1)
        score = cls_scores[np.arange(len(best)), best]
        mask = score >= cfg.score_threshold
        if not mask.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
        cand, rows, score, best = cand[mask], rows[mask], score[mask], best[mask]
        stride = self._strides[cand]
        centre = (rows[:, :2] + self._cells[cand]) * stride
        size = np.exp(np.clip(rows[:, 2:4], -10, 10)) * stride
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / r
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] + x0, 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] + y0, 0, height)
        big_enough = ((boxes[:, 2] - boxes[:, 0]) >= cfg.min_box_px) & ((boxes[:, 3] - boxes[:, 1]) >= cfg.min_box_px)
        # In a tile, a box cut by an inner tile edge is a fragment: the whole-frame pass has it.
        if (x0, y0, x1, y1) != (0, 0, width, height):
            edge = 3.0
            cut = np.zeros(len(boxes), bool)
            if x0 > 0:
                cut |= boxes[:, 0] <= x0 + edge
            if x1 < width:
                cut |= boxes[:, 2] >= x1 - edge
            if y0 > 0:
                cut |= boxes[:, 1] <= y0 + edge
            if y1 < height:
                cut |= boxes[:, 3] >= y1 - edge
            big_enough &= ~cut
        boxes, score, best = boxes[big_enough], score[big_enough], best[big_enough]
        keep = nms(boxes, score, cfg.nms_iou)
        classes = np.asarray(cfg.classes, np.int32)[best[keep]]
        return boxes[keep], score[keep], classes
