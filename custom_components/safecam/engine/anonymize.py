"""Irreversible anonymization of frames; the only way images leave a camera worker.

Modes (per camera; bench/privacy_audit.py measures leakage, detectability and cost of each):
- `full_frame` (default): the whole picture becomes flat blocks (`background_blocks` across the
  longer side), so a face nobody detected (a crowd, a half-hidden person) is one or two blocks;
  detected people are redrawn as soft figures (`figure_rows` samples along their height, at most
  one per `figure_cell` pixels: posture and clothing colour stay readable, detail does not), with
  their heads treated as below.
- `body`: every person region is a coarse mosaic (`body_blocks` cells along the height).
- `head`: only heads are treated; bodies and background stay as they are.
In every mode static privacy polygons are filled with a flat colour.

Heads, in every mode, come from the person box alone (not from a face detector), so backs of
heads, side and tiny faces are covered: a head is about 0.45 box widths (or 0.15 box heights)
tall (`head_size`), anywhere across the top of the box and a little above it (`head_region`).
`head_style` (default: "silhouette" in `full_frame`, "flat" in `body` and `head`):
- "silhouette": the head region becomes flat cells of 1/2.5 head (`head_cells` per head: eyes,
  nose and mouth share a cell or two), pulled towards the region's mean colour (`head_contrast`),
  and a flat dark pictogram is drawn where the head most likely is (centred, at the top of the
  box): a head with a rounded top, straight sides and a flat bottom (a hood or helmet outline, no
  face's oval) over a dome for the shoulders. Person detectors rely on the head-and-shoulders
  outline the cells break up; the pictogram gives it back without anything of the real head.
- "flat": the head region becomes 2 x 2 flat cells (people are harder to detect in the output).
- "soft": the head region is low-passed to `head_detail` samples (a face is a few samples), and
  YuNet looks for faces in those head crops only (`HeadFaces`; never the whole frame): each face it
  finds, even at a low score, becomes one flat ellipse. Blurred head shapes remain, which face
  detectors at low thresholds still take for faces.

Irreversible: every step averages many pixels into one (block means, area downsampling, one flat
colour per face or generic head); nothing is keyed, scrambled or kept.
Fail closed: when analysis did not run or failed, the whole frame is obscured (`obscure_all`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import cv2
import numpy as np

from .audit import yunet_decode
from .config import ConfigError, reject_unknown_keys
from .geometry import GeometryError, validate_polygon

MODES = ("full_frame", "body", "head")
HEAD_STYLES = ("silhouette", "flat", "soft")
DEFAULT_MODE = "full_frame"
MaskBox = tuple[float, float, float, float, int]  # x1, y1, x2, y2 (pixels), frames since last detection
PRIVACY_FILL = (96, 96, 96)  # BGR of static privacy masks
Region = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class AnonymizerConfig:
    mode: str = DEFAULT_MODE
    margin: float = 0.12  # box enlargement on each side (fraction of the box size)
    lost_growth_per_frame: float = 0.02  # a lost track's box grows while its position is uncertain (20 frames max)
    head_per_width: float = 0.45  # head size estimate: this fraction of the box width ...
    head_per_height: float = 0.15  # ... or of its height, whichever is larger
    # "silhouette": flat cells of 1/head_cells head plus a dark head-and-shoulders pictogram (people stay detectable);
    # "flat": head_blocks x head_blocks flat cells; "soft": low-passed to head_detail samples, plus a
    # flat ellipse on every face YuNet finds in it (blurred head shapes remain). bench/privacy_audit.py.
    # Silhouettes with the dome pictogram: head_cells 2.5 (not 3), head_contrast 0.7 and figure_cell 6 (not 4) take
    # clip leakage from 7 to 3 of 815 faces (0.37 %) and keep the recall ratio at 0.98.
    head_style: str | None = None  # None: "silhouette" in full_frame, "flat" in body and head (measured there)
    head_cells: float = 2.5  # "silhouette": flat cells per head size (a face is ~2.5 x 2.5 cells) ...
    head_contrast: float = 0.7  # ... pulled this far towards the head region's mean colour (less facial structure)
    generic_head_width: float = 0.8  # "silhouette": the generic head's size (head sizes) ...
    generic_head_height: float = 1.0
    generic_head_shade: float = 0.25  # ... and colour: this fraction of the mean colour where it is drawn
    generic_shoulders_width: float = 1.8  # "silhouette": the shoulders' width and height (generic head widths / heights)
    generic_shoulders_height: float = 1.0
    head_blocks: int = 2
    head_detail: int = 16  # "soft": a head region keeps this many samples across its longer side
    find_faces: bool = True  # "soft": look for faces inside head regions and flatten them
    face_threshold: float = 0.3  # low on purpose: a false face only costs a flat ellipse
    face_scale: float = 2.0  # the flat ellipse over a found face, relative to its box (hair and outline too)
    face_crop: int = 64  # head regions are searched at this size (px, longer side)
    min_face_region: int = 24  # smaller head regions are not searched: the low-pass leaves no face there
    body_blocks: int = 8  # `body`: mosaic cells along a person's height (a face is ~1 cell)
    figure_rows: int = 64  # `full_frame`: a person keeps this many samples along their height ...
    figure_cell: float = 6.0  # ... and at most one per figure_cell pixels (small and top-down people: faces are 1-2 samples)
    background_blocks: int = 64  # `full_frame`: cells across the longer side of the frame
    fail_closed_blocks: int = 24  # cells across the frame when failing closed

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"anonymization mode '{self.mode}' is not one of {', '.join(MODES)}")
        if self.head_style is not None and self.head_style not in HEAD_STYLES:
            raise ValueError(f"head style '{self.head_style}' is not one of {', '.join(HEAD_STYLES)}")

    def heads(self) -> str:
        """The head style in effect: silhouettes keep people detectable in full_frame; in body and
        head mode (a mosaic or the raw body around the head) face detectors at low thresholds
        sometimes take the pictogram for a face, so they keep flat heads."""
        return self.head_style or ("silhouette" if self.mode == "full_frame" else "flat")


@dataclass(frozen=True, slots=True)
class PrivacyMasks:
    """Static privacy polygons (normalized 0..1) that every output obscures, whatever is detected."""

    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()


def parse_privacy(data: object, _zones: object = None) -> PrivacyMasks:
    """Scene config section `privacy: {masks: [[[x, y], ...], ...]}` (SECTION_PARSERS)."""
    if not isinstance(data, dict):
        raise ConfigError("privacy: expected a mapping with 'masks'")
    reject_unknown_keys(data, {"masks"}, "privacy")
    masks = data.get("masks") or []
    if not isinstance(masks, list):
        raise ConfigError("privacy: 'masks' must be a list of polygons")
    polygons = []
    for i, poly in enumerate(masks):
        try:
            pts = validate_polygon(poly, f"privacy mask {i + 1}")
        except GeometryError as err:
            raise ConfigError(str(err)) from None
        polygons.append(tuple((float(x), float(y)) for x, y in pts))
    return PrivacyMasks(tuple(polygons))


def _block_means(region: np.ndarray, cell: float) -> np.ndarray:
    """One colour per cell x cell block: the mean of 4x4 samples spread over the block.

    A plain INTER_AREA average over a person-sized region costs ~90 us; a bilinear pass down to
    4x4 samples per block and an area average of those costs ~5 us and gives nearly the same means.
    """
    h, w = region.shape[:2]
    cell = max(2.0, cell)
    sw, sh = max(1, round(w / cell)), max(1, round(h / cell))
    if w > 8 * sw and h > 8 * sh:
        region = cv2.resize(region, (4 * sw, 4 * sh), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA)


def mosaic(region: np.ndarray, cell: float) -> np.ndarray:
    """Flat blocks of about cell x cell pixels, each the mean colour of its block."""
    h, w = region.shape[:2]
    return cv2.resize(_block_means(region, cell), (w, h), interpolation=cv2.INTER_NEAREST)


def mosaic_in_place(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, cell: float, contrast: float = 1.0) -> None:
    """mosaic() written straight into the image region (no temporary full-size copy); contrast < 1
    pulls every cell towards the region's mean colour."""
    roi = image[y1:y2, x1:x2]
    h, w = roi.shape[:2]
    means = _block_means(roi, cell)
    if contrast != 1.0:
        mean = np.array(cv2.mean(means)[:3], np.float32)
        means = np.clip(mean + contrast * (means.astype(np.float32) - mean), 0, 255).astype(np.uint8)
    cv2.resize(means, (w, h), dst=roi, interpolation=cv2.INTER_NEAREST)


