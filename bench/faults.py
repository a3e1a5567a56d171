"""Fault benchmark: drives real faults into a CameraWorker and measures detection and recovery.

    .venv/bin/python bench/faults.py [--scenario NAME ...] [--hang-after 3] [--frozen-after 3]

Scenarios (real GStreamer RTSP server, real HTTP MJPEG camera, real detector; only the hang is injected):
  rtsp_kill       the RTSP server is SIGKILLed mid-stream and restarted 5 s later on the same port
  frozen          the RTSP stream shows the same picture for 8 s (re-encoded repeats), then moves again
  resolution      an MJPEG camera switches 640x480 -> 960x540 on the same connection
  unreachable     nothing listens at start; the server comes up 5 s later
  hang            one inference blocks for 30 s (file clip with a gate); compared with an uninterrupted run

Per scenario: detect_s (fault injected -> the state shows it), recover_s (fault over -> connected and
analysing again), loop_failures (worker loop restarts other than the watchdog's), counts_monotonic
(no gate total ever went down) and, for `hang`, the gate totals against an uninterrupted run of the
same clip for the same time (lost_in / lost_out). JSON lines, then a table.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import PEDESTRIANS, emit, table

from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.worker import CameraState, CameraWorker
from tests.engine.test_faults import (
    CAMPUS,
    GATE_SCENE,
    STADTMITTE,
    HangOnce,
    MjpegCamera,
    Recorder,
    Rtsp,
    frozen_clip,
    jpegs,
    scaled_clip,
)

DATA = PEDESTRIANS.parent


def _until(rec: Recorder, predicate: Callable[[CameraState], bool], timeout: float) -> float | None:
    """Seconds until the latest state satisfies predicate, None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        states = rec.snapshot()
        if states and predicate(states[-1]):
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def _moving(frames: int) -> Callable[[CameraState], bool]:
    return lambda s: s.connected and s.frames > frames + 3


def _summary(name: str, rec: Recorder, detect: float | None, recover: float | None, **extra: Any) -> dict[str, Any]:
    states = rec.snapshot()
    gates = [s.gates.get("mid") for s in states if "mid" in s.gates]
    monotonic = all(b["in"] >= a["in"] and b["out"] >= a["out"] for a, b in itertools.pairwise(gates))  # type: ignore[index]
    return {
        "scenario": name,
        "detect_s": None if detect is None else round(detect, 2),
        "recover_s": None if recover is None else round(recover, 2),
        "loop_failures": sum(1 for s in states if s.error_reason == "error"),
        "counts_monotonic": monotonic,
        "frames": states[-1].frames if states else 0,
        **extra,
    }


