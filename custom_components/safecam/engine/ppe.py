"""PPE (hard hat, hi-vis vest) per person: our own classifier, per-track consensus, the "ppe" analyzer.

The classifier (catalog `ppe_helmet_vest`, trained in models/ppe, see MODEL_CARD.md there) looks at one
person crop and says, per item, worn / not worn / not visible. One look can be wrong (motion blur, a
hand in front of the chest), so the analyzer trusts a state only when `consensus_frames` looks of
the same track agree, and looks again only every few seconds once it trusts both items: the
classifier costs a few ms per crop and the pipeline runs ~5 fps per camera on 2 cores.

Rules (engine/scene/ppe_rules.py) say which items are required where; a person missing a required
item raises `ppe_violation` (per-track cooldown) and counts in `people_without_ppe`.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from .scene.ppe_rules import ITEMS, PPERules
from .types import SafetyEvent

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from .detect import Detector
    from .scene.base import AnalysisFrame

MODEL_NAME = "ppe_helmet_vest"
MARGIN = 0.05  # the crop is the person box grown by this fraction of its size on every side
PAD = 114  # grey where the grown box leaves the frame (the detector's letterbox grey)
MIN_PERSON_PX = 32  # a shorter box has too few pixels for either item: unknown, no model run
PERSON_SCORE = 0.3  # detector score for a person in single images (the CLI, the benchmark)
AGREE = 0.7  # share of the decided looks that must agree for a trusted state
RECHECK_S = 2.0  # once both items are trusted, look again this often (people take helmets off)
UNSETTLED_S = 0.5  # while an item stays undecided after the first looks (e.g. hidden), look this often
MAX_LOOKS_PER_FRAME = 2  # bounds the per-frame cost in crowds; the longest-unseen people go first
_NO, _YES, _HIDDEN = 0, 1, 2  # class order of each item's three model outputs

Box = tuple[float, float, float, float] | np.ndarray


def crop_person(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """The person box (pixels, grown by MARGIN) cut out and resized to size = (w, h); uint8 BGR.

    Training (models/ppe/train.py) uses this very function, so train and run time crops match.
    INTER_AREA when shrinking: a linear resize of a 1000 px person aliases badly.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
    x1, y1, x2, y2 = round(x1 - mx), round(y1 - my), round(x2 + mx), round(y2 + my)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    h, w = image.shape[:2]
    ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if ix2 <= ix1 or iy2 <= iy1:
        return np.full((size[1], size[0], 3), PAD, np.uint8)
    patch = image[iy1:iy2, ix1:ix2]
    if (ix1, iy1, ix2, iy2) != (x1, y1, x2, y2):
        patch = cv2.copyMakeBorder(patch, iy1 - y1, y2 - iy2, ix1 - x1, x2 - ix2, cv2.BORDER_CONSTANT, value=(PAD, PAD, PAD))
    shrink = patch.shape[0] > size[1] or patch.shape[1] > size[0]
    return cv2.resize(patch, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@dataclass(frozen=True, slots=True)
class PPEReading:
    """One look at one person: True worn, False not worn, None not visible / too small."""

    helmet: bool | None
    vest: bool | None

    def get(self, item: str) -> bool | None:
        return self.helmet if item == "helmet" else self.vest


class PPEReader(Protocol):
    def read(self, image: np.ndarray, boxes: Sequence[Box]) -> list[PPEReading]: ...


class PPEClassifier:
    """Runs the PPE ONNX model on person crops. Thresholds and input size come from the model file."""

    def __init__(self, session: Any) -> None:
        self.session = session
        meta = session.get_modelmeta().custom_metadata_map
        if tuple(meta.get("safecam.items", "").split(",")) != ITEMS or "safecam.thresholds" not in meta:
            raise ValueError("not a safecam PPE model: metadata safecam.items / safecam.thresholds missing")
        self.thresholds: dict[str, float] = json.loads(meta["safecam.thresholds"])
        inp = session.get_inputs()[0]
        self._input = inp.name
        self.size = (int(inp.shape[3]), int(inp.shape[2]))  # (w, h)

    @classmethod
    def from_catalog(
        cls, name: str = MODEL_NAME, *, model_dir: str | Path | None = None, provider: str = "auto", **session_options: Any
    ) -> PPEClassifier:
        from .models import create_session, resolve_model

        return cls(create_session(resolve_model(name, model_dir), provider=provider, **session_options))

    def probabilities(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The model's 6 outputs for one person: helmet (no, yes, hidden), vest (no, yes, hidden)."""
        crop = crop_person(image, box, self.size)
        # One crop per run: a fixed input shape (OpenVINO compiles again for every new batch size).
        return np.asarray(self.session.run(None, {self._input: crop.transpose(2, 0, 1)[None].astype(np.float32)})[0][0])

    def decide(self, probs: np.ndarray) -> PPEReading:
        states: list[bool | None] = []
        for i, item in enumerate(ITEMS):
            p = probs[3 * i : 3 * i + 3]
            if int(np.argmax(p)) == _HIDDEN:
                states.append(None)
            else:
                states.append(bool(p[_NO] / max(float(p[_NO] + p[_YES]), 1e-9) < self.thresholds[item]))
        return PPEReading(states[0], states[1])

    def read(self, image: np.ndarray, boxes: Sequence[Box]) -> list[PPEReading]:
        out = []
        for box in boxes:
            if float(box[3]) - float(box[1]) < MIN_PERSON_PX:
                out.append(PPEReading(None, None))
            else:
                out.append(self.decide(self.probabilities(image, box)))
        return out


def detect_ppe(image: np.ndarray, detector: Detector, reader: PPEReader, min_score: float = PERSON_SCORE) -> list[dict[str, Any]]:
    """Persons of one still image with their PPE (one look each, no consensus): the CLI contract."""
    dets = detector(image)
    dets = dets[dets.scores >= min_score]
    h, w = image.shape[:2]
    scale = np.array([w, h, w, h], np.float64)
    readings = reader.read(image, list(dets.boxes))
    return [
        {
            "box": [round(float(v), 4) for v in np.clip(box / scale, 0.0, 1.0)],
            "helmet": r.helmet,
            "vest": r.vest,
            "score": round(float(s), 3),
        }
        for box, s, r in zip(dets.boxes, dets.scores, readings, strict=True)
    ]


@dataclass(slots=True)
class _Person:
    votes: dict[str, deque[bool | None]]
    looks: int = 0
    last_look: float = -math.inf
    contradicted: bool = False  # the last look disagreed with a trusted state: look again soon
    last_event: float | None = None


@dataclass(slots=True)
class PPEConsensus:
    """Per track: the last 2 x `frames` looks per item; a state is trusted when `frames` decided looks
    exist and at least AGREE of them say the same."""

    frames: int = 5
    _people: dict[int, _Person] = field(default_factory=dict)

    def _person(self, track_id: int) -> _Person:
        if track_id not in self._people:
            self._people[track_id] = _Person({i: deque(maxlen=2 * self.frames) for i in ITEMS})
        return self._people[track_id]

    def state(self, track_id: int, item: str) -> tuple[bool | None, float]:
        """(trusted state or None, share of decided looks that agree with the majority)."""
        person = self._people.get(track_id)
        decided = [v for v in person.votes[item] if v is not None] if person else []
        if len(decided) < self.frames:
            return None, 0.0
        yes = sum(decided)
        share = max(yes, len(decided) - yes) / len(decided)
        return (yes * 2 > len(decided) if share >= AGREE else None), share

    def add(self, track_id: int, reading: PPEReading, t: float) -> None:
        person = self._person(track_id)
        trusted = {i: self.state(track_id, i)[0] for i in ITEMS}
        person.contradicted = any(
            trusted[i] is not None and reading.get(i) is not None and reading.get(i) != trusted[i] for i in ITEMS
        )
        for item in ITEMS:
            person.votes[item].append(reading.get(item))
        person.looks += 1
        person.last_look = t

    def due(self, track_id: int, t: float) -> bool:
        """Whether this track should be looked at on this frame."""
        person = self._people.get(track_id)
        if person is None or person.looks < self.frames or person.contradicted:
            return True
        settled = all(self.state(track_id, i)[0] is not None for i in ITEMS)
        return t - person.last_look >= (RECHECK_S if settled else UNSETTLED_S)

    def priority(self, track_id: int) -> tuple[int, float]:
        person = self._people.get(track_id)
        return (person.looks, person.last_look) if person else (0, -math.inf)

    def alert(self, track_id: int, t: float, cooldown_s: float) -> bool:
        """True (and remembers t) unless this track had an event less than cooldown_s ago."""
        person = self._person(track_id)
        if person.last_event is not None and t - person.last_event < cooldown_s:
            return False
        person.last_event = t
        return True

    def prune(self, live: set[int]) -> None:
        for track_id in set(self._people) - live:
            del self._people[track_id]


class PPEAnalyzer:
    """The "ppe" scene analyzer: per-track helmet / vest states, violations, events."""

    name = "ppe"

    def __init__(
        self, rules: PPERules, camera: str, reader: PPEReader | None = None, max_looks_per_frame: int = MAX_LOOKS_PER_FRAME
    ) -> None:
        self.rules = rules
        self.camera = camera
        self.reader: PPEReader = reader if reader is not None else PPEClassifier.from_catalog()
        self.max_looks = max_looks_per_frame
        self.consensus = PPEConsensus(rules.consensus_frames)
        self._snapshot: dict[str, Any] = {"violation_active": False, "people_without_ppe": 0, "persons": {}}

    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]:
        self.consensus.prune({tr.track_id for tr in frame.all_tracks})
        if frame.detected:
            # Only boxes matched to a detection on this frame: a predicted box may have drifted off the person.
            due = [tr for tr in frame.tracks if tr.lost_frames == 0 and self.consensus.due(tr.track_id, frame.t)]
            due.sort(key=lambda tr: self.consensus.priority(tr.track_id))
            due = due[: self.max_looks]
            if due:
                # frame.image is read here and nowhere else; no pixels are kept.
                for tr, reading in zip(due, self.reader.read(frame.image, [tr.box for tr in due]), strict=True):
                    self.consensus.add(tr.track_id, reading, frame.t)
        events: list[SafetyEvent] = []
        persons: dict[str, dict[str, Any]] = {}
        for tr, pos in zip(frame.tracks, frame.positions, strict=True):
            required = self.rules.required_at((float(pos[0]), float(pos[1])))
            states = {i: self.consensus.state(tr.track_id, i) for i in ITEMS}
            missing = [i for i in ITEMS if i in required and states[i][0] is False]
            persons[str(tr.track_id)] = {"helmet": states["helmet"][0], "vest": states["vest"][0], "missing": missing}
            if missing and self.consensus.alert(tr.track_id, frame.t, self.rules.cooldown_s):
                zone = next((required[i] for i in missing if required[i] is not None), None)
                confidence = min(states[i][1] for i in missing)
                events.append(
                    SafetyEvent("ppe_violation", frame.t, self.camera, tr.track_id, zone, confidence, {"missing": missing})
                )
        without = sum(1 for p in persons.values() if p["missing"])
        self._snapshot = {"violation_active": without > 0, "people_without_ppe": without, "persons": persons}
        return events

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot
