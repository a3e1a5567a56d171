"""Stream and engine faults on real sources: a frozen RTSP stream, a picture that changes size, a
camera that comes back with another resolution, and a worker step that hangs (watchdog).

The RTSP server is tests/servers/rtsp_server.py (real GStreamer), the MJPEG camera a real HTTP
server in a thread serving JPEGs of the shared clips; the detector is the real model. Only the hang
is injected (a session call that blocks once): the hang is what is under test, not inference.
Helpers here are plain functions so bench/faults.py drives the same scenarios.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.sources import ReconnectingSource
from custom_components.safecam.engine.types import SafetyEvent
from custom_components.safecam.engine.watchdog import Watchdog
from custom_components.safecam.engine.worker import CameraState, CameraWorker, FpsGovernor
from tests.servers.processes import free_port, gstreamer_missing, start_rtsp_server, stop_process
from tests.servers.throttle_proxy import ThrottlingProxy

from .mot import frames

CAMPUS = "pedestrians/tud_campus.mp4"  # 640x480, people walking across the whole clip
STADTMITTE = "pedestrians/tud_stadtmitte.mp4"  # 640x480 street scene
GATE_SCENE = {"gates": [{"name": "mid", "line": [[0.5, 0.0], [0.5, 1.0]]}]}


# --- sources (plain functions: bench/faults.py uses them too) ---------------------------------------


def ffmpeg_clip(out: Path, args: list[str]) -> Path:
    """Encode with the system ffmpeg: H.264, GOP 10, no B-frames, moov first (RTSP /file serves it as is)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("system ffmpeg not installed (apt-get install ffmpeg)")
    codec = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p"]
    subprocess.run([ffmpeg, "-v", "error", "-y", *args, *codec, "-movflags", "+faststart", str(out)], check=True, timeout=120)
    return out


def frozen_clip(data: Path, out: Path, moving_s: float = 1.0, frozen_s: float = 6.0) -> Path:
    """`moving_s` of tud_campus, then its last picture repeated for `frozen_s` (re-encoded, as a proxy
    that keeps sending a stalled camera's last frame would), then the clip moves on."""
    graph = (
        f"[0:v]fps=10,trim=0:{moving_s},setpts=PTS-STARTPTS,tpad=stop_mode=clone:stop_duration={frozen_s}[a];"
        f"[0:v]fps=10,trim=start={moving_s},setpts=PTS-STARTPTS[b];[a][b]concat=n=2:v=1[v]"
    )
    return ffmpeg_clip(out, ["-i", str(data / CAMPUS), "-filter_complex", graph, "-map", "[v]"])


def scaled_clip(data: Path, out: Path, clip: str, width: int, height: int, seconds: float = 20.0) -> Path:
    """`seconds` of `clip` (looped as needed) at 10 fps and width x height."""
    looped = ["-stream_loop", "-1", "-i", str(data / clip), "-t", str(seconds)]
    return ffmpeg_clip(out, [*looped, "-vf", f"fps=10,scale={width}:{height}"])


class Rtsp:
    """tests/servers/rtsp_server.py serving `clip` at /file on a fixed port; kill() is a crash (SIGKILL)."""

    def __init__(self, clip: Path) -> None:
        self.clip, self.port = clip, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, clip: Path | None = None) -> None:
        self.clip = clip or self.clip
        self.proc = start_rtsp_server(self.clip, self.port)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def url(self, mount: str = "/file", userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{mount}"


def jpegs(path: Path, limit: int, size: tuple[int, int] | None = None) -> list[bytes]:
    out = []
    for image in frames(path, limit):
        if size is not None:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image)
        assert ok
        out.append(buf.tobytes())
    return out


