"""Face detection used only to AUDIT anonymization (never to drive it).

YuNet (face_yunet_n_dynamic) at native resolution, padded to multiples of 32: the highest recall
on small CCTV-sized faces among the shared models. If it still finds a face in an anonymized
frame, anonymization leaked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .detect import nms

if TYPE_CHECKING:
    from pathlib import Path

STRIDES = (8, 16, 32)


class FaceAuditor:
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
        provider: str = "openvino",
        score_threshold: float = 0.6,
    ) -> FaceAuditor:
        from .models import create_session, resolve_model

        return cls(create_session(resolve_model(name, model_dir), provider=provider), score_threshold)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns (boxes xyxy in pixels, scores) of the faces found."""
        h, w = image.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        canvas = np.zeros((ph, pw, 3), np.uint8)
        canvas[:h, :w] = image
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)  # BGR, 0-255
        outs = dict(zip(self._outputs, self.session.run(None, {self._input: blob}), strict=True))
        boxes, scores = [], []
        for s in STRIDES:
            cols = pw // s
            cls = np.clip(outs[f"cls_{s}"][0, :, 0], 0, 1)
            obj = np.clip(outs[f"obj_{s}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            keep = np.nonzero(score >= self.score_threshold)[0]
            if not len(keep):
                continue
            b = outs[f"bbox_{s}"][0, keep]
            col, row = keep % cols, keep // cols
            cx, cy = (col + b[:, 0]) * s, (row + b[:, 1]) * s
            bw, bh = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1))
            scores.append(score[keep])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        all_boxes, all_scores = np.concatenate(boxes), np.concatenate(scores)
        keep_idx = nms(all_boxes, all_scores, 0.3)
        return all_boxes[keep_idx].astype(np.float32), all_scores[keep_idx].astype(np.float32)
