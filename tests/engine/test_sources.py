"""Frame sources against real inputs: the shared clips, a GStreamer RTSP server, a local HTTP camera.

No mocks: RTSP tests start tests/servers/rtsp_server.py under Debian's /usr/bin/python3 (skipped with
the reason only when GStreamer is genuinely missing); HTTP tests run http.server in a thread.
Tests that open sockets request `socket_enabled` (the Home Assistant test plugin blocks sockets).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from custom_components.safecam.engine.sources import (
    Frame,
    ReconnectingSource,
    SourceError,
    open_source,
    redact_url,
    throttle,
)
from tests.servers.processes import free_port, gstreamer_missing, start_rtsp_server, stop_process

CAMPUS = "pedestrians/tud_campus.mp4"  # MPEG-4 part 2, 640x480, 25 fps, 71 frames
INTEL = "pedestrians/intel_one_by_one_person_first60s.mp4"  # H.264, 768x432, 10 fps
CLIP_FRAMES = 20  # the H.264 fixture: 2 s at 10 fps


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def h264_clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of the intel clip as H.264 (GOP 10, no B-frames, moov first) for RTSP /file and HTTP video."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("system ffmpeg not installed (apt-get install ffmpeg); needed to build the H.264 fixture")
    out = tmp_path_factory.mktemp("sources") / "clip.mp4"
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-y", "-i", str(shared_data / INTEL), "-t", "2", "-an"),
            *("-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p"),
            *("-movflags", "+faststart", str(out)),
        ],
        check=True,
        timeout=60,
    )
    return out


@pytest.fixture(scope="session")
def gstreamer() -> None:
    if (why := gstreamer_missing()) is not None:
        pytest.skip(f"GStreamer RTSP test server unavailable: {why}")


class RtspServer:
    """tests/servers/rtsp_server.py on free ports: /file and /live on `port`, auth-only /live on `auth_port`."""

    def __init__(self, clip: Path) -> None:
        self.clip, self.port, self.auth_port = clip, free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_rtsp_server(self.clip, self.port, self.auth_port)

    def kill(self) -> None:
        """A crash: SIGKILL by PID, no goodbye to the clients."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def url(self, mount: str, *, userinfo: str = "", auth: bool = False) -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.auth_port if auth else self.port}{mount}"


@pytest.fixture
def rtsp(socket_enabled: None, gstreamer: None, h264_clip: Path) -> Iterator[RtspServer]:
    server = RtspServer(h264_clip)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _jpeg(value: int, w: int = 64, h: int = 48) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), value, np.uint8))
    assert ok
    return buf.tobytes()


def _with_exif_thumbnail(jpeg: bytes) -> bytes:
    """Insert an APP1 segment holding a complete tiny JPEG, as cameras embed EXIF thumbnails:
    a reader that stops at the first EOI would cut the frame inside the thumbnail."""
    payload = b"Exif\x00\x00" + _jpeg(0, 8, 8)
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def _grey(value: int) -> int:
    return value * 20 % 250


MJPEG_PARTS = 12


class _CameraHandler(BaseHTTPRequestHandler):
    """A small IP camera: snapshot, MJPEG, auth-protected snapshot, an HTML page and an mp4 (with Range)."""

    server: _CameraServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/snapshot.jpg":
                self._send(200, "image/jpeg", _jpeg(_grey(self.server.next_snapshot())))
            elif path == "/secure.jpg":
                if self.headers.get("Authorization") != "Basic dXNlcjpzZWNyZXQ=":  # user:secret
                    self._send(401, "text/plain", b"unauthorized", {"WWW-Authenticate": 'Basic realm="camera"'})
                else:
                    self._send(200, "image/jpeg", _jpeg(50))
            elif path == "/mjpeg":
                self._mjpeg()
            elif path == "/index.html":
                self._send(200, "text/html; charset=utf-8", b"<html><body>camera login</body></html>")
            elif path == "/clip.mp4":
                self._mp4()
            else:
                self._send(404, "text/plain", b"not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream: normal for MJPEG

    def _mjpeg(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(MJPEG_PARTS):
            part = _jpeg(_grey(i))
            if i == 2:
                part = _with_exif_thumbnail(part)
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(part) + part + b"\r\n")
            self.wfile.flush()
            time.sleep(0.02)

    def _mp4(self) -> None:
        data = self.server.clip.read_bytes()
        if m := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):
            start = int(m[1])
            end = int(m[2]) if m[2] else len(data) - 1
            headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"}
            self._send(206, "video/mp4", data[start : end + 1], headers)
        else:
            self._send(200, "video/mp4", data, {"Accept-Ranges": "bytes"})


