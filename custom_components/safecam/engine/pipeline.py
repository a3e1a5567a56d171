"""The per-camera pipeline: motion gate -> detector -> tracker -> zones/gates -> anonymizer.

Raw frames enter `CameraPipeline.process` and never leave it: a `FrameResult` carries geometry,
counts, events and the *anonymized* image only (design invariant 1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .anonymize import Anonymizer, AnonymizerConfig, MaskBox, MaskMemory
from .config import SceneConfig
from .detect import Detector, PreparedInput
from .motion import MotionConfig, MotionGate
from .scene import build_analyzers
from .scene.base import AnalysisFrame, Analyzer
from .scene.gates import GateCounter
from .scene.zones import ZoneCounter, ZoneTiming
from .track import Tracker, TrackerConfig, iou_matrix
from .types import Detections, SafetyEvent, Track

_LOGGER = logging.getLogger(__name__)
STAGES = ("motion", "detect", "track", "scene", "anonymize")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    camera: str = "camera"
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    anonymizer: AnonymizerConfig = field(default_factory=AnonymizerConfig)
    zone_timing: ZoneTiming = field(default_factory=ZoneTiming)
    mask_score: float = 0.2  # raw detections masked even before a track confirms them
    mask_grace_s: float = 2.0  # a mask outlives its track (or an untracked detection) by this long
    count_grace_frames: int = 3  # a confirmed person still counts this many missed detections


@dataclass(frozen=True, slots=True)
class FramePrep:
    changed_fraction: float
    detector_input: PreparedInput


@dataclass(slots=True)
class FrameResult:
    index: int
    t: float
    width: int
    height: int
    people: int
    tracks: list[Track]
    zones: dict[str, dict[str, Any]]
    gates: dict[str, dict[str, int]]
    events: list[SafetyEvent]
    detected: bool  # the detector ran on this frame (not skipped by the motion gate)
    analysed: bool  # analysis succeeded; False means the anonymized image is fully obscured (fail closed)
    timings_ms: dict[str, float]
    mask_boxes: list[MaskBox] = field(default_factory=list)  # what the anonymizer covers (pixels)
    analytics: dict[str, dict[str, Any]] = field(default_factory=dict)  # analyzer name -> snapshot
    anonymized: np.ndarray | None = None

    def frame_record(self) -> dict[str, Any]:
        """The JSON-lines record of the CLI contract (boxes normalized 0..1)."""
        scale = np.array([self.width, self.height, self.width, self.height], np.float64)
        return {
            "type": "frame",
            "frame": self.index,
            "t": round(self.t, 3),
            "people": self.people,
            "tracks": [
                {
                    "id": tr.track_id,
                    "box": [round(float(v), 4) for v in np.clip(np.asarray(tr.box) / scale, 0, 1)],
                    "score": round(tr.score, 3),
                }
                for tr in self.tracks
            ],
            "zones": self.zones,
            "gates": self.gates,
            **({"analytics": self.analytics} if self.analytics else {}),
        }


class CameraPipeline:
    def __init__(self, detector: Detector, scene: SceneConfig | None = None, config: PipelineConfig | None = None) -> None:
        self.detector = detector
        self.config = config or PipelineConfig()
        self.scene = scene or SceneConfig()
        self.tracker = Tracker(self.config.tracker)
        self.motion = MotionGate(self.config.motion)
        self.anonymizer = Anonymizer(self.config.anonymizer, self.scene.section("privacy"))
        self.masks = MaskMemory(self.config.mask_grace_s)
        self.zones = ZoneCounter(self.scene.zones, self.config.camera, self.config.zone_timing)
        self.gates = GateCounter(self.scene.gates)
        self.analyzers: list[Analyzer] = build_analyzers(self.scene, self.config.camera)
        self.last_error: str | None = None

    def set_scene(self, scene: SceneConfig) -> None:
        """Apply new zones/gates without restarting; gate totals of unchanged gates are kept."""
        old_gates = self.gates.states
        self.scene = scene
        self.zones = ZoneCounter(scene.zones, self.config.camera, self.config.zone_timing)
        self.gates = GateCounter(scene.gates)
        self.analyzers = build_analyzers(scene, self.config.camera)
        self.anonymizer.set_privacy(scene.section("privacy"))
        for g in scene.gates:
            if g.name in old_gates:
                self.gates.states[g.name].entries = old_gates[g.name].entries
                self.gates.states[g.name].exits = old_gates[g.name].exits

    def prepare(self, image: np.ndarray) -> FramePrep:
        """Per-frame work that needs no tracking state: motion measure and detector input.

        A decode-ahead thread calls it for every frame, in order, so it overlaps inference.
        """
        return FramePrep(self.motion.measure(image), self.detector.prepare(image))

    def process(
        self, image: np.ndarray, t: float, index: int, *, render: bool = True, prepared: FramePrep | None = None
    ) -> FrameResult:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = (now - clock) * 1000
            clock = now

        h, w = image.shape[:2]
        if prepared is None:
            prepared = self.prepare(image)
        # After a detector failure it runs on every frame (and frames stay obscured) until it works again.
        failed_before = self.last_error is not None
        detected = self.motion.decide(prepared.changed_fraction, t) or self.tracker.has_tentative or failed_before
        lap("motion")
        analysed = True
        detections = Detections.empty()
        if detected:
            try:
                detections = self.detector(image, prepared.detector_input)
                self.last_error = None
            except Exception as err:  # noqa: BLE001 - any detector failure must fail closed, not crash
                analysed = False
                self.last_error = f"{type(err).__name__}: {err}"
                _LOGGER.warning("detector failed on camera %s: %s", self.config.camera, self.last_error)
        lap("detect")
        tracks = self.tracker.update(detections, t) if detected and analysed else self.tracker.predict(t)
        counted = [tr for tr in tracks if tr.lost_frames <= self.config.count_grace_frames]
        lap("track")

        scale = np.array([w, h], np.float64)
        feet = np.array([((tr.box[0] + tr.box[2]) / 2, tr.box[3]) for tr in counted], np.float64).reshape(-1, 2)
        positions = np.clip(feet / scale, 0.0, 1.0)
        ids = [tr.track_id for tr in counted]
        events = self.zones.update(positions, ids, t)
        all_tracks = self.tracker.tracks(include_tentative=True)
        self.gates.hold(all_tracks, w, h, t)  # crossings while being confirmed count too, and hand-offs
        for gate, track_id, direction in self.gates.update(positions, ids):
            events.append(
                SafetyEvent("gate_crossing", t, self.config.camera, track_id, None, None, {"gate": gate, "direction": direction})
            )
        self.gates.prune({tr.track_id for tr in tracks})
        zones = self.zones.snapshot()
        analytics: dict[str, dict[str, Any]] = {}
        if self.analyzers:
            ok = detected and analysed
            cam = self.config.camera
            frame = AnalysisFrame(cam, index, t, image, w, h, ok, detections, counted, all_tracks, positions, zones)
            for analyzer in self.analyzers:
                events += analyzer.update(frame)
                analytics[analyzer.name] = analyzer.snapshot()
        lap("scene")

        mask_boxes = self._mask_boxes(t, detections, all_tracks)
        result = FrameResult(
            index=index,
            t=t,
            width=w,
            height=h,
            people=len(counted),
            tracks=counted,
            zones=zones,
            gates=self.gates.snapshot(),
            events=events,
            detected=detected,
            analysed=analysed,
            timings_ms=timings,
            mask_boxes=mask_boxes,
            analytics=analytics,
        )
        if render:
            result.anonymized = self.render(image, result)
        lap("anonymize")
        return result

    def render(self, image: np.ndarray, result: FrameResult) -> np.ndarray:
        """The anonymized image of the frame `result` was computed from (fail-closed when not analysed).

        Separate from process() so a worker renders only when a picture is asked for (render.py's
        OnDemandRenderer), or in another thread, overlapping inference (AsyncRenderer).
        """
        return self.anonymizer.apply(image, result.mask_boxes, analysed=result.analysed)

    def set_anonymization(self, config: AnonymizerConfig) -> None:
        """Another mode (or settings) from the next rendered frame on; static privacy masks stay."""
        self.anonymizer = Anonymizer(config, self.scene.section("privacy"))

    def _mask_boxes(self, t: float, detections: Detections, all_tracks: list[Track]) -> list[MaskBox]:
        """Everything the anonymizer must cover: every live track (tentative and lost ones too),
        raw detections no track covers yet, people analyzers know of, and all of these for a grace
        period after they were last seen (MaskMemory)."""
        tracked: dict[int, MaskBox] = {tr.track_id: (*tr.box, tr.lost_frames) for tr in all_tracks}
        raw = detections.boxes[detections.scores >= self.config.mask_score]
        if len(raw) and all_tracks:
            # Masking twice costs time and changes nothing.
            covered = iou_matrix(raw, np.array([tr.box for tr in all_tracks], np.float32)).max(axis=1) >= 0.7
            raw = raw[~covered]
        loose: list[MaskBox] = [(float(b[0]), float(b[1]), float(b[2]), float(b[3]), 0) for b in raw]
        # Analyzers may know of people the tracker has let go (a worker lying on the floor).
        for analyzer in self.analyzers:
            extra = getattr(analyzer, "mask_boxes", None)
            if extra is not None:
                loose += [(*box, 0) for box in extra()]
        return self.masks.update(t, tracked, loose)
