"""Which safety event types a camera can raise, from its scene config (one event counter sensor per type).

Mirrors engine.scene.build_analyzers and the analyzers' rules: a counter that could never move would
only clutter the device page and the long-term statistics. A type added to engine.types.EVENT_TYPES
gets no counter until it is listed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contract import EVENT_TYPES
from .engine.scene.safety import SafetyConfig

if TYPE_CHECKING:
    from .engine.config import SceneConfig


def event_types_of(scene: SceneConfig) -> tuple[str, ...]:
    """The event types this scene's analyzers can fire (engine/scene/safety.py, falls.py, engine/ppe.py)."""
    rules = scene.section("safety")  # engine.scene.safety.SafetyConfig, or None (defaults)
    calibrated = scene.section("calibration") is not None  # metre-based rules need the ground plane
    kinds = {z.kind for z in scene.zones}
    falls = scene.section("falls")
    approach_m = (rules or SafetyConfig()).approach_m
    equipment = {z.name for z in scene.zones if z.kind == "equipment"}
    possible = {
        # Entering a danger zone or a restricted area.
        "intrusion": bool(kinds & {"danger", "restricted"}),
        "approach": calibrated and "danger" in kinds and approach_m > 0,
        "distancing": calibrated and rules is not None and (rules.distancing_m is not None or bool(rules.hazardous)),
        "congestion": rules is not None and bool(rules.congestion),
        # A machine rule (schedule or danger zone) on an equipment zone.
        "machine_activity": rules is not None and bool(equipment & set(rules.machines)),
        "fall": falls is not None and bool(falls.enabled),
        "immobile": falls is not None and bool(falls.enabled),
        "ppe_violation": scene.section("ppe") is not None,
    }
    return tuple(t for t in EVENT_TYPES if possible.get(t, False))