class MjpegCamera(ThreadingHTTPServer):
    """An HTTP MJPEG camera at /mjpeg sending `parts` in a loop at `fps`; `parts` can be swapped while
    streaming (a camera whose resolution is changed in its settings)."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, parts: list[bytes], fps: float = 10.0) -> None:
        super().__init__(("127.0.0.1", 0), _MjpegHandler)
        self.parts, self.fps = parts, fps
        self.closing = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="mjpeg-camera")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/mjpeg"

    def __enter__(self) -> MjpegCamera:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


class _MjpegHandler(BaseHTTPRequestHandler):
    server: MjpegCamera

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        i = 0
        try:
            while not self.server.closing.is_set():
                parts = self.server.parts
                part = parts[i % len(parts)]
                self.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(part) + part + b"\r\n"
                )
                self.wfile.flush()
                i += 1
                time.sleep(1.0 / self.server.fps)
        except (BrokenPipeError, ConnectionResetError):
            pass


class HookedSession:
    """The real onnxruntime session, its run() going through `around(run, *args, **kwargs)` (faults injected
    around a real inference: the detection itself stays real)."""

    def __init__(self, real: Any, around: Callable[..., Any]) -> None:
        self._real, self._around = real, around

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._around(self._real.run, *args, **kwargs)


class HangOnce:
    """Detector factory: the real detector, whose session blocks once, on its `after`-th call, until
    `release` is set (an inference stuck in a driver). Later sessions and calls run normally."""

    def __init__(self, after: int = 5) -> None:
        self.after = after
        self.release = threading.Event()
        self.hung = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Detector:
        detector = Detector.from_catalog()
        detector.session = HookedSession(detector.session, self._run)
        return detector

    def _run(self, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
            block = self.calls == self.after and not self.hung.is_set()
        if block:
            self.hung.set()
            self.release.wait(120)
        return run(*args, **kwargs)


@dataclass
class Recorder:
    """Collects every state and event a worker pushes (from its threads)."""

    states: list[CameraState] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)  # which thread pushed each state
    events: list[SafetyEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, state: CameraState, events: list[SafetyEvent]) -> None:
        with self.lock:
            self.states.append(state)
            self.threads.append(threading.current_thread())
            self.events.extend(events)

    def snapshot(self) -> list[CameraState]:
        with self.lock:
            return list(self.states)

    def wait(self, predicate: Callable[[list[CameraState]], bool], timeout: float = 60.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.05)
        return False


def _first(states: list[CameraState], predicate: Callable[[CameraState], bool]) -> int | None:
    return next((i for i, s in enumerate(states) if predicate(s)), None)


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("faults")
    return {
        "frozen": frozen_clip(shared_data, out / "frozen.mp4"),
        "small": scaled_clip(shared_data, out / "small.mp4", CAMPUS, 640, 480, seconds=12),
        "large": scaled_clip(shared_data, out / "large.mp4", STADTMITTE, 960, 540, seconds=12),
    }


@pytest.fixture
def gstreamer(socket_enabled: None) -> None:
    if (why := gstreamer_missing()) is not None:
        pytest.skip(f"GStreamer RTSP test server unavailable: {why}")


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., CameraWorker]]:
    made: list[CameraWorker] = []

    def make(url: str, on_state: Recorder, factory: Callable[[], Detector] = Detector.from_catalog, **kw: Any) -> CameraWorker:
        kw.setdefault("fps", 10)
        worker = CameraWorker("faults", url, factory, on_state=on_state, **kw)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


# --- frozen picture ---------------------------------------------------------------------------------


def test_frozen_rtsp_stream_is_a_fault_and_recovers(gstreamer: None, clips: dict[str, Path], worker_factory) -> None:
    """1 s of motion, then the same picture for 6 s: the camera is reported frozen (not connected),
    the stale picture is not analysed, and the camera counts as connected again once it moves."""
    server = Rtsp(clips["frozen"])
    server.start()
    rec = Recorder()
    try:
        worker = worker_factory(server.url(), rec, frozen_after_s=1.5, scene=parse_scene(GATE_SCENE))
        worker.start()
        assert rec.wait(lambda ss: any(s.error_reason == "frozen" for s in ss), 40), [s.error_reason for s in rec.snapshot()]
        assert rec.wait(lambda ss: (i := _first(ss, lambda s: s.error_reason == "frozen")) is not None
                        and any(s.connected and s.frames > ss[i].frames for s in ss[i:]), 40)  # fmt: skip
    finally:
        worker.stop()
        server.stop()
    states = rec.snapshot()
    i = _first(states, lambda s: s.error_reason == "frozen")
    assert i is not None
    frozen = states[i]
    assert not frozen.connected and frozen.disconnected_since is not None
    # No loop restart: the worker kept its pipeline (the fault is handled by the source).
    assert not any(s.error_reason == "error" for s in states)
    # Frames analysed while the camera was marked frozen: at most the one or two already queued or in
    # analysis when it was detected; the stale picture itself is withheld.
    recovered = _first(states[i:], lambda s: s.connected)
    assert recovered is not None
    assert all(s.frames <= frozen.frames + 2 for s in states[i : i + recovered])


def test_frozen_detector_tells_requantized_repeats_from_motion(shared_data: Path, clips: dict[str, Path]) -> None:
    """On decoded frames: the re-encoded frozen stretch is 'the same picture', moving people are not."""
    from custom_components.safecam.engine.sources import FrozenDetector

    images = frames(clips["frozen"])  # 10 fps: 1 s moving, 6 s frozen, then moving
    det = FrozenDetector(after_s=2.0)
    det.reset(0.0)
    frozen_at = None
    for i, image in enumerate(images):
        det.same_as_before(image, i / 10)
        if frozen_at is None and det.frozen_for(i / 10) >= det.after_s:
            frozen_at = i
    assert frozen_at is not None and 10 + 20 <= frozen_at <= 10 + 60  # frozen from frame ~10, detected 2 s later
    moving = FrozenDetector(after_s=1.0)
    moving.reset(0.0)
    for i, image in enumerate(frames(shared_data / CAMPUS)):  # 25 fps, people walking: never frozen
        moving.same_as_before(image, i / 25)
        assert moving.frozen_for(i / 25) < 1.0


# --- resolution changes -----------------------------------------------------------------------------


def test_mjpeg_camera_changes_resolution_mid_stream(shared_data: Path, worker_factory, socket_enabled: None) -> None:
    """The same connection switches from 640x480 to 960x540 and back: no loop failure, analysis and the
    anonymized view follow the new size, gate totals carry on."""
    small = jpegs(shared_data / CAMPUS, 30)
    large = jpegs(shared_data / STADTMITTE, 30, size=(960, 540))
    rec = Recorder()
    with MjpegCamera(small) as camera:
        worker = worker_factory(camera.url, rec, scene=parse_scene(GATE_SCENE))
        worker.start()
        sizes = set()

        def served_size() -> None:
            jpeg = worker.latest_jpeg()
            if jpeg is not None:
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                sizes.add((image.shape[1], image.shape[0]))

        for parts, size in ((small, (640, 480)), (large, (960, 540)), (small, (640, 480))):
            camera.parts = parts
            done = rec.wait(lambda ss, size=size: bool(ss) and (served_size(), size in sizes)[1], 30)
            assert done, f"never served a {size} frame; saw {sizes}"
            n = rec.snapshot()[-1].frames
            assert rec.wait(lambda ss, n=n: ss[-1].frames >= n + 10, 30)  # and keeps analysing at that size
        worker.stop()
    states = rec.snapshot()
    assert {(640, 480), (960, 540)} <= sizes
    assert not any(s.error_reason in ("error", "detector") for s in states), {s.error for s in states if s.error}
    gates = [s.gates["mid"] for s in states if "mid" in s.gates]
    assert gates and all(b["in"] >= a["in"] and b["out"] >= a["out"] for a, b in itertools.pairwise(gates))


def test_rtsp_camera_killed_and_back_with_another_resolution(gstreamer: None, clips: dict[str, Path], worker_factory) -> None:
    """The RTSP server crashes (SIGKILL) and comes back serving 960x540 instead of 640x480: the worker
    reports the outage, reconnects by itself and analyses the new size."""
    server = Rtsp(clips["small"])
    server.start()
    rec = Recorder()
    try:
        worker = worker_factory(server.url(), rec)
        worker.start()
        assert rec.wait(lambda ss: any(s.connected and s.frames > 3 for s in ss), 40)
        server.kill()
        assert rec.wait(lambda ss: not ss[-1].connected, 30)
        server.start(clips["large"])
        before = rec.snapshot()[-1].frames
        assert rec.wait(lambda ss: ss[-1].connected and ss[-1].frames > before + 5, 60)
        jpeg = worker.latest_jpeg()
        assert jpeg is not None
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    finally:
        worker.stop()
        server.stop()
    assert (image.shape[1], image.shape[0]) == (960, 540)
    states = rec.snapshot()
    assert any(not s.connected and s.error_reason in ("ended", "unreachable") for s in states)
    assert not any(s.error_reason in ("error", "detector") for s in states)


def test_analysis_rate_is_never_zero_while_frames_flow_after_a_stream_recovers(
    gstreamer: None, clips: dict[str, Path], worker_factory
) -> None:
    """issue 19 row 8: after an outage longer than the rate's 5 s window, the first frame analysed reported 0.0 fps,
    which Home Assistant's analysis-rate sensor (written at most every 10 s) then showed while frames flowed."""
    server = Rtsp(clips["small"])
    server.start()
    rec = Recorder()
    try:
        worker = worker_factory(server.url(), rec, fps=5)
        worker.start()
        assert rec.wait(lambda ss: any(s.connected and s.frames > 5 for s in ss), 40)
        server.kill()
        assert rec.wait(lambda ss: not ss[-1].connected, 30)
        time.sleep(6)  # longer than the 5 s window: no frame of before the outage counts
        before = rec.snapshot()[-1].frames
        server.start()
        assert rec.wait(lambda ss: ss[-1].connected and ss[-1].frames > before + 10, 60)
    finally:
        worker.stop()
        server.stop()
    after = [s for s in rec.snapshot() if s.frames > before]
    assert after and all(s.analysis_fps > 0 for s in after), [(s.frames, s.analysis_fps) for s in after[:5]]


