"""Analysing inside Home Assistant: install the engine's requirements on demand (before local.py).

The integration requires nothing (manifest): the engine normally runs as a service (the add-on, a container, the
Python package) and reaches Home Assistant over MQTT (remote.py). A user who picks "analyse inside Home Assistant"
gets the engine's requirements (engine/requirements.py, the one list) installed through Home Assistant's own
requirements mechanism; where that cannot work (HA OS and the official container are musl: onnxruntime and OpenCV
publish no wheels there), the config flow shows `engine_unavailable` and an existing entry fails setup with a
repair, both pointing to the add-on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.requirements import async_process_requirements
from packaging.requirements import Requirement

from .const import DOMAIN
from .engine.requirements import ENGINE_MODULES, ENGINE_REQUIREMENTS, ONNX_RUNTIMES

_LOGGER = logging.getLogger(__name__)
ISSUE_ENGINE_UNAVAILABLE = "engine_unavailable"


class EngineUnavailable(HomeAssistantError):
    """The in-process engine's requirements cannot be installed or imported here; str() says why."""


def applicable_requirements() -> list[str]:
    """The engine's requirements whose markers apply to this interpreter (HA's installer does not check markers)."""
    return [r for r in ENGINE_REQUIREMENTS if (marker := Requirement(r).marker) is None or marker.evaluate()]


def requirements_here() -> list[str]:
    """What to install here: the applicable requirements, less an ONNX Runtime when one is installed already.

    onnxruntime and onnxruntime-openvino install the same `onnxruntime` module, so installing one next to the other
    silently replaces its files: where either is installed already (by the user or another integration), it is kept
    and neither is installed."""
    wanted = applicable_requirements()
    if any(_installed(name) for name in ONNX_RUNTIMES):
        wanted = [r for r in wanted if Requirement(r).name not in ONNX_RUNTIMES]
    return wanted


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _missing_modules() -> list[str]:
    return [name for name in ENGINE_MODULES if importlib.util.find_spec(name) is None]


async def async_ensure_engine(hass: HomeAssistant) -> None:
    """Install (if needed) what the in-process engine imports; EngineUnavailable when that is not possible."""
    try:
        if not hass.config.skip_pip:  # (skip_pip: a developer's or test venv, installed by hand)
            await async_process_requirements(hass, DOMAIN, requirements_here())
    except HomeAssistantError as err:  # RequirementsNotFound: no wheel for this platform (musl, Python 3.14, ...)
        raise EngineUnavailable(str(err)) from err
    if missing := await hass.async_add_executor_job(_missing_modules):
        raise EngineUnavailable(f"cannot import {', '.join(missing)}")


def async_report_engine_unavailable(hass: HomeAssistant, err: EngineUnavailable) -> None:
    """A repair for in-process entries that cannot load: what failed, and that the add-on is the way."""
    _LOGGER.error("safecam: the in-process engine cannot run in this Home Assistant: %s", err)
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_ENGINE_UNAVAILABLE,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_ENGINE_UNAVAILABLE,
        translation_placeholders={"error": str(err)},
    )


def async_clear_engine_unavailable(hass: HomeAssistant) -> None:
    ir.async_delete_issue(hass, DOMAIN, ISSUE_ENGINE_UNAVAILABLE)