class _CameraServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing lingers after a test
    block_on_close = True

    def __init__(self, clip: Path) -> None:
        super().__init__(("127.0.0.1", 0), _CameraHandler)
        self.clip = clip
        self._snapshots = 0
        self._lock = threading.Lock()

    def next_snapshot(self) -> int:
        with self._lock:
            self._snapshots += 1
            return self._snapshots


@pytest.fixture
def http_camera(socket_enabled: None, h264_clip: Path) -> Iterator[str]:
    server = _CameraServer(h264_clip)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-camera")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _error(url: str, **kw: float) -> SourceError:
    with pytest.raises(SourceError) as info:
        open_source(url, **kw)
    return info.value


# --- files ------------------------------------------------------------------------------------------


def test_file_reads_every_frame_with_media_time(shared_data: Path) -> None:
    with open_source(str(shared_data / CAMPUS)) as src:
        assert not src.is_live
        assert src.fps == 25.0
        assert src.size == (640, 480)
        frames = list(src)
        assert src.read() is None  # stays at the end
    assert len(frames) == 71
    for i, frame in enumerate(frames):
        assert isinstance(frame, Frame)
        assert frame.index == i
        assert frame.t == pytest.approx(i / 25)
        assert frame.image.shape == (480, 640, 3)
        assert frame.image.dtype == np.uint8


def test_file_url(shared_data: Path) -> None:
    with open_source((shared_data / CAMPUS).as_uri()) as src:
        frame = src.read()
    assert frame is not None
    assert frame.image.shape == (480, 640, 3)


def test_throttle_uses_media_time_not_wall_clock(shared_data: Path) -> None:
    frames = throttle(open_source(str(shared_data / CAMPUS)), 5)
    try:
        got = list(frames)
    finally:
        frames.close()
    # 25 fps at 5 per second of media time: every 5th frame, 2.8 s -> 15 frames, however fast decoding is.
    assert [f.index for f in got] == list(range(0, 71, 5))
    assert np.allclose(np.diff([f.t for f in got]), 0.2)
    assert frames.dropped == 71 - 15
    assert frames.fps == 5


def test_throttle_above_source_rate_keeps_everything(shared_data: Path) -> None:
    frames = throttle(open_source(str(shared_data / CAMPUS)), 30)
    try:
        assert len(list(frames)) == 71
    finally:
        frames.close()
    assert frames.dropped == 0


def test_still_image_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "person.jpg"
    path.write_bytes(_jpeg(120, 32, 24))
    with open_source(str(path)) as src:
        frame = src.read()
        assert src.read() is None
    assert frame is not None
    assert frame.image.shape == (24, 32, 3)
    assert (frame.index, frame.t) == (0, 0.0)


def test_files_that_are_not_video(tmp_path: Path, shared_data: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video\n")
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes())
    broken_jpg = tmp_path / "broken.jpg"
    broken_jpg.write_bytes(b"\xff\xd8\xff" + bytes(100))
    # FFmpeg would "play" a CSV as ANSI art through its tty demuxer: must still be not_video.
    for path in (text, noise, broken_jpg, shared_data / "pedestrians/tud_campus.gt.txt", tmp_path):
        assert _error(str(path)).reason == "not_video", path


def test_missing_file_is_unreachable(tmp_path: Path) -> None:
    err = _error(str(tmp_path / "nope.mp4"))
    assert err.reason == "unreachable"
    assert "not found" in str(err)


def test_unsupported_scheme_and_no_credentials_in_message() -> None:
    err = _error("ftp://admin:hunter2@192.0.2.1/video.mp4")
    assert err.reason == "unsupported"
    assert "hunter2" not in str(err)
    assert "admin" not in str(err)


def test_redact_url() -> None:
    assert redact_url("rtsp://admin:hunter2@cam.local:554/Streaming/101") == "rtsp://***@cam.local:554/Streaming/101"
    assert redact_url("rtsp://cam.local/live") == "rtsp://cam.local/live"
    assert redact_url("/media/clip.mp4") == "/media/clip.mp4"
    msg = redact_url("failed http://u:p@a/x and rtsps://v:q@b/y: timeout")
    assert msg == "failed http://***@a/x and rtsps://***@b/y: timeout"
    # An unencoded '@' in the password must not leak its tail.
    assert redact_url("rtsp://admin:p@ss@cam/live") == "rtsp://***@cam/live"
    # Snapshot URLs of many cameras carry credentials in the query.
    assert redact_url("http://cam/cgi-bin/snap.cgi?channel=1&user=admin&password=hunter2") == (
        "http://cam/cgi-bin/snap.cgi?channel=1&user=***&password=***"
    )


