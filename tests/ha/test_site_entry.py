"""The site device on two REAL embedded cameras: TUD-Stadtmitte split into two overlapping virtual cameras.

Each camera is a real safecam camera entry (worker, detector, tracker) on a crop of the clip written to
a video file: "Left" sees x 0-60 % of the street, "Right" x 40-100 % (20 % overlap). Both are calibrated
to the street's floor (metres, from the clip's ground-truth world coordinates), so they share one map.
Checked: the people on the map are not double counted where the crops overlap; the site's gate-flow
occupancy follows the cameras' gate totals and goes back to zero once every camera sees nobody (the
cameras are reloaded onto real footage of an empty room, which also checks that reloaded cameras are
picked up); the floor plan picture is a PNG of dots on the plan and holds no camera pixels.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache_with_extra_data
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.safecam import inprocess, site_entry
from custom_components.safecam.const import (
    CONF_EMPTY_RESET_S,
    CONF_ENTRY_KIND,
    CONF_FUSION_RADIUS_M,
    CONF_PLAN_DEPTH_M,
    CONF_PLAN_WIDTH_M,
    CONF_SITE_CAMERAS,
    CONF_SITE_GATES,
    DOMAIN,
    ENTRY_KIND_SITE,
)
from custom_components.safecam.site_fusion import (
    DOT_MERGED,
    DOT_ONE_CAMERA,
    LEGEND_PX,
    PLAN_BG,
    PLAN_GRID,
    PLAN_GRID_MAJOR,
    PLAN_INK,
    PLAN_LEGEND_BG,
)

from .conftest import number_of, wait_for

SPANS = {"Left": (0.0, 0.6), "Right": (0.4, 1.0)}
# Gates at full-frame x 160 px (left crop) and 448 px (right crop): people cross both in the clip's ground truth.
GATES = {"Left": ("west", 160 / 384), "Right": ("east", 0.5)}
QUAD = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
PLAN_W, PLAN_D = 20.0, 14.0  # the street's ground-truth world x 3.6-16.6 m, y 2.0-11.4 m fit on it
PALETTE = {PLAN_BG, PLAN_GRID, PLAN_GRID_MAJOR, PLAN_INK, PLAN_LEGEND_BG, DOT_ONE_CAMERA, DOT_MERGED}


def _write(path: Path, images: list[np.ndarray], fps: float) -> Path:
    h, w = images[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    for img in images:
        out.write(img)
    out.release()
    return path


def _read(path: Path, limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    images: list[np.ndarray] = []
    while limit is None or len(images) < limit:
        ok, img = cap.read()
        if not ok:
            break
        images.append(img)
    cap.release()
    return images


def _camera_scenes(shared_data: Path) -> dict[str, dict[str, Any]]:
    """Each crop's scene: a gate and a calibration (crop points mapped through the street's floor homography)."""
    rows = np.loadtxt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt", delimiter=",", ndmin=2)
    feet = np.stack([(rows[:, 2] + rows[:, 4] / 2) / 640, (rows[:, 3] + rows[:, 5]) / 480], axis=1)
    hom, _ = cv2.findHomography(feet, rows[:, 7:9], 0)
    scenes = {}
    for cam, (x0, x1) in SPANS.items():
        full = np.array([[x0 + x * (x1 - x0), y] for x, y in QUAD], np.float64)
        floor = cv2.perspectiveTransform(full[None], hom)[0]
        gate, gx = GATES[cam]
        scenes[cam] = {
            "gates": [{"name": gate, "line": [[gx, 0.3], [gx, 1.0]]}],
            "calibration": {"image": QUAD, "floor": [[round(float(x), 3), round(float(y), 3)] for x, y in floor]},
        }
    return scenes


@pytest.fixture
def crops(shared_data: Path, tmp_path: Path) -> dict[str, Path]:
    clip = _read(shared_data / "pedestrians" / "tud_stadtmitte.mp4")
    return {
        cam: _write(tmp_path / f"{cam}.mp4", [f[:, round(x0 * 640) : round(x1 * 640)] for f in clip], 25.0)
        for cam, (x0, x1) in SPANS.items()
    }


@pytest.fixture
def empty_room(shared_data: Path, tmp_path: Path) -> Path:
    """Real footage of nobody: the intel clip's first 4 s, before the first visitor walks in (at about 6.7 s)."""
    return _write(tmp_path / "empty.mp4", _read(shared_data / "pedestrians" / "intel_one_by_one_person_first60s.mp4", 40), 10.0)


