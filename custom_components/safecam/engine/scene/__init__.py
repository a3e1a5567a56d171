"""Scene analytics on tracked people: zones, gates and the analyzers built from the scene config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...contract import capabilities

if TYPE_CHECKING:
    from ..config import SceneConfig
    from .base import Analyzer


def build_analyzers(scene: SceneConfig, camera: str) -> list[Analyzer]:
    """The analyzers this scene config asks for, in the order they run.

    Each capability adds itself here (one line); heavy ones (models) are built only when the
    scene enables them, so a camera that needs no pose or PPE model loads none.
    """
    analyzers: list[Analyzer] = []
    runs = capabilities(scene.as_dict()).runs  # which analyzers: decided once, in the contract (HA builds entities from it)
    # Intrusion needs no extra config: any danger, restricted or equipment zone brings the safety rules.
    if runs("safety"):
        from .safety import SafetyAnalyzer

        analyzers.append(SafetyAnalyzer.from_scene(scene, camera))
    # Falls / man-down only when configured (`falls: {}` or `falls: true`): the pose model has no public download.
    if runs("falls"):
        from .falls import FallsAnalyzer

        analyzers.append(FallsAnalyzer.from_scene(scene.section("falls"), scene, camera))
    # Occupancy (gate flows) and dwell for the zones listed under `occupancy:`.
    if runs("occupancy"):
        from .occupancy import OccupancyAnalyzer

        analyzers.append(OccupancyAnalyzer.from_scene(scene, scene.section("occupancy")))
    # PPE (hard hat, vest) only when configured: loads our own classifier (models/ppe).
    if runs("ppe"):
        from ..ppe import PPEAnalyzer

        analyzers.append(PPEAnalyzer(scene.section("ppe"), camera))
    # Floor points in metres for site fusion (in HA: site_fusion.py), on calibrated cameras only (engine/site.py).
    if runs("floor"):
        from ..site import FloorAnalyzer

        analyzers.append(FloorAnalyzer(scene.section("calibration")))
    # Heatmap for every camera: counts on a coarse grid, cheap; its history outlives rebuilds.
    from .heatmap import HeatmapAnalyzer

    analyzers.append(HeatmapAnalyzer(camera))
    return analyzers
