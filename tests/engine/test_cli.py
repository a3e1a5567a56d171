"""The CLI contract other issues and independent checks rely on (run as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINE = [sys.executable, "-m", "custom_components.safecam.engine"]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENGINE, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def campus_run(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("cli")
    cfg = out / "scene.yaml"
    cfg.write_text(
        "zones:\n"
        "  - {name: walkway, kind: area, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}\n"
        "  - {name: left_half, kind: danger, polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}\n"
        "gates:\n"
        "  - {name: middle, line: [[0.5, 0], [0.5, 1]]}\n"
    )
    proc = _cli(
        "run", str(shared_data / "pedestrians" / "tud_campus.mp4"), "--config", str(cfg),
        "--out-jsonl", str(out / "r.jsonl"), "--out-video", str(out / "a.mp4"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "r.jsonl").read_text().splitlines()]
    return lines, out


def test_one_frame_line_per_analysed_frame_and_a_summary(campus_run):
    lines, _ = campus_run
    frames = [x for x in lines if x["type"] == "frame"]
    assert len(frames) == 71  # every frame of the 71-frame clip
    assert [f["frame"] for f in frames] == list(range(71))
    assert lines[-1]["type"] == "summary"
    assert lines[-1]["frames"] == 71
    assert set(lines[-1]["gates"]) == {"middle"}


def test_frame_lines_follow_the_contract(campus_run):
    lines, _ = campus_run
    frames = [x for x in lines if x["type"] == "frame"]
    assert max(f["people"] for f in frames) >= 4  # campus shows several people at once
    for f in frames:
        # "analytics" holds the analyzers' states: the danger zone 'left_half' brings the safety rules.
        assert set(f) == {"type", "frame", "t", "people", "tracks", "zones", "gates", "analytics"}
        assert f["analytics"]["safety"]["zones"]["left_half"]["armed"] is True
        assert f["people"] == len(f["tracks"])
        for tr in f["tracks"]:
            assert all(0.0 <= v <= 1.0 for v in tr["box"])
            assert tr["box"][0] < tr["box"][2] and tr["box"][1] < tr["box"][3]
        assert set(f["zones"]) == {"walkway", "left_half"}
        assert f["zones"]["walkway"]["people"] <= f["people"]
        assert {"in", "out"} <= set(f["gates"]["middle"])
    assert any(f["zones"]["walkway"]["occupied"] for f in frames)


def test_people_walking_through_the_danger_zone_raise_intrusions(campus_run):
    lines, _ = campus_run
    events = [x for x in lines if x["type"] == "event" and x["event_type"] == "intrusion"]
    assert events
    assert all(e["zone"] == "left_half" and isinstance(e["track_id"], int) for e in events)


def test_anonymized_video_has_every_frame(campus_run):
    import cv2

    _, out = campus_run
    cap = cv2.VideoCapture(str(out / "a.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 71


def test_fps_limit(shared_data):
    proc = _cli("run", str(shared_data / "pedestrians" / "tud_campus.mp4"), "--fps", "5")
    assert proc.returncode == 0, proc.stderr
    frames = [json.loads(x) for x in proc.stdout.splitlines() if '"frame"' in x and '"type": "frame"' in x]
    assert 13 <= len(frames) <= 16  # 2.84 s of video at 5 fps


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("zones:\n  - {name: a, polygon: [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]}\n", "self-intersecting"),
        ("zonez: []\n", "unknown key(s) zonez"),
        ("gates:\n  - {name: g, line: [[0.2, 0.2], [2, 0.2]]}\n", "outside 0..1"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, shared_data, yaml_text, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    proc = _cli("run", str(shared_data / "pedestrians" / "tud_campus.mp4"), "--config", str(cfg), timeout=60)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""


def test_unreadable_source_exits_1_without_leaking_credentials(tmp_path):
    proc = _cli("run", "rtsp://admin:s3cret@127.0.0.1:9/stream", timeout=60)
    assert proc.returncode == 1
    assert "s3cret" not in proc.stderr
    assert proc.stderr.startswith("error:")
    missing = _cli("run", str(tmp_path / "nope.mp4"), timeout=60)
    assert missing.returncode == 1
    assert "nope.mp4" in missing.stderr