# --- watchdog ---------------------------------------------------------------------------------------


def test_watchdog_names_the_overdue_step() -> None:
    dog = Watchdog(limit_s=0.2)
    busy = {"camera read": 0.0}
    dog.probe("camera read", lambda: busy["camera read"])
    with dog.section("analysis"):
        assert dog.overdue() is None
        time.sleep(0.3)
        late = dog.overdue()
        assert late is not None and late[0] == "analysis" and late[1] > 0.2
    assert dog.overdue() is None
    busy["camera read"] = 5.0
    assert dog.overdue() == ("camera read", 5.0)
    with pytest.raises(ValueError):
        Watchdog(0)


def test_hung_inference_is_detected_and_the_worker_restarts(shared_data: Path, worker_factory) -> None:
    """An inference that never returns: the watchdog reports "hung", starts a fresh loop without the
    caller waiting, gate totals carry on, and the abandoned thread publishes nothing when it wakes."""
    hang = HangOnce(after=8)
    rec = Recorder()
    worker = worker_factory(str(shared_data / CAMPUS), rec, factory=hang, hang_after_s=1.5, fps=25, scene=parse_scene(GATE_SCENE))
    worker.restore_gate_totals({"mid": {"in": 40, "out": 30}})
    worker.start()
    try:
        assert hang.hung.wait(60)
        assert rec.wait(lambda ss: any(s.error_reason == "hung" for s in ss), 30)
        i = _first(rec.snapshot(), lambda s: s.error_reason == "hung")
        assert i is not None
        assert rec.wait(lambda ss: any(s.frames > ss[i].frames + 10 and s.error is None for s in ss[i:]), 60)
        abandoned = [t for t in threading.enumerate() if t.name == "safecam-faults" and t is not worker._thread]
        assert len(abandoned) == 1  # the hung thread is still blocked, the new one works
    finally:
        hang.release.set()
    abandoned[0].join(timeout=30)
    assert not abandoned[0].is_alive()  # once the call returns, the abandoned run exits ...
    worker.stop()
    states = rec.snapshot()
    hung = states[i]
    assert hung.watchdog_restarts == 1 and not hung.connected and "analysis" in (hung.error or "")
    assert states[-1].watchdog_restarts == 1
    # ... and published nothing after the watchdog gave up on it.
    assert abandoned[0] not in rec.threads[i:]
    assert abandoned[0] in rec.threads[:i]  # (it did publish before it hung)
    # Counts never go back: the new run started from what the hung one had published.
    outs = [s.gates["mid"]["out"] for s in states if "mid" in s.gates]
    ins = [s.gates["mid"]["in"] for s in states if "mid" in s.gates]
    assert min(outs) >= 30 and min(ins) >= 40
    assert outs == sorted(outs) and ins == sorted(ins)


