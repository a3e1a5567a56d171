"""Anonymization modes on real frames, audited by real face detectors; static privacy masks;
fail-closed; masks that outlive a missed detection; irreversibility."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from custom_components.safecam.engine.anonymize import (
    MODES,
    PRIVACY_FILL,
    Anonymizer,
    AnonymizerConfig,
    MaskMemory,
    _clip,
    generic_head_box,
    grown_box,
    head_region,
)
from custom_components.safecam.engine.audit import CenterFaceAuditor, FaceAuditor
from custom_components.safecam.engine.config import ConfigError, parse_scene
from custom_components.safecam.engine.motion import MotionConfig
from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig
from custom_components.safecam.engine.track import iou_matrix
from custom_components.safecam.engine.types import Detections

from .mot import frames

STADTMITTE = "pedestrians/tud_stadtmitte.mp4"
NO_MOTION_GATE = PipelineConfig(motion=MotionConfig(enabled=False))


@pytest.fixture(scope="module")
def clip(shared_data) -> list[np.ndarray]:
    return frames(shared_data / STADTMITTE, 46)


@pytest.fixture(scope="module")
def low_auditors():
    """Two independent face detectors at the audit's LOW level (bench/privacy_audit.py LEVELS)."""
    return [FaceAuditor.from_catalog(score_threshold=0.3), CenterFaceAuditor.from_catalog(score_threshold=0.2)]


@pytest.fixture(scope="module")
def analysed(detector, clip):
    """(frame, FrameResult) of every 5th frame of the clip, run through the pipeline in order."""
    pipeline = CameraPipeline(detector, config=NO_MOTION_GATE)
    out = []
    for i, frame in enumerate(clip):
        res = pipeline.process(frame, i / 25, i, render=False)
        if i % 5 == 0:
            out.append((frame, res))
    return out


def found(reference: np.ndarray, boxes: np.ndarray) -> int:
    if not len(reference) or not len(boxes):
        return 0
    return int((iou_matrix(reference, boxes).max(axis=1) >= 0.3).sum())


@pytest.mark.parametrize("mode", MODES)
def test_mode_leaves_no_face_a_detector_finds(mode, detector, analysed, face_auditor, low_auditors):
    anonymizer = Anonymizer(AnonymizerConfig(mode=mode))  # default head styles: silhouette in full_frame, else flat
    raw_faces = leaked = 0
    for frame, res in analysed:
        faces = face_auditor(frame)[0]
        raw_faces += len(faces)
        image = anonymizer.apply(frame, res.mask_boxes)
        assert image.shape == frame.shape and image is not frame
        leaked += max(found(faces, auditor(image)[0]) for auditor in low_auditors)
    assert raw_faces >= 10  # the auditor does see faces in the raw frames
    assert leaked == 0


def test_default_mode_keeps_people_detectable(analysed, shared_data):
    """A real yolox_nano still finds the people (MOT ground truth) on default anonymized frames;
    with the former flat heads (2 x 2 cells over the head region) it misses many of them."""
    from custom_components.safecam.engine.detect import Detector

    from .mot import load_gt

    gt = load_gt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt")
    detect = Detector.from_catalog()  # a fresh instance: the pipeline's own detector is not reused
    styles = {"silhouette": Anonymizer(AnonymizerConfig()), "flat": Anonymizer(AnonymizerConfig(head_style="flat"))}
    hits = dict.fromkeys(("raw", *styles), 0)
    people = 0
    for n, (frame, res) in enumerate(analysed):  # frames 0, 5, 10, ...
        _, boxes, evaluate = gt[5 * n]
        people += int(evaluate.sum())
        for name, image in (("raw", frame), *((k, a.apply(frame, res.mask_boxes)) for k, a in styles.items())):
            d = detect(image)
            found = d.boxes[d.scores >= 0.3]
            if len(found):
                hits[name] += int((iou_matrix(boxes[evaluate], found).max(axis=1) >= 0.5).sum())
    assert people >= 50 and hits["raw"] >= 0.7 * people  # the detector does find them on raw frames
    assert hits["silhouette"] >= 0.95 * hits["raw"], hits
    assert hits["flat"] < hits["silhouette"], hits


