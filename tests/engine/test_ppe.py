"""PPE: the real classifier on real dev images, consensus / cooldown / zone rules, config, CLI, bundled model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from custom_components.safecam.engine import models
from custom_components.safecam.engine.cli import main as cli_main
from custom_components.safecam.engine.config import ConfigError, parse_scene
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.models import ModelCorruptError, ModelMissingError, load_catalog, resolve_model
from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig
from custom_components.safecam.engine.ppe import (
    MAX_LOOKS_PER_FRAME,
    MIN_PERSON_PX,
    MODEL_NAME,
    RECHECK_S,
    Box,
    PPEAnalyzer,
    PPEClassifier,
    PPEReading,
)
from custom_components.safecam.engine.scene import build_analyzers
from custom_components.safecam.engine.scene.base import AnalysisFrame
from custom_components.safecam.engine.track import greedy_match, iou_matrix
from custom_components.safecam.engine.types import Detections, SafetyEvent, Track
from models.ppe.labels import LabelledPerson, load_split, read_yolo

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "models" / "ppe" / "ppe_helmet_vest.onnx"
W, H = 640, 480


@pytest.fixture(scope="module")
def classifier() -> PPEClassifier:
    return PPEClassifier.from_catalog()


@pytest.fixture(scope="module")
def dev(shared_data: Path) -> list[tuple[Path, list[LabelledPerson]]]:
    return load_split(shared_data / "ppe")


def _pixels(person: LabelledPerson, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.asarray(person.box) * np.array([w, h, w, h])


def _agreement(
    classifier: PPEClassifier, images: list[tuple[Path, list[LabelledPerson]]]
) -> dict[str, list[tuple[bool, bool | None]]]:
    """item -> (label, classifier's state) for every labelled person, on the labelled boxes."""
    out: dict[str, list[tuple[bool, bool | None]]] = {"helmet": [], "vest": []}
    for path, persons in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None
        readings = classifier.read(image, [_pixels(p, image) for p in persons])
        for person, reading in zip(persons, readings, strict=True):
            for item, pairs in out.items():
                if (truth := getattr(person, item)) is not None:
                    pairs.append((truth, reading.get(item)))
    return out


# --- the real model on real dev images (never trained on) --------------------------------------


def test_classifier_agrees_with_labels_on_dev_images(classifier: PPEClassifier, dev: list) -> None:
    first = [d for d in dev if d[1]][:12]  # the first labelled images by name: not picked by result
    pairs = _agreement(classifier, first)
    for item, target in (("helmet", 0.9), ("vest", 0.85)):
        assert len(pairs[item]) >= 10
        agree = np.mean([truth is said for truth, said in pairs[item]])
        assert agree >= target, (item, pairs[item])


def test_classifier_finds_most_missing_hard_hats(classifier: PPEClassifier, dev: list) -> None:
    # Every dev image with a labelled bare head (10 persons in 5 images, the rarest case).
    images = [d for d in dev if any(p.helmet is False for p in d[1])]
    pairs = _agreement(classifier, images)["helmet"]
    bare = [said for truth, said in pairs if truth is False]
    worn = [said for truth, said in pairs if truth is True]
    assert len(bare) >= 8
    assert sum(s is False for s in bare) >= len(bare) / 2
    assert sum(s is False for s in worn) <= 2  # few false alarms on the hats beside them


def test_tiny_person_is_unknown_without_running_the_model(classifier: PPEClassifier) -> None:
    image = np.full((H, W, 3), 114, np.uint8)
    assert classifier.read(image, [(10, 10, 30, 10 + MIN_PERSON_PX - 1)]) == [PPEReading(None, None)]


def test_pipeline_on_rig_video_trusts_the_hard_hat_and_reports_the_missing_vest(shared_data: Path) -> None:
    # The worker wears an orange hard hat and a harness, no hi-vis vest (shared/data/DATA.md, and visibly so).
    scene = parse_scene({"ppe": {"required": ["helmet", "vest"], "consensus_frames": 3, "cooldown_s": 60}})
    pipe = CameraPipeline(Detector.from_catalog(), scene, PipelineConfig(camera="rig"))
    analyzer = pipe.analyzers[0]
    assert isinstance(analyzer, PPEAnalyzer)
    real = analyzer.reader
    looks: list[int] = []

    class Counting:  # the real classifier, counted
        def read(self, image: np.ndarray, boxes: Sequence[Box]) -> list[PPEReading]:
            looks.append(len(boxes))
            return real.read(image, boxes)

    analyzer.reader = Counting()
    cap = cv2.VideoCapture(str(shared_data / "construction" / "drilling_rig_worker_hardhat_vertical.mp4"))
    events, snaps = [], []
    for i in range(60):
        ok, image = cap.read()
        assert ok
        if i % 3:
            continue  # 10 fps of the 30 fps clip
        result = pipe.process(image, i / 30, i, render=False)
        events += [e for e in result.events if e.event_type == "ppe_violation"]
        snaps.append(result.analytics["ppe"])
    cap.release()
    last = snaps[-1]
    json.dumps(last)  # JSON-safe, no pixels
    assert len(last["persons"]) == 1
    (person,) = last["persons"].values()
    assert person["helmet"] is True and person["vest"] is False and person["missing"] == ["vest"]
    assert last["violation_active"] is True and last["people_without_ppe"] == 1
    assert len(events) == 1 and events[0].details == {"missing": ["vest"]} and events[0].camera == "rig"
    # 20 analysed frames: a few looks to agree, then one per RECHECK_S, not one per frame.
    assert 3 <= sum(looks) <= 8


# --- consensus, cooldown and rules with scripted looks -----------------------------------------


class Scripted:
    """Looks come from `says[track_id]`; the box's x1 carries the track id (see _frame)."""

    def __init__(self) -> None:
        self.says: dict[int, PPEReading] = {}
        self.calls: list[list[int]] = []

    def read(self, image: np.ndarray, boxes: Sequence[Box]) -> list[PPEReading]:
        ids = [int(b[0]) for b in boxes]
        self.calls.append(ids)
        return [self.says[i] for i in ids]


def _frame(
    t: float, people: dict[int, tuple[float, float]], detected: bool = True, lost: frozenset[int] = frozenset()
) -> AnalysisFrame:
    """people: track id -> normalized floor point; the box is only a carrier for the id."""
    tracks = [Track(tid, (float(tid), 10.0, tid + 50.0, 200.0), 0.9, True, t, 1 if tid in lost else 0) for tid in people]
    positions = np.array(list(people.values()), np.float64).reshape(-1, 2)
    image = np.zeros((H, W, 3), np.uint8)
    return AnalysisFrame("cam", int(t * 5), t, image, W, H, detected, Detections.empty(), tracks, tracks, positions, {})


def _analyzer(config: dict, reader: Scripted) -> PPEAnalyzer:
    scene = parse_scene(config)
    return PPEAnalyzer(scene.section("ppe"), "cam", reader)


def test_violation_needs_consensus_then_repeats_only_after_cooldown() -> None:
    reader = Scripted()
    reader.says[1] = PPEReading(helmet=False, vest=True)
    ppe = _analyzer({"ppe": {"required": ["helmet"], "consensus_frames": 3, "cooldown_s": 10}}, reader)
    at = {1: (0.5, 0.9)}
    assert ppe.update(_frame(0.0, at)) == [] and ppe.update(_frame(0.2, at)) == []
    assert ppe.snapshot()["persons"]["1"] == {"helmet": None, "vest": None, "missing": []}
    assert ppe.snapshot()["violation_active"] is False
    (event,) = ppe.update(_frame(0.4, at))
    assert (event.event_type, event.camera, event.track_id, event.zone) == ("ppe_violation", "cam", 1, None)
    assert event.details == {"missing": ["helmet"]} and event.confidence == 1.0
    assert ppe.snapshot() == {
        "violation_active": True,
        "people_without_ppe": 1,
        "persons": {"1": {"helmet": False, "vest": True, "missing": ["helmet"]}},
    }
    quiet = [e for k in range(3, 51) for e in ppe.update(_frame(k * 0.2, at))]  # up to t = 10.0
    assert quiet == []
    again = [e for k in range(51, 56) for e in ppe.update(_frame(k * 0.2, at))]
    assert [e.track_id for e in again] == [1]


def test_vest_is_required_only_inside_its_zone() -> None:
    reader = Scripted()
    reader.says = {1: PPEReading(True, False), 2: PPEReading(True, False)}
    config = {
        "zones": [{"name": "loading_bay", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}],
        "ppe": {"required": ["helmet"], "zones": {"loading_bay": ["vest"]}, "consensus_frames": 2},
    }
    ppe = _analyzer(config, reader)
    at = {1: (0.25, 0.9), 2: (0.75, 0.9)}  # 1 in the bay, 2 outside
    events = [e for k in range(3) for e in ppe.update(_frame(k * 0.2, at))]
    assert [(e.track_id, e.zone, e.details["missing"]) for e in events] == [(1, "loading_bay", ["vest"])]
    snap = ppe.snapshot()
    assert snap["people_without_ppe"] == 1
    assert snap["persons"]["1"]["missing"] == ["vest"] and snap["persons"]["2"] == {"helmet": True, "vest": False, "missing": []}


def test_disagreeing_looks_stay_unknown() -> None:
    reader = Scripted()
    ppe = _analyzer({"ppe": {"required": ["helmet", "vest"], "consensus_frames": 4}}, reader)
    events = []
    for k in range(12):
        reader.says[7] = PPEReading(helmet=k % 2 == 0, vest=None)
        events += ppe.update(_frame(k * 0.2, {7: (0.5, 0.5)}))
    assert events == []
    assert ppe.snapshot()["persons"]["7"] == {"helmet": None, "vest": None, "missing": []}


def test_hard_hat_taken_off_is_noticed_within_seconds() -> None:
    reader = Scripted()
    reader.says[3] = PPEReading(True, True)
    ppe = _analyzer({"ppe": {"required": ["helmet"], "consensus_frames": 3}}, reader)
    at = {3: (0.5, 0.5)}
    for k in range(10):
        ppe.update(_frame(k * 0.2, at))
    assert ppe.snapshot()["persons"]["3"]["helmet"] is True
    reader.says[3] = PPEReading(False, True)
    taken_off = 2.0
    events: list[SafetyEvent] = []
    k = 10
    while not events and k < 60:
        events = ppe.update(_frame(k * 0.2, at))
        k += 1
    assert events and events[0].details == {"missing": ["helmet"]}
    # The first recheck sees it at most RECHECK_S later; then it looks every frame until the state flips.
    assert (k - 1) * 0.2 - taken_off <= RECHECK_S + 2.0


def test_looks_are_rationed() -> None:
    reader = Scripted()
    ppe = _analyzer({"ppe": {"required": ["vest"], "consensus_frames": 2}}, reader)
    for tid in range(1, 6):
        reader.says[tid] = PPEReading(True, True)
    crowd = {tid: (0.1 * tid, 0.5) for tid in range(1, 6)}
    ppe.update(_frame(0.0, crowd))
    assert len(reader.calls[-1]) == MAX_LOOKS_PER_FRAME
    for k in range(1, 6):
        ppe.update(_frame(k * 0.2, crowd))
    assert all(len(c) <= MAX_LOOKS_PER_FRAME for c in reader.calls)
    assert all(ppe.snapshot()["persons"][str(t)]["vest"] is True for t in crowd)  # everyone got their looks
    n = len(reader.calls)
    ppe.update(_frame(1.2, crowd, detected=False))  # the detector skipped this frame: boxes are predictions
    ppe.update(_frame(1.4, crowd, lost=frozenset(crowd)))  # matched to nothing this frame
    ppe.update(_frame(1.6, crowd))  # all trusted, looked at less than RECHECK_S ago
    assert len(reader.calls) == n
    ppe.update(_frame(1.6 + RECHECK_S, crowd))
    assert len(reader.calls) == n + 1


def test_gone_tracks_are_forgotten() -> None:
    reader = Scripted()
    reader.says = {1: PPEReading(False, False), 2: PPEReading(True, True)}
    ppe = _analyzer({"ppe": {"required": ["helmet"], "consensus_frames": 2}}, reader)
    for k in range(3):
        ppe.update(_frame(k * 0.2, {1: (0.2, 0.5), 2: (0.6, 0.5)}))
    assert ppe.snapshot()["people_without_ppe"] == 1
    ppe.update(_frame(0.8, {2: (0.6, 0.5)}))
    assert ppe.snapshot() == {
        "violation_active": False,
        "people_without_ppe": 0,
        "persons": {"2": {"helmet": True, "vest": True, "missing": []}},
    }
    assert 1 not in ppe.consensus._people


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ppe", "message"),
    [
        ({"required": ["gloves"]}, "unknown item 'gloves' in 'required'"),
        ({"required": "helmet"}, "'required' must be a list"),
        ({"zones": {"nowhere": ["vest"]}}, "unknown zone 'nowhere'"),
        ({"zones": {"bay": ["boots"]}}, "unknown item 'boots' in zone 'bay'"),
        ({"zones": ["bay"]}, "'zones' must be a mapping"),
        ({"required": ["helmet"], "colour": "red"}, "unknown key(s) colour"),
        ({}, "nothing is required"),
        ({"required": [], "zones": {"bay": []}}, "nothing is required"),
        ({"required": ["helmet"], "cooldown_s": -1}, "'cooldown_s' must be"),
        ({"required": ["helmet"], "cooldown_s": "1m"}, "'cooldown_s' must be"),
        ({"required": ["helmet"], "consensus_frames": 0}, "'consensus_frames' must be"),
        ({"required": ["helmet"], "consensus_frames": True}, "'consensus_frames' must be"),
        (["helmet"], "ppe: expected a mapping"),
    ],
)
def test_config_errors_name_the_problem(ppe: object, message: str) -> None:
    zones = [{"name": "bay", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    with pytest.raises(ConfigError) as err:
        parse_scene({"zones": zones, "ppe": ppe})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ppe_section_builds_the_analyzer_and_round_trips() -> None:
    scene = parse_scene({"ppe": {"required": ["helmet", "helmet", "vest"], "cooldown_s": 30}})
    rules = scene.section("ppe")
    assert rules.required == ("helmet", "vest") and rules.cooldown_s == 30.0 and rules.consensus_frames == 5
    assert scene.as_dict()["ppe"] == {"required": ["helmet", "helmet", "vest"], "cooldown_s": 30}
    assert [a.name for a in build_analyzers(scene, "cam") if a.name == "ppe"] == ["ppe"]
    assert not any(a.name == "ppe" for a in build_analyzers(parse_scene({}), "cam"))  # no section, no model loaded


# --- CLI --------------------------------------------------------------------------------------


def test_cli_ppe_contract_on_two_dev_images(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["ppe_0006_jpg.rf.c30b65b71e733ddc7e2ab9b9aa0283b2", "ppe_0021_jpg.rf.64d91fac2a98c12151f9709a72c42292"]
    paths = [str(shared_data / "ppe" / "images" / f"{n}.jpg") for n in names]
    assert cli_main(["ppe", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    agree = total = 0
    for line, path, name in zip(lines, paths, names, strict=True):
        rec = json.loads(line)
        assert set(rec) == {"image", "persons"} and rec["image"] == path
        for p in rec["persons"]:
            assert set(p) == {"box", "helmet", "vest", "score"}
            x1, y1, x2, y2 = p["box"]
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 and 0 < p["score"] <= 1
            assert p["helmet"] in (True, False, None) and p["vest"] in (True, False, None)
        from models.ppe.labels import associate

        truth = associate(*read_yolo(shared_data / "ppe" / "labels" / f"{name}.txt"))
        got = np.array([p["box"] for p in rec["persons"]], np.float32).reshape(-1, 4)
        pairs = greedy_match(iou_matrix(got, np.array([t.box for t in truth], np.float32)), 0.5)
        assert len(pairs) == len(truth)  # every labelled worker found
        for d, g in pairs:
            for item in ("helmet", "vest"):
                if getattr(truth[g], item) is not None:
                    total += 1
                    agree += rec["persons"][d][item] is getattr(truth[g], item)
    assert total >= 8 and agree >= total - 1


def test_cli_ppe_unreadable_image_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"nope")
    assert cli_main(["ppe", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "cannot read image" in err and len(err.strip().splitlines()) == 1


# --- the model file the repository ships ------------------------------------------------------


@pytest.fixture
def no_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAFECAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SAFECAM_MODEL_MIRROR", raising=False)
    return tmp_path


def test_bundled_model_matches_its_catalog_entry() -> None:
    spec = load_catalog()[MODEL_NAME]
    data = BUNDLED.read_bytes()
    assert spec.bundled == "ppe/ppe_helmet_vest.onnx" and spec.task == "ppe"
    assert len(data) == spec.size_bytes and hashlib.sha256(data).hexdigest() == spec.sha256
    assert spec.input is not None and spec.input.shape[1:] == (3, 160, 96)


def test_resolver_finds_the_bundled_model_after_the_user_folders(no_mirror: Path) -> None:
    assert resolve_model(MODEL_NAME, download=False) == BUNDLED
    mine = no_mirror / "mine"
    mine.mkdir()
    (mine / BUNDLED.name).write_bytes(BUNDLED.read_bytes())
    assert resolve_model(MODEL_NAME, mine, download=False) == mine / BUNDLED.name


def test_resolver_reports_a_bad_or_missing_bundled_copy(no_mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = no_mirror / "repo_models"
    monkeypatch.setattr(models, "BUNDLED_DIR", bundled)
    with pytest.raises(ModelMissingError):
        resolve_model(MODEL_NAME, download=False)
    (bundled / "ppe").mkdir(parents=True)
    (bundled / "ppe" / BUNDLED.name).write_bytes(b"not a model")
    with pytest.raises(ModelCorruptError, match=str(bundled / "ppe" / BUNDLED.name)):
        resolve_model(MODEL_NAME, download=False)
    # Entries without `bundled` are unaffected.
    assert load_catalog()["yolox_nano"].bundled is None
