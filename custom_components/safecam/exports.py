"""Files the export actions (export_heatmap, export_report) write: who may ask, where, under which names.

`<config>/www` is served under `/local/` WITHOUT authentication, so:
- only administrators may call an export action (the `hass.auth` check of HA's admin services, here because HA
  before 2026 cannot register an admin action that returns a response);
- files go only into `<config>/www/safecam/exports/` (a folder of exports alone: the site's floor plan and
  anything else the user keeps in www stay untouched);
- the name is one the integration chooses (with a random part nobody can guess) or one matching NAME_PATTERN;
- refused input is a ServiceValidationError (HTTP 400), never an OSError (500).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized, UnknownUser

from .const import DOMAIN

EXPORT_DIR = ("safecam", "exports")  # under <config>/www
EXPORT_URL = "/local/safecam/exports"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # no separator, no leading dot: never leaves the folder


async def async_check_admin(call: ServiceCall) -> None:
    """Unauthorized (HTTP 401) unless the caller is an administrator (or HA itself: no user)."""
    if call.context.user_id:
        user = await call.hass.auth.async_get_user(call.context.user_id)
        if user is None:
            raise UnknownUser(context=call.context)
        if not user.is_admin:
            raise Unauthorized(context=call.context)


def export_name(name: object, default_prefix: str) -> str:
    """The name asked for, if it matches NAME_PATTERN; without one, `<prefix>_<random>`. ServiceValidationError else."""
    if name is None or name == "":
        return f"{default_prefix}_{secrets.token_hex(8)}"
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        from .engine.config import shown  # pure Python; not at module level (HA start imports nothing of the engine)

        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="export_name_invalid", translation_placeholders={"name": shown(name)}
        )
    return name


def export_folder(hass: HomeAssistant) -> Path:
    return Path(hass.config.path("www", *EXPORT_DIR))


def write_exports(hass: HomeAssistant, files: dict[Path, bytes]) -> None:
    """Write the files (paths from export_folder and a checked name). Blocking (executor). A failing disk is
    HomeAssistantError with the reason, never a bare OSError."""
    try:
        export_folder(hass).mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            path.write_bytes(data)
    except OSError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="export_write_failed",
            translation_placeholders={"error": err.strerror or type(err).__name__},
        ) from None


def export_url(path: Path) -> str:
    return f"{EXPORT_URL}/{path.name}"