def test_pictograms_are_not_taken_for_faces(analysed, low_auditors):
    """The default pictogram (a flat dark head with a flat bottom over a dome for the shoulders) is
    drawn at every person, and face detectors at the audit's low level seldom find a face on its head."""
    cfg = AnonymizerConfig()
    anonymizer = Anonymizer(cfg)
    drawn = taken = 0
    for frame, res in analysed:
        out = anonymizer.apply(frame, res.mask_boxes)
        heads = np.array([generic_head_box(b, cfg) for b in res.mask_boxes], np.float32).reshape(-1, 4)
        for x1, y1, x2, y2 in heads:
            cx, cy, hw = int((x1 + x2) / 2), int((y1 + y2) / 2), max(1, int((x2 - x1) / 4))
            inside = min(cx, cy) >= hw and cx + hw <= frame.shape[1] and cy + hw <= frame.shape[0]
            if hw < 3 or not inside:
                continue
            core = out[cy - hw : cy + hw, cx - hw : cx + hw].reshape(-1, 3)
            drawn += 1
            # flat and dark (a quarter of the colour under it); pictograms of overlapping boxes may share the spot
            assert len(np.unique(core, axis=0)) <= 4 and core.max() <= cfg.generic_head_shade * 255 + 1
        taken += max(found(heads, auditor(out)[0]) for auditor in low_auditors)
    assert drawn >= 20
    # Measured on these frames: 2 of 81 heads (all boxes: 2 of 121; the former oval head over a bar: 9 of 121).
    assert taken <= 0.05 * drawn, (taken, drawn)


def test_modes_keep_what_they_promise(analysed):
    """head: background and bodies untouched; body: background untouched; full_frame: nothing untouched."""
    frame, res = analysed[-1]
    boxes = [b for b in res.mask_boxes if b[4] == 0]
    assert len(boxes) >= 3
    out = {m: Anonymizer(AnonymizerConfig(mode=m)).apply(frame, res.mask_boxes) for m in MODES}
    covered = np.zeros(frame.shape[:2], bool)
    for box in res.mask_boxes:
        x1, y1, x2, y2 = (int(v) for v in head_region(box, AnonymizerConfig()))
        covered[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
        bw, bh = box[2] - box[0], box[3] - box[1]
        covered[max(int(box[1] - bh), 0) : int(box[3] + bh), max(int(box[0] - bw), 0) : int(box[2] + bw)] = True
    far = ~covered  # well away from every person
    assert far.mean() > 0.15
    assert np.array_equal(out["head"][far], frame[far])
    assert np.array_equal(out["body"][far], frame[far])
    assert np.count_nonzero(np.any(out["full_frame"][far] != frame[far], axis=1)) > 0.8 * far.sum()
    # A body (below the head) stays as it is in head mode, and is obscured in body mode.
    heads = np.zeros(frame.shape[:2], bool)
    for box in res.mask_boxes:
        x1, y1, x2, y2 = (int(v) for v in head_region(box, AnonymizerConfig()))
        heads[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
    torsos = []
    for x1, y1, x2, y2, _ in boxes:
        t = (slice(int(y1 + 0.55 * (y2 - y1)), int(y2)), slice(int(x1 + 0.3 * (x2 - x1)), int(x2 - 0.3 * (x2 - x1))))
        if not heads[t].any():
            torsos.append(t)
    assert torsos, "no torso clear of every head region in this frame"
    for torso in torsos:
        assert np.array_equal(out["head"][torso], frame[torso])
        assert np.abs(out["body"][torso].astype(int) - frame[torso].astype(int)).mean() > 5


def _lap(image: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F)).mean())


