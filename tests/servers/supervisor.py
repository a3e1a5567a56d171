"""A stand-in for the Home Assistant Supervisor's discovery API, for the add-on's discovery step.

The real Supervisor cannot run here: it manages Docker containers on Home Assistant OS or a Supervised install,
and this machine has neither. This aiohttp server answers POST /discovery the way supervisor/api/discovery.py
does (home-assistant/supervisor, read for this): the caller is known by its token (`Authorization: Bearer`), the
body must be `{"service": str, "config": dict}`, a service the add-on does not list under `discovery:` in its
config.yaml is refused with 403, and a message taken is answered `{"result": "ok", "data": {"uuid": ...}}`.
The services it takes from the add-on are those addon/config.yaml declares, as the real one reads them.
It records what it was sent: the tests hand that to Home Assistant as its hassio discovery would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

ADDON_CONFIG = Path(__file__).resolve().parents[2] / "addon" / "config.yaml"


def declared_services(config_yaml: Path) -> tuple[str, ...]:
    """The services an add-on may announce: its config.yaml `discovery:` list (the Supervisor reads the same)."""
    return tuple(yaml.safe_load(config_yaml.read_text(encoding="utf-8")).get("discovery") or ())


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


@dataclass
class StandInSupervisor:
    token: str = "addon-token"
    services: tuple[str, ...] = field(default_factory=lambda: declared_services(ADDON_CONFIG))
    received: list[Received] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> {service, config} taken
    url: str = ""

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stand-in-supervisor", daemon=True)
        self._runner: web.AppRunner | None = None

    async def _post_discovery(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.received.append(Received(dict(request.headers), body))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(403, "Invalid token")  # the real one logs "Invalid token for access /discovery"
        if not isinstance(body, dict) or not isinstance(body.get("service"), str) or not isinstance(body.get("config"), dict):
            return _error(400, "Invalid discovery message")
        if body["service"] not in self.services:
            return _error(403, "Apps must list services they provide via discovery in their config!")
        message_id = uuid.uuid4().hex
        self.messages[message_id] = {"service": body["service"], "config": body["config"]}
        return web.json_response({"result": "ok", "data": {"uuid": message_id}})

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/discovery", self._post_discovery)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        return int(sock.getsockname()[1])

    def start(self) -> StandInSupervisor:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"result": "error", "message": message}, status=status)