def _clip(x1: float, y1: float, x2: float, y2: float, w: int, h: int) -> Region | None:
    ix1, iy1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    ix2, iy2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    if ix2 - ix1 < 2 or iy2 - iy1 < 2:
        return None
    return ix1, iy1, ix2, iy2


def grown_box(box: MaskBox, config: AnonymizerConfig) -> tuple[float, float, float, float, float]:
    """The person box enlarged by the margin (more while the track is lost); also returns the growth."""
    x1, y1, x2, y2, lost = box
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    grow = config.margin + config.lost_growth_per_frame * min(lost, 20)
    return x1 - bw * grow, y1 - bh * grow, x2 + bw * grow, y2 + bh * grow, grow


def head_size(box: MaskBox, config: AnonymizerConfig) -> float:
    """The largest head the person in `box` can have (pixels): 0.45 box widths or 0.15 box heights."""
    x1, y1, x2, y2, _ = box
    return max(config.head_per_width * max(x2 - x1, 1.0), config.head_per_height * max(y2 - y1, 1.0))


def head_region(box: MaskBox, config: AnonymizerConfig) -> tuple[float, float, float, float]:
    """Where the head of the person in `box` can be: across the top of the box, and above it.

    From the box alone, so it covers a head whatever way it faces. A tight box can cut the hair or
    a raised head: the region reaches above the box; a wide box (bending, lying) gets its whole
    height; a box cut by the top of the frame (the head may be lower than its top) one more head.
    """
    x1, y1, x2, y2, _ = box
    gx1, gy1, gx2, gy2, grow = grown_box(box, config)
    s = head_size(box, config)
    bottom = y1 + s * (1.3 + grow) + (s if y1 <= 1.0 else 0.0)
    return min(gx1, x1 - s / 4), min(gy1, y1 - s * (0.35 + grow)), max(gx2, x2 + s / 4), bottom


