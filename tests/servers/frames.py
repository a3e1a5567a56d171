"""The signed frame of docs/mqtt.md, written here from the document (not imported from the code under test),
so the tests check the wire format itself: header line, HMAC-SHA256 line, body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time


def key_bytes(text: str) -> bytes:
    clean = text.replace("-", "").upper()
    return base64.b32decode(clean + "=" * (-len(clean) % 8))


class Sender:
    """Signs like an engine or Home Assistant holding `key` (boot and seq may be set to anything: an attacker's view)."""

    def __init__(self, key: str, boot: float | None = None, version: int = 2) -> None:
        self.key = key_bytes(key)
        self.boot = int(time.time()) if boot is None else boot
        self.version = version
        self._seq = itertools.count(1)

    def sign(self, topic: str, body: bytes, *, seq: int | None = None, **header: object) -> bytes:
        kid = hashlib.sha256(b"safecam key id\0" + self.key).hexdigest()[:8]
        fields = {"v": self.version, "kid": kid, "boot": self.boot, "seq": next(self._seq) if seq is None else seq}
        head = json.dumps({**fields, "ts": round(time.time(), 3), **header}, separators=(",", ":")).encode()
        mac = hmac.new(self.key, topic.encode() + b"\n" + head + b"\n" + body, hashlib.sha256).hexdigest().encode()
        return head + b"\n" + mac + b"\n" + body
