"""Credentials out of URLs and messages: every error message and log line of the engine, and of the integration.

Pure Python (the integration imports it at Home Assistant start, where OpenCV must not load).
"""

from __future__ import annotations

import re

_URL_RE = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>[^\s'\"<>]+)")
_SECRET_QUERY_RE = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pass|pwd|psw|user|usr|username|login|token|access_token|auth|key|apikey|api_key|"
    r"secret|signature|sig)=)[^&#\s'\"]*",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """`text` (a URL or any message containing URLs) with user:password and secret query values hidden.

    Works on whole messages so library errors that echo a URL are safe to log. The userinfo is cut at
    the *last* '@' of the URL: an unencoded '@' in a password must not leak its tail.
    """

    def _userinfo(m: re.Match[str]) -> str:
        rest = m.group("rest")
        if "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        return m.group("scheme") + rest

    return _SECRET_QUERY_RE.sub(lambda m: m.group("key") + "***", _URL_RE.sub(_userinfo, text))
