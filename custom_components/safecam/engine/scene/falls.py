"""Falls and man-down: pose-confirmed falls, people who stay down, people immobile where that is abnormal.

Everything is measured against the person's own standing height H (the tallest box the detector
saw of them in the last few seconds), so the rules hold at any distance from the camera:

- fall: the person was upright (box >= 0.7 H, or keypoints spanning >= 0.6 H) and within
  `fall_time_s` is lying: MoveNet keypoints, torso included, span less than 0.35 H vertically.
  Lying must persist over several pose frames before the alert. A person who lies down slowly
  (sits first) takes longer than `fall_time_s` and raises nothing.
- down: after a fall the person stays on the list while pose keeps finding a lying body there,
  even when the detector and tracker have lost them (YOLOX-nano hardly sees people on the floor).
- immobile: down for `immobile_s`, or standing still (box centre within 0.15 H) for `immobile_s`
  inside one of `immobile_zones`.

Pose (MoveNet multipose, whole frame: it finds people lying where the detector does not) runs only
on frames where someone needs a look, and only while lying would still count as a fall: a tracked box
whose top came down fast, a track the detector lost in the open (not at a side edge, not behind
someone it sees), a fall being confirmed, a person who is down (every `down_check_s`). People walking
or standing cost nothing; crowds at most `look_interval_s`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ConfigError, ZoneConfig, reject_unknown_keys
from ..geometry import points_in_polygon
from ..pose import HIPS, SHOULDERS, Pose
from ..types import SafetyEvent, Track

if TYPE_CHECKING:
    from ..config import SceneConfig
    from .base import AnalysisFrame

_LOGGER = logging.getLogger(__name__)
Box = tuple[float, float, float, float]
PoseFn = Callable[[np.ndarray], list[Pose]]
_KEYS = ("enabled", "immobile_s", "immobile_zones", "cooldown_s")


@dataclass(frozen=True, slots=True)
class FallsConfig:
    """The scene config section `falls:` (what a site owner sets)."""

    enabled: bool = True
    immobile_s: float = 20.0  # down (or still in an immobile zone) this long: "immobile"
    immobile_zones: tuple[str, ...] = ()  # zones where standing still is abnormal; empty = only after a fall
    cooldown_s: float = 60.0  # per track and rule: no repeat alert within this long


@dataclass(frozen=True, slots=True)
class FallRules:
    """Physical thresholds (fractions of the person's standing height H, seconds); not site settings."""

    ref_window_s: float = 4.0  # H = tallest observed box of the person in this window
    drop_window_s: float = 1.0  # look with pose when, within this long, the box top came down ...
    drop_ratio: float = 0.15  # ... by this x H ...
    shrink_ratio: float = 0.1  # ... and the box lost this x H of height (a head going down, not an occluded leg)
    lost_search_s: float = 3.0  # the analyzer forgets a person this long after the tracker did (unless down)
    look_interval_s: float = 0.15  # at most about 5 looks per second (crowds); confirming and down checks are not limited
    upright_box: float = 0.7  # box height >= this x H: upright
    upright_pose: float = 0.6  # keypoints span >= this x H: upright (standing or sitting)
    lying_pose: float = 0.35  # keypoints, torso included, span < this x H: lying
    still_down_pose: float = 0.45  # a person already down still counts as down up to this span
    fall_time_s: float = 1.5  # upright -> lying within this long is a fall (measured falls: 0.2-0.9 s)
    confirm_frames: int = 3  # lying in this many pose frames ...
    confirm_s: float = 0.4  # ... spanning at least this long confirms a fall
    candidate_timeout_s: float = 3.0
    down_check_s: float = 0.5  # pose period while someone is down
    clear_s: float = 3.0  # down ends after this long without a lying body at the place
    upright_clears: int = 2  # ... or after this many upright poses there (they got up)
    still_radius: float = 0.15  # zone immobility: box centre stays within this x box height
    keypoint_score: float = 0.3
    min_keypoints: int = 5


def parse_falls(data: object, zones: tuple[ZoneConfig, ...]) -> FallsConfig:
    """`falls: {enabled, immobile_s, immobile_zones, cooldown_s}`, or `falls: true/false`."""
    if isinstance(data, bool):
        return FallsConfig(enabled=data)
    if not isinstance(data, dict):
        raise ConfigError("falls: expected a mapping with enabled, immobile_s, immobile_zones, cooldown_s (or true/false)")
    reject_unknown_keys(data, set(_KEYS), "falls")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("falls: 'enabled' must be true or false")
    defaults = FallsConfig()
    immobile_s = _seconds(data, "immobile_s", defaults.immobile_s, minimum=1.0)
    cooldown_s = _seconds(data, "cooldown_s", defaults.cooldown_s, minimum=0.0)
    names = data.get("immobile_zones") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError("falls: 'immobile_zones' must be a list of zone names")
    known = {z.name for z in zones}
    for name in names:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none defined"
            raise ConfigError(f"falls: immobile_zones names unknown zone '{name}' (zones: {listed})")
    return FallsConfig(enabled, immobile_s, tuple(dict.fromkeys(names)), cooldown_s)


def _seconds(data: dict[str, Any], key: str, default: float, minimum: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"falls: '{key}' must be a number of seconds")
    if not minimum <= value <= 86400:
        raise ConfigError(f"falls: '{key}' must be between {minimum:g} and 86400 seconds, got {value:g}")
    return float(value)


@dataclass(frozen=True, slots=True)
class _Posture:
    span: float  # vertical extent of the visible keypoints / H
    torso: bool  # a shoulder and a hip are visible
    score: float  # the pose's instance score
    box: Box  # pixels: the model box joined with the visible keypoints


def _posture(pose: Pose, ref_h: float, rules: FallRules) -> _Posture | None:
    visible = pose.visible(rules.keypoint_score)
    if int(visible.sum()) < rules.min_keypoints:
        return None
    kp = pose.keypoints[visible]
    span = float(kp[:, 1].max() - kp[:, 1].min()) / ref_h
    torso = bool(visible[list(SHOULDERS)].any() and visible[list(HIPS)].any())
    x1, y1, x2, y2 = pose.box
    box = (
        min(x1, float(kp[:, 0].min())),
        min(y1, float(kp[:, 1].min())),
        max(x2, float(kp[:, 0].max())),
        max(y2, float(kp[:, 1].max())),
    )
    return _Posture(span, torso, pose.score, box)


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@dataclass(slots=True)
class _Person:
    """What the analyzer remembers of one track; outlives the track while the person is down."""

    track_id: int
    last_box: Box  # last box the detector observed (the tracker's prediction drifts once lost)
    last_seen_t: float
    heights: deque[tuple[float, float]] = field(default_factory=deque)  # (t, observed box height)
    recent: deque[tuple[float, float, float]] = field(default_factory=deque)  # (t, top, height), last drop_window_s
    ref_h: float = 0.0
    last_upright_t: float | None = None
    look_until: float = -math.inf  # pose looks at this person until then
    tracked: bool = True  # the tracker still has the track
    # fall candidate: lying seen right after being upright, not confirmed yet
    lying_since: float | None = None
    lying: list[_Posture] = field(default_factory=list)
    # down after a fall
    down_since: float | None = None
    down_box: Box | None = None
    down_zone: str | None = None
    down_conf: float = 0.0
    down_last_lying: float = 0.0
    down_last_check: float = -math.inf
    down_upright: int = 0
    # standing still (zone immobility)
    anchor: tuple[float, float] | None = None
    still_since: float = 0.0
    still_zone: str | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None


class FallsAnalyzer:
    """Analyzer "falls": `fall` and `immobile` SafetyEvents and the person-down snapshot."""

    name = "falls"

    def __init__(
        self,
        config: FallsConfig,
        camera: str,
        zones: tuple[ZoneConfig, ...] = (),
        pose: PoseFn | None = None,
        rules: FallRules | None = None,
        pose_error: str | None = None,
    ) -> None:
        self.config = config
        self.camera = camera
        self.rules = rules or FallRules()
        self._pose = pose
        # Why pose is unavailable (falls then cannot be confirmed; zone immobility still works).
        self.pose_error = pose_error if pose is None else None
        self._zones = [(z.name, np.asarray(z.polygon, np.float64)) for z in zones]
        self._immobile_zones = set(config.immobile_zones)
        self._persons: dict[int, _Person] = {}
        self._last_event: dict[tuple[str, int], float] = {}
        self._t = 0.0
        self._size = (0, 0)
        self.pose_runs = 0  # frames pose ran on (the bench reports its cost)
        self._last_pose_t = -math.inf
        self.pose_ms = 0.0

    @classmethod
    def from_scene(cls, config: FallsConfig, scene: SceneConfig, camera: str) -> FallsAnalyzer:
        """With the process-wide multipose session; a missing or broken model leaves pose off, with a warning."""
        from ..models import ModelError
        from ..pose import shared_multipose

        try:
            return cls(config, camera, scene.zones, shared_multipose())
        except ModelError as err:
            _LOGGER.warning("safecam camera %s: fall detection is off, the pose model is unavailable: %s", camera, err)
            return cls(config, camera, scene.zones, None, pose_error=str(err))

    def warm(self, width: int, height: int) -> None:
        """Get pose ready for this frame size (OpenVINO compiles a new input shape on its first run)."""
        self._size = (width, height)
        if (warm := getattr(self._pose, "warm", None)) is not None:
            warm(width, height)

    # ---- per frame -------------------------------------------------------------------------
    def update(self, frame: AnalysisFrame) -> list[SafetyEvent]:
        rules = self.rules
        t = self._t = frame.t
        if self._size != (frame.width, frame.height):
            self.warm(frame.width, frame.height)
        events: list[SafetyEvent] = []
        live: dict[int, Track] = {}
        # Boxes the detector matched this frame: whoever stands there is not lying on the floor.
        seen = [tr.box for tr in frame.all_tracks if frame.detected and tr.lost_frames == 0]
        for tr in frame.all_tracks:
            if not tr.confirmed:
                continue
            live[tr.track_id] = tr
            p = self._persons.get(tr.track_id)
            observed = frame.detected and tr.lost_frames == 0
            if p is None:
                if not observed:
                    continue
                p = self._persons[tr.track_id] = _Person(tr.track_id, tr.box, t)
            p.tracked = True
            if observed:
                self._observe(p, tr.box, t)
            elif tr.lost_frames > 0 and self._lost_in_the_open(p, seen):
                p.look_until = max(p.look_until, t)  # the detector lost them where they were: lying down?
            if observed and self._immobile_zones:
                events += self._stillness(p, tr.box, tr.score, t)
        for tid, p in list(self._persons.items()):
            if tid in live:
                continue
            p.tracked = False
            if p.down or p.lying_since is not None:
                continue
            if t - p.last_seen_t > rules.lost_search_s:
                del self._persons[tid]
            elif self._lost_in_the_open(p, seen):
                p.look_until = max(p.look_until, t)

        looking = [p for p in self._persons.values() if self._needs_pose(p, t)]
        if looking and self._pose is not None:
            start = time.perf_counter()
            poses = self._pose(frame.image)
            self.pose_ms += (time.perf_counter() - start) * 1000
            self.pose_runs += 1
            self._last_pose_t = t
            for p in looking:
                events += self._look(p, poses, seen, t)
        for p in self._persons.values():
            if p.down_since is not None and t - p.down_since >= self.config.immobile_s:
                events += self._emit("immobile", p.track_id, t, p.down_zone, p.down_conf)
        return events

    def _observe(self, p: _Person, box: Box, t: float) -> None:
        rules = self.rules
        h = box[3] - box[1]
        p.last_box, p.last_seen_t = box, t
        if p.down or p.lying_since is not None:
            return  # H stays the standing height while they are (possibly) down
        p.heights.append((t, h))
        while p.heights and t - p.heights[0][0] > rules.ref_window_s:
            p.heights.popleft()
        p.ref_h = max(v for _, v in p.heights)
        if h >= rules.upright_box * p.ref_h:
            p.last_upright_t = t
        p.recent.append((t, box[1], h))
        while t - p.recent[0][0] > rules.drop_window_s:
            p.recent.popleft()
        top_drop = box[1] - min(top for _, top, _ in p.recent)
        height_loss = max(v for _, _, v in p.recent) - h
        if top_drop >= rules.drop_ratio * p.ref_h and height_loss >= rules.shrink_ratio * p.ref_h:
            p.look_until = t + rules.fall_time_s  # going down fast: look while it could still become a fall

    def _lost_in_the_open(self, p: _Person, seen: list[Box]) -> bool:
        """Lost, but not by walking out at a side of the frame nor behind someone the detector sees."""
        x1, y1, x2, y2 = p.last_box
        margin = 0.01 * self._size[0]
        if x1 <= margin or x2 >= self._size[0] - margin:
            return False
        area = max((x2 - x1) * (y2 - y1), 1.0)
        for b in seen:
            covered = max(0.0, min(x2, b[2]) - max(x1, b[0])) * max(0.0, min(y2, b[3]) - max(y1, b[1]))
            if covered >= 0.3 * area:
                return False  # occluded by another person
        return True

    def _needs_pose(self, p: _Person, t: float) -> bool:
        rules = self.rules
        if p.down:
            return t - p.down_last_check >= rules.down_check_s
        if p.lying_since is not None:
            return True
        # A look only while lying now would still be a fall: upright within fall_time_s.
        could_fall = p.last_upright_t is not None and t - p.last_upright_t <= rules.fall_time_s
        return could_fall and t <= p.look_until and t - self._last_pose_t >= rules.look_interval_s - 1e-6

    def _match(self, p: _Person, poses: list[Pose], claimed: list[Box]) -> tuple[Pose, _Posture] | None:
        """The pose that belongs to this person: at their down place, their box, or near where they were lost."""
        rules = self.rules
        ref = p.down_box if p.down_box is not None else p.last_box
        reach = p.ref_h
        x1, y1, x2, y2 = ref
        if p.down_box is not None:
            region = (x1 - 0.3 * reach, y1 - 0.3 * reach, x2 + 0.3 * reach, y2 + 0.3 * reach)
        else:  # a faller lands within about one body length of where they stood
            region = (x1 - 0.8 * reach, y1 - 0.2 * reach, x2 + 0.8 * reach, y2 + 0.6 * reach)
        best: tuple[float, Pose, _Posture] | None = None
        for pose in poses:
            posture = _posture(pose, reach, rules)
            if posture is None:
                continue
            cx, cy = _centre(posture.box)
            if not (region[0] <= cx <= region[2] and region[1] <= cy <= region[3]):
                continue
            own = _iou(posture.box, ref)
            # Someone else the detector sees standing there is not this person (a body on the floor may be:
            # the detector sometimes picks a fallen person up again under a new track).
            standing = posture.span >= rules.lying_pose
            if standing and p.down_box is None and any(_iou(posture.box, b) >= 0.5 > own for b in claimed if b != p.last_box):
                continue
            rx, ry = _centre(ref)
            score = own - math.hypot(cx - rx, cy - ry) / (4 * reach)
            if best is None or score > best[0]:
                best = (score, pose, posture)
        return None if best is None else (best[1], best[2])

    def _look(self, p: _Person, poses: list[Pose], claimed: list[Box], t: float) -> list[SafetyEvent]:
        rules = self.rules
        if p.ref_h <= 0:
            return []
        found = self._match(p, poses, claimed)
        posture = None if found is None else found[1]
        if p.down:
            p.down_last_check = t
            if posture is not None and posture.span < rules.still_down_pose:
                p.down_last_lying, p.down_box, p.down_upright = t, posture.box, 0
            elif posture is not None and posture.span >= rules.upright_pose:
                p.down_upright += 1
            if t - p.down_last_lying >= rules.clear_s or p.down_upright >= rules.upright_clears:
                self._clear_down(p)
            return []
        if posture is None:
            if p.lying_since is not None and t - p.lying_since > rules.candidate_timeout_s:
                p.lying_since, p.lying = None, []
            return []
        if posture.span >= rules.upright_pose:
            p.last_upright_t = t
            p.lying_since, p.lying = None, []
            return []
        if not (posture.torso and posture.span < rules.lying_pose):
            if p.lying_since is not None and t - p.lying_since > rules.candidate_timeout_s:
                p.lying_since, p.lying = None, []
            return []
        if p.lying_since is None:
            if p.last_upright_t is None or t - p.last_upright_t > rules.fall_time_s:
                return []  # lying, but not just after being upright: lay down, or was never seen standing
            p.lying_since = t
        p.lying.append(posture)
        if len(p.lying) < rules.confirm_frames or t - p.lying_since < rules.confirm_s:
            return []
        # Confirmed: confidence from how clearly the body is flat and how sure the pose model is.
        flat = 1.0 - float(np.mean([x.span for x in p.lying])) / rules.lying_pose
        sure = min(1.0, float(np.mean([x.score for x in p.lying])) / 0.4)
        p.down_conf = round(min(1.0, max(0.0, 0.5 * flat + 0.5 * sure)), 3)
        p.down_since, p.down_box, p.down_last_lying, p.down_last_check = p.lying_since, posture.box, t, t
        p.down_zone = self._zone_of(posture.box, None)
        p.lying_since, p.lying = None, []
        return self._emit("fall", p.track_id, t, p.down_zone, p.down_conf)

    def _clear_down(self, p: _Person) -> None:
        p.down_since = p.down_box = p.down_zone = None
        p.down_upright = 0
        p.heights.clear()
        p.recent.clear()
        p.last_upright_t = None
        if not p.tracked:
            self._persons.pop(p.track_id, None)

    def _stillness(self, p: _Person, box: Box, score: float, t: float) -> list[SafetyEvent]:
        """Zone immobility: the box centre stays within still_radius x its height for immobile_s."""
        centre = _centre(box)
        h = max(box[3] - box[1], 1.0)
        zone = self._zone_of(box, self._immobile_zones)
        if p.anchor is None or zone != p.still_zone or math.dist(centre, p.anchor) > self.rules.still_radius * h:
            p.anchor, p.still_since, p.still_zone = centre, t, zone
            return []
        if zone is not None and t - p.still_since >= self.config.immobile_s:
            return self._emit("immobile", p.track_id, t, zone, score)
        return []

    def _zone_of(self, box: Box, only: set[str] | None) -> str | None:
        """The zone under the person's floor point (box bottom-centre), first in config order."""
        w, h = self._size
        point = np.array([[(box[0] + box[2]) / 2 / w, box[3] / h]], np.float64)
        for name, polygon in self._zones:
            if (only is None or name in only) and points_in_polygon(point, polygon)[0]:
                return name
        return None

    def _emit(self, rule: str, track_id: int, t: float, zone: str | None, confidence: float) -> list[SafetyEvent]:
        key = (rule, track_id)
        last = self._last_event.get(key)
        if last is not None and t - last < self.config.cooldown_s:
            return []
        if rule == "immobile" and last is not None and self._immobile_episode(track_id) <= last:
            return []  # one alert per immobile episode, however long it lasts
        self._last_event[key] = t
        if len(self._last_event) > 1024:  # bounded: forget the oldest
            for k in sorted(self._last_event, key=self._last_event.__getitem__)[:256]:
                del self._last_event[k]
        return [SafetyEvent(rule, t, self.camera, track_id, zone, confidence)]

    def _immobile_episode(self, track_id: int) -> float:
        p = self._persons.get(track_id)
        if p is None:
            return math.inf
        return p.down_since if p.down_since is not None else p.still_since

    # ---- outputs ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        t, limit = self._t, self.config.immobile_s
        down = [
            {"track_id": p.track_id, "since": round(p.down_since, 3), "zone": p.down_zone}
            for p in self._persons.values()
            if p.down_since is not None
        ]
        immobile = [
            {"track_id": p.track_id, "since": round(p.down_since, 3), "zone": p.down_zone}
            for p in self._persons.values()
            if p.down_since is not None and t - p.down_since >= limit
        ]
        immobile += [
            {"track_id": p.track_id, "since": round(p.still_since, 3), "zone": p.still_zone}
            for p in self._persons.values()
            if p.still_zone is not None and p.tracked and not p.down and t - p.still_since >= limit
        ]
        return {"person_down": bool(down or immobile), "down": down, "immobile": immobile}

    def mask_boxes(self) -> list[Box]:
        """People on the floor the tracker may have dropped: the anonymizer covers them too (pixels)."""
        w, h = self._size
        out: list[Box] = []
        for p in self._persons.values():
            boxes = [p.down_box] if p.down_box is not None else [x.box for x in p.lying[-1:]]
            for b in boxes:
                pad = 0.1 * p.ref_h
                out.append((max(0.0, b[0] - pad), max(0.0, b[1] - pad), min(float(w), b[2] + pad), min(float(h), b[3] + pad)))
        return out
