"""The per-camera worker thread on real video: state pushes, anonymized JPEGs, live scene changes,
and a camera that is down; plus decode-ahead reading."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.sources import BackgroundReader, open_source
from custom_components.safecam.engine.worker import CameraWorker

from .mot import frames


def _wait(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_background_reader_keeps_every_file_frame_in_order(shared_data):
    reader = BackgroundReader(open_source(str(shared_data / "pedestrians" / "tud_campus.mp4")))
    indices = [f.index for f in reader]
    reader.close()
    assert indices == list(range(71))


def test_worker_pushes_counts_and_serves_only_anonymized_jpegs(shared_data):
    clip = shared_data / "pedestrians" / "tud_campus.mp4"
    states, events = [], []
    lock = threading.Lock()

    def on_state(state, evs):
        with lock:
            states.append(state)
            events.extend(evs)

    scene = parse_scene({"zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "kind": "danger"}]})
    worker = CameraWorker("demo", str(clip), lambda: Detector.from_catalog(), scene=scene, fps=10, on_state=on_state)
    worker.start()
    try:
        assert _wait(lambda: any(s.people > 0 for s in states))
        assert _wait(lambda: any(s.zones.get("all", {}).get("occupied") for s in states))
        assert any(e.event_type == "intrusion" for e in events)
        jpeg = worker.latest_jpeg()
        assert jpeg is not None
        served = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        raw = frames(clip)
        # The served image is no raw frame of the clip.
        assert min(np.abs(served.astype(int) - f.astype(int)).mean() for f in raw) > 2.0
        # Zones change live, without restarting the stream.
        worker.set_scene(parse_scene({"zones": [{"name": "corner", "polygon": [[0, 0], [0.05, 0], [0.05, 0.05]]}]}))
        assert _wait(lambda: "corner" in states[-1].zones and "all" not in states[-1].zones)
        seqs = [s.seq for s in states]
        assert seqs == sorted(seqs)
    finally:
        worker.stop()
    assert not worker.state.running


def test_worker_reports_a_dead_camera_and_never_serves_a_frame(socket_enabled):
    from tests.servers.processes import free_port

    seen = []
    worker = CameraWorker(
        "down", f"rtsp://user:pw@127.0.0.1:{free_port()}/x", lambda: Detector.from_catalog(), on_state=lambda s, e: seen.append(s)
    )
    worker.start()
    try:
        assert _wait(lambda: any(s.error_reason == "unreachable" and not s.connected for s in seen), 30)
        assert worker.latest_jpeg() is None
        assert worker.placeholder_jpeg()[:2] == b"\xff\xd8"
        assert all("pw@" not in (s.error or "") for s in seen)
    finally:
        worker.stop()


def test_gate_totals_survive_a_worker_loop_restart(shared_data):
    """A new worker loop (after a failure or a restart) starts from what was counted, never from less."""
    clip = shared_data / "pedestrians" / "tud_campus.mp4"
    scene = parse_scene({"gates": [{"name": "mid", "line": [[0.5, 0.0], [0.5, 1.0]]}]})
    states = []
    worker = CameraWorker(
        "c", str(clip), lambda: Detector.from_catalog(), scene=scene, fps=25, on_state=lambda s, e: states.append(s)
    )
    worker.restore_gate_totals({"mid": {"in": 100, "out": 50}})
    worker.start()
    worker.start()  # idempotent: still one thread
    try:
        assert sum(t.name == "safecam-c" for t in threading.enumerate()) == 1
        assert _wait(lambda: any(s.gates.get("mid", {}).get("out", 0) > 50 for s in states))
    finally:
        worker.stop()
    counted = max(s.gates["mid"]["out"] for s in states if s.gates)
    states.clear()
    worker.start()
    try:
        assert _wait(lambda: any(s.gates for s in states))
        assert min(s.gates["mid"]["out"] for s in states if s.gates) >= counted
    finally:
        worker.stop()


def test_target_fps_is_capped_by_what_the_camera_sends(shared_data):
    states = []
    clip = shared_data / "pedestrians" / "tud_campus.mp4"  # 25 fps
    worker = CameraWorker("f", str(clip), lambda: Detector.from_catalog(), fps=50, on_state=lambda s, e: states.append(s))
    worker.start()
    try:
        assert _wait(lambda: any(s.frames > 0 for s in states))
    finally:
        worker.stop()
    assert {s.target_fps for s in states if s.frames > 0} == {25.0}
