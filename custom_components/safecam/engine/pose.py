"""MoveNet pose: single-pose on a person crop, multi-pose on the whole frame.

Input spec (shared MODELS.md section 2): int32 NHWC RGB 0-255, no normalisation.
- singlepose lightning/thunder: a square crop [1,S,S,3] (S = 192 / 256) -> (y, x, score) x 17,
  normalised to the crop;
- multipose lightning: [1,H,W,3], H and W multiples of 32 -> [1,6,56]: 17 x (y, x, score), then
  ymin, xmin, ymax, xmax, instance score, normalised to the input.
Both wrappers feed one fixed input shape per frame size: OpenVINO recompiles for every new shape.
Poses come back in pixels of the frame; no pixels are kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
HEAD = (0, 1, 2, 3, 4)
SHOULDERS = (5, 6)
HIPS = (11, 12)
KNEES = (13, 14)
ANKLES = (15, 16)
KEYPOINT_THRESHOLD = 0.3  # Google's suggested keypoint score threshold


@dataclass(frozen=True, slots=True)
class Pose:
    """One person's 17 keypoints in frame pixels."""

    keypoints: np.ndarray  # (17, 3) float32: x, y (pixels), score
    score: float  # instance score (multipose) or mean keypoint score (singlepose)
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels (model box, or the visible keypoints')

    def visible(self, threshold: float = KEYPOINT_THRESHOLD) -> np.ndarray:
        return self.keypoints[:, 2] >= threshold

    def centre_of(self, parts: tuple[int, ...], threshold: float = KEYPOINT_THRESHOLD) -> tuple[float, float] | None:
        """Mean (x, y) of the visible keypoints among `parts`, None when none is visible."""
        kp = self.keypoints[list(parts)]
        ok = kp[:, 2] >= threshold
        if not ok.any():
            return None
        return float(kp[ok, 0].mean()), float(kp[ok, 1].mean())


def _keypoint_box(kp: np.ndarray, threshold: float = KEYPOINT_THRESHOLD) -> tuple[float, float, float, float]:
    ok = kp[:, 2] >= threshold
    pts = kp[ok] if ok.any() else kp
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def _rgb_int32(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.int32)[None]


def _session(name: str, model_dir: str | Path | None, provider: str) -> Any:
    from .models import create_session, resolve_model

    return create_session(resolve_model(name, model_dir), provider=provider)


class SinglePoseEstimator:
    """MoveNet singlepose (lightning 192 px, thunder 256 px) on a square crop around one person box."""

    def __init__(self, session: Any) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        size = inp.shape[1]
        if not isinstance(size, int) or inp.shape[2] != size:
            raise ValueError(f"singlepose model must have a fixed square input, got {inp.shape}")
        self.size = size

    @classmethod
    def from_catalog(
        cls, name: str = "movenet_singlepose_lightning", *, model_dir: str | Path | None = None, provider: str = "auto"
    ) -> SinglePoseEstimator:
        return cls(_session(name, model_dir, provider))

    def __call__(self, image: np.ndarray, box: tuple[float, float, float, float], expand: float = 1.25) -> Pose:
        """Pose of the person in `box` (pixels): a square crop of side max(w, h) * expand around its centre.

        Parts of the square outside the frame are black (padding), so the person keeps their aspect.
        """
        h, w = image.shape[:2]
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1, 8.0) * expand
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        left, top = round(cx - side / 2), round(cy - side / 2)
        side_px = max(round(side), 1)
        crop = np.zeros((side_px, side_px, 3), np.uint8)
        sx0, sy0 = max(left, 0), max(top, 0)
        sx1, sy1 = min(left + side_px, w), min(top + side_px, h)
        if sx1 > sx0 and sy1 > sy0:
            crop[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = image[sy0:sy1, sx0:sx1]
        blob = _rgb_int32(cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_LINEAR))
        out = self.session.run(None, {self._input_name: blob})[0].reshape(17, 3)
        kp = np.empty((17, 3), np.float32)
        kp[:, 0] = left + out[:, 1] * side_px
        kp[:, 1] = top + out[:, 0] * side_px
        kp[:, 2] = out[:, 2]
        return Pose(kp, float(out[:, 2].mean()), _keypoint_box(kp))


class MultiPoseEstimator:
    """MoveNet multipose lightning on the whole frame, letterboxed to a fixed input per frame size.

    The input's long side is `long_side` (multiple of 32), the short side the frame's aspect rounded
    up to a multiple of 32, image pasted top-left on black: 640x480 -> 320x256, 1280x720 -> 320x192.
    """

    def __init__(self, session: Any, long_side: int = 320, min_score: float = 0.15) -> None:
        if long_side % 32:
            raise ValueError("long_side must be a multiple of 32")
        self.session = session
        self.long_side = long_side
        self.min_score = min_score
        self._input_name = session.get_inputs()[0].name
        self._lock = threading.Lock()  # one estimator serves every camera thread (shared_multipose)
        self._compiled: set[tuple[int, int]] = set()

    @classmethod
    def from_catalog(
        cls,
        name: str = "movenet_multipose_lightning",
        *,
        model_dir: str | Path | None = None,
        provider: str = "auto",
        long_side: int = 320,
        min_score: float = 0.15,
    ) -> MultiPoseEstimator:
        return cls(_session(name, model_dir, provider), long_side, min_score)

    def input_shape(self, width: int, height: int) -> tuple[int, int]:
        """(input width, input height) for a frame of this size."""
        r = self.long_side / max(width, height)
        iw = max(32, -(-round(width * r) // 32) * 32)
        ih = max(32, -(-round(height * r) // 32) * 32)
        return iw, ih

    def warm(self, width: int, height: int) -> None:
        """Run once at this frame size now: OpenVINO compiles each new input shape on its first run (0.3-2 s),
        which must not delay the first fall check."""
        if self.input_shape(width, height) not in self._compiled:
            self(np.zeros((height, width, 3), np.uint8))

    def __call__(self, image: np.ndarray) -> list[Pose]:
        """Every person with instance score >= min_score, best first."""
        h, w = image.shape[:2]
        iw, ih = self.input_shape(w, h)
        self._compiled.add((iw, ih))
        r = self.long_side / max(w, h)
        rw, rh = min(round(w * r), iw), min(round(h * r), ih)
        canvas = np.zeros((ih, iw, 3), np.uint8)
        canvas[:rh, :rw] = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
        blob = _rgb_int32(canvas)
        with self._lock:
            out = self.session.run(None, {self._input_name: blob})[0][0]
        poses: list[Pose] = []
        for row in out[np.argsort(-out[:, 55])]:
            score = float(row[55])
            if score < self.min_score:
                break
            kp = np.empty((17, 3), np.float32)
            kp[:, 0] = row[1:51:3] * iw / r
            kp[:, 1] = row[0:51:3] * ih / r
            kp[:, 2] = row[2:51:3]
            ymin, xmin, ymax, xmax = row[51:55]
            box = (float(xmin * iw / r), float(ymin * ih / r), float(xmax * iw / r), float(ymax * ih / r))
            poses.append(Pose(kp, score, box))
        return poses


@cache
def shared_multipose(provider: str = "auto") -> MultiPoseEstimator:
    """One multipose session per process: cameras share it, and scene changes do not reload 19 MB.

    Raises models.ModelError when the model cannot be resolved or loaded (not cached: a retry looks again).
    """
    return MultiPoseEstimator.from_catalog(provider=provider)
