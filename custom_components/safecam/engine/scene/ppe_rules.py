"""PPE rules from the scene config: which items are required where, cooldown and consensus.

    ppe:
      required: [helmet]          # everyone in the picture
      zones: {loading_bay: [vest]}  # also required inside these zones (adds to `required`)
      cooldown_s: 60              # at most one ppe_violation event per person per this many seconds
      consensus_frames: 5         # looks that must agree before a person's helmet/vest state is trusted

Parsed here (light, no model import) so that a bad config fails with a one-line ConfigError before
anything is loaded; engine/ppe.py applies the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError, ZoneConfig, reject_unknown_keys
from ..geometry import points_in_polygon

ITEMS = ("helmet", "vest")
_KEYS = ("required", "zones", "cooldown_s", "consensus_frames")
MAX_CONSENSUS_FRAMES = 50
DEFAULT_COOLDOWN_S = 60.0
DEFAULT_CONSENSUS_FRAMES = 5


@dataclass(frozen=True, slots=True)
class ZoneRule:
    zone: str
    items: tuple[str, ...]
    polygon: tuple[tuple[float, float], ...]  # normalized, from the zone's config


@dataclass(frozen=True, slots=True)
class PPERules:
    required: tuple[str, ...] = ()
    zones: tuple[ZoneRule, ...] = ()
    cooldown_s: float = DEFAULT_COOLDOWN_S
    consensus_frames: int = DEFAULT_CONSENSUS_FRAMES

    def required_at(self, position: tuple[float, float]) -> dict[str, str | None]:
        """item -> why it is required at this normalized floor point: a zone name, or None (everywhere)."""
        import numpy as np  # per-frame maths only: the section parses without numpy (Home Assistant's forms)

        out: dict[str, str | None] = dict.fromkeys(self.required)
        point = np.asarray([position], np.float64)
        for rule in self.zones:
            new = [item for item in rule.items if item not in out]
            if new and points_in_polygon(point, np.asarray(rule.polygon, np.float64))[0]:
                out.update(dict.fromkeys(new, rule.zone))
        return out


def _items(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"ppe: {where} must be a list of items ({', '.join(ITEMS)})")
    for v in value:
        if v not in ITEMS:
            raise ConfigError(f"ppe: unknown item '{v}' in {where} (known: {', '.join(ITEMS)})")
    return tuple(dict.fromkeys(value))  # order kept, duplicates dropped


def parse_ppe(data: object, zones: tuple[ZoneConfig, ...]) -> PPERules:
    """Validate the `ppe:` section; raise ConfigError naming the first problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"ppe: expected a mapping with {', '.join(_KEYS)}")
    reject_unknown_keys(data, _KEYS, "ppe")
    required = _items(data["required"], "'required'") if data.get("required") is not None else ()
    raw_zones = data.get("zones") or {}
    if not isinstance(raw_zones, dict):
        raise ConfigError("ppe: 'zones' must be a mapping of zone name to a list of items")
    by_name = {z.name: z for z in zones}
    rules = []
    for name, items in raw_zones.items():
        if name not in by_name:
            known = ", ".join(by_name) if by_name else "none are defined"
            raise ConfigError(f"ppe: unknown zone '{name}' in zones (zones: {known})")
        rules.append(ZoneRule(str(name), _items(items, f"zone '{name}'"), by_name[name].polygon))
    if not required and not any(r.items for r in rules):
        raise ConfigError("ppe: nothing is required; list items under 'required' or 'zones'")
    cooldown = data.get("cooldown_s", DEFAULT_COOLDOWN_S)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not cooldown >= 0:
        raise ConfigError("ppe: 'cooldown_s' must be a number of seconds >= 0")
    frames = data.get("consensus_frames", DEFAULT_CONSENSUS_FRAMES)
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_CONSENSUS_FRAMES:
        raise ConfigError(f"ppe: 'consensus_frames' must be a whole number from 1 to {MAX_CONSENSUS_FRAMES}")
    return PPERules(required, tuple(rules), float(cooldown), frames)