def generic_head_box(box: MaskBox, config: AnonymizerConfig) -> tuple[float, float, float, float]:
    """Where the "silhouette" pictogram's head is drawn: centred, its top at the top of the box."""
    x1, y1, x2, _, _ = box
    s = head_size(box, config)
    ew, eh = config.generic_head_width * s, config.generic_head_height * s
    cx = (x1 + x2) / 2
    return cx - ew / 2, y1, cx + ew / 2, y1 + eh


def _distinct(regions: list[Region], inside: float = 0.8) -> list[Region]:
    """Regions to search for faces: one lying mostly inside a larger one already searched is left out
    (a remembered mask over a re-detected person, two boxes of one person)."""
    kept: list[Region] = []
    for r in sorted(regions, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]), reverse=True):
        area = (r[2] - r[0]) * (r[3] - r[1])
        covered = max(
            (max(0, min(r[2], k[2]) - max(r[0], k[0])) * max(0, min(r[3], k[3]) - max(r[1], k[1])) for k in kept), default=0
        )
        if covered < inside * area:
            kept.append(r)
    return kept


def _low_pass(image: np.ndarray, region: Region, samples: float) -> None:
    """Keep `samples` samples across the region's longer side (area average), smoothly upscaled."""
    x1, y1, x2, y2 = region
    w, h = x2 - x1, y2 - y1
    cell = max(w, h) / samples
    if cell <= 1.0:
        return
    roi = image[y1:y2, x1:x2]
    small = cv2.resize(roi, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
    cv2.resize(small, (w, h), dst=roi, interpolation=cv2.INTER_LINEAR)


class HeadFaces:
    """YuNet-n on head crops only (never the whole frame): where inside a head region the face is.

    All crops are letterboxed to one size and run as one batch; the CPU EP takes any batch size
    (the OpenVINO EP would recompile for each one).
    """

    def __init__(self, session: Any, crop: int = 64, threshold: float = 0.3) -> None:
        self.session = session
        self.crop = -(-crop // 32) * 32
        self.threshold = threshold
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()]

    @classmethod
    def from_catalog(cls, crop: int = 64, threshold: float = 0.3) -> HeadFaces:
        return cls(_face_session(), crop, threshold)

    def __call__(self, image: np.ndarray, regions: list[Region]) -> list[np.ndarray]:
        """Per region: face boxes (x1, y1, x2, y2) in frame pixels."""
        if not regions:
            return []
        size = self.crop
        batch = np.zeros((len(regions), size, size, 3), np.uint8)
        scales = []
        for i, (x1, y1, x2, y2) in enumerate(regions):
            r = size / max(x2 - x1, y2 - y1)
            w, h = max(1, min(size, round((x2 - x1) * r))), max(1, min(size, round((y2 - y1) * r)))
            batch[i, :h, :w] = cv2.resize(image[y1:y2, x1:x2], (w, h), interpolation=cv2.INTER_LINEAR)
            scales.append(r)
        blob = batch.transpose(0, 3, 1, 2).astype(np.float32)  # BGR, 0-255
        outs = dict(zip(self._outputs, self.session.run(None, {self._input: blob}), strict=True))
        found = []
        for i, (x1, y1, _, _) in enumerate(regions):
            boxes = yunet_decode(outs, i, size, self.threshold)[0]
            found.append(boxes / scales[i] + np.array([x1, y1, x1, y1], np.float32))
        return found


@cache
def _face_session() -> Any:
    """One YuNet-n session per process (onnxruntime sessions are safe to share between threads)."""
    from .models import create_session, resolve_model

    return create_session(resolve_model("face_yunet_n_dynamic"), provider="cpu")


class Anonymizer:
    def __init__(
        self, config: AnonymizerConfig | None = None, privacy: PrivacyMasks | None = None, faces: HeadFaces | None = None
    ) -> None:
        self.config = config or AnonymizerConfig()
        self.privacy = privacy or PrivacyMasks()
        searching = self.config.heads() == "soft" and self.config.find_faces
        if faces is None and searching:
            faces = HeadFaces.from_catalog(self.config.face_crop, self.config.face_threshold)
        self.faces = faces if searching else None
        self._polys: dict[tuple[PrivacyMasks, int, int], list[np.ndarray]] = {}

    def set_privacy(self, privacy: PrivacyMasks | None) -> None:
        """New static masks (scene change); a frame rendering meanwhile uses the old or the new ones whole."""
        self.privacy = privacy or PrivacyMasks()

    def obscure_all(self, image: np.ndarray) -> np.ndarray:
        """The fail-closed output: a mosaic so coarse nothing but the rough scene remains, darkened."""
        h, w = image.shape[:2]
        out = mosaic(image, max(8, w // self.config.fail_closed_blocks))
        out = (out.astype(np.uint16) * 2 // 5).astype(np.uint8)
        cv2.putText(out, "analysis unavailable", (10, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        self._fill_privacy(out)
        return out

    def apply(self, image: np.ndarray, boxes: Iterable[MaskBox], *, analysed: bool = True) -> np.ndarray:
        """boxes: (x1, y1, x2, y2, lost_frames) in pixels. Returns a new image; input untouched."""
        if not analysed:
            return self.obscure_all(image)
        cfg = self.config
        h, w = image.shape[:2]
        boxes = list(boxes)
        style = cfg.heads()
        placed = [(r, b) for r, b in ((_clip(*head_region(b, cfg), w, h), b) for b in boxes) if r is not None]
        heads = [r for r, _ in placed]
        searched = _distinct([r for r in heads if max(r[2] - r[0], r[3] - r[1]) >= cfg.min_face_region])
        faces = self.faces(image, searched) if self.faces is not None and searched else []
        out = mosaic(image, max(h, w) / cfg.background_blocks) if cfg.mode == "full_frame" else image.copy()
        if cfg.mode != "head":
            # Larger people first, so a smaller person in front is drawn over (not under) them.
            for box in sorted(boxes, key=lambda b: (b[3] - b[1]) * (b[2] - b[0]), reverse=True):
                gx1, gy1, gx2, gy2, _ = grown_box(box, cfg)
                body = _clip(gx1, gy1, gx2, gy2, w, h)
                if body is None:
                    continue
                if cfg.mode == "body":
                    mosaic_in_place(out, *body, max(gy2 - gy1, 8.0) / cfg.body_blocks)
                else:  # full_frame: the person redrawn from the raw frame, at figure_rows detail
                    bx1, by1, bx2, by2 = body
                    out[by1:by2, bx1:bx2] = image[by1:by2, bx1:bx2]
                    cell = max((gy2 - gy1) / cfg.figure_rows, cfg.figure_cell)
                    _low_pass(out, body, max(bx2 - bx1, by2 - by1) / cell)
        for (x1, y1, x2, y2), box in placed:
            if style == "silhouette":
                mosaic_in_place(out, x1, y1, x2, y2, head_size(box, cfg) / cfg.head_cells, cfg.head_contrast)
            elif style == "flat":
                mosaic_in_place(out, x1, y1, x2, y2, max(x2 - x1, y2 - y1) / cfg.head_blocks)
            else:
                _low_pass(out, (x1, y1, x2, y2), cfg.head_detail)
        if style == "silhouette":  # after every head's cells: one head's cells never cover another's pictogram
            for box in boxes:
                self._generic_head(image, out, box)
        for found in faces:
            for fx1, fy1, fx2, fy2 in found:
                self._flatten_face(
                    out, (fx1 + fx2) / 2, (fy1 + fy2) / 2, (fx2 - fx1) * cfg.face_scale, (fy2 - fy1) * cfg.face_scale
                )
        self._fill_privacy(out)
        return out

    def _generic_head(self, image: np.ndarray, out: np.ndarray, box: MaskBox) -> None:
        """A flat dark pictogram where the head most likely is: a head, centred, its top at the top of
        the box, with straight sides and a flat bottom (a hood or helmet outline, not a face's oval),
        over a dome for the shoulders that starts just below it.

        Measured with bench/privacy_audit.py on the MOT clips (--utility-only: the people yolox_nano
        finds on the raw frames that it still finds): head cells alone keep 77-88 % of them, an oval
        head over a flat shoulder bar 91-94 %, over a dome for the shoulders 92-97 % (most of the
        rest overlap another person or have a mask box off their outline). Face detectors at low
        thresholds took the oval over a dome for a face (5-6 of 71 Stadtmitte faces, against 1 with
        the bar); the flat-bottomed head over the dome: 0, and fewer at the very low level than
        either. Dark like hair or a backlit head (a pale one helps person detectors less):
        generic_head_shade x the mean raw colour under the head, one colour for many pixels.
        """
        cfg = self.config
        hx1, hy1, hx2, hy2 = generic_head_box(box, cfg)
        cx, cy, ew, eh = (hx1 + hx2) / 2, (hy1 + hy2) / 2, hx2 - hx1, hy2 - hy1
        h, w = out.shape[:2]
        region = _clip(hx1, hy1, hx2, hy2, w, h)
        if region is None:
            return
        rx1, ry1, rx2, ry2 = region
        colour = [c * cfg.generic_head_shade for c in cv2.mean(image[ry1:ry2, rx1:rx2])[:3]]
        # The head: the upper half of the ellipse over a rectangle (a rounded top, straight sides, flat bottom).
        cv2.ellipse(out, (round(cx), round(cy)), (round(ew / 2), round(eh / 2)), 0.0, 180, 360, colour, -1)
        cv2.rectangle(out, (round(cx - ew / 2), round(cy)), (round(cx + ew / 2), round(cy + eh / 2)), colour, -1)
        # The shoulders: the upper half of an ellipse, its top a tenth of a head below the head.
        sw, sh = cfg.generic_shoulders_width * ew, cfg.generic_shoulders_height * eh
        centre = (round(cx), round(cy + 0.6 * eh + sh))
        cv2.ellipse(out, centre, (round(sw / 2), round(sh)), 0.0, 180, 360, colour, -1)

    @staticmethod
    def _flatten_face(image: np.ndarray, cx: float, cy: float, fw: float, fh: float) -> None:
        """One flat colour (the mean around the face) over an ellipse fw x fh."""
        h, w = image.shape[:2]
        region = _clip(cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2, w, h)
        if region is None:
            return
        x1, y1, x2, y2 = region
        colour = cv2.mean(image[y1:y2, x1:x2])[:3]
        cv2.ellipse(image, ((cx, cy), (fw, fh), 0.0), colour, -1)

    def _fill_privacy(self, image: np.ndarray) -> None:
        privacy = self.privacy
        if not privacy.polygons:
            return
        h, w = image.shape[:2]
        polys = self._polys.get((privacy, w, h))
        if polys is None:
            scale = np.array([w, h], np.float64)
            polys = [np.round(np.asarray(p) * scale).astype(np.int32) for p in privacy.polygons]
            self._polys = {(privacy, w, h): polys}
        cv2.fillPoly(image, polys, PRIVACY_FILL)


class MaskMemory:
    """Masks outlive their detections: a track that ended, or a detection seen without a track, is
    still masked for `grace_s` (growing like a lost track), so one missed detection leaks nothing."""

    def __init__(self, grace_s: float = 2.0, same_iou: float = 0.3) -> None:
        self.grace_s = grace_s
        self.same_iou = same_iou
        self._tracks: dict[int, tuple[MaskBox, float]] = {}  # track id -> (last mask, last seen t)
        self._loose: list[tuple[MaskBox, float]] = []  # untracked detections

    def update(self, t: float, tracked: dict[int, MaskBox], loose: list[MaskBox]) -> list[MaskBox]:
        """This frame's masks plus the remembered ones still in their grace period."""
        from .track import iou_matrix

        out = list(tracked.values()) + list(loose)
        for tid, box in tracked.items():
            self._tracks[tid] = (box, t)
        for tid, (box, seen) in list(self._tracks.items()):
            if tid in tracked:
                continue
            if t - seen > self.grace_s:
                del self._tracks[tid]
            else:
                out.append((*box[:4], box[4] + 1))
                self._tracks[tid] = ((*box[:4], box[4] + 1), seen)
        kept = [(box, seen) for box, seen in self._loose if t - seen <= self.grace_s]
        if kept and out:
            current = np.array([b[:4] for b in out], np.float32)
            old = np.array([b[:4] for b, _ in kept], np.float32)
            kept = [k for k, hit in zip(kept, iou_matrix(old, current).max(axis=1) >= self.same_iou, strict=True) if not hit]
        out += [(*box[:4], box[4] + 1) for box, _ in kept]
        self._loose = [((*box[:4], box[4] + 1), seen) for box, seen in kept] + [(box, t) for box in loose]
        return out


def placeholder(width: int = 640, height: int = 360, text: str = "no anonymized frame") -> np.ndarray:
    """A frame that shows nothing of the camera: served when no fresh anonymized frame exists."""
    img = np.full((height, width, 3), 32, np.uint8)
    cv2.putText(img, text, (12, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (200, 200, 200), 1, cv2.LINE_AA)
    return img
