"""Irreversible anonymization of frames; the only way images leave a camera worker.

Every person region (tracked people, including tracks the detector lost a moment ago, and
every raw detection, confirmed or not) is replaced by a coarse mosaic: a face is reduced to one
or two flat colour blocks, which nothing can undo. A head region above and around the box is
covered with bigger blocks, so heads cut off by a tight box are covered too.
Fail closed: when analysis did not run or failed, the whole frame is obscured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class AnonymizerConfig:
    blocks_per_person_height: int = 8  # mosaic cells along a person's height: a face is ~1 cell
    margin: float = 0.12  # box enlargement on each side (fraction of the box size)
    head_fraction: float = 0.3  # top part of the box treated as the head region
    head_blocks: int = 2
    lost_growth_per_frame: float = 0.05  # a lost track's box grows while its position is uncertain
    full_frame_blocks: int = 24  # mosaic cells across the frame when failing closed


def _block_means(region: np.ndarray, cell: int) -> np.ndarray:
    """One colour per cell x cell block: the mean of 4x4 samples spread over the block.

    A plain INTER_AREA average over a person-sized region costs ~90 us; a bilinear pass down to
    4x4 samples per block and an area average of those costs ~5 us and gives nearly the same means.
    """
    h, w = region.shape[:2]
    cell = max(2, cell)
    sw, sh = max(1, w // cell), max(1, h // cell)
    if w > 8 * sw and h > 8 * sh:
        region = cv2.resize(region, (4 * sw, 4 * sh), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA)


def mosaic(region: np.ndarray, cell: int) -> np.ndarray:
    """Flat blocks of cell x cell pixels, each the mean colour of its block."""
    h, w = region.shape[:2]
    return cv2.resize(_block_means(region, cell), (w, h), interpolation=cv2.INTER_NEAREST)


def mosaic_in_place(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, cell: int) -> None:
    """mosaic() written straight into the image region (no temporary full-size copy)."""
    roi = image[y1:y2, x1:x2]
    h, w = roi.shape[:2]
    cv2.resize(_block_means(roi, cell), (w, h), dst=roi, interpolation=cv2.INTER_NEAREST)


class Anonymizer:
    def __init__(self, config: AnonymizerConfig | None = None) -> None:
        self.config = config or AnonymizerConfig()

    def obscure_all(self, image: np.ndarray) -> np.ndarray:
        """The fail-closed output: a mosaic so coarse nothing but the rough scene remains, darkened."""
        h, w = image.shape[:2]
        out = mosaic(image, max(8, w // self.config.full_frame_blocks))
        out = (out.astype(np.uint16) * 2 // 5).astype(np.uint8)
        cv2.putText(out, "analysis unavailable", (10, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        return out

    def apply(
        self, image: np.ndarray, boxes: Iterable[tuple[float, float, float, float, int]], *, analysed: bool = True
    ) -> np.ndarray:
        """boxes: (x1, y1, x2, y2, lost_frames) in pixels. Returns a new image; input untouched."""
        if not analysed:
            return self.obscure_all(image)
        cfg = self.config
        out = image.copy()
        h, w = image.shape[:2]
        for x1, y1, x2, y2, lost in boxes:
            bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
            grow = cfg.margin + cfg.lost_growth_per_frame * min(lost, 20)
            body = self._clip(x1 - bw * grow, y1 - bh * grow, x2 + bw * grow, y2 + bh * grow, w, h)
            if body is not None:
                cell = int(max(bh * (1 + 2 * grow), 8) / cfg.blocks_per_person_height)
                mosaic_in_place(out, *body, cell)
            # Head: top of the box, widened, reaching above it (tight boxes cut hair and raised heads).
            hh = bh * cfg.head_fraction
            cx = (x1 + x2) / 2
            half = max(bw * (0.5 + grow), hh * 0.6)
            head = self._clip(cx - half, y1 - hh * (0.4 + grow), cx + half, y1 + hh, w, h)
            if head is not None:
                hx1, hy1, hx2, hy2 = head
                mosaic_in_place(out, *head, int(max(hx2 - hx1, hy2 - hy1) / cfg.head_blocks))
        return out

    @staticmethod
    def _clip(x1: float, y1: float, x2: float, y2: float, w: int, h: int) -> tuple[int, int, int, int] | None:
        ix1, iy1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        ix2, iy2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if ix2 - ix1 < 2 or iy2 - iy1 < 2:
            return None
        return ix1, iy1, ix2, iy2


def placeholder(width: int = 640, height: int = 360, text: str = "no anonymized frame") -> np.ndarray:
    """A frame that shows nothing of the camera: served when no fresh anonymized frame exists."""
    img = np.full((height, width, 3), 32, np.uint8)
    cv2.putText(img, text, (12, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (200, 200, 200), 1, cv2.LINE_AA)
    return img
