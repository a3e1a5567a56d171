"""Heatmap image entity and the safecam.export_heatmap action, on the real engine with the intel clip.

The intel clip: an elevated indoor camera; the first visitor walks in from the bottom (about 6.7 s)
to a standing table in the lower middle of the frame. The heat must appear there, nowhere near the
top of the frame (the back wall), and the exported PNG must show it too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.safecam import image as image_platform
from custom_components.safecam.const import DOMAIN
from custom_components.safecam.engine.scene.heatmap import drop_heatmap_store, heatmap_store

from .conftest import wait_for

ENTITY = "image.heat_heatmap"


def _hot(png: bytes) -> np.ndarray:
    """(N, 2) normalized x, y of the strongly heated pixels (red to yellow on the JET scale)."""
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    b, g, r = (img[..., i].astype(int) for i in range(3))
    ys, xs = np.nonzero((r > 170) & (r > b + 100))
    return np.stack([xs / img.shape[1], ys / img.shape[0]], axis=1)


async def test_heatmap_image_and_export(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(image_platform, "REFRESH_S", 0.0)  # a new picture on every change (60 s in use)
    hass.config.config_dir = str(tmp_path / "config")
    drop_heatmap_store("Heat")
    entry = make_entry(str(shared_data / "pedestrians" / "intel_one_by_one_person_first60s.mp4"), title="Heat", scene={}, fps=10)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(ENTITY) is not None

    store = heatmap_store("Heat")
    await wait_for(hass, lambda: store.total >= 15, 60, "heat from the first visitor")

    client = await hass_client()
    resp = await client.get(f"/api/image_proxy/{ENTITY}")
    assert resp.status == 200 and resp.content_type == "image/png"
    hot = _hot(await resp.read())
    assert len(hot) > 100
    centre = hot.mean(axis=0)
    assert 0.3 <= centre[0] <= 0.85 and centre[1] >= 0.5  # at the table, not on the back wall

    # Export: a name, written into <config>/www/safecam/exports (tests/ha/test_hardening.py: who may, which names).
    result = await hass.services.async_call(
        DOMAIN,
        "export_heatmap",
        {"config_entry_id": entry.entry_id, "window": "day", "name": "heat"},
        blocking=True,
        return_response=True,
    )
    written = tmp_path / "config" / "www" / "safecam" / "exports" / "heat.png"
    assert result == {"path": str(written), "url": "/local/safecam/exports/heat.png", "window": "day"}
    assert len(_hot(written.read_bytes())) > 100
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "export_heatmap", {"name": "x"}, blocking=True)
    assert err.value.translation_key == "no_camera_targeted"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    drop_heatmap_store("Heat")
