"""No output shows a recognisable person: a real face detector (YuNet) audits every image output.

Also: detection failure fails closed, and no raw frame ever leaves the pipeline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.models import create_session, resolve_model
from custom_components.safecam.engine.pipeline import CameraPipeline

from .mot import frames

REPO = Path(__file__).resolve().parents[2]
GROUP = "faces/wider_val/12_Group_Group_12_Group_Group_12_10.jpg"


def test_cli_anonymize_image_leaves_no_face(tmp_path, shared_data, face_auditor):
    src = shared_data / GROUP
    out = tmp_path / "anon.png"
    proc = subprocess.run(
        [sys.executable, "-m", "custom_components.safecam.engine", "anonymize", str(src), str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    raw, anon = cv2.imread(str(src)), cv2.imread(str(out))
    assert raw.shape == anon.shape
    assert len(face_auditor(raw)[0]) >= 10  # the auditor does see the faces in the raw photo
    assert len(face_auditor(anon)[0]) == 0


def test_anonymized_video_frames_leave_no_face(detector, shared_data, face_auditor):
    pipeline = CameraPipeline(detector)
    raw_faces = anon_faces = 0
    for i, frame in enumerate(frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4")):
        res = pipeline.process(frame, i / 25, i)
        if i % 6 == 0:
            raw_faces += len(face_auditor(frame)[0])
            anon_faces += len(face_auditor(res.anonymized)[0])
    assert raw_faces >= 10
    assert anon_faces == 0


def test_detector_failure_fails_closed(shared_data, face_auditor):
    # A real but wrong model (a face detector) as the person detector: inference errors out.
    broken = Detector(create_session(resolve_model("face_yunet_n_dynamic")))
    pipeline = CameraPipeline(broken)
    raw = cv2.imread(str(shared_data / GROUP))
    res = pipeline.process(raw, 0.0, 0)
    assert not res.analysed
    assert pipeline.last_error
    assert len(face_auditor(res.anonymized)[0]) == 0
    # Fully obscured: coarse blocks everywhere, nothing close to the raw pixels.
    assert np.abs(res.anonymized.astype(int) - raw.astype(int)).mean() > 40


def test_no_raw_frame_in_any_result_field(detector, shared_data):
    """Every array a FrameResult carries differs from the raw frame wherever a person is."""
    frame = frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 1)[0]
    res = CameraPipeline(detector).process(frame.copy(), 0.0, 0)
    arrays = [v for v in vars(res).values() if isinstance(v, np.ndarray)] if hasattr(res, "__dict__") else []
    arrays += [getattr(res, s) for s in res.__slots__ if isinstance(getattr(res, s), np.ndarray)]
    assert arrays, "the result carries the anonymized image"
    d = detector(frame)
    for arr in arrays:
        assert arr is not frame
        for x1, y1, x2, y2 in d.boxes[d.scores >= 0.5].astype(int):
            assert not np.array_equal(arr[y1:y2, x1:x2], frame[y1:y2, x1:x2])


def test_cli_video_frames_are_never_the_raw_ones(tmp_path, shared_data):
    """Disk: what `run --out-video` writes differs from the raw clip wherever a person is."""
    clip = shared_data / "pedestrians" / "tud_campus.mp4"
    out = tmp_path / "a.mp4"
    args = ["run", str(clip), "--out-video", str(out), "--out-jsonl", str(tmp_path / "r.jsonl")]
    proc = subprocess.run(
        [sys.executable, "-m", "custom_components.safecam.engine", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    raw = frames(clip)
    written = frames(out)
    assert len(written) == len(raw)
    import json

    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines() if '"type": "frame"' in x]
    checked = 0
    for rec, a, r in zip(records, written, raw, strict=False):
        h, w = r.shape[:2]
        for tr in rec["tracks"]:
            x1, y1, x2, y2 = (np.array(tr["box"]) * [w, h, w, h]).astype(int)
            if (x2 - x1) * (y2 - y1) < 400:
                continue
            diff = np.abs(a[y1:y2, x1:x2].astype(int) - r[y1:y2, x1:x2].astype(int)).mean()
            assert diff > 8, f"frame {rec['frame']}: a person region looks raw (mean diff {diff:.1f})"
            checked += 1
    assert checked > 50


def test_worker_logs_and_files_carry_no_pixels(tmp_path, shared_data, caplog, monkeypatch):
    """Logs and disk: a camera worker at DEBUG logging writes no image data anywhere."""
    import logging
    import threading
    import time

    from custom_components.safecam.engine.worker import CameraWorker

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    caplog.set_level(logging.DEBUG)
    done = threading.Event()
    frames_seen = []

    def on_state(state, _events):
        frames_seen.append(state.frames)
        if state.frames >= 20:
            done.set()

    # A detector that fails every third call exercises the error and fail-closed log paths too.
    real = Detector.from_catalog()
    calls = {"n": 0}

    def flaky(image, prepared=None):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("simulated inference failure")
        return real(image, prepared)

    flaky.prepare = real.prepare  # type: ignore[attr-defined]
    worker = CameraWorker("cam", str(shared_data / "pedestrians" / "tud_campus.mp4"), lambda: flaky, fps=25, on_state=on_state)
    worker.start()
    try:
        assert done.wait(60)
    finally:
        worker.stop()
    time.sleep(0.1)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "simulated inference failure" in text  # the failures were logged...
    assert "\\xff\\xd8" not in text and "array([" not in text  # ...without pixels
    assert max((len(r.getMessage()) for r in caplog.records), default=0) < 2000
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], f"the worker wrote files: {written}"