def test_irreversible_flat_heads_and_no_fine_detail(analysed):
    """Silhouette heads are flat cells of a third of a head plus one flat generic head; flat heads
    are at most head_blocks^2 colours; soft heads keep no fine detail and every face found in them
    is one flat colour; the full_frame background keeps no fine detail."""
    cfg = AnonymizerConfig()
    frame, res = max(analysed, key=lambda fr: len(fr[1].mask_boxes))
    h, w = frame.shape[:2]
    placed = [(_clip(*head_region(b, cfg), w, h), b) for b in res.mask_boxes]
    placed = [(r, b) for r, b in placed if r is not None and r[2] - r[0] >= 16]
    heads = [r for r, _ in placed]
    meets = lambda r, k: k != r and k[0] < r[2] and r[0] < k[2] and k[1] < r[3] and r[1] < k[3]  # noqa: E731
    alone = [(r, b) for r, b in placed if not any(meets(r, k) for k in heads)]
    assert alone, "no head region clear of the others in this frame"
    for mode in MODES:
        flat = Anonymizer(replace(cfg, mode=mode, head_style="flat")).apply(frame, res.mask_boxes)
        out = Anonymizer(replace(cfg, mode=mode)).apply(frame, res.mask_boxes)
        for (x1, y1, x2, y2), box in alone:
            assert len(np.unique(frame[y1:y2, x1:x2].reshape(-1, 3), axis=0)) > 50
            assert len(np.unique(flat[y1:y2, x1:x2].reshape(-1, 3), axis=0)) <= cfg.head_blocks**2, mode
            # Cells of ~head/3 px: a face is about 3 x 3 flat colours; plus the generic head.
            cell = max(cfg.head_per_width * (box[2] - box[0]), cfg.head_per_height * (box[3] - box[1])) / cfg.head_cells
            cells = round((x2 - x1) / cell) * round((y2 - y1) / cell)
            assert cells <= 12 * cfg.head_cells**2  # coarse: a region is a few heads across
            assert len(np.unique(out[y1:y2, x1:x2].reshape(-1, 3), axis=0)) <= cells + 1, mode
    soft = replace(cfg, head_style="soft")
    finder = Anonymizer(soft).faces
    assert finder is not None
    faces = np.concatenate(finder(frame, heads))
    assert len(faces) >= 2  # the real face detector finds faces in those head crops
    for mode in MODES:
        out = Anonymizer(replace(soft, mode=mode)).apply(frame, res.mask_boxes)
        for x1, y1, x2, y2 in faces:
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
            core = out[int(cy - ry) : int(cy + ry) + 1, int(cx - rx) : int(cx + rx) + 1].reshape(-1, 3)
            assert len(np.unique(core, axis=0)) <= 2, mode  # one flat ellipse (two where ellipses meet)
        for (x1, y1, x2, y2), _ in alone:  # what is left is the low-pass and the edges of flat ellipses
            assert _lap(out[y1:y2, x1:x2]) < 0.5 * _lap(frame[y1:y2, x1:x2]), mode
    # full_frame: away from people (and their grown boxes) only flat blocks: no high-frequency
    # content, and no more colours than blocks.
    out = Anonymizer(cfg).apply(frame, res.mask_boxes)
    away = np.ones((h, w), bool)
    for box in res.mask_boxes:
        x1, y1, x2, y2, _ = grown_box(box, cfg)
        away[max(int(y1) - 2, 0) : max(int(y2) + 3, 0), max(int(x1) - 2, 0) : max(int(x2) + 3, 0)] = False
    cells = (w / cfg.background_blocks) ** 2
    assert away.mean() > 0.3
    assert len(np.unique(out[away], axis=0)) <= away.sum() / cells + 2 * cfg.background_blocks
    assert len(np.unique(frame[away], axis=0)) > 5 * away.sum() / cells
    # Piecewise constant: a pixel almost always equals its right-hand neighbour (raw: rarely).
    same_out = np.all(out[:, 1:] == out[:, :-1], axis=2)[away[:, 1:]].mean()
    same_raw = np.all(frame[:, 1:] == frame[:, :-1], axis=2)[away[:, 1:]].mean()
    assert same_out > 0.85 and same_raw < 0.3


def test_static_privacy_masks_are_always_filled(detector, clip):
    window = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.5], [0.0, 0.5]]
    street = [[0.5, 0.6], [1.0, 0.55], [1.0, 1.0], [0.6, 1.0]]
    scene = parse_scene({"privacy": {"masks": [window, street]}})
    frame = clip[0]
    h, w = frame.shape[:2]
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(np.array(p) * [w, h]).astype(np.int32) for p in (window, street)], 1)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool)  # polygon edges: rounding
    for mode in MODES:
        pipeline = CameraPipeline(detector, scene, replace(NO_MOTION_GATE, anonymizer=AnonymizerConfig(mode=mode)))
        out = pipeline.process(frame, 0.0, 0).anonymized
        assert out is not None
        assert (out[inside] == PRIVACY_FILL).all(), mode
        assert not (frame[inside] == PRIVACY_FILL).all()
    # A scene change applies the new masks at the next frame.
    pipeline.set_scene(parse_scene({"privacy": {"masks": [street]}}))
    out = pipeline.process(frame, 0.04, 1).anonymized
    assert out is not None
    x, y = int(0.1 * w), int(0.1 * h)
    assert tuple(out[y, x]) != PRIVACY_FILL


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"masks": [[[0, 0], [1, 1], [0, 1], [1, 0]]]}, "privacy mask 1: edges"),
        ({"masks": [[[0, 0], [2, 0], [0, 1]]]}, "outside 0..1"),
        ({"masks": "window"}, "'masks' must be a list"),
        ({"polygons": []}, "unknown key(s) polygons"),
        ([[0, 0]], "expected a mapping"),
    ],
)
def test_privacy_config_errors(privacy, message):
    with pytest.raises(ConfigError, match=None) as err:
        parse_scene({"privacy": privacy})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