def test_source_error_redacts_and_validates_reason() -> None:
    err = SourceError("unreachable", "cannot reach rtsp://admin:hunter2@cam/live")
    assert "hunter2" not in str(err)
    assert err.reason == "unreachable"
    with pytest.raises(ValueError):
        SourceError("nope", "x")  # type: ignore[arg-type]


def test_reconnecting_source_on_a_file_does_not_reconnect(shared_data: Path, tmp_path: Path) -> None:
    src = ReconnectingSource(str(shared_data / CAMPUS))
    try:
        frames = list(src)
    finally:
        src.close()
    assert len(frames) == 71
    assert frames[-1].t == pytest.approx(70 / 25)
    assert src.reconnects == 0
    with pytest.raises(SourceError) as info:
        ReconnectingSource(str(tmp_path / "missing.mp4")).read()
    assert info.value.reason == "unreachable"


# --- RTSP -------------------------------------------------------------------------------------------


def test_rtsp_live(rtsp: RtspServer, socket_enabled: None) -> None:
    with open_source(rtsp.url("/live"), timeout_s=10) as src:
        assert src.is_live
        assert src.fps == 15.0
        assert src.size == (640, 480)
        frames = [src.read() for _ in range(10)]
    assert all(f is not None and f.image.shape == (480, 640, 3) for f in frames)
    ts = [f.t for f in frames if f is not None]
    assert ts == sorted(ts)
    assert [f.index for f in frames if f is not None] == list(range(10))


def test_rtsp_file_mount_ends(rtsp: RtspServer, socket_enabled: None) -> None:
    frames: list[Frame] = []
    with open_source(rtsp.url("/file"), timeout_s=5) as src:
        assert src.size == (768, 432)
        with pytest.raises(SourceError) as info:
            while True:
                frame = src.read()
                assert frame is not None  # a live source raises instead of returning None
                frames.append(frame)
    assert info.value.reason == "ended"
    assert CLIP_FRAMES - 2 <= len(frames) <= CLIP_FRAMES
    assert frames[0].image.shape == (432, 768, 3)


def test_rtsp_auth(rtsp: RtspServer, socket_enabled: None) -> None:
    assert _error(rtsp.url("/live", auth=True)).reason == "auth_failed"
    err = _error(rtsp.url("/live", auth=True, userinfo="user:hunter2-wrong@"))
    assert err.reason == "auth_failed"
    assert "hunter2" not in str(err)
    with open_source(rtsp.url("/live", auth=True, userinfo="user:secret@")) as src:
        frame = src.read()
    assert frame is not None
    assert frame.image.shape == (480, 640, 3)
    assert _error(rtsp.url("/no-such-path")).reason == "unreachable"


def test_rtsp_unreachable_fails_fast(socket_enabled: None) -> None:
    port = free_port()  # nothing listens here
    started = time.monotonic()
    err = _error(f"rtsp://admin:hunter2@127.0.0.1:{port}/live", timeout_s=3)
    assert err.reason == "unreachable"
    assert time.monotonic() - started < 3
    assert "hunter2" not in str(err)


def test_reconnect_after_server_crash(rtsp: RtspServer, socket_enabled: None) -> None:
    states: list[tuple[bool, str | None]] = []
    disconnected, stop = threading.Event(), threading.Event()

    def on_state(connected: bool, reason: str | None) -> None:
        states.append((connected, reason))
        if not connected:
            disconnected.set()

    def restart() -> None:
        if disconnected.wait(20):
            rtsp.start()  # same port: the camera comes back

    src = ReconnectingSource(
        rtsp.url("/live"), backoff_initial=0.2, backoff_max=1.0, on_state=on_state, stop_event=stop, timeout_s=5
    )
    restarter = threading.Thread(target=restart, name="rtsp-restart")
    watchdog = threading.Timer(45, stop.set)  # never hang the suite: a stopped read returns None
    watchdog.start()
    try:
        before = [src.read() for _ in range(3)]
        assert all(f is not None for f in before)
        assert src.connected and states == [(True, None)]
        rtsp.kill()
        restarter.start()
        after: list[Frame] = []
        while len(after) < 3:
            frame = src.read()
            assert frame is not None, f"no frames after the restart; states {states}"
            if src.reconnects >= 1:
                after.append(frame)
        assert src.connected
    finally:
        stop.set()
        watchdog.cancel()
        watchdog.join()
        if restarter.ident is not None:  # started
            disconnected.set()
            restarter.join()
        src.close()
    assert src.reconnects >= 1
    assert states[0] == (True, None) and states[-1] == (True, None)
    assert any(not connected and reason in ("ended", "unreachable") for connected, reason in states)
    # One timeline and one running index across the reconnect.
    assert after[0].t > before[-1].t  # type: ignore[union-attr]
    indices = [f.index for f in before if f is not None] + [f.index for f in after]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)


