"""The thin-integration tests: Home Assistant with safecam loaded as custom integration."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """PHCC: let Home Assistant load custom_components/safecam."""
