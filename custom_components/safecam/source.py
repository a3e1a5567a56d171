"""Camera source helpers for the HA glue: URL building, unique ids, probing.

Credentials entered in the UI are stored in the config entry (never logged) and injected into
the URL handed to the engine. Local video files (a path or a file:// URL) are accepted as
sources: the engine loops them in real time, which makes demos and tests behave like a camera.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .engine.models import ModelError, resolve_model

STREAM_SCHEMES: Final = ("rtsp", "rtsps", "http", "https")

# engine.sources.SourceError.reason -> config flow error key
SOURCE_ERRORS: Final = {
    "unreachable": "cannot_connect",
    "not_video": "not_video",
    "auth_failed": "invalid_auth",
    "unsupported": "unsupported_url",
    "ended": "not_video",
}


def is_file_source(url: str) -> bool:
    """A local video file: an absolute path, or a file:// URL."""
    return url.startswith("file://") or (not urlsplit(url).scheme and url.startswith(("/", "~")))


def is_supported(url: str) -> bool:
    return is_file_source(url) or urlsplit(url).scheme.lower() in STREAM_SCHEMES


def engine_url(url: str, username: str | None = None, password: str | None = None) -> str:
    """The URL the engine opens: credentials injected (replacing any in the URL), files as paths."""
    url = url.strip()
    if is_file_source(url):
        path = unquote(urlsplit(url).path) if url.startswith("file://") else url
        return str(Path(path).expanduser())
    if not username:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # the last "@": an unencoded "@" in a password
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def url_unique_id(url: str) -> str:
    """A stable id for a stream: same camera, same id, whatever the credentials.

    Hashed, so that tokens in a query string never reach the entity registry or diagnostics.
    """
    url = url.strip()
    if is_file_source(url):
        canonical = "file://" + str(Path(engine_url(url)).resolve())
    else:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2].lower()
        canonical = urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))
    return "url_" + hashlib.sha256(canonical.encode()).hexdigest()[:20]


def entity_unique_id(registry_id: str) -> str:
    return f"entity_{registry_id}"


def probe_source(url: str, timeout_s: float) -> str | None:
    """Open the source, read one frame, close it. None if it works, else a config flow error key.

    Blocking (network, decoding): run it in the executor. In-process cameras only: it loads the engine's
    sources (OpenCV), installed by then (inprocess.async_ensure_engine).
    """
    from .engine.sources import SourceError, open_source

    try:
        source = open_source(url, timeout_s=timeout_s)
    except SourceError as err:
        return SOURCE_ERRORS.get(err.reason, "cannot_connect")
    try:
        frame = source.read()
    except SourceError as err:
        return SOURCE_ERRORS.get(err.reason, "cannot_connect")
    finally:
        source.close()
    return None if frame is not None else "not_video"


def check_model(name: str) -> bool:
    """True when a verified copy of the detector model exists or could be fetched (executor)."""
    try:
        resolve_model(name)
    except ModelError:
        return False
    return True
