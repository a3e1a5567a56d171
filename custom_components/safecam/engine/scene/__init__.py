"""Scene analytics on tracked people: zones, gates and the analyzers built from the scene config."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import SceneConfig
    from .base import Analyzer


def build_analyzers(scene: SceneConfig, camera: str) -> list[Analyzer]:
    """The analyzers this scene config asks for, in the order they run.

    Each capability adds itself here (one line); heavy ones (models) are built only when the
    scene enables them, so a camera that needs no pose or PPE model loads none.
    """
    analyzers: list[Analyzer] = []
    return analyzers
