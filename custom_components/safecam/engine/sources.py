"""Frame sources: video files, still images, RTSP, HTTP MJPEG / snapshot / video, with fps limiting and reconnect.

    source = open_source("rtsp://user:pass@cam/stream")    # fails fast with SourceError(reason, message)
    for frame in throttle(source, 5):                       # at most 5 frames per second of source time
        ...

Every error message and log line goes through `redact_url`, so credentials never leave this module.
A source is read from one thread; `ReconnectingSource` is stopped from another thread via its
`stop_event` (a blocked read returns within the source's read timeout).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
import math
import os
import random
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

from .redact import redact_url  # (pure Python: the integration redacts with it without OpenCV)

_LOGGER = logging.getLogger(__name__)

Reason = Literal["unreachable", "not_video", "auth_failed", "unsupported", "ended", "frozen"]
REASONS: frozenset[str] = frozenset(get_args(Reason))

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
_RTSP_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
# FFmpeg "decodes" text files as ANSI art (tty demuxer); a CSV must not become a video.
_TEXT_ART_FOURCCS = frozenset({"ansi", "xbin"})
_MAX_HTTP_BODY = 32 * 1024 * 1024  # a snapshot or one MJPEG part larger than this is not a camera image
_READ_CHUNK = 64 * 1024
_MAX_FPS = 240.0  # RTSP often reports 90000 (the RTP clock) or 0 as fps; treat such values as unknown
FROZEN_AFTER_S = 120.0  # a live picture that has not changed for this long is a fault (camera or encoder hung)
# "Unchanged" = against the picture at the start of the stretch, the mean difference is below half a
# grey level and at most 0.1 % of the samples differ by more than 12 levels. A stalled stream that is
# re-encoded (a proxy repeating its last frame) differs only by requantization at each I-frame
# (measured: mean 0.3, max 9); light changes, people and sensor noise move a working camera out of
# it within the window. The window must be long: a still, empty, well-lit scene looks the same.
_FROZEN_MEAN = 0.5
_FROZEN_OUTLIER_LEVELS = 12
_FROZEN_OUTLIER_FRACTION = 0.001
_FROZEN_STRIDE = 8  # sample every 8th pixel in both directions: cheap, still thousands of samples


class SourceError(Exception):
    """A source cannot be opened or read. `reason` is machine readable, the message is for people."""

    def __init__(self, reason: Reason, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown SourceError reason {reason!r}")
        super().__init__(redact_url(message))
        self.reason: Reason = reason


# --- frames and the source interface ----------------------------------------------------------------


@dataclass(slots=True)
class Frame:
    image: np.ndarray  # HxWx3 uint8 BGR
    t: float  # seconds: media time for files, monotonic time since open for live sources
    index: int  # running count of frames delivered by the source (0-based)
    prepared: Any = None  # what BackgroundReader's `prepare` computed from this frame, if any


class FrameSource(ABC):
    """Common interface. `read()` returns None only at the end of a finite source (file, image)."""

    is_live: bool = False
    # Frames are fetched on demand (snapshot polling): throttling waits instead of fetching and dropping.
    on_demand: bool = False
    fps: float | None = None  # nominal frame rate, None when unknown
    size: tuple[int, int] = (0, 0)  # (width, height) of the first frame
    t0: float = 0.0  # time.monotonic() at open; live frame times are relative to it
    name: str = ""  # redacted URL or path, for messages

    @abstractmethod
    def read(self) -> Frame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} live={self.is_live} fps={self.fps} size={self.size}>"


def _valid_fps(value: float) -> float | None:
    return float(value) if math.isfinite(value) and 0 < value <= _MAX_FPS else None


def _decode_image(data: bytes | bytearray | memoryview) -> np.ndarray | None:
    if not data:
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.ndim == 3 and image.shape[2] == 3 else None


# --- OpenCV (files, RTSP, HTTP video) ---------------------------------------------------------------


class _CaptureSource(FrameSource):
    """cv2.VideoCapture with the FFMPEG backend; the frame read during open is returned first."""

    def __init__(
        self, cap: cv2.VideoCapture, first: np.ndarray, *, name: str, is_live: bool, t0: float, read_timeout_s: float
    ) -> None:
        self._cap: cv2.VideoCapture | None = cap
        self.name, self.is_live, self.t0 = name, is_live, t0
        self.fps = _valid_fps(cap.get(cv2.CAP_PROP_FPS))
        self._pending: np.ndarray | None = first
        self._pending_t = self._media_time(0) if not is_live else time.monotonic() - t0
        self._next = 0
        self.size = (int(first.shape[1]), int(first.shape[0]))
        self._read_timeout_s = read_timeout_s

    def _media_time(self, index: int) -> float:
        if self.fps:
            return index / self.fps
        # Unknown fps: fall back to the container timestamp of the frame just decoded.
        return self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000 if self._cap is not None else 0.0

    def read(self) -> Frame | None:
        if self._cap is None:
            return None
        if self._pending is not None:
            image, t = self._pending, self._pending_t
            self._pending = None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                if not self.is_live:
                    return None  # end of file
                why = f"closed by the server, or no frame for {self._read_timeout_s:.0f} s"
                raise SourceError("ended", f"{self.name}: the stream stopped ({why})")
            t = time.monotonic() - self.t0 if self.is_live else self._media_time(self._next)
        frame = Frame(image, t, self._next)
        self._next += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _open_capture(target: str, *, name: str, is_live: bool, timeout_s: float, t0: float) -> _CaptureSource:
    """Open with OpenCV and decode one frame; raises SourceError("not_video") when either fails."""
    ms = max(1, int(timeout_s * 1000))
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms] if is_live else []
    cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    try:
        if not cap.isOpened():
            raise SourceError("not_video", f"{name}: OpenCV/FFmpeg cannot open it as video")
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1").lower()
        if fourcc in _TEXT_ART_FOURCCS:
            raise SourceError("not_video", f"{name}: is a text file, not video")
        ok, first = cap.read()
        if not ok or first is None:
            raise SourceError("not_video", f"{name}: opened, but no video frame could be decoded")
    except BaseException:
        cap.release()
        raise
    return _CaptureSource(cap, first, name=name, is_live=is_live, t0=t0, read_timeout_s=timeout_s)


# --- still image ------------------------------------------------------------------------------------


class _ImageSource(FrameSource):
    """A still image yields itself once (the CLI `anonymize` treats images and videos alike)."""

    def __init__(self, image: np.ndarray, name: str) -> None:
        self._image: np.ndarray | None = image
        self.name = name
        self.size = (int(image.shape[1]), int(image.shape[0]))
        self.t0 = time.monotonic()

    def read(self) -> Frame | None:
        if self._image is None:
            return None
        image, self._image = self._image, None
        return Frame(image, 0.0, 0)

    def close(self) -> None:
        self._image = None


# --- local files ------------------------------------------------------------------------------------


def _looks_like_text(head: bytes) -> bool:
    """Video containers have NUL bytes in their first KiB; UTF-8 text without any NUL is not video."""
    if not head or b"\x00" in head:
        return False
    for cut in range(4):  # the head may end inside a multi-byte character
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return not head.startswith((b"#EXTM3U", b"YUV4MPEG2"))  # text-headed formats FFmpeg plays
    return False


def _open_file(path_text: str, timeout_s: float) -> FrameSource:
    path = Path(path_text).expanduser()
    name = str(path)
    if not path.exists():
        raise SourceError("unreachable", f"{name}: file not found")
    if not path.is_file():
        raise SourceError("not_video", f"{name}: not a regular file")
    try:
        with path.open("rb") as fh:
            head = fh.read(2048)
    except OSError as err:
        raise SourceError("unreachable", f"{name}: cannot read ({err.strerror or err})") from err
    if _looks_like_text(head):
        raise SourceError("not_video", f"{name}: is a text file, not video")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError("not_video", f"{name}: cannot decode the image")
        return _ImageSource(image, name)
    try:
        return _open_capture(str(path), name=name, is_live=False, timeout_s=timeout_s, t0=time.monotonic())
    except SourceError:
        # An image without an image suffix (e.g. "snapshot") is still usable.
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise
        return _ImageSource(image, name)


def _file_url_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise SourceError("unsupported", f"{redact_url(url)}: file:// URLs must be local (file:///path)")
    return urllib.request.url2pathname(urllib.parse.unquote(parts.path))


# --- RTSP -------------------------------------------------------------------------------------------


def _host_port(parts: urllib.parse.SplitResult, default: int, name: str) -> tuple[str, int]:
    try:
        port = parts.port or default
    except ValueError as err:
        raise SourceError("unreachable", f"{name}: invalid port") from err
    if not parts.hostname:
        raise SourceError("unreachable", f"{name}: no host in the URL")
    return parts.hostname, port


def _connect(host: str, port: int, timeout_s: float, name: str) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout_s)
    except socket.gaierror as err:
        raise SourceError("unreachable", f"{name}: cannot resolve host {host} ({err.strerror or err})") from err
    except TimeoutError as err:
        raise SourceError("unreachable", f"{name}: no answer from {host}:{port} within {timeout_s:.1f} s") from err
    except OSError as err:
        raise SourceError("unreachable", f"{name}: cannot connect to {host}:{port} ({err.strerror or err})") from err


def _strip_userinfo(parts: urllib.parse.SplitResult) -> tuple[str, str | None, str | None]:
    """(URL without userinfo, user, password), percent-decoded as RFC 3986 says."""
    netloc = parts.netloc.rsplit("@", 1)[-1]
    clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    if "@" not in parts.netloc:
        return clean, None, None
    userinfo = parts.netloc.rsplit("@", 1)[0]
    user, _, password = userinfo.partition(":")
    return clean, urllib.parse.unquote(user), urllib.parse.unquote(password)


def _parse_challenges(headers: list[str]) -> dict[str, dict[str, str]]:
    """WWW-Authenticate values -> {"digest": {"realm": ..., "nonce": ...}, "basic": {...}}."""
    out: dict[str, dict[str, str]] = {}
    for value in headers:
        scheme, _, params = value.strip().partition(" ")
        out[scheme.lower()] = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', params)}
    return out


def _md5(text: str) -> str:
    # RTSP digest auth is defined on MD5; not a security use of the hash on our side (FIPS builds allow this).
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _rtsp_authorization(challenges: dict[str, dict[str, str]], user: str, password: str, uri: str) -> str | None:
    if "digest" in challenges:
        c = challenges["digest"]
        realm, nonce = c.get("realm", ""), c.get("nonce", "")
        ha1 = _md5(f"{user}:{realm}:{password}")
        ha2 = _md5(f"DESCRIBE:{uri}")
        if "auth" in c.get("qop", "").split(","):
            cnonce = os.urandom(8).hex()
            response = _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
            extra = f', qop=auth, nc=00000001, cnonce="{cnonce}"'
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
            extra = ""
        return f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}"{extra}'
    if "basic" in challenges:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return None


def _rtsp_describe(sock: socket.socket, uri: str, cseq: int, authorization: str | None) -> tuple[int, list[str]]:
    """Send DESCRIBE, return (status, WWW-Authenticate values). Raises OSError/ValueError on a non-RTSP answer."""
    lines = [f"DESCRIBE {uri} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp", "User-Agent: safecam"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > 65536:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = head[0].split()
    if len(status) < 2 or not status[0].startswith("RTSP/"):
        raise ValueError("not an RTSP answer")
    auth = [line.split(":", 1)[1] for line in head[1:] if line.lower().startswith("www-authenticate:")]
    return int(status[1]), auth


def _rtsp_diagnose(url: str, host: str, port: int, timeout_s: float, name: str) -> SourceError:
    """OpenCV gives no reason when it cannot open a stream: ask the server ourselves with DESCRIBE."""
    parts = urllib.parse.urlsplit(url)
    uri, user, password = _strip_userinfo(parts)
    try:
        sock = _connect(host, port, timeout_s, name)
    except SourceError as err:
        return err
    try:
        if parts.scheme.lower() == "rtsps":
            # Classification only (FFmpeg already connected without verifying); cameras use self-signed certs.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=host)
        status, challenges = _rtsp_describe(sock, uri, 1, None)
        if status == 401 and user is not None:
            authorization = _rtsp_authorization(_parse_challenges(challenges), user, password or "", uri)
            if authorization:
                status, _ = _rtsp_describe(sock, uri, 2, authorization)
    except (OSError, ValueError) as err:
        return SourceError("not_video", f"{name}: {host}:{port} does not answer like an RTSP server ({err})")
    finally:
        sock.close()
    if status == 401:
        what = "rejected the credentials" if user is not None else "requires credentials (add user:password@ to the URL)"
        return SourceError("auth_failed", f"{name}: the camera {what}")
    if status == 403:
        return SourceError("auth_failed", f"{name}: access forbidden (403)")
    if status == 404:
        return SourceError("unreachable", f"{name}: no such stream path on the camera (404)")
    if status == 200:
        return SourceError("not_video", f"{name}: the camera answers, but no video could be decoded from the stream")
    return SourceError("unreachable", f"{name}: the camera answered RTSP {status}")


def _open_rtsp(url: str, timeout_s: float) -> FrameSource:
    name = redact_url(url)
    parts = urllib.parse.urlsplit(url)
    host, port = _host_port(parts, _RTSP_DEFAULT_PORTS[parts.scheme.lower()], name)
    t0 = time.monotonic()
    # A plain TCP connect first: an unreachable camera fails within timeout_s with a precise reason.
    _connect(host, port, timeout_s, name).close()
    try:
        return _open_capture(url, name=name, is_live=True, timeout_s=timeout_s, t0=t0)
    except SourceError:
        remaining = max(1.0, timeout_s - (time.monotonic() - t0))
        raise _rtsp_diagnose(url, host, port, remaining, name) from None


# --- HTTP -------------------------------------------------------------------------------------------


class _Http:
    """urllib with credentials taken from the URL's userinfo (never sent in the URL itself).

    Basic or Digest is answered when the camera challenges (401); after one Basic success urllib sends
    it preemptively, so snapshot polling costs one request per frame.
    """

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url, user, password = _strip_userinfo(parts)
        self.name = redact_url(url)
        self.timeout_s = timeout_s
        self.has_credentials = user is not None
        handlers: list[urllib.request.BaseHandler] = []
        if user is not None:
            mgr = urllib.request.HTTPPasswordMgrWithPriorAuth()
            mgr.add_password(None, self.url, user, password or "")
            handlers = [urllib.request.HTTPBasicAuthHandler(mgr), urllib.request.HTTPDigestAuthHandler(mgr)]
        self._opener = urllib.request.build_opener(*handlers)

    def get(self) -> HTTPResponse:
        request = urllib.request.Request(self.url, headers={"User-Agent": "safecam", "Accept": "*/*"})
        try:
            return self._opener.open(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code in (401, 403):
                what = (
                    "rejected the credentials" if self.has_credentials else "requires credentials (add user:password@ to the URL)"
                )
                raise SourceError("auth_failed", f"{self.name}: the camera {what} (HTTP {err.code})") from None
            raise SourceError("unreachable", f"{self.name}: HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            raise SourceError("unreachable", f"{self.name}: cannot connect ({err.reason})") from None
        except TimeoutError:
            raise SourceError("unreachable", f"{self.name}: no answer within {self.timeout_s:.1f} s") from None
        except (OSError, ValueError) as err:  # ValueError: urllib's digest handler on odd challenges
            raise SourceError("unreachable", f"{self.name}: {err}") from None


def _read_body(resp: HTTPResponse, name: str) -> bytes:
    try:
        body = resp.read(_MAX_HTTP_BODY + 1)
    except (OSError, ValueError) as err:
        raise SourceError("ended", f"{name}: the connection broke while reading ({err})") from None
    finally:
        resp.close()
    if len(body) > _MAX_HTTP_BODY:
        raise SourceError("not_video", f"{name}: the answer is larger than {_MAX_HTTP_BODY >> 20} MiB, not a camera image")
    return body


class _SnapshotSource(FrameSource):
    """One GET per read; the caller (or `throttle`) sets the pace."""

    is_live = True
    on_demand = True

    def __init__(self, http: _Http, first: np.ndarray, t0: float) -> None:
        self._http: _Http | None = http
        self._pending: np.ndarray | None = first
        self._pending_t = time.monotonic() - t0
        self._next = 0
        self.name, self.t0 = http.name, t0
        self.size = (int(first.shape[1]), int(first.shape[0]))

    def read(self) -> Frame | None:
        if self._http is None:
            return None
        if self._pending is not None:
            image, t = self._pending, self._pending_t
            self._pending = None
        else:
            body = _read_body(self._http.get(), self.name)
            t = time.monotonic() - self.t0
            decoded = _decode_image(body)
            if decoded is None:
                raise SourceError("not_video", f"{self.name}: the snapshot is not a decodable image")
            image = decoded
        frame = Frame(image, t, self._next)
        self._next += 1
        return frame

    def close(self) -> None:
        self._http = None


def _jpeg_span(buf: bytearray) -> tuple[int, int] | None:
    """(start, end) of the first complete JPEG in `buf`, None if more bytes are needed.

    Walks the marker segments instead of searching for the first EOI, so the EXIF thumbnail many
    cameras embed (its own SOI..EOI inside APP1) does not cut the frame short.
    """
    soi = buf.find(b"\xff\xd8\xff")
    if soi < 0:
        return None
    n, i = len(buf), soi + 2
    while True:
        if i + 1 >= n:
            return None
        if buf[i] != 0xFF:  # not at a marker: malformed, fall back to the first EOI
            eoi = buf.find(b"\xff\xd9", i)
            return None if eoi < 0 else (soi, eoi + 2)
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return soi, i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        if i + 3 >= n:
            return None
        i += 2 + ((buf[i + 2] << 8) | buf[i + 3])
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not FF00 or RSTn
            while True:
                j = buf.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return None
                following = buf[j + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    i = j + 2
                elif following == 0xFF:
                    i = j + 1
                else:
                    i = j
                    break


class _MjpegSource(FrameSource):
    """multipart/x-mixed-replace: JPEG parts are found by their SOI/EOI markers, not by the
    (often malformed) part headers."""

    is_live = True

    def __init__(self, http: _Http, resp: HTTPResponse, t0: float) -> None:
        self._resp: HTTPResponse | None = resp
        self._buf = bytearray()
        self._next = 0
        self.name, self.t0 = http.name, t0
        self._timeout_s = http.timeout_s
        self._pending: Frame | None = None
        self._pending = self._next_frame(opening=True)  # validate: the stream must carry JPEG
        self.size = (int(self._pending.image.shape[1]), int(self._pending.image.shape[0]))

    def _next_frame(self, *, opening: bool = False) -> Frame:
        resp = self._resp
        assert resp is not None
        failed_decodes = 0
        while True:
            span = _jpeg_span(self._buf)
            if span is not None:
                start, end = span
                image = _decode_image(memoryview(self._buf)[start:end])
                del self._buf[:end]
                if image is not None:
                    frame = Frame(image, time.monotonic() - self.t0, self._next)
                    self._next += 1
                    return frame
                failed_decodes += 1
                if failed_decodes >= 10:
                    raise SourceError("not_video", f"{self.name}: the MJPEG stream carries undecodable images")
                continue
            if len(self._buf) > _MAX_HTTP_BODY:
                raise SourceError("not_video", f"{self.name}: no JPEG in the first {_MAX_HTTP_BODY >> 20} MiB of the stream")
            if self._buf.find(b"\xff\xd8") < 0:
                del self._buf[:-1]  # keep a possible first half of the SOI marker
            # While opening, a stall is "unreachable" and an early end "not_video"; later both are "ended".
            broken: Reason = "unreachable" if opening else "ended"
            try:
                chunk = resp.read1(_READ_CHUNK)
            except TimeoutError:
                raise SourceError(broken, f"{self.name}: no data for {self._timeout_s:.0f} s") from None
            except (OSError, ValueError) as err:
                raise SourceError(broken, f"{self.name}: the connection broke ({err})") from None
            if not chunk:
                raise SourceError("not_video" if opening else "ended", f"{self.name}: the MJPEG stream ended")
            self._buf += chunk

    def read(self) -> Frame | None:
        if self._resp is None:
            return None
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        return self._next_frame()

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None


_NOT_VIDEO_TYPES = re.compile(r"^(text/|application/(json|xml|xhtml\+xml|javascript|pdf)|[^;]*\+(json|xml)\b)")


def _open_http(url: str, timeout_s: float) -> FrameSource:
    t0 = time.monotonic()
    http = _Http(url, timeout_s)
    resp = http.get()
    ctype = (resp.headers.get("Content-Type") or "").strip().lower()
    try:
        if ctype.startswith("multipart/"):
            return _MjpegSource(http, resp, t0)  # takes over the response
        if ctype.startswith("image/"):
            image = _decode_image(_read_body(resp, http.name))
            if image is None:
                raise SourceError("not_video", f"{http.name}: the snapshot ({ctype}) is not a decodable image")
            return _SnapshotSource(http, image, t0)
        # HLS playlists are sometimes served as text/plain; recognise them by their first line.
        if _NOT_VIDEO_TYPES.match(ctype) and not resp.read(7).startswith(b"#EXTM3U"):
            raise SourceError("not_video", f"{http.name}: the URL serves {ctype.split(';')[0]}, not video or images")
        # A finite body (mp4 with Content-Length) is a file with media time; streams and HLS are live.
        is_live = "mpegurl" in ctype or resp.headers.get("Content-Length") is None
    except BaseException:
        resp.close()
        raise
    resp.close()
    # Everything else (video/mp4, MPEG-TS, HLS, ...) is FFmpeg's job; it takes credentials from the URL.
    return _open_capture(url, name=http.name, is_live=is_live, timeout_s=timeout_s, t0=t0)


# --- entry point ------------------------------------------------------------------------------------


def _scheme(url_or_path: str) -> str:
    return urllib.parse.urlsplit(url_or_path).scheme.lower() if "://" in url_or_path else ""


def open_source(url_or_path: str, *, timeout_s: float = 10.0) -> FrameSource:
    """Open a video file, still image, file://, rtsp(s):// or http(s):// source.

    One frame is decoded before returning, so a bad source fails here with SourceError:
    unreachable (missing file, refused/timeout, 404), auth_failed (401/403), not_video (HTML page,
    text, undecodable), unsupported (other URL schemes).
    """
    target = url_or_path.strip()
    scheme = _scheme(target)
    if scheme == "":
        return _open_file(target, timeout_s)
    if scheme == "file":
        return _open_file(_file_url_path(target), timeout_s)
    if scheme in _RTSP_DEFAULT_PORTS:
        return _open_rtsp(target, timeout_s)
    if scheme in ("http", "https"):
        return _open_http(target, timeout_s)
    raise SourceError(
        "unsupported",
        f"{redact_url(target)}: unsupported scheme {scheme}:// (use a file, rtsp://, rtsps://, http:// or https://)",
    )


# --- fps limiting -----------------------------------------------------------------------------------


class ThrottledSource(FrameSource):
    """Delivers at most `fps` frames per second of *source* time (`Frame.t`), so a file is sampled by
    media time, not by how fast it decodes. Frames keep their source `index`; skipped ones count in
    `dropped`. Due times sit on a fixed grid, so late frames do not lower the average rate. On-demand
    sources (snapshots) are not fetched early and dropped: the read waits until the next due time.
    """

    _EPS = 1e-6  # t = i/25 against k*0.2 differs by float rounding only

    def __init__(self, source: FrameSource, fps: float) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.source = source
        self.period = 1.0 / fps
        self.dropped = 0
        self._due: float | None = None  # next due time in source time
        self._due_wall: float | None = None  # the same instant on time.monotonic(), for on-demand waits
        self.name, self.is_live, self.t0, self.size = source.name, source.is_live, source.t0, source.size
        self.fps = min(fps, source.fps) if source.fps else fps

    @property
    def on_demand(self) -> bool:  # type: ignore[override]
        return self.source.on_demand

    def read(self) -> Frame | None:
        while True:
            if self.source.on_demand and self._due_wall is not None:
                wait = self._due_wall - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            frame = self.source.read()
            if frame is None:
                return None
            self.size = self.source.size
            if self._due is None or frame.t >= self._due - self._EPS or self.source.on_demand:
                if self._due is None:
                    self._due = frame.t
                # Next slot on the grid strictly after this frame; missed slots are skipped.
                self._due += (math.floor((frame.t - self._due) / self.period + self._EPS) + 1) * self.period
                self._due_wall = time.monotonic() + (self._due - frame.t)
                return frame
            self.dropped += 1

    def close(self) -> None:
        self.source.close()


def throttle(source: FrameSource, fps: float) -> ThrottledSource:
    """`source` limited to at most `fps` frames per second of source time (see ThrottledSource)."""
    return ThrottledSource(source, fps)


# --- frozen picture ---------------------------------------------------------------------------------


def picture_sample(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::_FROZEN_STRIDE, ::_FROZEN_STRIDE])


def same_picture(a: np.ndarray | None, b: np.ndarray) -> bool:
    """Two `picture_sample`s show the same picture (equal size, differences within requantization noise)."""
    if a is None or a.shape != b.shape:
        return False
    diff = cv2.absdiff(a, b)
    outliers = int(np.count_nonzero(diff > _FROZEN_OUTLIER_LEVELS))
    return float(diff.mean()) <= _FROZEN_MEAN and outliers <= _FROZEN_OUTLIER_FRACTION * diff.size


class FrozenDetector:
    """Tells when a live picture has stopped changing for `after_s` seconds (a camera or encoder that
    hangs but keeps sending its last image). Frames are compared with the first picture of the
    current stretch, so a slow drift still counts as change. A change of size is a change."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._reference: np.ndarray | None = None
        self._changed_at = 0.0

    def reset(self, now: float) -> None:
        self._reference, self._changed_at = None, now

    def same_as_before(self, image: np.ndarray, now: float) -> bool:
        """Whether `image` shows the picture of the current stretch; a different one starts a new stretch."""
        sample = picture_sample(image)
        same = same_picture(self._reference, sample)
        if not same:
            self._reference, self._changed_at = sample, now
        return same

    def frozen_for(self, now: float) -> float:
        return now - self._changed_at


