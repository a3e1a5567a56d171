"""Supervisor discovery (the add-on): Home Assistant offers this engine's cameras, paired with its key, nothing typed.

    safecam-engine announce --config FILE.yaml        # addon/run.sh, before `serve` with the same file

Only where the Supervisor gave this container a token (SUPERVISOR_TOKEN: it runs as an add-on); elsewhere it does
nothing (MQTT discovery still offers the cameras, and the user types the key). It POSTs
`{SUPERVISOR_URL or http://supervisor}/discovery` `{"service": "safecam", "config": {...}}` with the token. The
Supervisor takes it only from an add-on whose config.yaml lists `discovery: [safecam]` (any other service name is
refused with 403), keeps it, and tells Home Assistant, which reads it back from the Supervisor (never from the
add-on) and starts the `safecam` integration's `hassio` config flow with it: `HassioServiceInfo.config` is this
`config` plus "addon" (the add-on's name). A custom integration gets it like a built-in one (the service name is the
domain). The key thus travels add-on -> Supervisor -> Home Assistant, never over MQTT. Home Assistant reads every
kept message again at each start, and the Supervisor passes on a changed one at once: a new key reaches the
entries of this engine without asking the user.

A failure is one warning line on stderr (never the key nor the token) and exit code 0: the engine starts anyway.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..contract import SUPERVISOR_SERVICE, EngineAnnouncement

if TYPE_CHECKING:
    from .serve import ServeConfig

SUPERVISOR_URL = "http://supervisor"
TIMEOUT_S = 10.0


class SupervisorError(Exception):
    """Why the Supervisor was not told or did not answer (one line, no secret)."""


def announcement(config: ServeConfig, key: bytes) -> EngineAnnouncement:
    """This engine as Home Assistant pairs it: which engine on the broker, and its key."""
    return EngineAnnouncement(config.engine_id, key, config.mqtt.topic_prefix)


def supervisor_call(base_url: str, token: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """One call of the Supervisor's API (GET, or POST with a JSON body) as an add-on makes it: its `data` when the
    answer is `{"result": "ok"}`. SupervisorError, one line without the token, when it is not. (Also the add-on's
    MQTT service lookup, addon/options_to_config.py.)"""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}{path}",
        data=None if body is None else json.dumps(dict(body)).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise SupervisorError(f"the Supervisor answered HTTP {err.code}{_message(err)}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or type(err).__name__
        raise SupervisorError(f"the Supervisor cannot be reached at {base_url} ({reason})") from None
    if not isinstance(answer, dict) or answer.get("result") != "ok":
        raise SupervisorError("the Supervisor did not take the request")
    return answer.get("data")


def post_discovery(base_url: str, token: str, config: Mapping[str, Any]) -> str:
    """POST the message; the Supervisor's id for it. SupervisorError when it was not taken."""
    data = supervisor_call(base_url, token, "/discovery", {"service": SUPERVISOR_SERVICE, "config": dict(config)})
    return str(data.get("uuid") or "") if isinstance(data, dict) else ""


def _message(err: urllib.error.HTTPError) -> str:
    """The Supervisor's one-line reason (its JSON error body), shortened."""
    try:
        message = json.loads(err.read()).get("message")
    except (OSError, ValueError, AttributeError):
        return ""
    return f": {str(message).splitlines()[0][:200]}" if message else ""


def announce(config_path: str, env: Mapping[str, str] = os.environ) -> str | None:
    """Tell Home Assistant about this engine through the Supervisor. None where there is no Supervisor (no token),
    else the message's id. SupervisorError (or the config's ConfigError) when it was not told."""
    token = env.get("SUPERVISOR_TOKEN")
    if not token:
        return None
    from .serve import kept_pairing_key, load_serve_config  # not at import: options_to_config.py needs only the call

    config = load_serve_config(config_path)
    key = kept_pairing_key(config)  # made here at first start; `serve` then reads the same file
    if key is None:
        raise SupervisorError("no state_file and no pairing_key: the engine's key would change at every start")
    message = announcement(config, key).as_config()
    return post_discovery(env.get("SUPERVISOR_URL") or SUPERVISOR_URL, token, message)


def main(config_path: str) -> int:
    """The `announce` subcommand: always 0 (the engine starts whether Home Assistant was told or not)."""
    try:
        uuid = announce(config_path)
    except Exception as err:  # noqa: BLE001 - one line whatever went wrong, and the engine still starts
        why = str(err) or type(err).__name__
        print(
            f"warning: safecam: Home Assistant was not told about this engine through the Supervisor ({why});"
            " add its cameras from the MQTT discovery card with the pairing key printed below",
            file=sys.stderr,
        )
        return 0
    if uuid is not None:
        print(f"safecam: engine announced to Home Assistant through the Supervisor (discovery {uuid})", file=sys.stderr)
    return 0