class _Flaky:
    """The real detector, except on the frames it is told to miss or to fail on."""

    def __init__(self, detector, miss=(), fail=()) -> None:
        self.detector, self.miss, self.fail, self.calls = detector, set(miss), set(fail), 0
        self.prepare = detector.prepare

    def __call__(self, image, prepared=None):
        call, self.calls = self.calls, self.calls + 1
        if call in self.fail:
            raise RuntimeError("simulated inference failure")
        if call in self.miss:
            return Detections.empty()
        return self.detector(image, prepared)


def test_masks_persist_over_a_missed_detection(detector, clip, face_auditor, low_auditors):
    """The detector sees nobody on frames 30-32: every person stays masked; no face leaks."""
    for mode in ("head", "full_frame"):
        config = replace(NO_MOTION_GATE, anonymizer=AnonymizerConfig(mode=mode))
        pipeline = CameraPipeline(_Flaky(detector, miss=range(30, 33)), config=config)
        before: list = []
        raw_faces = leaked = 0
        for i, frame in enumerate(clip[:40]):
            res = pipeline.process(frame, i / 25, i)
            if i == 29:
                before = [b for b in res.mask_boxes if b[4] == 0]
            if i in (30, 31, 32):
                boxes = np.array([b[:4] for b in res.mask_boxes], np.float32)
                assert len(boxes) >= len(before) >= 3
                # every person masked a frame ago is still masked (where the tracker predicts them)
                assert (iou_matrix(np.array([b[:4] for b in before], np.float32), boxes).max(axis=1) > 0.3).all()
                faces = face_auditor(frame)[0]
                raw_faces += len(faces)
                leaked += max(found(faces, a(res.anonymized)[0]) for a in low_auditors)
        assert raw_faces >= 3
        assert leaked == 0, mode


def test_mask_memory_grace_period():
    memory = MaskMemory(grace_s=1.0)
    person = (100.0, 50.0, 140.0, 170.0, 0)
    assert memory.update(0.0, {7: person}, []) == [person]
    # The track is gone (the tracker dropped it): its mask stays, growing, for the grace period.
    kept = memory.update(0.5, {}, [])
    assert len(kept) == 1 and kept[0][:4] == person[:4] and kept[0][4] == 1
    assert memory.update(1.0, {}, [])[0][4] == 2
    assert memory.update(1.6, {}, []) == []
    # An untracked detection seen once is remembered too, unless a current mask covers it.
    loose = (300.0, 40.0, 330.0, 130.0, 0)
    memory.update(2.0, {}, [loose])
    assert [b[:4] for b in memory.update(2.2, {}, [])] == [loose[:4]]
    assert [b[:4] for b in memory.update(2.4, {9: (302.0, 42.0, 331.0, 131.0, 0)}, [])] == [(302.0, 42.0, 331.0, 131.0)]
    assert memory.update(3.3, {}, []) == [(302.0, 42.0, 331.0, 131.0, 1)]
    assert memory.update(3.5, {}, []) == []