# --- reconnect --------------------------------------------------------------------------------------

StateCallback = Callable[[bool, str | None], None]


class ReconnectingSource(FrameSource):
    """A live source that survives camera reboots and network loss.

    `read()` blocks until a frame arrives or `stop_event` is set (then returns None). Open and read
    failures close the source and retry with exponential backoff and jitter; `on_state(connected,
    reason)` reports each change (reason is a SourceError reason, None when connected). Frames get one
    timeline (`t` since this object was created) and one running `index` across reconnects.
    Files are not reconnected: open errors raise, the end of the file returns None.
    "unsupported" is permanent and raises. Read from one thread; stop from any via `stop_event`.

    A live picture that stays the same for `frozen_after_s` is a fault too ("frozen"): the source
    reconnects, and frames equal to the frozen picture are not delivered (analysing a stale image
    would report stale people), until the picture changes again.
    `busy_s()` says how long the current open or read has been running (0 outside one), so a
    watchdog can tell a hung library call from a camera that is merely down.
    """

    HEALTHY_S = 30.0  # a connection that lasted this long resets the backoff

    def __init__(
        self,
        url: str,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        on_state: StateCallback | None = None,
        stop_event: threading.Event | None = None,
        timeout_s: float = 10.0,
        frozen_after_s: float | None = FROZEN_AFTER_S,
    ) -> None:
        self.url = url
        self.name = redact_url(url.strip())
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.timeout_s = timeout_s
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.reconnects = 0
        self.last_error: SourceError | None = None
        self._on_state = on_state
        self._src: FrameSource | None = None
        self._state: tuple[bool, str | None] | None = None
        self._attempt = 0
        self._connected_at = 0.0
        self._ever_connected = False
        self._closed = False
        self._next = 0
        self._is_file = _scheme(url.strip()) not in LIVE_SCHEMES
        self.is_live = not self._is_file
        self.t0 = time.monotonic()
        self._frozen = FrozenDetector(frozen_after_s) if frozen_after_s and not self._is_file else None
        self._frozen_sample: np.ndarray | None = None  # the picture that froze, until a different one arrives
        self._busy_since: float | None = None

    def busy_s(self) -> float:
        """Seconds the current open or read of the camera has been running; 0 when none is."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    @property
    def connected(self) -> bool:
        return self._src is not None and self._state == (True, None)

    @property
    def on_demand(self) -> bool:  # type: ignore[override]
        return self._src.on_demand if self._src is not None else False

    def _report(self, connected: bool, reason: str | None) -> None:
        if self._state == (connected, reason):
            return
        self._state = (connected, reason)
        if self._on_state is not None:
            try:
                self._on_state(connected, reason)
            except Exception:
                _LOGGER.exception("source state callback failed for %s", self.name)

    def _backoff(self) -> None:
        delay = min(self.backoff_max, self.backoff_initial * 2**self._attempt) * random.uniform(0.8, 1.2)
        delay = min(delay, self.backoff_max)
        self._attempt += 1
        _LOGGER.debug("%s: retrying in %.1f s", self.name, delay)
        self.stop_event.wait(delay)

    def _fail(self, err: SourceError) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None
            if time.monotonic() - self._connected_at >= self.HEALTHY_S:
                self._attempt = 0
        if self._state != (False, err.reason):  # once per outage and reason, not per retry
            _LOGGER.warning("%s (%s); reconnecting", err, err.reason)  # the message names the source
        self.last_error = err
        self._report(False, err.reason)
        self._backoff()

    def _timed(self, call: Callable[[], Any]) -> Any:
        """`call()` with `busy_s()` counting while it runs (not while backing off)."""
        self._busy_since = time.monotonic()
        try:
            return call()
        finally:
            self._busy_since = None

    def _connect(self) -> bool:
        try:
            src: FrameSource = self._timed(lambda: open_source(self.url, timeout_s=self.timeout_s))
        except SourceError as err:
            if self._is_file or err.reason == "unsupported":
                raise
            self._fail(err)
            return False
        if self.stop_event.is_set() or self._closed:
            src.close()
            return False
        self._src = src
        self.is_live, self.fps, self.size = src.is_live, src.fps, src.size
        self._connected_at = time.monotonic()
        if self._ever_connected:
            self.reconnects += 1
            _LOGGER.info("%s: reconnected (%d reconnects)", self.name, self.reconnects)
        self._ever_connected = True
        if self._frozen is not None:
            self._frozen.reset(self._connected_at)
        if self._frozen_sample is None:  # still frozen: "connected" only once the picture moves again
            self._report(True, None)
        return True

    def _stale(self, image: np.ndarray) -> bool:
        """Frozen-picture bookkeeping for one frame; True when it must not be delivered."""
        if self._frozen is None:
            return False
        now = time.monotonic()
        same = self._frozen.same_as_before(image, now)
        if self._frozen_sample is not None and not same_picture(self._frozen_sample, picture_sample(image)):
            _LOGGER.info("%s: the picture moves again", self.name)
            self._frozen_sample = None
            self._report(True, None)
            return False
        if same and self._frozen.frozen_for(now) >= self._frozen.after_s:
            self._frozen_sample = picture_sample(image)
            secs = self._frozen.frozen_for(now)
            self._fail(SourceError("frozen", f"{self.name}: the picture has not changed for {secs:.0f} s"))
            return True
        return self._frozen_sample is not None

    def read(self) -> Frame | None:
        while not self.stop_event.is_set() and not self._closed:
            if self._src is None and not self._connect():
                continue
            src = self._src
            assert src is not None
            try:
                frame: Frame | None = self._timed(src.read)
            except SourceError as err:
                if not src.is_live:
                    raise
                self._fail(err)
                continue
            if frame is None:
                if not src.is_live:
                    return None  # end of a file (or of a still image)
                self._fail(SourceError("ended", f"{self.name}: the stream ended"))
                continue
            if src.is_live and self._stale(frame.image):
                continue
            # One timeline and one running index across reconnects; files keep their media time.
            t = frame.t + (src.t0 - self.t0) if src.is_live else frame.t
            out = Frame(frame.image, t, self._next)
            self._next += 1
            return out
        return None

    def close(self) -> None:
        """Release the current source. Call from the reading thread (or after it stopped)."""
        self._closed = True
        if self._src is not None:
            self._src.close()
            self._src = None


# --- decode ahead -----------------------------------------------------------------------------------


class BackgroundReader(FrameSource):
    """Reads `source` in its own thread so decoding overlaps analysis (OpenCV and onnxruntime
    release the GIL).

    Live sources (`latest_only`): only the newest frame is kept, so a slow analysis never works on
    a backlog of stale frames (latency stays one frame); replaced frames count in `dropped`.
    Files: a short queue, every frame kept, in order. Errors of the source are re-raised by `read()`.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        latest_only: bool | None = None,
        depth: int = 2,
        prepare: Callable[[np.ndarray], Any] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.source = source
        # read() gives up (returns None) once this is set, even while the source thread is stuck in a read.
        self._stop_event = stop_event
        self._prepare = prepare  # per-frame work done here, ahead of the consumer (in frame order)
        self.latest_only = source.is_live if latest_only is None else latest_only
        self.name, self.is_live, self.t0, self.fps, self.size = source.name, source.is_live, source.t0, source.fps, source.size
        self._replaced = 0
        self._depth = 1 if self.latest_only else depth
        self._items: collections.deque[Frame | BaseException | None] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, name=f"safecam-decode-{source.name[:40]}", daemon=True)
        self._thread.start()

    @property
    def on_demand(self) -> bool:  # type: ignore[override]
        return self.source.on_demand

    @property
    def dropped(self) -> int:
        return self._replaced + int(getattr(self.source, "dropped", 0))

    def _put(self, item: Frame | BaseException | None) -> bool:
        with self._cond:
            if self.latest_only and isinstance(item, Frame):
                while self._items and isinstance(self._items[-1], Frame):
                    self._items.pop()
                    self._replaced += 1
            else:
                while len(self._items) >= self._depth and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def _pump(self) -> None:
        # The source is only ever touched from this thread (closing a VideoCapture while another
        # thread reads it can crash FFmpeg), so this thread also closes it.
        try:
            while True:
                try:
                    frame = self.source.read()
                except BaseException as err:  # noqa: BLE001 - handed to the reader thread, which re-raises
                    self._put(err)
                    return
                if frame is not None and self._prepare is not None:
                    try:
                        frame.prepared = self._prepare(frame.image)
                    except Exception:  # the consumer recomputes it inline
                        _LOGGER.exception("frame preparation failed")
                if not self._put(frame) or frame is None:
                    return
        finally:
            self.source.close()

    def read(self) -> Frame | None:
        with self._cond:
            while not self._items:
                if self._closed or (self._stop_event is not None and self._stop_event.is_set()):
                    return None
                self._cond.wait(0.5 if self._stop_event is not None else None)
            item = self._items.popleft()
            self._cond.notify_all()
        if isinstance(item, BaseException):
            raise item
        if item is not None:
            self.size = self.source.size
        return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        # A live source stops blocking once its stop_event is set or its read timeout expires.
        self._thread.join(timeout=15)