def _site_entry(hass: HomeAssistant, options: dict[str, Any], title: str = "Street") -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN, title=title, unique_id=f"site_{title.lower()}", data={CONF_ENTRY_KIND: ENTRY_KIND_SITE}, options=options
    )
    entry.add_to_hass(hass)
    return entry


def _rgb(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _dots(png: bytes) -> tuple[np.ndarray, list[tuple[float, float]]]:
    img = _rgb(png)
    dots = np.all(img == DOT_ONE_CAMERA, axis=2) | np.all(img == DOT_MERGED, axis=2)
    n, _, stats, centres = cv2.connectedComponentsWithStats(dots.astype(np.uint8))
    return img, [(float(x), float(y)) for (x, y), s in zip(centres[1:], stats[1:], strict=True) if s[cv2.CC_STAT_AREA] >= 20]


async def test_site_fuses_two_real_cameras(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    shared_data: Path,
    crops: dict[str, Path],
    empty_room: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(site_entry, "HEATMAP_REFRESH_S", 0.0)
    scenes = _camera_scenes(shared_data)
    cams = {cam: make_entry(str(crops[cam]), title=cam, scene=scenes[cam], fps=5) for cam in SPANS}
    # The gates that enter the site:
    # Left's west gate crossing "in", Right's east gate crossing "out". 5 people were on site at the last restart.
    gates = [f"{cams['Left'].entry_id}/west/in", f"{cams['Right'].entry_id}/east/out"]
    mock_restore_cache_with_extra_data(
        hass, [(State("sensor.street_people", "5"), {"native_value": 5, "native_unit_of_measurement": None})]
    )
    options = {
        CONF_SITE_GATES: gates,
        CONF_EMPTY_RESET_S: 2,
        CONF_FUSION_RADIUS_M: 1.0,
        CONF_PLAN_WIDTH_M: PLAN_W,
        CONF_PLAN_DEPTH_M: PLAN_D,
    }
    site = _site_entry(hass, options)
    assert await hass.config_entries.async_setup(site.entry_id)  # sets up the integration: its cameras too
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED and all(e.state is ConfigEntryState.LOADED for e in cams.values())
    assert number_of(hass, "sensor.street_people") == 5
    runtime = site.runtime_data

    # ---- the street: both cameras report; the overlap is merged ----
    await wait_for(
        hass,
        lambda: len(runtime.fusion.views) == 2 and number_of(hass, "sensor.street_people_on_map") > 0,
        60,
        "both cameras on the map",
    )
    on_map, seen, merged = [], [], []

    def frames() -> int:
        return max(e.runtime_data.state.frames for e in cams.values())

    # The first pass of the 7.2 s clip (36 frames at 5 fps): where a looping demo clip restarts, the
    # tracker briefly holds the last pass's people with the new ones, in each camera alike.
    while frames() <= 34:
        state = hass.states.get("sensor.street_people_on_map")
        assert state is not None
        on_map.append(int(state.state))
        seen.append(int(state.attributes["seen_by_cameras"]))
        merged.append(int(state.attributes["merged"]))
        await asyncio.sleep(0.2)
    assert len(on_map) >= 20
    on_map_a, seen_a = np.array(on_map), np.array(seen)
    gt = np.loadtxt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt", delimiter=",", ndmin=2)
    per_frame = np.bincount(gt[:, 0].astype(int))[1:]
    assert (on_map_a <= seen_a).all()
    assert (on_map_a <= per_frame.max()).all()  # never more people than the street ever has
    assert seen_a.mean() - on_map_a.mean() >= 0.5  # about one person stands in the overlap: the naive sum counts them twice
    assert np.mean(np.array(merged) > 0) >= 0.5
    assert on_map_a.mean() <= per_frame.mean() + 0.5

    # Gate flows: the site's entries/exits are the cameras' crossings in the site's directions since it first heard them.
    people = hass.states.get("sensor.street_people")
    assert people is not None and people.attributes["state_class"] == "measurement"
    west_in, west_out = number_of(hass, "sensor.left_west_entries"), number_of(hass, "sensor.left_west_exits")
    east_in, east_out = number_of(hass, "sensor.right_east_entries"), number_of(hass, "sensor.right_east_exits")
    assert west_in + west_out + east_in + east_out >= 1  # people crossed the gates
    entries, exits = people.attributes["entries"], people.attributes["exits"]
    assert (entries, exits) == (west_in + east_out, west_out + east_in)
    assert max(0, 5 + entries - exits) <= float(people.state) <= 5 + entries  # clipped at zero, never below

    # ---- the pictures: dots on the plan, nothing of the cameras ----
    client = await hass_client()
    resp = await client.get("/api/image_proxy/image.street_floor_plan")
    assert resp.status == 200 and resp.content_type == "image/png"
    img, dots = _dots(await resp.read())
    assert img.shape == (560 + LEGEND_PX, 800, 3)  # 20 m x 14 m at 40 px/m, legend below: not a camera frame
    assert {tuple(c) for c in img.reshape(-1, 3)} <= PALETTE  # drawn from geometry only
    assert 1 <= len(dots) <= per_frame.max()
    for x, y in dots:  # on the street's ground-truth area (metres), give or take a metre
        assert 2.5 <= x / 40 <= 17.6 and 1.0 <= y / 40 <= 12.4
    resp = await client.get("/api/image_proxy/image.street_heatmap")
    assert resp.status == 200 and resp.content_type == "image/png"
    assert _rgb(await resp.read()).shape == img.shape
    # Each fused person once per 1 s step: at most as many counts as the street holds people per second.
    assert 0 < runtime.heatmap.total <= per_frame.max() * 30

    # ---- everyone gone: the cameras are reloaded onto an empty room; the site follows the new runtimes ----
    for entry in cams.values():  # (unloaded first: the update listener is not part of this test)
        assert await hass.config_entries.async_unload(entry.entry_id)
        hass.config_entries.async_update_entry(entry, data={**entry.data, "url": str(empty_room)})
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(
        hass, lambda: number_of(hass, "sensor.street_people") == 0, 30, "the site to reset once every camera sees nobody"
    )
    assert all(runtime._subscribed[e.entry_id][0] is e.runtime_data for e in cams.values())
    assert number_of(hass, "sensor.street_people_on_map") == 0

    for entry in (*cams.values(), site):
        assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_site_config_and_options_flow(hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], clip: Path) -> None:
    """The site form offers the cameras' gates; a malformed or unknown choice is refused with a clear message."""
    cam = make_entry(str(clip), title="Yard")  # not loaded yet: its gates come from its stored scene ("middle")
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    assert result["type"] is FlowResultType.MENU and "site" in result["menu_options"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "site"})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "site"
    schema = result["data_schema"].schema
    gate_options = next(v for k, v in schema.items() if k == CONF_SITE_GATES).config["options"]
    assert {o["value"] for o in gate_options} == {f"{cam.entry_id}/middle/in", f"{cam.entry_id}/middle/out"}

    base = {"name": "Yard site", CONF_EMPTY_RESET_S: 30, CONF_FUSION_RADIUS_M: 1.0, CONF_PLAN_WIDTH_M: 20, CONF_PLAN_DEPTH_M: 10}
    for bad, message in (
        (f"{cam.entry_id}/middle/sideways", "expected camera/gate/in or camera/gate/out"),
        (f"{cam.entry_id}/back door/in", "camera 'Yard' has no such gate (its gates: middle)"),
        ("nosuchcamera/middle/in", "no such safecam camera"),
    ):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {**base, CONF_SITE_GATES: [bad]})
        assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "invalid_site"}
        assert message in result["description_placeholders"]["error"]
    both = [f"{cam.entry_id}/middle/in", f"{cam.entry_id}/middle/out"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {**base, CONF_SITE_GATES: both})
    assert result["errors"] == {"base": "invalid_site"} and "chosen twice" in result["description_placeholders"]["error"]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**base, CONF_SITE_GATES: [f"{cam.entry_id}/middle/in"], CONF_SITE_CAMERAS: [cam.entry_id]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["title"] == "Yard site"
    site = result["result"]
    assert site.data == {CONF_ENTRY_KIND: ENTRY_KIND_SITE}
    assert site.options[CONF_SITE_GATES] == [f"{cam.entry_id}/middle/in"] and site.options[CONF_SITE_CAMERAS] == [cam.entry_id]
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED
    assert number_of(hass, "sensor.yard_site_people") == 0 and hass.states.get("image.yard_site_floor_plan") is not None

    # A second site of the same name is refused; a site has no reconfigure (its options hold its settings).
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "site"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {**base, CONF_SITE_GATES: []})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "site_already_configured"
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "reconfigure", "entry_id": site.entry_id})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "site_not_reconfigurable"

    # Options: the same form, checked the same way; a picture that is not there is refused.
    result = await hass.config_entries.options.async_init(site.entry_id)
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "site"
    opts = {CONF_EMPTY_RESET_S: 60, CONF_FUSION_RADIUS_M: 1.5, CONF_PLAN_WIDTH_M: 30, CONF_PLAN_DEPTH_M: 12}
    result = await hass.config_entries.options.async_configure(result["flow_id"], {**opts, "plan_image": "safecam/missing.png"})
    assert result["errors"] == {"base": "invalid_site"} and "no readable picture" in result["description_placeholders"]["error"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**opts, CONF_SITE_GATES: [f"{cam.entry_id}/middle/out"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site.options[CONF_SITE_GATES] == [f"{cam.entry_id}/middle/out"] and site.options[CONF_FUSION_RADIUS_M] == 1.5
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED and site.runtime_data.settings.radius_m == 1.5  # reloaded with them
    for entry in (site, cam):  # (adding the site set up the integration's other entries too)
        assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_a_site_is_not_a_camera_for_services_editor_and_diagnostics(
    hass: HomeAssistant, hass_ws_client: Any, make_entry: Callable[..., MockConfigEntry], clip: Path
) -> None:
    """Camera-only code paths skip a site: no crash, clear errors, site diagnostics without pictures."""
    from homeassistant.exceptions import ServiceValidationError

    from custom_components.safecam.diagnostics import async_get_config_entry_diagnostics

    camera = make_entry(str(clip))
    await hass.config_entries.async_setup(camera.entry_id)
    site = _site_entry(hass, {CONF_SITE_GATES: [], CONF_EMPTY_RESET_S: 30.0, CONF_FUSION_RADIUS_M: 1.0})
    assert await hass.config_entries.async_setup(site.entry_id)
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED

    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "reset_counters", {"config_entry_id": [site.entry_id]}, blocking=True)
    assert err.value.translation_key == "no_camera_targeted"

    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "safecam/entries"})
    listed = (await client.receive_json())["result"]["entries"]
    assert [e["entry_id"] for e in listed] == [camera.entry_id]
    await client.send_json_auto_id({"type": "safecam/scene/get", "entry_id": site.entry_id})
    assert (await client.receive_json())["error"]["code"] == "not_found"

    diagnostics = await async_get_config_entry_diagnostics(hass, site)
    assert diagnostics["cameras"] == [camera.entry_id]
    assert diagnostics["occupancy"] == {"people": 0, "entries": 0, "exits": 0}
    assert isinstance(diagnostics["people_on_map"], list)
    for entry in (site, camera):
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_site_needs_none_of_the_engines_requirements(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the engine cannot run in Home Assistant (HA OS / Container: no OpenCV, no ONNX Runtime), a site is
    still added through the flow, loads and draws its pictures: no `engine_unavailable` abort or repair."""
    monkeypatch.setattr(inprocess, "ENGINE_MODULES", (*inprocess.ENGINE_MODULES, "safecam_engine_module_that_is_not_installed"))
    with pytest.raises(inprocess.EngineUnavailable):
        await inprocess.async_ensure_engine(hass)  # (the engine really is unavailable here)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "site"})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "site"
    form = {"name": "Depot", CONF_EMPTY_RESET_S: 30, CONF_FUSION_RADIUS_M: 1.0, CONF_PLAN_WIDTH_M: 20, CONF_PLAN_DEPTH_M: 10}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    site = result["result"]
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED
    assert ir.async_get(hass).async_get_issue(DOMAIN, inprocess.ISSUE_ENGINE_UNAVAILABLE) is None
    assert number_of(hass, "sensor.depot_people") == 0 and number_of(hass, "sensor.depot_people_on_map") == 0
    png = await hass.async_add_executor_job(site.runtime_data.floor_plan_png, [])
    assert _rgb(png).shape == (400 + LEGEND_PX, 800, 3)
    assert await hass.config_entries.async_unload(site.entry_id)