def test_fail_closed_until_the_detector_works_again(detector, clip, face_auditor):
    """A failed detection obscures the frame; the next frames force the detector even without motion."""
    pipeline = CameraPipeline(_Flaky(detector, fail={1}))  # motion gate on, as deployed
    still = clip[15]
    first = pipeline.process(still, 0.0, 0)
    assert first.analysed and first.detected
    failed = pipeline.process(still, 0.04, 1)
    assert not failed.analysed
    assert failed.anonymized is not None and len(face_auditor(failed.anonymized)[0]) == 0
    assert np.abs(failed.anonymized.astype(int) - still.astype(int)).mean() > 40
    again = pipeline.process(still, 0.08, 2)  # no motion at all: the gate alone would skip detection
    assert again.detected and again.analysed
    # Back to normal gating once the detector works (and new tracks are confirmed).
    calm = [pipeline.process(still, 0.04 * i, i) for i in range(3, 10)]
    assert not calm[-1].detected
    assert all(r.analysed for r in calm)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="not one of full_frame, body, head"):
        AnonymizerConfig(mode="blur")
    with pytest.raises(ValueError, match="not one of silhouette, flat, soft"):
        AnonymizerConfig(head_style="blur")


def test_cli_mode_option(tmp_path, shared_data, face_auditor):
    """`anonymize --mode head` keeps the background; the default (full_frame) does not; neither shows a face."""
    from custom_components.safecam.engine import cli

    photo = shared_data / "faces" / "wider_val" / "12_Group_Group_12_Group_Group_12_29.jpg"
    raw = cv2.imread(str(photo))
    outs = {}
    for mode in ("head", None):
        out = tmp_path / f"{mode}.png"
        assert cli.main(["anonymize", str(photo), str(out), *(["--mode", mode] if mode else [])]) == 0
        outs[mode] = cv2.imread(str(out))
        assert len(face_auditor(outs[mode])[0]) == 0
    assert len(face_auditor(raw)[0]) >= 4
    unchanged = lambda img: np.all(img == raw, axis=2).mean()  # noqa: E731
    assert unchanged(outs["head"]) > 0.5
    assert unchanged(outs[None]) < 0.05
    with pytest.raises(SystemExit) as exit_:
        cli.main(["anonymize", str(photo), str(tmp_path / "x.png"), "--mode", "blur"])
    assert exit_.value.code == 2


def test_heads_of_people_cut_by_the_bottom_edge_stay_in_their_head_regions(detector, shared_data) -> None:
    """issue 19 row 7 (full_frame, someone entering at the bottom edge: "the head pictogram sits above the real head"),
    checked on a real crowd clip with an independent head locator: the pose model's head keypoints (nose, eyes, ears)
    of everyone whose mask box is cut by the bottom edge lie in the head region the cells cover, none below the
    pictogram. On the code as it was: 0 of 116 head keypoints outside over this clip's first 900 frames, 0 of 44 on
    the intel clip (a visitor walks in from the bottom); the privacy audit found 0 of 17 faces there. No fault found,
    nothing changed: this guards the placement, it does not reproduce a fault."""
    from custom_components.safecam.engine.pose import HEAD, KEYPOINT_THRESHOLD, shared_multipose

    pose = shared_multipose()
    config = AnonymizerConfig(mode="full_frame")
    pipeline = CameraPipeline(detector, config=PipelineConfig(anonymizer=config))
    cap = cv2.VideoCapture(str(shared_data / "pedestrians" / "overhead_concourse_crowd.mp4"))
    cut = points = 0
    outside: list[tuple[int, float, float]] = []
    try:
        for i in range(300):
            ok, frame = cap.read()
            assert ok
            result = pipeline.process(frame, i / 25, i, render=False)
            h, w = frame.shape[:2]
            bottom = [b for b in result.mask_boxes if b[3] >= h - 2 and b[4] == 0]
            if not bottom or i % 3:
                continue
            cut += len(bottom)
            regions = [r for r in (_clip(*head_region(b, config), w, h) for b in result.mask_boxes) if r is not None]
            for person in pose(frame):
                for x, y, score in person.keypoints[list(HEAD)]:
                    owner = [b for b in bottom if b[0] <= x <= b[2] and b[1] <= y <= b[3]]
                    if score < KEYPOINT_THRESHOLD or not owner:
                        continue
                    points += 1
                    in_cells = any(r[0] <= x <= r[2] and r[1] <= y <= r[3] for r in regions)
                    if not in_cells or y > generic_head_box(owner[0], config)[3]:
                        outside.append((i, float(x), float(y)))
    finally:
        cap.release()
    assert cut >= 20 and points >= 20, (cut, points)  # the clip does have people cut by the bottom edge, heads seen
    assert not outside, outside
