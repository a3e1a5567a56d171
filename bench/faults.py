"""Fault benchmark: drives real faults into a CameraWorker and measures detection and recovery.

    .venv/bin/python bench/faults.py [--scenario NAME ...] [--hang-after 3] [--frozen-after 3]

Scenarios (real GStreamer RTSP server, real HTTP MJPEG camera, real detector; only the hang is injected):
  rtsp_kill       the RTSP server is SIGKILLed mid-stream and restarted 5 s later on the same port
  frozen          the RTSP stream shows the same picture for 8 s (re-encoded repeats), then moves again
  resolution      an MJPEG camera switches 640x480 -> 960x540 on the same connection
  unreachable     nothing listens at start; the server comes up 5 s later
  hang            one inference blocks for 30 s (file clip with a gate); compared with an uninterrupted run
  slow_detector   every inference takes 0.6 s on a live RTSP camera at 10 fps for 15 s, then is fast again
                  (the real detector plus an injected sleep): the analysis rate is lowered, then raised
  slow_network    the RTSP video (RTP over TCP, through tests/servers/throttle_proxy.py) gets a third of its
                  bitrate and 0.3 s latency for 10 s, then full speed
  engine_restart  `serve` (own process, real Mosquitto) is stopped and started again with its state file
  broker_tls      Mosquitto with a TLS listener and a password file is SIGKILLed and restarted 5 s later;
                  the engine connects over TLS with credentials

Per scenario: detect_s (fault injected -> the state shows it), recover_s (fault over -> connected and
analysing again), loop_failures (worker loop restarts other than the watchdog's), counts_monotonic
(no gate total ever went down) and, for `hang`, the gate totals against an uninterrupted run of the
same clip for the same time (lost_in / lost_out). fps_before/during/after: analysed frames per second
before, during and after the fault. For the MQTT scenarios: events received, dup_events (an event id
received twice), lost_events (gaps in an engine run's event sequence numbers) and counts_kept (the first
state after the fault starts from the gate totals before it). JSON lines, then one table of all rows.
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

from custom_components.safecam.contract import Topics
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
    SlowDown,
    frozen_clip,
    jpegs,
    scaled_clip,
)
from tests.servers.certs import make_tls_files
from tests.servers.mosquitto import Broker, EngineProcess
from tests.servers.mosquitto import Recorder as MqttRecorder
from tests.servers.throttle_proxy import ThrottlingProxy

DATA = PEDESTRIANS.parent
LONG_S = 90  # seconds of the clip the live scenarios stream (longer than any of them runs)
SLOW_S = 0.6  # slow_detector: every inference takes this long (the real one, padded)
MQTT_SCENE = {
    "zones": [{"name": "walkway", "kind": "danger", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}],
    "gates": [{"name": "middle", "line": [[0.5, 0.5], [0.5, 1.0]]}],
}


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


def _fps(rec: Recorder, seconds: float) -> float:
    """Frames analysed per second over the next `seconds`."""
    start = rec.snapshot()[-1].frames if rec.snapshot() else 0
    time.sleep(seconds)
    return round((rec.snapshot()[-1].frames - start) / seconds, 2)


def slow_detector(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    server = Rtsp(clips["long"])
    server.start()
    slow = SlowDown(SLOW_S)
    slow.slow.clear()
    rec = Recorder()
    worker = CameraWorker("bench", server.url(), slow, fps=10, on_state=rec, scene=parse_scene(GATE_SCENE))
    worker.start()
    try:
        _until(rec, lambda s: s.connected and s.frames > 5, 60)
        before = _fps(rec, 6)
        # The rate this machine sustained before the fault (the governor may already be below 10 under load).
        usual = rec.snapshot()[-1].effective_fps
        slow.slow.set()
        began = time.monotonic()
        detect = _until(rec, lambda s: s.effective_fps <= min(usual / 2, 1 / SLOW_S), 60)
        during = _fps(rec, max(4.0, 15 - (time.monotonic() - began)))
        lowest = min(s.effective_fps for s in rec.snapshot() if s.effective_fps > 0)
        lag = max(s.lag_s for s in rec.snapshot()[-20:])
        slow.slow.clear()
        recover = _until(rec, lambda s: s.effective_fps >= 0.75 * usual, 60)  # (the load of other work varies)
        after = _fps(rec, 4)
    finally:
        worker.stop()
        server.stop()
    return _summary(
        "slow_detector", rec, detect, recover, fps_before=before, fps_during=during, fps_after=after,
        effective_fps_before=usual, lowest_effective_fps=lowest, max_lag_s=lag,
    )  # fmt: skip


def slow_network(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    bitrate = clips["long"].stat().st_size / LONG_S
    server = Rtsp(clips["long"])
    server.start()
    rec = Recorder()
    try:
        with ThrottlingProxy(server.port) as proxy:
            url = f"rtsp://127.0.0.1:{proxy.port}/tcp"
            worker = CameraWorker("bench", url, Detector.from_catalog, fps=10, on_state=rec, scene=parse_scene(GATE_SCENE))
            worker.start()
            try:
                _until(rec, lambda s: s.connected and s.frames > 5, 60)
                before = _fps(rec, 4)
                mark = len(rec.snapshot())
                proxy.set(rate=bitrate / 3, latency_s=0.3)
                during = _fps(rec, 10)
                disconnected = sum(1 for s in rec.snapshot()[mark:] if not s.connected)
                proxy.set(rate=None)
                frames = rec.snapshot()[-1].frames
                recover = _until(rec, _moving(frames), 60)
                after = _fps(rec, 4)
            finally:
                worker.stop()
    finally:
        server.stop()
    return _summary(
        "slow_network", rec, None, recover, fps_before=before, fps_during=during, fps_after=after,
        disconnected_states=disconnected,
    )  # fmt: skip


def _event_stats(events: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [e["id"] for e in events]
    lost = 0
    for boot_seqs in _runs(events):
        lost += (max(boot_seqs) - min(boot_seqs) + 1) - len(set(boot_seqs))
    return {"events": len(events), "dup_events": len(ids) - len(set(ids)), "lost_events": lost}


def _runs(events: list[dict[str, Any]]) -> list[list[int]]:
    """Event seq numbers split into engine runs (a run starts above the block the last one reserved)."""
    runs: list[list[int]] = []
    for seq in sorted(e["seq"] for e in events):
        if runs and seq - runs[-1][-1] < 1000:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    return runs


def _mqtt_engine_config(root: Path, broker: Broker, engine_id: str, **mqtt: Any) -> dict[str, Any]:
    settings = {"host": "127.0.0.1", "port": broker.port, "username": broker.username, "password": broker.password}
    return {
        "engine_id": engine_id,
        "mqtt": settings | {"reconnect_max_s": 1} | mqtt,
        "cameras": [{"id": "campus", "name": "Campus", "url": str(DATA / CAMPUS), "fps": 5, "scene": MQTT_SCENE}],
        "state_file": str(root / engine_id / "state.json"),
        "state_interval_s": 1,
        "snapshot_interval_s": 0,
    }


def engine_restart(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    root = clips["long"].parent / "engine_restart"
    broker = Broker(root / "broker", username="bench", password="bench-pw")
    broker.start()
    sub = MqttRecorder(broker, session="bench-restart")
    topics = Topics("safecam", "restart")
    config = _mqtt_engine_config(root, broker, "restart")
    try:
        first = EngineProcess(root / "run1", config)
        sub.wait(lambda: len(sub.on(topics.event("campus"))) >= 5, 120)
        first.stop()
        last = sub.last(topics.state("campus"))
        began = time.monotonic()
        second = EngineProcess(root / "run2", config)
        states = sub.wait(lambda: [m.json() for m in sub.on(topics.state("campus")) if m.json()["boot"] != last["boot"]], 120)
        recover = time.monotonic() - began if states else None
        count = len(sub.on(topics.event("campus")))
        sub.wait(lambda: len(sub.on(topics.event("campus"))) >= count + 5, 120)
        second.stop()
        events = [m.json() for m in sub.on(topics.event("campus"))]
    finally:
        sub.close()
        broker.stop()
    kept = bool(states) and states[0]["gates"] == last["gates"] and states[0]["seq"] > last["seq"]
    return {"scenario": "engine_restart", "recover_s": None if recover is None else round(recover, 2), "counts_kept": kept,
            **_event_stats(events)}  # fmt: skip


def broker_tls(clips: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    root = clips["long"].parent / "broker_tls"
    tls = make_tls_files(root / "pki")
    broker = Broker(root / "broker", username="bench", password="bench-pw", tls=tls, persistent=True)
    broker.start()
    sub = MqttRecorder(broker, session="bench-tls")
    topics = Topics("safecam", "tls")
    config = _mqtt_engine_config(root, broker, "tls", port=broker.tls_port, tls=True, ca_certs=str(tls.ca))
    try:
        engine = EngineProcess(root / "engine", config)
        sub.wait(lambda: len(sub.on(topics.event("campus"))) >= 3, 120)
        before = sub.last(topics.state("campus"))
        broker.kill()
        detect = 0.0  # (the broker is gone at once)
        time.sleep(5)
        broker.start()
        began, restarted_at = time.monotonic(), time.time()
        state_topic = topics.state("campus")
        live = sub.wait(lambda: [m.json() for m in sub.on(state_topic) if m.received > restarted_at and not m.retain], 60)
        recover = time.monotonic() - began if live else None
        count = len(sub.on(topics.event("campus")))
        sub.wait(lambda: len(sub.on(topics.event("campus"))) >= count + 3, 120)
        engine.stop()
        events = [m.json() for m in sub.on(topics.event("campus"))]
        log = engine.log()
    finally:
        sub.close()
        broker.stop()
    kept = bool(live) and all(live[0]["gates"][g][d] >= before["gates"][g][d] for g in before["gates"] for d in ("in", "out"))
    return {"scenario": "broker_tls", "detect_s": detect, "recover_s": None if recover is None else round(recover, 2),
            "counts_kept": kept, "tls_log": " (TLS)" in log, **_event_stats(events)}  # fmt: skip


SCENARIOS = {
    "rtsp_kill": rtsp_kill,
    "frozen": frozen,
    "resolution": resolution,
    "unreachable": unreachable,
    "hang": hang,
    "slow_detector": slow_detector,
    "slow_network": slow_network,
    "engine_restart": engine_restart,
    "broker_tls": broker_tls,
}


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
            "long": scaled_clip(DATA, out / "long.mp4", CAMPUS, 640, 480, seconds=LONG_S),
        }
        rows = []
        for name in args.scenario or list(SCENARIOS):
            row = SCENARIOS[name](clips, args)
            emit(row)
            rows.append(row)
    print()
    columns = ["scenario", "detect_s", "recover_s", "loop_failures", "counts_monotonic", "frames", "lost_in", "lost_out"]
    columns += ["fps_before", "fps_during", "fps_after", "events", "dup_events", "lost_events", "counts_kept"]
    table(rows, columns)


if __name__ == "__main__":
    main()