def rtsp_kill(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    server = Rtsp(clips["small"])
    server.start()
    rec = Recorder()
    worker = CameraWorker("bench", server.url(), Detector.from_catalog, fps=10, on_state=rec, scene=parse_scene(GATE_SCENE))
    worker.start()
    try:
        _until(rec, lambda s: s.connected and s.frames > 5, 60)
        server.kill()
        detect = _until(rec, lambda s: not s.connected, 60)
        time.sleep(5)
        frames = rec.snapshot()[-1].frames
        server.start()
        recover = _until(rec, _moving(frames), 120)
        reasons = sorted({s.error_reason for s in rec.snapshot() if s.error_reason})
    finally:
        worker.stop()
        server.stop()
    return _summary("rtsp_kill", rec, detect, recover, reasons=reasons)


def frozen(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    server = Rtsp(clips["frozen"])
    server.start()
    rec = Recorder()
    worker = CameraWorker("bench", server.url(), Detector.from_catalog, fps=10, on_state=rec, frozen_after_s=args.frozen_after)
    started = time.monotonic()
    worker.start()
    try:
        _until(rec, lambda s: s.connected and s.frames > 0, 60)
        connected_at = time.monotonic() - started
        seen = _until(rec, lambda s: s.error_reason == "frozen", 60)
        # The picture froze 1 s into the stream: detection time counts from there.
        detect = None if seen is None else (time.monotonic() - started) - connected_at - 1.0
        frames = rec.snapshot()[-1].frames
        recover = _until(rec, _moving(frames), 60)
        during = [s.frames for s in rec.snapshot() if s.error_reason == "frozen"]
    finally:
        worker.stop()
        server.stop()
    return _summary("frozen", rec, detect, recover, frames_analysed_while_frozen=(max(during) - min(during)) if during else 0)


def resolution(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    small = jpegs(DATA / CAMPUS, 30)
    large = jpegs(DATA / STADTMITTE, 30, size=(960, 540))
    rec = Recorder()
    with MjpegCamera(small) as camera:
        worker = CameraWorker("bench", camera.url, Detector.from_catalog, fps=10, on_state=rec)
        worker.start()
        try:
            _until(rec, lambda s: s.frames > 10, 60)
            frames = rec.snapshot()[-1].frames
            camera.parts = large
            recover = _until(rec, _moving(frames), 60)
        finally:
            worker.stop()
    return _summary("resolution", rec, 0.0, recover)


def unreachable(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    server = Rtsp(clips["small"])  # not started yet: nothing listens on its port
    rec = Recorder()
    worker = CameraWorker("bench", server.url(), Detector.from_catalog, fps=10, on_state=rec)
    worker.start()
    try:
        detect = _until(rec, lambda s: s.error_reason == "unreachable" and not s.connected, 60)
        time.sleep(5)
        server.start()
        recover = _until(rec, _moving(0), 120)
    finally:
        worker.stop()
        server.stop()
    return _summary("unreachable", rec, detect, recover)


def _file_run(factory: Callable[[], Detector], rec: Recorder, hang_after: float) -> CameraWorker:
    scene = parse_scene(GATE_SCENE)
    worker = CameraWorker("bench", str(DATA / CAMPUS), factory, fps=25, on_state=rec, scene=scene, hang_after_s=hang_after)
    worker.start()
    return worker


def hang(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    seconds = 30.0
    base = Recorder()
    worker = _file_run(Detector.from_catalog, base, args.hang_after)
    time.sleep(seconds)
    worker.stop()
    baseline = base.snapshot()[-1].gates["mid"]

    hung = HangOnce(after=30)
    rec = Recorder()
    worker = _file_run(hung, rec, args.hang_after)
    started = time.monotonic()
    try:
        hung.hung.wait(60)
        detect = _until(rec, lambda s: s.error_reason == "hung", 60)
        frames = rec.snapshot()[-1].frames
        recover = _until(rec, _moving(frames), 60)
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        worker.stop()
        hung.release.set()  # the stuck call returns; its abandoned thread exits without publishing
        for thread in threading.enumerate():
            if thread.name == "safecam-bench":
                thread.join(timeout=30)
    got = rec.snapshot()[-1].gates["mid"]
    return _summary(
        "hang",
        rec,
        detect,
        recover,
        baseline_in=baseline["in"],
        baseline_out=baseline["out"],
        lost_in=baseline["in"] - got["in"],
        lost_out=baseline["out"] - got["out"],
    )


SCENARIOS = {"rtsp_kill": rtsp_kill, "frozen": frozen, "resolution": resolution, "unreachable": unreachable, "hang": hang}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--hang-after", type=float, default=3.0, help="watchdog limit (s) for the hang scenario")
    parser.add_argument("--frozen-after", type=float, default=3.0, help="frozen-picture limit (s) for the frozen scenario")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="safecam-faults-") as tmp:
        out = Path(tmp)
        clips = {
            "frozen": frozen_clip(DATA, out / "frozen.mp4", moving_s=1.0, frozen_s=8.0),
            "small": scaled_clip(DATA, out / "small.mp4", CAMPUS, 640, 480, seconds=60),
        }
        rows = []
        for name in args.scenario or list(SCENARIOS):
            row = SCENARIOS[name](clips, args)
            emit(row)
            rows.append(row)
    print()
    table(rows, ["scenario", "detect_s", "recover_s", "loop_failures", "counts_monotonic", "frames", "lost_in", "lost_out"])


if __name__ == "__main__":
    main()
