"""Analysing inside Home Assistant is an explicit choice whose requirements are installed on demand; where they
cannot be (HA OS / the official container: no wheels for onnxruntime and OpenCV), the user is told, and pointed to
the add-on: the config flow aborts with `engine_unavailable`, an existing in-process camera fails setup with a
repair. Made unavailable here by naming one more module the engine needs that this interpreter cannot import."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.safecam import inprocess
from custom_components.safecam.const import DOMAIN
from custom_components.safecam.engine.requirements import ENGINE_REQUIREMENTS

from .conftest import setup_loaded, unload

ABSENT = "safecam_engine_module_that_is_not_installed"


@pytest.fixture
def engine_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inprocess, "ENGINE_MODULES", (*inprocess.ENGINE_MODULES, ABSENT))


def test_requirements_follow_the_target_not_one_list_per_machine() -> None:
    """One list (engine/requirements.py); markers pick onnxruntime-openvino only where it has wheels."""
    here = inprocess.applicable_requirements()
    assert set(here) <= set(ENGINE_REQUIREMENTS)
    names = [r.split("==")[0] for r in here]
    assert "opencv-python-headless" in names
    assert len({"onnxruntime", "onnxruntime-openvino"} & set(names)) == 1  # never both, never none


def test_an_installed_onnx_runtime_is_never_installed_over() -> None:
    """onnxruntime and onnxruntime-openvino share the `onnxruntime` module: this venv has one of them (whichever its
    lock holds), so neither is installed again, even where the markers pick the other build."""
    assert importlib.util.find_spec("onnxruntime") is not None  # one build or the other
    names = [r.split("==")[0] for r in inprocess.requirements_here()]
    assert names == ["opencv-python-headless"]


async def test_home_assistants_requirements_mechanism_sees_them_installed(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not skipping pip, as on a real install: this venv has the requirements that apply here, so HA's installer
    runs no pip (one applying only elsewhere, e.g. plain onnxruntime on x86-64, must not reach it: HA's
    is_installed ignores markers)."""

    def no_pip(*args: object, **kwargs: object) -> bool:
        raise AssertionError(f"pip would install {args} into the test venv")

    monkeypatch.setattr("homeassistant.util.package.install_package", no_pip)
    hass.config.skip_pip = False
    await inprocess.async_ensure_engine(hass)


@pytest.mark.usefixtures("engine_cannot_load")
async def test_flow_says_the_engine_cannot_run_here(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "local"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "engine_unavailable"
    assert ABSENT in result["description_placeholders"]["error"]


async def test_entry_fails_with_a_repair_then_recovers(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = make_entry(str(clip))
    modules = inprocess.ENGINE_MODULES
    monkeypatch.setattr(inprocess, "ENGINE_MODULES", (*modules, ABSENT))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    issue = ir.async_get(hass).async_get_issue(DOMAIN, inprocess.ISSUE_ENGINE_UNAVAILABLE)
    assert issue is not None and ABSENT in issue.translation_placeholders["error"]

    monkeypatch.setattr(inprocess, "ENGINE_MODULES", modules)  # installed meanwhile (e.g. a venv fixed by hand)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, inprocess.ISSUE_ENGINE_UNAVAILABLE) is None
    await unload(hass, entry)


async def test_in_process_camera_runs_the_engine_here(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    entry = make_entry(str(clip))
    runtime = await setup_loaded(hass, entry)
    assert type(runtime).__module__ == "custom_components.safecam.local"
    assert runtime.worker is not None  # (the remote runtime has none)
    await unload(hass, entry)
