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
    # Intrusion needs no extra config: any danger, restricted or equipment zone brings the safety rules.
    if scene.section("safety") is not None or any(z.kind in ("danger", "restricted", "equipment") for z in scene.zones):
        from .safety import SafetyAnalyzer

        analyzers.append(SafetyAnalyzer.from_scene(scene, camera))
    # Falls / man-down only when configured (`falls: {}` or `falls: true`): the pose model has no public download.
    if (falls := scene.section("falls")) is not None and falls.enabled:
        from .falls import FallsAnalyzer

        analyzers.append(FallsAnalyzer.from_scene(falls, scene, camera))
    # Occupancy (gate flows) and dwell for the zones listed under `occupancy:`.
    if (occupancy := scene.section("occupancy")) is not None and occupancy.zones:
        from .occupancy import OccupancyAnalyzer

        analyzers.append(OccupancyAnalyzer.from_scene(scene, occupancy))
    # PPE (hard hat, vest) only when configured: loads our own classifier (models/ppe).
    if (ppe := scene.section("ppe")) is not None:
        from ..ppe import PPEAnalyzer

        analyzers.append(PPEAnalyzer(ppe, camera))
    # Floor points in metres for site fusion, on calibrated cameras only (engine/site.py).
    if (calibration := scene.section("calibration")) is not None:
        from ..site import FloorAnalyzer

        analyzers.append(FloorAnalyzer(calibration))
    # Heatmap for every camera: counts on a coarse grid, cheap; its history outlives rebuilds.
    from .heatmap import HeatmapAnalyzer

    analyzers.append(HeatmapAnalyzer(camera))
    return analyzers