def test_reconnecting_source_stops_while_unreachable(socket_enabled: None) -> None:
    stop = threading.Event()
    states: list[tuple[bool, str | None]] = []

    def on_state(connected: bool, reason: str | None) -> None:
        states.append((connected, reason))
        stop.set()  # the owner gives up: the pending backoff wait ends at once

    src = ReconnectingSource(f"rtsp://127.0.0.1:{free_port()}/live", on_state=on_state, stop_event=stop, timeout_s=2)
    started = time.monotonic()
    assert src.read() is None
    assert time.monotonic() - started < 2
    assert states == [(False, "unreachable")]
    assert not src.connected
    assert src.last_error is not None and src.last_error.reason == "unreachable"


# --- HTTP -------------------------------------------------------------------------------------------


def test_http_snapshot_polling(http_camera: str) -> None:
    with open_source(f"{http_camera}/snapshot.jpg") as src:
        assert src.is_live and src.size == (64, 48)
        frames = [src.read() for _ in range(3)]
    # One GET per read: each frame is a new snapshot.
    means = [round(float(f.image.mean())) for f in frames if f is not None]
    assert means == pytest.approx([_grey(1), _grey(2), _grey(3)], abs=3)


def test_http_snapshot_throttle_waits_instead_of_dropping(http_camera: str) -> None:
    frames = throttle(open_source(f"{http_camera}/snapshot.jpg"), 20)
    try:
        started = time.monotonic()
        got = [frames.read() for _ in range(5)]
        elapsed = time.monotonic() - started
    finally:
        frames.close()
    assert all(f is not None for f in got)
    assert frames.dropped == 0  # a snapshot is fetched when due, never fetched and thrown away
    assert elapsed >= 4 * 0.05 - 0.01


def test_http_mjpeg(http_camera: str) -> None:
    with open_source(f"{http_camera}/mjpeg") as src:
        assert src.is_live
        frames: list[Frame] = []
        with pytest.raises(SourceError) as info:
            while True:
                frame = src.read()
                assert frame is not None
                frames.append(frame)
    assert info.value.reason == "ended"  # the camera closed the stream after its parts
    assert len(frames) == MJPEG_PARTS
    # Every part decoded whole, including the one with an EXIF thumbnail (its own SOI/EOI) inside.
    assert all(f.image.shape == (48, 64, 3) for f in frames)
    assert [round(float(f.image.mean())) for f in frames] == pytest.approx([_grey(i) for i in range(MJPEG_PARTS)], abs=3)
    assert [f.index for f in frames] == list(range(MJPEG_PARTS))


def test_throttle_on_live_mjpeg_drops_by_time(http_camera: str) -> None:
    frames = throttle(open_source(f"{http_camera}/mjpeg"), 10)  # the camera sends ~50 fps
    try:
        got = [frames.read() for _ in range(3)]
    finally:
        frames.close()
    ts = [f.t for f in got if f is not None]
    assert len(ts) == 3
    assert ts[-1] - ts[0] >= 2 * 0.1 - 1e-6  # due times on a 0.1 s grid
    assert frames.dropped >= 4


def test_http_auth(http_camera: str) -> None:
    assert _error(f"{http_camera}/secure.jpg").reason == "auth_failed"
    err = _error(f"http://user:hunter2-wrong@{http_camera.removeprefix('http://')}/secure.jpg")
    assert err.reason == "auth_failed"
    assert "hunter2" not in str(err)
    with open_source(f"http://user:secret@{http_camera.removeprefix('http://')}/secure.jpg") as src:
        frame = src.read()
    assert frame is not None
    assert round(float(frame.image.mean())) == pytest.approx(50, abs=3)


def test_http_html_page_is_not_video(http_camera: str) -> None:
    assert _error(f"{http_camera}/index.html").reason == "not_video"
    assert _error(f"{http_camera}/missing").reason == "unreachable"  # 404


def test_http_video_goes_to_opencv(http_camera: str) -> None:
    with open_source(f"{http_camera}/clip.mp4") as src:
        assert not src.is_live  # a finite body: media time, like a file
        frames = list(src)
    assert len(frames) == CLIP_FRAMES
    assert frames[0].image.shape == (432, 768, 3)
    assert frames[-1].t == pytest.approx((CLIP_FRAMES - 1) / 10)


def test_http_unreachable(socket_enabled: None) -> None:
    err = _error(f"http://admin:hunter2@127.0.0.1:{free_port()}/snapshot.jpg", timeout_s=2)
    assert err.reason == "unreachable"
    assert "hunter2" not in str(err)
