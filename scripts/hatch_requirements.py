"""Hatchling metadata hook: the engine package's dependencies are the engine's own lists (engine/requirements.py).

Read by file path, not imported as a package: building the wheel must not import the integration (Home Assistant).
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

REQUIREMENTS = Path("custom_components/safecam/engine/requirements.py")


class CustomMetadataHook(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        lists = runpy.run_path(str(Path(self.root) / REQUIREMENTS))
        metadata["dependencies"] = [*lists["ENGINE_REQUIREMENTS"], *lists["SERVICE_REQUIREMENTS"]]