def test_reconnecting_source_reports_how_long_a_read_is_busy(socket_enabled: None) -> None:
    """busy_s() is 0 while waiting between attempts: a camera that is down is not a hang."""
    stop = threading.Event()
    seen: list[float] = []

    def on_state(connected: bool, reason: str | None) -> None:
        seen.append(src.busy_s())  # called from inside the failed attempt's backoff path
        stop.set()

    src = ReconnectingSource(f"rtsp://127.0.0.1:{free_port()}/x", on_state=on_state, stop_event=stop, timeout_s=2)
    assert src.read() is None
    assert seen == [0.0] and src.busy_s() == 0.0


# --- detector falling behind: the analysis rate is lowered, then raised again -----------------------


class SlowDown:
    """Detector factory: the real detector, whose inferences take at least `delay_s` while `slow` is set
    (a machine too weak for the configured rate). Only the extra time is injected; detection is real."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.slow = threading.Event()
        self.slow.set()

    def __call__(self) -> Detector:
        detector = Detector.from_catalog()
        detector.session = HookedSession(detector.session, self._run)
        return detector

    def _run(self, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        out = run(*args, **kwargs)
        if self.slow.is_set():
            time.sleep(max(0.0, self.delay_s - (time.monotonic() - began)))
        return out


def test_fps_governor_steps_down_to_no_less_than_one_and_back_up() -> None:
    gov = FpsGovernor(10.0, settle_s=1.0, min_samples=3)
    now = 0.0
    for _ in range(40):  # 3 s per frame: no rate keeps up, yet the floor is 1 fps
        now += 1.0
        gov.update(3.0, now)
    assert gov.fps == 1.0
    rates = [gov.fps]
    for _ in range(40):  # 20 ms per frame: headroom at every rate up to the configured one
        now += 1.0
        if gov.update(0.02, now):
            rates.append(gov.fps)
    assert rates[-1] == 10.0 and rates == sorted(rates) and len(rates) > 2  # stepwise, never overshooting
    assert FpsGovernor(0.5).floor == 0.5  # a configured rate below 1 fps is never "lowered" to 1


def test_slow_detector_lowers_the_analysis_rate_and_frames_do_not_pile_up(shared_data: Path, worker_factory) -> None:
    """Each inference takes 0.5 s at a configured 5 fps (a file, with the live cameras' adaptive rate switched
    on; files keep their rate by default): the worker settles at a rate the machine can do
    (skipping frames at the source, not queueing them: the analysed frame stays close to real time), keeps
    counting, and goes back to 5 fps once inference is fast again."""
    slow = SlowDown(0.5)
    rec = Recorder()
    scene = parse_scene(GATE_SCENE)
    worker = worker_factory(str(shared_data / CAMPUS), rec, factory=slow, fps=5, scene=scene, adaptive_fps=True)
    worker.governor.settle_s = 1.5  # (the default 3 s between steps would only make the test slower)
    worker.start()
    assert rec.wait(lambda ss: bool(ss) and 0 < ss[-1].effective_fps <= 2.0, 60), "the rate was not lowered"
    lowered = len(rec.snapshot())
    assert rec.wait(lambda ss: ss[-1].frames >= ss[lowered - 1].frames + 8, 60)
    steady = rec.snapshot()[lowered:]
    assert all(1.0 <= s.effective_fps <= 2.0 for s in steady)
    assert all(s.target_fps == 5.0 for s in steady)  # what the camera could deliver is unchanged
    # Without the lower rate the analysed frame would fall ~1.5 s further behind real time with every
    # second (0.5 s of work per 0.2 s slot); at the governed rate the lag stops growing.
    lags = [s.lag_s for s in steady]
    assert lags[-1] <= lags[0] + 1.0 and max(lags) < 5.0, lags
    assert steady[-1].dropped_frames > steady[0].dropped_frames  # skipped at the source, not queued
    slow.slow.clear()
    assert rec.wait(lambda ss: ss[-1].effective_fps == 5.0, 60), "the rate did not come back"
    worker.stop()
    states = rec.snapshot()
    assert all(s.error is None for s in states)
    outs = [s.gates["mid"]["out"] + s.gates["mid"]["in"] for s in states if "mid" in s.gates]
    assert outs == sorted(outs) and outs[-1] > 0  # people were counted all along


# --- slow network: a throttling proxy between the camera and the engine ------------------------------


@pytest.fixture(scope="module")
def long_clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scaled_clip(shared_data, tmp_path_factory.mktemp("slow") / "long.mp4", CAMPUS, 640, 480, seconds=40)


def test_slow_network_keeps_analysing_and_recovers(gstreamer: None, long_clip: Path, worker_factory) -> None:
    """The RTSP video (over TCP, through tests/servers/throttle_proxy.py) gets a third of its bitrate and
    0.3 s latency for 8 s, then full speed again: the worker keeps analysing what arrives, `connected`
    tells the truth throughout, and the gate totals only ever grow."""
    bitrate = long_clip.stat().st_size / 40  # bytes per second of the clip
    server = Rtsp(long_clip)
    server.start()
    rec = Recorder()
    try:
        with ThrottlingProxy(server.port) as proxy:
            worker = worker_factory(f"rtsp://127.0.0.1:{proxy.port}/tcp", rec, fps=10, scene=parse_scene(GATE_SCENE))
            worker.start()
            assert rec.wait(lambda ss: bool(ss) and ss[-1].connected and ss[-1].frames > 10, 60), "no video through the proxy"
            proxy.set(rate=bitrate / 3, latency_s=0.3)
            slow_from = len(rec.snapshot())
            time.sleep(8)
            slow_to = len(rec.snapshot())
            proxy.set(rate=None)
            frames = rec.snapshot()[-1].frames
            assert rec.wait(lambda ss: ss[-1].connected and ss[-1].frames > frames + 10, 60), "did not recover"
            worker.stop()
    finally:
        server.stop()
    states = rec.snapshot()
    slow = states[slow_from:slow_to]
    analysed = [s for s in slow if s.frames > states[slow_from - 1].frames]
    assert analysed, "nothing was analysed on the slow link"
    # A state that reports an analysed frame says connected, unless the source reported the loss first.
    assert all(s.connected for s in analysed if s.error_reason is None)
    assert not any(s.error_reason == "error" for s in states)  # no loop failures
    totals = [(s.gates["mid"]["in"], s.gates["mid"]["out"]) for s in states if "mid" in s.gates]
    assert all(b[0] >= a[0] and b[1] >= a[1] for a, b in itertools.pairwise(totals))
